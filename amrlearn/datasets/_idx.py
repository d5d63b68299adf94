"""IDX image sets (MNIST and Fashion-MNIST): the file format, where the files are found, and
the loading that both loaders share.

An IDX set is four files with the same names for every such dataset
(``train-images-idx3-ubyte.gz`` ...), each verified by the sha256 of its decompressed
bytes, so that a file recompressed by a mirror or a distribution (Debian's
``dataset-fashion-mnist`` is) passes the same check.
"""

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

__all__ = []

#: The file names of each subset, the same in MNIST and Fashion-MNIST.
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
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


def parse_idx(data, path):
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


def locate(folder, name):
    """The file ``name`` in ``folder``, gzipped or not; ``None`` when neither is there."""
    for candidate in (folder / name, folder / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def _verify_download(name, sha256):
    # The temporary file has no '.gz' suffix: decompress by the name it will get.
    def verify(path):
        data = _decompress(path.read_bytes(), f"the downloaded {name}")
        _check_digest(data, "sha256", sha256, f"the downloaded {name}", what="decompressed bytes")

    return verify


def _read(folders, name, *, sha256, mirrors, download, missing):
    """Parse the verified file ``name``, from the first of ``folders`` that holds it, else
    downloaded into ``folders[0]``; ``missing(name)`` is the error's message."""
    path = next((p for p in (locate(f, name) for f in folders) if p is not None), None)
    if path is None:
        if not download:
            raise DatasetNotFoundError(missing(name))
        path = _fetch(
            [m + name for m in mirrors], folders[0] / name, _verify_download(name, sha256[name])
        )
    return _load_verified(path, "sha256", sha256[name], parse_idx), path


def load_idx_set(
    data_home,
    folder,
    *,
    subset,
    classes,
    return_X_y,
    flatten,
    download,
    sha256,
    mirrors,
    missing,
    system_folders=(),
    **bunch,
):
    """One subset of an IDX image set, as :func:`load_mnist` documents it.

    Parameters
    ----------
    data_home : str, path-like or None
        See :func:`get_data_home`; the files are looked for in ``<data_home>/<folder>/``,
        then in each of ``system_folders``, and downloaded into the first.
    folder : str
        The dataset's folder in the data home (``"mnist"``, ``"fashion-mnist"``).
    subset, classes, return_X_y, flatten, download
        As for :func:`load_mnist`.
    sha256 : dict of str to str
        The sha256 of each file's decompressed bytes.
    mirrors : sequence of str
        Base URLs to download from, in order.
    missing : callable
        ``missing(folder, name) -> str``: the message of a missing file.
    system_folders : sequence of Path
        Where a system package installs the files (read-only).
    **bunch
        ``target_names`` and ``DESCR`` of the returned Bunch.
    """
    _check_subset(subset)
    for flag, value in (("return_X_y", return_X_y), ("flatten", flatten), ("download", download)):
        _check_flag(flag, value)
    home = get_data_home(data_home) / folder
    folders = [home, *system_folders]
    image_name, label_name = FILES[subset]
    common = dict(sha256=sha256, mirrors=mirrors, download=download)
    common["missing"] = lambda name: missing(home, name)
    images, image_path = _read(folders, image_name, **common)
    labels, label_path = _read(folders, label_name, **common)
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
        filenames=[str(image_path), str(label_path)],
        **bunch,
    )
