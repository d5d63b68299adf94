"""The data home, checksums, an in-memory cache and the download code shared by the loaders.

Every file is read whole, verified against a known digest before it is parsed, and its
parsed arrays are cached in memory under the digest of the bytes just read, so a file that
changes on disk is never served from the cache. Downloads go to a temporary file next to
their destination, are verified, and only then renamed into place (``os.replace``), so an
interrupted or corrupt download never leaves a partial file under the expected name.
"""

import gzip
import hashlib
import http.client
import os
import tempfile
import threading
import urllib.request
import zlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from ..exceptions import ChecksumError, DatasetNotFoundError
from ..utils import progress

__all__ = ["ChecksumError", "DatasetNotFoundError", "get_data_home"]

_ENV_VAR = "AMRLEARN_DATA"
_DEFAULT_HOME = "~/amrlearn_data"
_CHUNK = 1 << 20
_CACHE_SIZE = 16
_cache = OrderedDict()
_cache_lock = threading.Lock()


def get_data_home(data_home=None):
    """The folder that holds amrlearn's datasets.

    Resolution order: the ``data_home`` argument, else the ``AMRLEARN_DATA`` environment
    variable (when set and not empty), else ``~/amrlearn_data``. A leading ``~`` is expanded.
    The folder is not created here: reading needs no write access, and the download code
    creates what it writes into.

    Parameters
    ----------
    data_home : str or path-like, default=None
        An explicit folder, which wins over the environment.

    Returns
    -------
    data_home : pathlib.Path

    Examples
    --------
    >>> from amrlearn.datasets import get_data_home
    >>> get_data_home("/tmp/my_data").as_posix()
    '/tmp/my_data'
    """
    if data_home is None:
        data_home = os.environ.get(_ENV_VAR) or _DEFAULT_HOME
    if not isinstance(data_home, (str, os.PathLike)):
        raise TypeError(
            f"data_home must be a str, a path-like object or None, got {type(data_home).__name__}."
        )
    return Path(data_home).expanduser()


def _check_flag(name, value):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}.")


def _check_subset(subset):
    if subset not in ("train", "test"):
        raise ValueError(f"subset must be 'train' or 'test', got {subset!r}.")
    return subset


def _digest(data, algorithm):
    return hashlib.new(algorithm, data).hexdigest()


def _check_digest(data, algorithm, expected, path, *, what="bytes"):
    """Raise :class:`ChecksumError` unless ``algorithm(data) == expected``."""
    actual = _digest(data, algorithm)
    if actual != expected.lower():
        raise ChecksumError(
            f"{path} is corrupt: the {algorithm} of its {what} is {actual}, expected {expected}. "
            "Delete the file and get it again (for instance with download=True)."
        )


def _decompress(raw, path):
    """Gunzip ``raw``; a damaged archive is reported as a corrupt file."""
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise ChecksumError(
            f"{path} is corrupt: it cannot be decompressed ({exc}). "
            "Delete the file and get it again (for instance with download=True)."
        ) from exc


def _contents(path, raw=None):
    """The bytes that the checksum covers: decompressed for ``*.gz`` files."""
    raw = Path(path).read_bytes() if raw is None else raw
    return _decompress(raw, path) if str(path).endswith(".gz") else raw


def _load_verified(path, algorithm, expected, parse):
    """Read ``path``, verify its (decompressed) bytes, and return ``parse(bytes, path)``.

    The result is cached under the sha256 of the raw bytes read now, the expected digest
    and the parser, so a repeated load costs one read and one hash, and a file changed on
    disk is verified and parsed again. Callers must treat the result as read-only (the
    arrays are flagged so) and copy what they hand out.
    """
    path = Path(path)
    raw = path.read_bytes()
    key = (hashlib.sha256(raw).digest(), algorithm, expected, parse)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    data = _contents(path, raw)
    what = "decompressed bytes" if path.name.endswith(".gz") else "bytes"
    _check_digest(data, algorithm, expected, path, what=what)
    result = parse(data, path)
    with _cache_lock:
        _cache[key] = result
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return result


