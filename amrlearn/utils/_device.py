"""Device helpers. Torch is imported inside the functions, so linear estimators never wait on it."""


def resolve_device(device=None):
    """Return a ``torch.device`` for ``device``.

    Parameters
    ----------
    device : str, torch.device or None, default=None
        ``None`` and ``"cpu"`` give the CPU; ``"cuda"`` needs an available CUDA device;
        ``"auto"`` picks CUDA when it is there, else the CPU.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If CUDA is asked for and is not available.

    Examples
    --------
    >>> from amrlearn.utils import resolve_device
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    import torch

    if device is None:
        return torch.device("cpu")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for, but CUDA is not available here.")
    return dev
