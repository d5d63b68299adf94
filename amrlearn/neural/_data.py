"""Data handling of the nets: input checks, label encoding, the batch iterator, augmentation.

What scikit-learn does in ``validate_data`` and ``LabelEncoder``, written for the inputs
skorch accepts (numpy, torch tensors, pandas, scipy.sparse), plus the nets' default
``iterator_train``/``iterator_valid`` class and the crop-and-flip augmentation of
Appendix F, applied to training batches only.
"""

import numpy as np
import torch
from skorch.dataset import Dataset
from skorch.utils import to_numpy
from torch.utils.data import DataLoader

from ..utils._labels import label_index

__all__ = ["BatchLoader", "check_input", "encode_labels", "label_array", "random_crop_flip"]


def _n_samples_and_ndim(X):
    shape = getattr(X, "shape", None)
    if shape is None and isinstance(X, list | tuple) and X and not isinstance(X[0], str):
        shape = np.shape(X)
    return (None, None) if shape is None else (shape[0] if len(shape) else None, len(shape))


def check_shape(X):
    """Refuse a 1-D or empty ``X`` with a message that names the problem."""
    n, ndim = _n_samples_and_ndim(X)
    if ndim is not None and ndim < 2:
        raise ValueError(
            f"X must have shape (n_samples, n_features) or (n_samples, *input_shape); got a "
            f"{ndim}-D array of shape {tuple(X.shape if hasattr(X, 'shape') else np.shape(X))}. "
            "Reshape a single feature with X.reshape(-1, 1), a single sample with "
            "X.reshape(1, -1)."
        )
    if n == 0:
        raise ValueError("X is empty: it has 0 samples.")


def check_input(X):
    """``X`` as the nets feed it to torch: a float32 array or tensor, checked.

    * ``scipy.sparse`` matrices are made dense (torch layers need dense input);
    * pandas DataFrames become their numeric values;
    * bool, integer (``uint8`` images) and float64 input become float32, and a float
      tensor stays on its device;
    * 1-D, empty, non-numeric, NaN or infinite input is refused.

    Anything else (a dict of arrays, a list of tensors) is left to skorch unchanged.
    """
    import scipy.sparse

    if scipy.sparse.issparse(X):
        X = X.toarray()
    elif hasattr(X, "iloc") and hasattr(X, "to_numpy"):  # a pandas DataFrame
        X = X.to_numpy()
    elif isinstance(X, list):
        X = np.asarray(X)
    if isinstance(X, torch.Tensor):
        check_shape(X)
        if X.dtype != torch.float32:
            X = X.to(torch.float32)
        finite = bool(torch.isfinite(X).all())
    elif isinstance(X, np.ndarray):
        check_shape(X)
        if X.dtype.kind not in "biuf":
            raise ValueError(f"X must be numeric; got an array of dtype {X.dtype}.")
        X = X.astype(np.float32, copy=False)
        finite = bool(np.isfinite(X).all())
    else:
        return X
    if not finite:
        raise ValueError("Input X contains NaN or infinity.")
    return X


def label_array(y):
    """``y`` as a 1-D numpy array (from a list, tensor or pandas Series)."""
    y = to_numpy(y) if isinstance(y, torch.Tensor) else np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-dimensional, got shape {y.shape}.")
    return y


def encode_labels(classes, y):
    """Index of each label of ``y`` in the sorted ``classes``: codes ``0..n_classes-1``.

    Parameters
    ----------
    classes : array-like of shape (n_classes,)
        Sorted, distinct labels (a net's ``classes_``).
    y : array-like of shape (n_samples,)
        Labels, each one of ``classes``.

    Returns
    -------
    codes : ndarray of int64 of shape (n_samples,)
        ``np.searchsorted(classes, y)``, from
        :func:`amrlearn.utils._labels.label_index` (the one label encoding).

    Raises
    ------
    ValueError
        If ``classes`` is not sorted and distinct, ``y`` is not 1-D, or ``y`` holds a
        label not in ``classes``.

    Examples
    --------
    >>> from amrlearn.neural._data import encode_labels
    >>> encode_labels([3, 7], [7, 3, 7]).tolist()
    [1, 0, 1]
    """
    return label_index(np.asarray(classes), label_array(y))


def random_crop_flip(x, padding=4):
    """Random crop after zero padding, and random horizontal flip, of a batch of images.

    The augmentation of Appendix F (LeNetSmall on CIFAR-10): each image is flipped left
    to right with probability 1/2, padded with ``padding`` zeros on each side and cropped
    back to its size at a uniformly random offset. A training-batch transform: pass it as
    ``iterator_train__transform=random_crop_flip`` so that prediction sees clean inputs.

    Parameters
    ----------
    x : Tensor of shape (n, C, H, W)
    padding : int, default=4

    Returns
    -------
    Tensor of shape (n, C, H, W)

    Examples
    --------
    >>> import torch
    >>> from amrlearn.neural._data import random_crop_flip
    >>> tuple(random_crop_flip(torch.ones(5, 3, 8, 8)).shape)
    (5, 3, 8, 8)
    """
    if x.dim() != 4:
        raise ValueError(f"random_crop_flip needs images (n, C, H, W), got {tuple(x.shape)}.")
    n, _, h, w = x.shape
    flip = torch.rand(n, device=x.device) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (n,), device=x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


class BatchLoader:
    """The nets' ``iterator_train`` and ``iterator_valid``: a DataLoader that can slice.

    For a skorch ``Dataset`` of tensors (what ``data_on_device=True`` makes, or tensors
    passed to ``fit``), batches are sliced from the tensors where they live: one
    ``randperm`` and one ``index_select`` per batch, instead of collating ``batch_size``
    single samples. Any other dataset, or any DataLoader argument beyond ``batch_size``,
    ``shuffle`` and ``drop_last`` (``num_workers``, ``collate_fn``, ``sampler``...),
    goes to :class:`torch.utils.data.DataLoader` with every argument kept.

    Parameters
    ----------
    dataset : torch Dataset
    batch_size : int, default=1
    shuffle : bool, default=False
    drop_last : bool, default=False
    transform : callable or None, default=None
        Applied to the inputs of each batch (``iterator_train__transform=...``), e.g.
        :func:`random_crop_flip`.
    **loader_kwargs
        Other :class:`~torch.utils.data.DataLoader` arguments.
    """

    def __init__(
        self, dataset, batch_size=1, shuffle=False, drop_last=False, transform=None, **kwargs
    ):
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.transform = transform
        self.loader_kwargs = kwargs
        self._sliceable = (
            not kwargs
            and type(dataset) is Dataset
            and isinstance(dataset.X, torch.Tensor)
            and (dataset.y is None or isinstance(dataset.y, torch.Tensor))
        )

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _slices(self):
        X, y = self.dataset.X, self.dataset.y
        n = len(X)
        order = torch.randperm(n, device=X.device) if self.shuffle else None
        stop = n - n % self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            if order is None:
                sl = slice(start, start + self.batch_size)
                xb, yb = X[sl], (y[sl] if y is not None else None)
            else:
                idx = order[start : start + self.batch_size]
                xb = X.index_select(0, idx)
                yb = y.index_select(0, idx) if y is not None else None
            if yb is None:  # skorch's placeholder target when predicting
                yb = torch.zeros(len(xb), device=xb.device)
            yield xb, yb

    def __iter__(self):
        if self._sliceable:
            batches = self._slices()
        else:
            batches = iter(
                DataLoader(
                    self.dataset,
                    batch_size=self.batch_size,
                    shuffle=self.shuffle,
                    drop_last=self.drop_last,
                    **self.loader_kwargs,
                )
            )
        for xb, yb in batches:
            yield (xb if self.transform is None else self.transform(xb)), yb