def _fetch(urls, dest, verify, *, timeout=60.0, verbose=1):
    """Download the first of ``urls`` that gives a verified file, atomically, to ``dest``.

    Each candidate is streamed to a temporary file in ``dest``'s folder, flushed to disk,
    passed to ``verify(tmp_path)`` (which raises :class:`ChecksumError` on a bad file),
    and only then renamed to ``dest`` with ``os.replace``. Whatever fails, no partial file
    is left behind, and the next URL is tried.

    Parameters
    ----------
    urls : sequence of str
        Candidate URLs, tried in order (``https://``, ``http://`` and ``file://`` work).
    dest : path-like
        Where the verified file goes. Its folder is created if needed.
    verify : callable
        ``verify(path)``, raising :class:`ChecksumError` if the file is not the right one.
    timeout : float, default=60.0
        Socket timeout of each request, in seconds.
    verbose : int, default=1
        A progress bar when positive.

    Returns
    -------
    dest : pathlib.Path

    Raises
    ------
    ChecksumError
        If every URL served a file that failed verification.
    DatasetNotFoundError
        If no URL could be downloaded; the message lists each URL's error.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in urls:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                with progress(
                    total=total, verbose=verbose, unit="B", unit_scale=True, desc=dest.name
                ) as bar:
                    while chunk := resp.read(_CHUNK):
                        out.write(chunk)
                        bar.update(len(chunk))
                out.flush()
                os.fsync(out.fileno())
            verify(Path(tmp))
            os.replace(tmp, dest)
            return dest
        except (OSError, ValueError, http.client.HTTPException) as exc:
            # URLError and HTTPError are OSErrors; ChecksumError is a ValueError.
            errors.append((url, exc))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    listing = "; ".join(f"{url}: {exc}" for url, exc in errors)
    if errors and all(isinstance(exc, ChecksumError) for _, exc in errors):
        raise ChecksumError(f"Every mirror served a corrupt {dest.name}: {listing}")
    raise DatasetNotFoundError(
        f"Could not download {dest.name} from any mirror ({listing}). "
        f"Get the file by other means and place it at {dest}."
    ) from (errors[-1][1] if errors else None)


def _select_classes(labels, classes, n_classes):
    """Boolean mask of the samples whose label is in ``classes`` (``None``: all of them)."""
    if classes is None:
        return None
    wanted = np.asarray(classes).ravel()
    if wanted.size == 0:
        raise ValueError("classes must name at least one class, or be None for all of them.")
    if not np.issubdtype(wanted.dtype, np.integer):
        raise ValueError(f"classes must be integer labels in [0, {n_classes}), got {classes!r}.")
    bad = wanted[(wanted < 0) | (wanted >= n_classes)]
    if bad.size:
        raise ValueError(f"classes must be integer labels in [0, {n_classes}), got {bad.tolist()}.")
    return np.isin(labels, wanted)


def _finish(images, labels, *, classes, n_classes, flatten, return_X_y, **bunch):
    """Select classes, scale uint8 images to float32 in [0, 1], and package the result.

    ``images`` (uint8, shape (n, C, H, W)) and ``labels`` come from the cache and are
    never written to: indexing and ``astype`` make fresh arrays.
    """
    mask = _select_classes(labels, classes, n_classes)
    if mask is not None:
        images, labels = images[mask], labels[mask]
    target = labels.astype(np.int64)  # a copy, also when the labels are int64 already
    X = np.divide(images, np.float32(255.0), dtype=np.float32)
    image_shape = X.shape[1:]
    data = X.reshape(X.shape[0], -1) if flatten else X
    if return_X_y:
        return data, target
    return Bunch(data=data, target=target, images=X, image_shape=image_shape, **bunch)
