"""CIFAR-10, from the standard ``cifar-10-batches-py`` folder of python pickle batches."""

import importlib
import io
import os
import pickle
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

import numpy as np

from ._base import (
    DatasetNotFoundError,
    _check_digest,
    _check_flag,
    _check_subset,
    _fetch,
    _finish,
    _load_verified,
    get_data_home,
)

__all__ = ["load_cifar10"]

_FOLDER = "cifar-10-batches-py"
_ARCHIVE = "cifar-10-python.tar.gz"
_MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)
_BATCHES = {
    "train": ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"),
    "test": ("test_batch",),
}
# The sha256 of the real files are not published; these are the md5 digests that
# torchvision publishes (torchvision.datasets.CIFAR10), for the tarball and each batch.
_CHECKSUMS = {
    _ARCHIVE: ("md5", "c58f30108f718f92721af3b95e74349a"),
    "data_batch_1": ("md5", "c99cafc152244af753f735de768cd75f"),
    "data_batch_2": ("md5", "d4bba439e000b95fd0a9bffe97cbabec"),
    "data_batch_3": ("md5", "54ebc095f3ab1f0389bbae665268c751"),
    "data_batch_4": ("md5", "634d18415352ddfa80567beed471001a"),
    "data_batch_5": ("md5", "482c414d41f54cd18b22e5b47cb7c3cb"),
    "test_batch": ("md5", "40351d587109b95175f43aff81a1287e"),
}
_IMAGE_SHAPE = (3, 32, 32)
_N_FEATURES = 3 * 32 * 32
_TARGET_NAMES = np.array(
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
)

_DESCR = """\
CIFAR-10 (Krizhevsky, 2009)
---------------------------
60,000 colour 32x32 images in 10 classes: 50,000 for training (data_batch_1..5), 10,000 for
testing (test_batch). Pixels are scaled from uint8 to float32 in [0, 1] (value / 255), in
channel-first (C, H, W) order; labels are 0-9 (see ``target_names``).
Source: the python version, cifar-10-python.tar.gz, verified by torchvision's published md5s.
"""


def _numpy_attr(module, name):
    # NumPy 2 renamed numpy.core to numpy._core; pickles name either. Resolve to the real
    # module directly, which also avoids numpy.core's deprecation shim.
    for candidate in (module.replace("numpy.core", "numpy._core"), module):
        try:
            return getattr(importlib.import_module(candidate), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"cannot resolve {module}.{name}")


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR batch: a dict of bytes, lists and numpy arrays, and nothing else.

    A pickle can run arbitrary code; this one may only rebuild numpy arrays.
    """

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # bytes pickled by Python 3 with protocol < 3
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"{module}.{name} is not allowed in a CIFAR-10 batch (only numpy arrays are)."
            )
        if module == "_codecs":
            import codecs

            return codecs.encode
        return _numpy_attr(module, name)


def _get(batch, key):
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    raise KeyError(key)


def _parse_batch(data, path):
    """A batch's bytes as read-only ``(images uint8 (n, 3, 32, 32), labels int64 (n,))``."""
    try:
        batch = _BatchUnpickler(io.BytesIO(data), encoding="bytes").load()
        images = np.asarray(_get(batch, "data"))
        labels = np.asarray(_get(batch, "labels"))
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path} is not a CIFAR-10 python batch: {exc!r}") from exc
    if images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != _N_FEATURES:
        raise ValueError(
            f"{path} is not a CIFAR-10 python batch: 'data' must be uint8 of shape "
            f"(n, {_N_FEATURES}), got {images.dtype} of shape {images.shape}."
        )
    if labels.shape != (images.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{path} is not a CIFAR-10 python batch: 'labels' must hold one integer per image."
        )
    if labels.size and (labels.min() < 0 or labels.max() >= len(_TARGET_NAMES)):
        raise ValueError(f"{path} holds labels outside 0-9.")
    images = images.reshape(-1, *_IMAGE_SHAPE)
    labels = labels.astype(np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def _extract(archive, home):
    """Extract the batches of a verified tarball into ``home``, each file atomically.

    Members are copied by hand rather than with ``extractall``: only regular files directly
    inside ``cifar-10-batches-py/`` are written, so no member can escape ``home`` (no
    absolute paths, ``..``, links or devices).
    """
    folder = home / _FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            parts = PurePosixPath(member.name).parts
            if member.isdir() and parts == (_FOLDER,):
                continue
            safe = len(parts) == 2 and parts[0] == _FOLDER and parts[1] not in (".", "..")
            if not (member.isfile() and safe):
                raise ValueError(f"{archive} holds an unexpected member {member.name!r}.")
            fd, tmp = tempfile.mkstemp(prefix=f".{parts[1]}.", suffix=".part", dir=folder)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(tar.extractfile(member).read())
                if parts[1] in _CHECKSUMS:
                    algorithm, expected = _CHECKSUMS[parts[1]]
                    _check_digest(Path(tmp).read_bytes(), algorithm, expected, member.name)
                os.replace(tmp, folder / parts[1])
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)


