"""Tests of amrlearn.datasets: real MNIST where present, and the loader logic on tiny files."""

import functools
import gzip
import hashlib
import http.server
import io
import os
import pickle
import struct
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from amrlearn.datasets import (
    ChecksumError,
    DatasetNotFoundError,
    _cifar10,
    _mnist,
    get_data_home,
    load_cifar10,
    load_mnist,
)

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_NAMES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]


# --------------------------------------------------------------------------- helpers


def _real_data_home():
    """The folder holding the real MNIST: $AMRLEARN_DATA, else ../shared/data beside the repo."""
    candidates = [os.environ.get("AMRLEARN_DATA"), Path(__file__).parents[2] / "shared" / "data"]
    for home in candidates:
        if home and all((Path(home) / "mnist" / name).is_file() for name in MNIST_NAMES):
            return Path(home)
    return None


@pytest.fixture(scope="module")
def real_home():
    home = _real_data_home()
    if home is None:
        pytest.skip(
            "real MNIST not found: set AMRLEARN_DATA to a folder holding mnist/ with the four "
            "IDX .gz files (on the project machines: ../shared/data)"
        )
    return home


def idx_bytes(array):
    """An IDX file's bytes for a uint8 array: magic 0x0000 08 ndim, big-endian dims, data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def make_tiny_mnist(home, rng, n_train=20, n_test=10, gz=True, folder="mnist"):
    """Write four tiny MNIST IDX files into ``home/folder``; return their arrays and a
    checksum table."""
    folder = Path(home) / folder
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": (np.arange(n_train) * 7 % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": (np.arange(n_test) * 3 % 10).astype(np.uint8),
    }
    table = {}
    for name, array in arrays.items():
        raw = idx_bytes(array)
        table[name] = sha256(raw)
        if gz:
            (folder / name).write_bytes(gzip.compress(raw))
        else:
            (folder / name.removesuffix(".gz")).write_bytes(raw)
    return arrays, table


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch):
    home = tmp_path / "home"
    arrays, table = make_tiny_mnist(home, np.random.default_rng(0))
    monkeypatch.setattr(_mnist, "_SHA256", table)
    return home, arrays


def cifar_batch(rng, n, label_offset=0, protocol=2):
    """Bytes of a CIFAR-10 python batch, with the keys and types of the real ones."""
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int((i + label_offset) % 10) for i in range(n)]
    batch = {
        b"batch_label": b"tiny batch",
        b"labels": labels,
        b"data": data,
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }
    return pickle.dumps(batch, protocol=protocol), data, np.array(labels)


def make_tiny_cifar(folder, rng, n=6, protocol=2):
    """Write the six tiny batches into ``folder``; return arrays and a checksum table."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table, arrays = {}, {}
    for k, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        raw, data, labels = cifar_batch(rng, n, label_offset=k, protocol=protocol)
        (folder / name).write_bytes(raw)
        table[name] = ("sha256", sha256(raw))
        arrays[name] = (data, labels)
    return arrays, table


@pytest.fixture
def tiny_cifar(tmp_path, monkeypatch):
    home = tmp_path / "home"
    arrays, table = make_tiny_cifar(home / "cifar-10-batches-py", np.random.default_rng(1))
    monkeypatch.setattr(_cifar10, "_CHECKSUMS", {**_cifar10._CHECKSUMS, **table})
    return home, arrays


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_root(tmp_path):
    """A local HTTP server on 127.0.0.1 serving a temporary folder: ``(folder, base_url)``."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def leftovers(folder):
    return [p.name for p in Path(folder).rglob("*.part")]


# --------------------------------------------------------------------------- real MNIST


def test_real_mnist_train(real_home):
    bunch = load_mnist(real_home)
    X, y = bunch.data, bunch.target
    assert X.shape == (60000, 784) and X.dtype == np.float32
    assert y.shape == (60000,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    # Exactly uint8 / 255.
    np.testing.assert_array_equal(np.round(X[:500] * 255) / 255, X[:500])
    assert np.bincount(y).tolist() == MNIST_TRAIN_COUNTS
    assert bunch.images.shape == (60000, 1, 28, 28)
    assert bunch.image_shape == (1, 28, 28)
    assert "MNIST" in bunch.DESCR


def test_real_mnist_test_image_shape(real_home):
    X, y = load_mnist(real_home, subset="test", flatten=False, return_X_y=True)
    assert X.shape == (10000, 1, 28, 28) and X.dtype == np.float32
    assert y.shape == (10000,) and set(np.unique(y)) == set(range(10))


def test_real_mnist_binary_subset_in_file_order(real_home):
    X_all, y_all = load_mnist(real_home, return_X_y=True)
    X, y = load_mnist(real_home, classes=(0, 1), return_X_y=True)
    assert X.shape == (12665, 784)
    assert set(np.unique(y)) == {0, 1}
    keep = np.isin(y_all, [0, 1])
    np.testing.assert_array_equal(X, X_all[keep])
    np.testing.assert_array_equal(y, y_all[keep])


def test_real_mnist_matches_raw_bytes(real_home):
    # An independent decode of the test images: the header is 16 bytes, then row-major pixels.
    raw = gzip.decompress((real_home / "mnist" / "t10k-images-idx3-ubyte.gz").read_bytes())
    pixels = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(10000, 784)
    X, _ = load_mnist(real_home, subset="test", return_X_y=True)
    np.testing.assert_array_equal(X, pixels.astype(np.float32) / np.float32(255))


def test_real_mnist_cache_hands_out_copies(real_home):
    X1, y1 = load_mnist(real_home, subset="test", return_X_y=True)
    X1[:] = -1.0
    y1[:] = 99
    X2, y2 = load_mnist(real_home, subset="test", return_X_y=True)
    assert X2.min() == 0.0 and y2.max() == 9


# --------------------------------------------------------------------------- MNIST logic


def test_tiny_mnist_end_to_end(tiny_mnist):
    home, arrays = tiny_mnist
    bunch = load_mnist(home)
    images = arrays["train-images-idx3-ubyte.gz"]
    labels = arrays["train-labels-idx1-ubyte.gz"]
    np.testing.assert_array_equal(bunch.data, images.reshape(20, 784) / np.float32(255))
    np.testing.assert_array_equal(bunch.target, labels.astype(np.int64))
    assert bunch.target.dtype == np.int64 and bunch.data.dtype == np.float32
    X, y = load_mnist(home, subset="test", flatten=False, return_X_y=True)
    np.testing.assert_array_equal(X[:, 0], arrays["t10k-images-idx3-ubyte.gz"] / np.float32(255))
    np.testing.assert_array_equal(y, arrays["t10k-labels-idx1-ubyte.gz"])


def test_tiny_mnist_classes_keep_file_order_and_labels(tiny_mnist):
    home, arrays = tiny_mnist
    labels = arrays["train-labels-idx1-ubyte.gz"]
    X, y = load_mnist(home, classes=[7, 4], return_X_y=True)
    keep = np.flatnonzero(np.isin(labels, [4, 7]))
    np.testing.assert_array_equal(y, labels[keep])
    images = arrays["train-images-idx3-ubyte.gz"]
    np.testing.assert_array_equal(X, images[keep].reshape(-1, 784) / np.float32(255))


def test_uncompressed_idx_files_are_accepted(tmp_path, monkeypatch):
    arrays, table = make_tiny_mnist(tmp_path, np.random.default_rng(3), gz=False)
    monkeypatch.setattr(_mnist, "_SHA256", table)
    X, y = load_mnist(tmp_path, subset="test", return_X_y=True)
    np.testing.assert_array_equal(y, arrays["t10k-labels-idx1-ubyte.gz"])


def test_corrupt_byte_raises_checksum_error(tiny_mnist):
    home, _ = tiny_mnist
    path = home / "mnist" / "train-images-idx3-ubyte.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[100] ^= 0xFF  # a valid gzip of the wrong bytes: only the checksum can tell
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(ChecksumError, match="corrupt") as info:
        load_mnist(home)
    assert str(path) in str(info.value)


def test_truncated_gzip_raises_checksum_error(tiny_mnist):
    home, _ = tiny_mnist
    path = home / "mnist" / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(ChecksumError, match="corrupt"):
        load_mnist(home, subset="test")


def test_changed_file_is_not_served_from_the_cache(tiny_mnist):
    home, _ = tiny_mnist
    load_mnist(home, subset="test")  # now cached
    path = home / "mnist" / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[-1] ^= 0x01
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(ChecksumError):
        load_mnist(home, subset="test")


@pytest.mark.parametrize(
    "payload, match",
    [
        (b"\x01\x02\x08\x01" + struct.pack(">I", 3) + b"abc", "magic number"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 3) + b"abc", "type code"),
        (b"\x00\x00\x08\x03" + struct.pack(">I", 3), "truncated"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"abc", "announces"),
    ],
)
def test_malformed_idx_with_valid_checksum_raises(tiny_mnist, monkeypatch, payload, match):
    home, _ = tiny_mnist
    name = "t10k-labels-idx1-ubyte.gz"
    (home / "mnist" / name).write_bytes(gzip.compress(payload))
    monkeypatch.setitem(_mnist._SHA256, name, sha256(payload))
    with pytest.raises(ValueError, match=match) as info:
        load_mnist(home, subset="test")
    assert not isinstance(info.value, ChecksumError)


def test_mismatched_images_and_labels_raise(tiny_mnist, monkeypatch):
    home, _ = tiny_mnist
    name = "t10k-labels-idx1-ubyte.gz"
    payload = idx_bytes(np.zeros(3, dtype=np.uint8))  # 3 labels for 10 images
    (home / "mnist" / name).write_bytes(gzip.compress(payload))
    monkeypatch.setitem(_mnist._SHA256, name, sha256(payload))
    with pytest.raises(ValueError, match="one uint8 label per image"):
        load_mnist(home, subset="test")


def test_missing_file_names_path_and_remedy(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load_mnist(tmp_path, subset="test")
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    assert str(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz") in message
    assert "download=True" in message and "AMRLEARN_DATA" in message


def test_invalid_arguments(tiny_mnist):
    home, _ = tiny_mnist
    with pytest.raises(ValueError, match="subset"):
        load_mnist(home, subset="validation")
    for classes in ([], [10], [-1], [0.5]):
        with pytest.raises(ValueError, match="classes"):
            load_mnist(home, classes=classes)
    with pytest.raises(TypeError, match="flatten"):
        load_mnist(home, flatten="yes")
    with pytest.raises(TypeError, match="data_home"):
        load_mnist(3)


def test_data_home_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("AMRLEARN_DATA", str(tmp_path / "env"))
    assert get_data_home() == tmp_path / "env"
    assert get_data_home(tmp_path / "arg") == tmp_path / "arg"  # the argument wins
    monkeypatch.setenv("AMRLEARN_DATA", "")  # empty counts as unset
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert get_data_home() == tmp_path / "user" / "amrlearn_data"
    monkeypatch.delenv("AMRLEARN_DATA")
    assert get_data_home() == tmp_path / "user" / "amrlearn_data"
    assert get_data_home("~/x") == tmp_path / "user" / "x"
    assert not (tmp_path / "user").exists()  # resolving does not create folders


def test_loaders_read_the_environment_variable(tiny_mnist, monkeypatch):
    home, arrays = tiny_mnist
    monkeypatch.setenv("AMRLEARN_DATA", str(home))
    _, y = load_mnist(subset="test", return_X_y=True)
    np.testing.assert_array_equal(y, arrays["t10k-labels-idx1-ubyte.gz"])


# --------------------------------------------------------------------------- downloads


def test_download_over_http_falls_back_to_the_second_mirror(tmp_path, http_root, monkeypatch):
    served, url = http_root
    arrays, table = make_tiny_mnist(served / "mirror2", np.random.default_rng(4))
    monkeypatch.setattr(_mnist, "_SHA256", table)
    monkeypatch.setattr(_mnist, "_MIRRORS", (url + "nowhere/", url + "mirror2/mnist/"))
    home = tmp_path / "home"
    X, y = load_mnist(home, subset="test", return_X_y=True, download=True)
    np.testing.assert_array_equal(y, arrays["t10k-labels-idx1-ubyte.gz"])
    assert (home / "mnist" / "t10k-images-idx3-ubyte.gz").is_file()
    assert not leftovers(home)
    # Downloaded once: a second load works without the network.
    monkeypatch.setattr(_mnist, "_MIRRORS", ())
    load_mnist(home, subset="test")


def test_download_from_file_url(tmp_path, monkeypatch):
    source = tmp_path / "source"
    arrays, table = make_tiny_mnist(source, np.random.default_rng(5))
    monkeypatch.setattr(_mnist, "_SHA256", table)
    monkeypatch.setattr(_mnist, "_MIRRORS", ((source / "mnist").as_uri() + "/",))
    bunch = load_mnist(tmp_path / "home", download=True)
    np.testing.assert_array_equal(bunch.target, arrays["train-labels-idx1-ubyte.gz"])


def test_download_of_corrupt_file_leaves_nothing(tmp_path, http_root, monkeypatch):
    served, url = http_root
    _, table = make_tiny_mnist(served, np.random.default_rng(6))
    monkeypatch.setattr(_mnist, "_SHA256", {name: "0" * 64 for name in table})
    monkeypatch.setattr(_mnist, "_MIRRORS", (url + "mnist/",))
    home = tmp_path / "home"
    with pytest.raises(ChecksumError, match="corrupt"):
        load_mnist(home, subset="test", download=True)
    assert list((home / "mnist").iterdir()) == []  # no partial or unverified file


def test_download_failure_lists_mirrors(tmp_path, monkeypatch):
    missing = (tmp_path / "no_such_mirror").as_uri() + "/"
    monkeypatch.setattr(_mnist, "_MIRRORS", (missing,))
    with pytest.raises(DatasetNotFoundError, match="no_such_mirror") as info:
        load_mnist(tmp_path / "home", download=True)
    assert str(tmp_path / "home" / "mnist") in str(info.value)


# --------------------------------------------------------------------------- CIFAR-10


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_tiny_cifar_end_to_end(tmp_path, monkeypatch, protocol):
    home = tmp_path / "home"
    arrays, table = make_tiny_cifar(
        home / "cifar-10-batches-py", np.random.default_rng(7), protocol=protocol
    )
    monkeypatch.setattr(_cifar10, "_CHECKSUMS", {**_cifar10._CHECKSUMS, **table})
    bunch = load_cifar10(home)
    data = np.concatenate([arrays[f"data_batch_{i}"][0] for i in range(1, 6)])
    labels = np.concatenate([arrays[f"data_batch_{i}"][1] for i in range(1, 6)])
    assert bunch.data.shape == (30, 3072) and bunch.data.dtype == np.float32
    np.testing.assert_array_equal(bunch.data, data / np.float32(255))
    np.testing.assert_array_equal(bunch.target, labels)
    assert bunch.target.dtype == np.int64
    assert bunch.target_names[3] == "cat"


def test_tiny_cifar_image_shape_is_channel_first(tiny_cifar):
    home, arrays = tiny_cifar
    X, y = load_cifar10(home, subset="test", flatten=False, return_X_y=True)
    data, labels = arrays["test_batch"]
    assert X.shape == (6, 3, 32, 32)
    # Row-major CHW: the first 1024 values are the red plane, row by row.
    i, c, h, w = 4, 2, 5, 17
    assert X[i, c, h, w] == np.float32(data[i, c * 1024 + h * 32 + w]) / np.float32(255)
    np.testing.assert_array_equal(y, labels)


def test_tiny_cifar_classes_filter(tiny_cifar):
    home, arrays = tiny_cifar
    X, y = load_cifar10(home, classes=(0, 1), return_X_y=True)
    data = np.concatenate([arrays[f"data_batch_{i}"][0] for i in range(1, 6)])
    labels = np.concatenate([arrays[f"data_batch_{i}"][1] for i in range(1, 6)])
    keep = np.isin(labels, [0, 1])
    assert keep.sum() > 0 and set(np.unique(y)) == {0, 1}
    np.testing.assert_array_equal(y, labels[keep])
    np.testing.assert_array_equal(X, data[keep] / np.float32(255))


def test_cifar_corrupt_batch(tiny_cifar):
    home, _ = tiny_cifar
    path = home / "cifar-10-batches-py" / "data_batch_3"
    raw = bytearray(path.read_bytes())
    raw[-50] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ChecksumError, match="data_batch_3"):
        load_cifar10(home)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_cifar_batch_cannot_run_code(tiny_cifar, tmp_path, monkeypatch):
    home, _ = tiny_cifar
    marker = tmp_path / "pwned"
    raw = pickle.dumps({b"data": _Payload(str(marker)), b"labels": []}, protocol=2)
    (home / "cifar-10-batches-py" / "test_batch").write_bytes(raw)
    monkeypatch.setitem(_cifar10._CHECKSUMS, "test_batch", ("sha256", sha256(raw)))
    with pytest.raises(ValueError, match="not allowed"):
        load_cifar10(home, subset="test")
    assert not marker.exists()


def test_cifar_malformed_batch(tiny_cifar, monkeypatch):
    home, _ = tiny_cifar
    raw = pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, protocol=2)
    (home / "cifar-10-batches-py" / "test_batch").write_bytes(raw)
    monkeypatch.setitem(_cifar10._CHECKSUMS, "test_batch", ("sha256", sha256(raw)))
    with pytest.raises(ValueError, match="3072"):
        load_cifar10(home, subset="test")


def test_cifar_missing_folder_says_where(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load_cifar10(tmp_path, subset="test")
    message = str(info.value)
    assert str(tmp_path / "cifar-10-batches-py" / "test_batch") in message
    assert "download=True" in message and "cifar-10-python.tar.gz" in message


def _tarball(path, folder, extra=()):
    """A gzipped tarball of ``folder`` under the name cifar-10-batches-py/, plus ``extra``."""
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def test_cifar_download_over_http(tmp_path, http_root, monkeypatch):
    served, url = http_root
    arrays, table = make_tiny_cifar(tmp_path / "src", np.random.default_rng(8))
    md5 = _tarball(served / "cifar-10-python.tar.gz", tmp_path / "src")
    checksums = {**_cifar10._CHECKSUMS, **table, "cifar-10-python.tar.gz": ("md5", md5)}
    monkeypatch.setattr(_cifar10, "_CHECKSUMS", checksums)
    monkeypatch.setattr(_cifar10, "_MIRRORS", (url,))
    home = tmp_path / "home"
    X, y = load_cifar10(home, subset="test", return_X_y=True, download=True)
    np.testing.assert_array_equal(y, arrays["test_batch"][1])
    assert (home / "cifar-10-batches-py" / "data_batch_5").is_file()
    assert not leftovers(home)


def test_cifar_tarball_in_data_home_is_used(tmp_path, monkeypatch):
    arrays, table = make_tiny_cifar(tmp_path / "src", np.random.default_rng(9))
    home = tmp_path / "home"
    home.mkdir()
    md5 = _tarball(home / "cifar-10-python.tar.gz", tmp_path / "src")
    checksums = {**_cifar10._CHECKSUMS, **table, "cifar-10-python.tar.gz": ("md5", md5)}
    monkeypatch.setattr(_cifar10, "_CHECKSUMS", checksums)
    _, y = load_cifar10(home, subset="test", return_X_y=True)
    np.testing.assert_array_equal(y, arrays["test_batch"][1])


@pytest.mark.parametrize("kind", ["traversal", "symlink"])
def test_cifar_unsafe_tarball_is_refused(tmp_path, monkeypatch, kind):
    _, table = make_tiny_cifar(tmp_path / "src", np.random.default_rng(10))
    home = tmp_path / "home"
    home.mkdir()
    if kind == "traversal":
        info = tarfile.TarInfo("cifar-10-batches-py/../../evil")
        info.size = 4
        extra = [(info, b"evil")]
    else:
        info = tarfile.TarInfo("cifar-10-batches-py/link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        extra = [(info, None)]
    md5 = _tarball(home / "cifar-10-python.tar.gz", tmp_path / "src", extra)
    checksums = {**_cifar10._CHECKSUMS, **table, "cifar-10-python.tar.gz": ("md5", md5)}
    monkeypatch.setattr(_cifar10, "_CHECKSUMS", checksums)
    with pytest.raises(ValueError, match="unexpected member"):
        load_cifar10(home, subset="test")
    assert not (tmp_path / "evil").exists()
    assert not (home / "cifar-10-batches-py" / "link").exists()


def test_cifar_corrupt_tarball(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "cifar-10-python.tar.gz").write_bytes(b"not the tarball")
    with pytest.raises(ChecksumError, match="md5"):
        load_cifar10(home, subset="test")


def test_real_cifar10_if_present():
    home = get_data_home()
    if not (home / "cifar-10-batches-py" / "test_batch").is_file():
        pytest.skip(f"CIFAR-10 is not in the data home ({home}/cifar-10-batches-py)")
    X, y = load_cifar10(home, subset="test", return_X_y=True)
    assert X.shape == (10000, 3072) and X.dtype == np.float32
    assert np.bincount(y).tolist() == [1000] * 10


# --------------------------------------------------------------------------- Fashion-MNIST

FASHION_SYSTEM = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def no_system_fashion(tmp_path, monkeypatch):
    """Fashion-MNIST's system folder pointed at an empty one: the data home alone counts."""
    from amrlearn.datasets import _fashion_mnist

    system = tmp_path / "usr-share-datasets-fashion-mnist"
    system.mkdir()
    monkeypatch.setattr(_fashion_mnist, "_SYSTEM_FOLDERS", (system,))
    return system


