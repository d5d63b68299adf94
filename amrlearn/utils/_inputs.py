"""Checks of the inputs of attacks and bounds, written once.

Every function that takes ``X`` (array or tensor), ``y`` and a data box ``clip`` on the
way into torch goes through these: the same errors, worded the same way, everywhere.
Torch is imported inside the functions.
"""

from numbers import Real

import numpy as np
from sklearn.utils import check_random_state

__all__ = ["as_input_tensor", "as_labels", "check_box", "check_clip", "torch_generator"]

#: The declared constraint of every ``clip`` parameter; :func:`check_clip` checks the rest.
CLIP_CONSTRAINT = [tuple, list, None]


def check_clip(clip):
    """Parse a data box: ``None``, or ``(low, high)`` with finite ``low < high``.

    Parameters
    ----------
    clip : tuple or list of two reals, or None

    Returns
    -------
    clip : tuple of (float, float) or None

    Examples
    --------
    >>> from amrlearn.utils._inputs import check_clip
    >>> check_clip([0, 1])
    (0.0, 1.0)
    """
    if clip is None:
        return None
    if (
        not isinstance(clip, (tuple, list))
        or len(clip) != 2
        or not all(isinstance(c, Real) and np.isfinite(c) for c in clip)
        or not clip[0] < clip[1]
    ):
        raise ValueError(f"clip must be None or (low, high) with low < high, got {clip!r}.")
    return float(clip[0]), float(clip[1])


def as_input_tensor(X, dtype):
    """``X`` as a detached tensor of ``dtype``, shaped ``(n_samples, ...)``, finite.

    A ``scipy.sparse`` matrix is made dense, as the nets do (torch layers take dense
    input); a pandas DataFrame gives its values.

    Parameters
    ----------
    X : array-like, sparse matrix or tensor of shape (n_samples, ...)
    dtype : torch.dtype

    Returns
    -------
    X_t : tensor (on the device ``X`` was on; the CPU for arrays)

    Raises
    ------
    ValueError
        If ``X`` is not numeric, has fewer than 2 dimensions, no sample, or a NaN or
        infinite value.

    Examples
    --------
    >>> import scipy.sparse, torch
    >>> from amrlearn.utils._inputs import as_input_tensor
    >>> as_input_tensor(scipy.sparse.eye(2, format="csr"), torch.float32)
    tensor([[1., 0.],
            [0., 1.]])
    """
    import scipy.sparse
    import torch

    if scipy.sparse.issparse(X):
        X = X.toarray()
    if not torch.is_tensor(X):
        X = np.asarray(X)
        if X.dtype.kind not in "biufc":
            raise ValueError(f"X must be numeric, got an array of dtype {X.dtype}.")
    X_t = X if torch.is_tensor(X) else torch.as_tensor(X)
    X_t = X_t.detach()
    if X_t.dim() < 2:
        raise ValueError(f"X must have shape (n_samples, ...), got shape {tuple(X_t.shape)}.")
    if X_t.shape[0] == 0:
        raise ValueError("X has no samples.")
    if X_t.is_complex():
        raise ValueError(f"X must hold real numbers, got {X_t.dtype}.")
    X_t = X_t.to(dtype)
    if not torch.isfinite(X_t).all():
        raise ValueError("X contains NaN or infinity.")
    return X_t


def as_labels(y, n_samples):
    """``y`` as a 1-D numpy array of ``n_samples`` labels (tensors are moved to the CPU)."""
    import torch

    y = y.detach().cpu().numpy() if torch.is_tensor(y) else np.asarray(y)
    if y.shape != (n_samples,):
        raise ValueError(f"y must have shape ({n_samples},), got {y.shape}.")
    return y


def check_box(x, clip):
    """Raise if ``x`` leaves the box ``clip``: clipping would then enlarge perturbations."""
    clip = check_clip(clip)
    if clip is None:
        return
    lo, hi = clip
    if x.numel() and (x.min() < lo or x.max() > hi):
        raise ValueError(
            f"X has values in [{float(x.min()):.4g}, {float(x.max()):.4g}], outside the box "
            f"clip={clip!r}. Rescale X into the box or pass clip=None."
        )


def torch_generator(random_state, device):
    """A ``torch.Generator`` on ``device`` seeded from a scikit-learn ``random_state``.

    The same ``random_state`` (an int) gives the same stream; ``None`` a fresh one.

    Examples
    --------
    >>> import torch
    >>> from amrlearn.utils._inputs import torch_generator
    >>> a = torch.rand(2, generator=torch_generator(0, "cpu"))
    >>> b = torch.rand(2, generator=torch_generator(0, "cpu"))
    >>> bool((a == b).all())
    True
    """
    import torch

    seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator
