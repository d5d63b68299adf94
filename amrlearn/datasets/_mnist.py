"""MNIST, from the four IDX files of LeCun, Cortes & Burges."""

import struct

import numpy as np

from ._base import (
    DatasetNotFoundError,
    _check_digest,
    _check_flag,
    _check_subset,
    _decompress,
    _fetch,
    _finish,
    _load_verified,
    get_data_home,
)

__all__ = ["load_mnist"]

_FOLDER = "mnist"
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
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
_IMAGE_SHAPE = (28, 28)
_N_CLASSES = 10
# IDX type codes (third byte of the magic number) and their big-endian dtypes.
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_DESCR = """\
MNIST handwritten digits (LeCun, Cortes & Burges)
-------------------------------------------------
70,000 grey-scale 28x28 images of the digits 0-9: 60,000 for training, 10,000 for testing.
Pixels are scaled from uint8 to float32 in [0, 1] (value / 255); labels are the digits.
``classes=(0, 1)`` gives the binary 0-vs-1 subset of Wu & Yu (12,665 training images).
Source: the four IDX files, verified by the sha256 of their decompressed bytes.
"""


def _parse_idx(data, path):
    """An IDX file's bytes as a read-only array: magic number, dimensions, then the values."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path} is not an IDX file: its magic number {data[:4].hex()} is wrong.")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{path} is not a valid IDX file: unknown type code 0x{code:02x}.")
    if ndim == 0:
        raise ValueError(f"{path} is not a valid IDX file: it declares 0 dimensions.")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path} is not a valid IDX file: its header is truncated.")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _IDX_DTYPES[code]
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(
            f"{path} is not a valid IDX file: its header announces shape {dims} "
            f"({expected} bytes), but the file holds {len(data)} bytes."
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)  # read-only


def _locate(folder, name):
    """The file ``name`` in ``folder``, gzipped or not; ``None`` when neither is there."""
    for candidate in (folder / name, folder / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def _verify_download(name):
    # The temporary file has no '.gz' suffix: decompress by the name it will get.
    def verify(path):
        data = _decompress(path.read_bytes(), f"the downloaded {name}")
        _check_digest(
            data, "sha256", _SHA256[name], f"the downloaded {name}", what="decompressed bytes"
        )

    return verify


def _read(folder, name, download):
    path = _locate(folder, name)
    if path is None:
        if not download:
            raise DatasetNotFoundError(
                f"MNIST file not found: {folder / name} (or its uncompressed form without "
                f"'.gz'). Call load_mnist(..., download=True) to fetch it, or download "
                f"{_MIRRORS[0]}{name} and put it there; data_home or the AMRLEARN_DATA "
                "environment variable may point at a folder that holds mnist/."
            )
        path = _fetch([m + name for m in _MIRRORS], folder / name, _verify_download(name))
    return _load_verified(path, "sha256", _SHA256[name], _parse_idx), path


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
    _check_subset(subset)
    for flag in ("return_X_y", "flatten", "download"):
        _check_flag(flag, locals()[flag])
    folder = get_data_home(data_home) / _FOLDER
    image_name, label_name = _FILES[subset]
    images, image_path = _read(folder, image_name, download)
    labels, label_path = _read(folder, label_name, download)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != _IMAGE_SHAPE:
        raise ValueError(
            f"{image_path} does not hold 28x28 uint8 images (shape {images.shape}, "
            f"type {images.dtype})."
        )
    if labels.dtype != np.uint8 or labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{label_path} does not hold one uint8 label per image of {image_path} "
            f"(labels shape {labels.shape}, {images.shape[0]} images)."
        )
    if labels.size and labels.max() >= _N_CLASSES:
        raise ValueError(f"{label_path} holds labels outside 0-9 (max {labels.max()}).")
    return _finish(
        images[:, None],
        labels,
        classes=classes,
        n_classes=_N_CLASSES,
        flatten=flatten,
        return_X_y=return_X_y,
        target_names=np.arange(_N_CLASSES),
        filenames=[str(image_path), str(label_path)],
        DESCR=_DESCR,
    )