@pytest.fixture
def tiny_fashion(tmp_path, monkeypatch, no_system_fashion):
    from amrlearn.datasets import _fashion_mnist

    home = tmp_path / "home"
    arrays, table = make_tiny_mnist(home, np.random.default_rng(11), folder="fashion-mnist")
    monkeypatch.setattr(_fashion_mnist, "_SHA256", table)
    return home, arrays


def test_real_fashion_mnist_from_the_debian_package(tmp_path):
    from amrlearn.datasets import load_fashion_mnist

    if not all((FASHION_SYSTEM / name).is_file() for name in MNIST_NAMES):
        pytest.skip(
            f"Fashion-MNIST not in {FASHION_SYSTEM} (apt-get install dataset-fashion-mnist)"
        )
    bunch = load_fashion_mnist(tmp_path)  # an empty data home: the system folder serves
    assert bunch.data.shape == (60000, 784) and bunch.data.dtype == np.float32
    assert np.bincount(bunch.target).tolist() == [6000] * 10
    assert bunch.data.min() == 0.0 and bunch.data.max() == 1.0
    assert bunch.filenames[0] == str(FASHION_SYSTEM / "train-images-idx3-ubyte.gz")
    assert bunch.target_names[9] == "Ankle boot" and "Fashion-MNIST" in bunch.DESCR
    X, y = load_fashion_mnist(tmp_path, subset="test", flatten=False, return_X_y=True)
    assert X.shape == (10000, 1, 28, 28) and np.bincount(y).tolist() == [1000] * 10
    # Not MNIST: the same format, other images.
    raw = gzip.decompress((FASHION_SYSTEM / "t10k-images-idx3-ubyte.gz").read_bytes())
    pixels = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(10000, 1, 28, 28)
    np.testing.assert_array_equal(X, pixels.astype(np.float32) / np.float32(255))


