"""Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017): MNIST's format and sizes, Zalando's articles."""

from pathlib import Path

import numpy as np

from ._idx import load_idx_set

__all__ = ["load_fashion_mnist"]

_FOLDER = "fashion-mnist"
#: Where Debian's package ``dataset-fashion-mnist`` installs the four files (read-only).
_SYSTEM_FOLDERS = (Path("/usr/share/datasets/fashion-mnist"),)
_DEBIAN_PACKAGE = "dataset-fashion-mnist"
# sha256 of the DECOMPRESSED bytes: the upstream .gz files (whose md5s the upstream
# README publishes) and Debian's recompressed ones decompress to the same bytes.
_SHA256 = {
    "train-images-idx3-ubyte.gz": (
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"
    ),
    "train-labels-idx1-ubyte.gz": (
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
    ),
}
#: The upstream download links (zalandoresearch/fashion-mnist's README), then the copy in
#: its GitHub repository (``data/fashion/``).
_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
_TARGET_NAMES = np.array(
    [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ]
)

_DESCR = """\
Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017)
--------------------------------------------
70,000 grey-scale 28x28 images of Zalando's articles in 10 classes (see ``target_names``):
60,000 for training and 10,000 for testing, 6,000 and 1,000 per class, in MNIST's format.
Pixels are scaled from uint8 to float32 in [0, 1] (value / 255).
Source: the four IDX files of zalandoresearch/fashion-mnist, verified by the sha256 of their
decompressed bytes; Debian's package dataset-fashion-mnist installs them.
"""


def _missing(folder, name):
    system = " or ".join(str(f) for f in _SYSTEM_FOLDERS)
    return (
        f"Fashion-MNIST file not found: {folder / name} (or its uncompressed form without "
        f"'.gz'), nor in {system}, where Debian's package {_DEBIAN_PACKAGE} installs it. "
        f"Install that package (sudo apt-get install {_DEBIAN_PACKAGE}, or 'make "
        "fashion-mnist' in amrlearn's checkout), call load_fashion_mnist(..., "
        f"download=True), or download {_MIRRORS[0]}{name} and put it there; data_home or "
        "the AMRLEARN_DATA environment variable may point at a folder that holds "
        "fashion-mnist/."
    )


def load_fashion_mnist(
    data_home=None, *, subset="train", classes=None, return_X_y=False, flatten=True, download=False
):
    """Load Fashion-MNIST, verified by sha256, as float32 in [0, 1].

    The four IDX files, named as MNIST's (``train-images-idx3-ubyte.gz``, ...,
    ``t10k-labels-idx1-ubyte.gz``), are read from ``<data_home>/fashion-mnist/``, else
    from ``/usr/share/datasets/fashion-mnist/``, where Debian's package
    ``dataset-fashion-mnist`` installs them (``sudo apt-get install
    dataset-fashion-mnist``). Each is checked against the sha256 of its decompressed
    bytes, so upstream's files, Debian's (recompressed) and uncompressed ones all pass.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Folder holding ``fashion-mnist/``. ``None``: ``$AMRLEARN_DATA``, else
        ``~/amrlearn_data`` (see :func:`get_data_home`).
    subset : {"train", "test"}, default="train"
        The 60,000 training or the 10,000 test images.
    classes : array-like of int, default=None
        Keep only these classes (0-9, see ``target_names``), in file order. ``None``
        keeps all ten.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.
    flatten : bool, default=True
        ``data`` of shape (n_samples, 784); ``False`` gives images of shape
        (n_samples, 1, 28, 28).
    download : bool, default=False
        Fetch missing files (about 30 MB) from the upstream links into
        ``<data_home>/fashion-mnist/`` (verified, written atomically).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``data``, ``target``, ``images``, ``image_shape``, ``target_names`` (the article
        names), ``filenames`` and ``DESCR``, as :func:`load_mnist` returns them.
    (data, target) : tuple
        If ``return_X_y`` is True.

    Raises
    ------
    DatasetNotFoundError
        If a file is in neither folder and ``download`` is False (or no mirror could
        serve it); the message says how to get it.
    ChecksumError
        If a file is corrupt.

    See Also
    --------
    load_mnist : The same interface and format for MNIST.

    References
    ----------
    H. Xiao, K. Rasul and R. Vollgraf, "Fashion-MNIST: a novel image dataset for
    benchmarking machine learning algorithms", arXiv:1708.07747, 2017.

    Examples
    --------
    Where Debian's package is installed, or the files are in the data home:

    >>> from amrlearn.datasets import load_fashion_mnist
    >>> X, y = load_fashion_mnist(subset="test", return_X_y=True)  # doctest: +SKIP
    >>> X.shape, X.dtype  # doctest: +SKIP
    ((10000, 784), dtype('float32'))

    The class names:

    >>> from amrlearn.datasets._fashion_mnist import _TARGET_NAMES
    >>> _TARGET_NAMES[[0, 9]].tolist()
    ['T-shirt/top', 'Ankle boot']
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
        system_folders=_SYSTEM_FOLDERS,
        target_names=_TARGET_NAMES.copy(),
        DESCR=_DESCR,
    )
