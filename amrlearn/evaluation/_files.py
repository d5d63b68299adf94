"""``evaluate_checkpoint``: a checkpoint file and a test set, evaluated and saved."""

from pathlib import Path

import numpy as np

from ._evaluate import _log, _subset, evaluate

__all__ = ["evaluate_checkpoint", "load_test_data"]


def _named_sets():
    """The test sets known by name: name -> (loader, display name, eps grid)."""
    from ..datasets import load_cifar10, load_fashion_mnist, load_mnist
    from ..experiments._paper import EPS_GRIDS

    return {
        "mnist": (load_mnist, "MNIST", EPS_GRIDS["mnist"]),
        "fashion-mnist": (load_fashion_mnist, "Fashion-MNIST", EPS_GRIDS["fashion-mnist"]),
        "cifar10": (load_cifar10, "CIFAR-10", EPS_GRIDS["cifar10"]),
    }


_NPZ_KEYS = (("X", "y"), ("x", "y"), ("X_test", "y_test"), ("x_test", "y_test"))


def load_test_data(data, data_home=None):
    """A test set by name, or from an ``.npz`` file: ``(X, y, description, eps grid)``.

    Parameters
    ----------
    data : str or path-like
        ``"mnist"``, ``"fashion-mnist"`` or ``"cifar10"`` (the test set, as images of
        shape (n, C, H, W)), or an ``.npz`` file holding ``X`` and ``y`` (or ``x_test``
        and ``y_test``...): floats in [0, 1], or uint8 pixels (divided by 255).
    data_home : str or path-like, default=None
        Where the named datasets are (see :func:`amrlearn.datasets.get_data_home`).

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from amrlearn.evaluation import load_test_data
    >>> path = tempfile.mkdtemp() + "/tiny.npz"
    >>> np.savez(path, X=np.full((3, 1, 28, 28), 255, np.uint8), y=[0, 1, 2])
    >>> X, y, name, eps = load_test_data(path)
    >>> X.dtype, float(X.max()), name.split()[0], eps
    (dtype('float32'), 1.0, 'tiny.npz', (0.5, 1.0, 1.5, 2.0))
    """
    import hashlib

    named = _named_sets()
    if str(data) in named:
        loader, name, grid = named[str(data)]
        X, y = loader(data_home, subset="test", flatten=False, return_X_y=True)
        return X, y, f"{name} test set", grid
    path = Path(data)
    if path.suffix != ".npz" or not path.is_file():
        from ..datasets import DatasetNotFoundError

        raise DatasetNotFoundError(
            f"--data {data}: expected {', '.join(named)} or an existing .npz file."
        )
    with np.load(path, allow_pickle=False) as f:
        keys = next(((a, b) for a, b in _NPZ_KEYS if a in f and b in f), None)
        if keys is None:
            raise ValueError(f"{path} holds {sorted(f)}; expected arrays X and y.")
        X, y = f[keys[0]], f[keys[1]]
    X = X / np.float32(255) if X.dtype == np.uint8 else X
    X = np.ascontiguousarray(X, dtype=np.float32)
    if y.ndim != 1 or len(y) != len(X) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{path}: y must hold one integer label per row of X.")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    grid = named["cifar10"][2] if X.shape[1:] in ((3, 32, 32), (3072,)) else named["mnist"][2]
    return X, y.astype(np.int64), f"{path.name} (sha256 {digest})", grid


def _fit_input(model, X):
    """``X`` as the model takes it: as given, else flattened (tried on two samples)."""
    import torch

    errors = []
    for candidate in (X, X.reshape(len(X), -1)):
        try:
            with torch.no_grad():
                model.eval()(torch.as_tensor(candidate[:2]))
            return candidate
        except (RuntimeError, ValueError, TypeError) as exc:
            errors.append(exc)
    raise ValueError(
        f"The model takes the data neither as {X.shape[1:]} nor flattened: {errors[0]}"
    ) from errors[0]


def evaluate_checkpoint(
    model,
    weights=None,
    *,
    data="mnist",
    data_home=None,
    n_points=1000,
    eps=None,
    trust_pickle=False,
    out=None,
    bound_samples=None,
    **kwargs,
):
    """Load a checkpoint and a test set, :func:`evaluate`, and save the report.

    What ``amrlearn evaluate`` runs.

    Parameters
    ----------
    model : str or None
        A model spec (``"CNN"``, ``"MLP:hidden=256"``, ``"package.module:Class"``; see
        :func:`amrlearn.neural.load_checkpoint`), or ``None`` for a file that holds a
        whole module.
    weights : str or path-like
        The checkpoint file.
    data : str or path-like, default="mnist"
        See :func:`load_test_data`.
    data_home : str or path-like, default=None
    n_points : int or None, default=1000
        A seeded random subset of the test set; ``None``: all of it.
    eps : sequence of float, default=None
        ``None``: the dataset's grid (MNIST's for MNIST and Fashion-MNIST and for other
        data, CIFAR-10's for 3 x 32 x 32 inputs).
    trust_pickle : bool, default=False
        Allow a whole pickled module (see :func:`~amrlearn.neural.load_checkpoint`).
    out : str or path-like, default=None
        Where ``results.json``, ``summary.md`` and ``robustness_curve.png`` go; ``None``
        writes nothing.
    bound_samples : int, default=None
        Theorem 3's sampled points per input for the curve (``None``: 128; the paper's
        is 50 x 1024).
    **kwargs
        Passed to :func:`evaluate` (``attack``, ``steps``, ``step_size``, ``curve``,
        ``curve_steps``, ``batch_size``, ``device``, ``random_state``, ``verbose``).

    Returns
    -------
    report : EvaluationReport
    """
    from ..neural import load_checkpoint

    X, y, description, grid = load_test_data(data, data_home)
    idx = _subset(len(y), n_points, kwargs.get("random_state", 0))
    X, y = X[idx], y[idx]
    module, info = load_checkpoint(
        model, weights, input_shape=X.shape[1:], trust_pickle=trust_pickle, return_info=True
    )
    X = _fit_input(module, X)
    source = {
        "model": model or f"the module in {info['file']}",
        "weights": info["file"],
        "sha256": info["sha256"],
        "format": info["format"],
        "matched_by": info["matched_by"],
        **({"dropped": info["dropped"]} if info["dropped"] else {}),
        "data": f"{description}, seed {kwargs.get('random_state', 0)}",
    }
    if bound_samples is not None:
        kwargs["bound_params"] = {"n_batches": 1, "batch_size": int(bound_samples)}
    report = evaluate(
        module, X, y, eps=grid if eps is None else eps, n_points=None, source=source, **kwargs
    )
    if out is not None:
        for path in report.save(out):
            _log(kwargs.get("verbose", 0), f"wrote {path}")
    return report