def test_tiny_fashion_mnist_end_to_end(tiny_fashion):
    from amrlearn.datasets import load_fashion_mnist

    home, arrays = tiny_fashion
    bunch = load_fashion_mnist(home, subset="test", classes=(3, 6))
    labels = arrays["t10k-labels-idx1-ubyte.gz"]
    keep = np.isin(labels, [3, 6])
    np.testing.assert_array_equal(bunch.target, labels[keep])
    images = arrays["t10k-images-idx3-ubyte.gz"][keep]
    np.testing.assert_array_equal(bunch.data, images.reshape(-1, 784) / np.float32(255))
    assert bunch.filenames[0] == str(home / "fashion-mnist" / "t10k-images-idx3-ubyte.gz")
    assert bunch.target_names.tolist()[:2] == ["T-shirt/top", "Trouser"]


def test_fashion_mnist_reads_the_system_folder_after_the_data_home(
    tmp_path, monkeypatch, no_system_fashion
):
    from amrlearn.datasets import _fashion_mnist, load_fashion_mnist

    # The system folder holds one set, the data home another: the data home wins, and a
    # data home without the files falls back to the system folder.
    sys_arrays, sys_table = make_tiny_mnist(no_system_fashion, np.random.default_rng(12), folder="")
    home = tmp_path / "home"
    home_arrays, home_table = make_tiny_mnist(
        home, np.random.default_rng(13), folder="fashion-mnist"
    )
    name = "t10k-labels-idx1-ubyte.gz"
    monkeypatch.setattr(_fashion_mnist, "_SHA256", home_table)
    X, _ = load_fashion_mnist(home, subset="test", return_X_y=True)
    images = home_arrays["t10k-images-idx3-ubyte.gz"]
    np.testing.assert_array_equal(X, images.reshape(-1, 784) / np.float32(255))
    monkeypatch.setattr(_fashion_mnist, "_SHA256", sys_table)
    bunch = load_fashion_mnist(tmp_path / "empty", subset="test")
    images = sys_arrays["t10k-images-idx3-ubyte.gz"]
    np.testing.assert_array_equal(bunch.data, images.reshape(-1, 784) / np.float32(255))
    assert bunch.filenames[0] == str(no_system_fashion / "t10k-images-idx3-ubyte.gz")
    # A corrupt file in the system folder is caught like any other.
    path = no_system_fashion / name
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[-1] ^= 0x01
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(ChecksumError, match="corrupt"):
        load_fashion_mnist(tmp_path / "empty", subset="test")