def _verify_archive(path, label=None):
    algorithm, expected = _CHECKSUMS[_ARCHIVE]
    _check_digest(Path(path).read_bytes(), algorithm, expected, label or path)


def _ensure_batches(home, names, download):
    """Make sure the batch files exist, from a tarball in ``home`` or a download."""
    folder = home / _FOLDER
    missing = [name for name in names if not (folder / name).is_file()]
    if not missing:
        return
    archive = home / _ARCHIVE
    if not archive.is_file():
        if not download:
            raise DatasetNotFoundError(
                f"CIFAR-10 batch not found: {folder / missing[0]}. Put the standard "
                f"'{_FOLDER}' folder (extracted from {_MIRRORS[0]}{_ARCHIVE}) in {home}, or "
                f"put the tarball itself at {archive}, or call "
                "load_cifar10(..., download=True); data_home or the AMRLEARN_DATA "
                "environment variable may point at another folder."
            )
        label = f"the downloaded {_ARCHIVE}"
        _fetch([m + _ARCHIVE for m in _MIRRORS], archive, lambda p: _verify_archive(p, label))
    else:
        _verify_archive(archive)
    _extract(archive, home)


def load_cifar10(
    data_home=None, *, subset="train", classes=None, return_X_y=False, flatten=True, download=False
):
    """Load CIFAR-10, verified by checksum, as float32 in [0, 1].

    Reads the standard ``cifar-10-batches-py`` folder (the python pickle batches
    ``data_batch_1`` ... ``data_batch_5`` and ``test_batch``) from the data home. If it is
    missing but ``cifar-10-python.tar.gz`` lies in the data home, the tarball is verified
    and extracted. Each batch is verified before it is unpickled, and only numpy arrays
    may be rebuilt from it. The checksums are the md5 digests that torchvision publishes
    (the official sha256 are not published). Parsed batches are cached in memory.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Folder holding ``cifar-10-batches-py/``. ``None``: ``$AMRLEARN_DATA``, else
        ``~/amrlearn_data`` (see :func:`get_data_home`).
    subset : {"train", "test"}, default="train"
        The 50,000 training or the 10,000 test images.
    classes : array-like of int, default=None
        Keep only these classes (0-9), in file order, with their labels as given.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.
    flatten : bool, default=True
        ``data`` of shape (n_samples, 3072), channel-first order (as in the files);
        ``False`` gives images of shape (n_samples, 3, 32, 32).
    download : bool, default=False
        Fetch the tarball (163 MB) from the official site, verify and extract it.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``data`` (float32), ``target`` (int64), ``images`` (float32 of shape
        (n_samples, 3, 32, 32), sharing memory with ``data``), ``image_shape``,
        ``target_names`` (class names), ``filenames`` and ``DESCR``.
    (data, target) : tuple
        If ``return_X_y`` is True.

    Raises
    ------
    DatasetNotFoundError
        If the batches are missing and ``download`` is False; the message says where to put
        the folder.
    ChecksumError
        If a batch or the tarball is corrupt.

    See Also
    --------
    load_mnist : The same interface for MNIST.

    Examples
    --------
    With the folder in the data home (``$AMRLEARN_DATA/cifar-10-batches-py/``):

    >>> from amrlearn.datasets import load_cifar10
    >>> X, y = load_cifar10(subset="test", return_X_y=True)  # doctest: +SKIP
    >>> X.shape, X.dtype  # doctest: +SKIP
    ((10000, 3072), dtype('float32'))

    Without it, the error says where the folder belongs:

    >>> import tempfile
    >>> from amrlearn.datasets import DatasetNotFoundError
    >>> with tempfile.TemporaryDirectory() as home:
    ...     try:
    ...         load_cifar10(home, subset="test")
    ...     except DatasetNotFoundError as exc:
    ...         print("cifar-10-batches-py" in str(exc), "download=True" in str(exc))
    True True
    """
    _check_subset(subset)
    for flag in ("return_X_y", "flatten", "download"):
        _check_flag(flag, locals()[flag])
    home = get_data_home(data_home)
    names = _BATCHES[subset]
    _ensure_batches(home, names, download)
    paths = [home / _FOLDER / name for name in names]
    parts = []
    for name, path in zip(names, paths):
        algorithm, expected = _CHECKSUMS[name]
        parts.append(_load_verified(path, algorithm, expected, _parse_batch))
    images = parts[0][0] if len(parts) == 1 else np.concatenate([p[0] for p in parts])
    labels = parts[0][1] if len(parts) == 1 else np.concatenate([p[1] for p in parts])
    return _finish(
        images,
        labels,
        classes=classes,
        n_classes=len(_TARGET_NAMES),
        flatten=flatten,
        return_X_y=return_X_y,
        target_names=_TARGET_NAMES.copy(),
        filenames=[str(p) for p in paths],
        DESCR=_DESCR,
    )
