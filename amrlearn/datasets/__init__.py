"""Dataset loaders: MNIST and CIFAR-10, verified by checksum, as float32 in [0, 1].

Files live in the data home: the ``data_home`` argument, else ``$AMRLEARN_DATA``, else
``~/amrlearn_data`` (:func:`get_data_home`).
"""

from ._base import ChecksumError, DatasetNotFoundError, get_data_home
from ._cifar10 import load_cifar10
from ._mnist import load_mnist

__all__ = [
    "ChecksumError",
    "DatasetNotFoundError",
    "get_data_home",
    "load_cifar10",
    "load_mnist",
]