def test_fashion_mnist_missing_says_how_to_get_it(tmp_path, no_system_fashion):
    from amrlearn.datasets import load_fashion_mnist

    with pytest.raises(DatasetNotFoundError) as info:
        load_fashion_mnist(tmp_path, subset="test")
    message = str(info.value)
    assert str(tmp_path / "fashion-mnist" / "t10k-images-idx3-ubyte.gz") in message
    assert str(no_system_fashion) in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "download=True" in message and "AMRLEARN_DATA" in message


def test_fashion_mnist_download_goes_to_the_data_home(tmp_path, http_root, monkeypatch):
    from amrlearn.datasets import _fashion_mnist, load_fashion_mnist

    served, url = http_root
    arrays, table = make_tiny_mnist(served, np.random.default_rng(14), folder="fm")
    monkeypatch.setattr(_fashion_mnist, "_SHA256", table)
    monkeypatch.setattr(_fashion_mnist, "_MIRRORS", (url + "nowhere/", url + "fm/"))
    monkeypatch.setattr(_fashion_mnist, "_SYSTEM_FOLDERS", (tmp_path / "none",))
    home = tmp_path / "home"
    _, y = load_fashion_mnist(home, subset="test", return_X_y=True, download=True)
    np.testing.assert_array_equal(y, arrays["t10k-labels-idx1-ubyte.gz"])
    assert (home / "fashion-mnist" / "t10k-images-idx3-ubyte.gz").is_file()
    assert not leftovers(home)
