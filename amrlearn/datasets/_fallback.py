"""MNIST where the data home has it, else scikit-learn's bundled digits: data that always loads."""

import warnings

import numpy as np

from ._base import DatasetNotFoundError, get_data_home
from ._mnist import _FILES, _FOLDER, _locate, load_mnist

__all__ = ["load_mnist_or_digits"]

#: Why the digits do not stand in for MNIST in the paper's experiments.
DIGITS_CAVEAT = (
    "scikit-learn's 8x8 digits, a set too small and too easy to show the trade-off "
    "between minimum and average margin"
)


def mnist_files_present(data_home=None):
    """Whether the data home holds the four MNIST files (not checked against their digests).

    Examples
    --------
    >>> import tempfile
    >>> from amrlearn.datasets._fallback import mnist_files_present
    >>> mnist_files_present(tempfile.mkdtemp())
    False
    """
    folder = get_data_home(data_home) / _FOLDER
    return all(_locate(folder, name) is not None for pair in _FILES.values() for name in pair)


def load_mnist_or_digits(data_home=None, *, classes=None, test_size=0.3, random_state=0):
    """MNIST's training and test sets, or scikit-learn's 8x8 digits when MNIST is missing.

    The demo, Figure 1 and the benchmarks run on a fresh machine without a network this
    way. The digits (1797 images of 8x8 pixels, bundled with scikit-learn) are scaled to
    [0, 1] like MNIST and split in two with a stratified, seeded split.

    Parameters
    ----------
    data_home : str or Path, default=None
        Where to look for MNIST (see :func:`get_data_home`).
    classes : sequence of int, default=None
        Keep only these digits (e.g. ``(0, 1)`` for Figure 1's binary task); ``None`` keeps
        all ten.
    test_size : float, default=0.3
        Digits only: the share of the images held out for testing.
    random_state : int, default=0
        Digits only: the seed of the split.

    Returns
    -------
    X_train : ndarray of shape (n_train, 784) or (n_train, 64), float32
    y_train : ndarray of shape (n_train,), int64
    X_test : ndarray of shape (n_test, 784) or (n_test, 64), float32
    y_test : ndarray of shape (n_test,), int64
    name : str
        What was loaded, for reports: ``"MNIST 0 vs 1"``, ``"digits 0 vs 1 (scikit-learn)"``,
        ``"MNIST"`` or ``"digits (scikit-learn)"``.

    Warns
    -----
    UserWarning
        When MNIST is missing and the digits are used instead.

    Examples
    --------
    >>> import tempfile, warnings
    >>> from amrlearn.datasets import load_mnist_or_digits
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     Xtr, ytr, Xte, yte, name = load_mnist_or_digits(tempfile.mkdtemp(), classes=(0, 1))
    >>> name, Xtr.shape[1], sorted(set(ytr.tolist()))
    ('digits 0 vs 1 (scikit-learn)', 64, [0, 1])
    """
    suffix = "" if classes is None else " " + " vs ".join(str(c) for c in classes)
    try:
        Xtr, ytr = load_mnist(data_home, subset="train", classes=classes, return_X_y=True)
        Xte, yte = load_mnist(data_home, subset="test", classes=classes, return_X_y=True)
        return Xtr, ytr, Xte, yte, f"MNIST{suffix}"
    except DatasetNotFoundError as exc:
        warnings.warn(
            f"MNIST not found ({exc}); using {DIGITS_CAVEAT} instead.",
            UserWarning,
            stacklevel=2,
        )
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    if classes is not None:
        keep = np.isin(y, classes)
        X, y = X[keep], y[keep]
    X = (X / 16.0).astype(np.float32)
    y = y.astype(np.int64)
    Xtr, Xte, ytr, yte = train_test_split(
        X, y, test_size=test_size, random_state=random_state, stratify=y
    )
    return Xtr, ytr, Xte, yte, f"digits{suffix} (scikit-learn)"
