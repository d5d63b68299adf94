"""Dataset loaders: MNIST, Fashion-MNIST and CIFAR-10, verified by checksum, as float32 in [0, 1].

Files live in the data home: the ``data_home`` argument, else ``$AMRLEARN_DATA``, else
``~/amrlearn_data`` (:func:`get_data_home`); Fashion-MNIST is also read where Debian's
package ``dataset-fashion-mnist`` installs it. :func:`load_mnist_or_digits` falls back to
scikit-learn's bundled digits where MNIST is missing.
"""

from ._base import ChecksumError, DatasetNotFoundError, get_data_home
from ._cifar10 import load_cifar10
from ._fallback import load_mnist_or_digits
from ._fashion_mnist import load_fashion_mnist
from ._mnist import load_mnist

__all__ = [
    "ChecksumError",
    "DatasetNotFoundError",
    "get_data_home",
    "load_cifar10",
    "load_fashion_mnist",
    "load_mnist",
    "load_mnist_or_digits",
]
