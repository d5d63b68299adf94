"""MNIST, from the four IDX files of LeCun, Cortes & Burges."""

import numpy as np

from ._idx import FILES, load_idx_set, locate

__all__ = ["load_mnist"]

_FOLDER = "mnist"
_FILES = FILES
_locate = locate
# sha256 of the DECOMPRESSED bytes: independent of how a mirror compressed them.
_SHA256 = {
    "train-images-idx3-ubyte.gz": (
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
    ),
    "train-labels-idx1-ubyte.gz": (
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
    ),
}
_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
_N_CLASSES = 10

_DESCR = """\
MNIST handwritten digits (LeCun, Cortes & Burges)
-------------------------------------------------
70,000 grey-scale 28x28 images of the digits 0-9: 60,000 for training, 10,000 for testing.
Pixels are scaled from uint8 to float32 in [0, 1] (value / 255); labels are the digits.
``classes=(0, 1)`` gives the binary 0-vs-1 subset of Wu & Yu (12,665 training images).
Source: the four IDX files, verified by the sha256 of their decompressed bytes.
"""


def _missing(folder, name):
    return (
        f"MNIST file not found: {folder / name} (or its uncompressed form without '.gz'). "
        f"Call load_mnist(..., download=True) to fetch it, or download {_MIRRORS[0]}{name} "
        "and put it there; data_home or the AMRLEARN_DATA environment variable may point "
        "at a folder that holds mnist/."
    )


def load_mnist(
    data_home=None, *, subset="train", classes=None, return_X_y=False, flatten=True, download=False
):
    """Load MNIST, verified by sha256, as float32 in [0, 1].

    The four files ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
    ``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz`` are read from
    ``<data_home>/mnist/`` (gzipped, or decompressed without the ``.gz``). Each is checked
    against the sha256 of its decompressed bytes before use; parsed files are cached in
    memory, so later loads cost a read, a hash and a copy.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Folder holding ``mnist/``. ``None``: ``$AMRLEARN_DATA``, else ``~/amrlearn_data``
        (see :func:`get_data_home`).
    subset : {"train", "test"}, default="train"
        The 60,000 training or the 10,000 test images.
    classes : array-like of int, default=None
        Keep only these digits, in file order, with their labels as given
        (``classes=(0, 1)`` is the paper's binary subset). ``None`` keeps all ten.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.
    flatten : bool, default=True
        ``data`` of shape (n_samples, 784) for the linear models; ``False`` gives images of
        shape (n_samples, 1, 28, 28).
    download : bool, default=False
        Fetch missing files from the canonical mirrors (verified, written atomically).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``data`` (float32, flat or image-shaped as ``flatten`` says), ``target`` (int64),
        ``images`` (float32 of shape (n_samples, 1, 28, 28), sharing memory with ``data``),
        ``image_shape``, ``target_names``, ``filenames`` and ``DESCR``.
    (data, target) : tuple
        If ``return_X_y`` is True.

    Raises
    ------
    DatasetNotFoundError
        If a file is missing and ``download`` is False (or no mirror could serve it).
    ChecksumError
        If a file is corrupt.

    See Also
    --------
    load_cifar10 : The same interface for CIFAR-10.

    Examples
    --------
    With the files in the data home (``$AMRLEARN_DATA/mnist/``):

    >>> from amrlearn.datasets import load_mnist
    >>> X, y = load_mnist(subset="test", classes=(0, 1), return_X_y=True)  # doctest: +SKIP
    >>> X.shape, X.dtype, sorted(set(y.tolist()))  # doctest: +SKIP
    ((2115, 784), dtype('float32'), [0, 1])

    Without them, the error says where they belong and how to get them:

    >>> import tempfile
    >>> from amrlearn.datasets import DatasetNotFoundError
    >>> with tempfile.TemporaryDirectory() as home:
    ...     try:
    ...         load_mnist(home)
    ...     except DatasetNotFoundError as exc:
    ...         print(home in str(exc), "download=True" in str(exc))
    True True
    """
    # The module's tables are read at call time (tests replace them).
    return load_idx_set(
        data_home,
        _FOLDER,
        subset=subset,
        classes=classes,
        return_X_y=return_X_y,
        flatten=flatten,
        download=download,
        sha256=_SHA256,
        mirrors=_MIRRORS,
        missing=_missing,
        target_names=np.arange(_N_CLASSES),
        DESCR=_DESCR,
    )
