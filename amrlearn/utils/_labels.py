"""Labels to column indices: the one label encoding of metrics, attacks, bounds and nets.

Pure numpy, so that the exact linear margins never import torch.
"""

import numpy as np

__all__ = ["check_classes", "label_index"]


def _describe(y):
    if y.dtype.kind in "iu":
        return f"the negative label {int(y.min())}"
    return f"labels of dtype {y.dtype} such as {np.ravel(y)[:3].tolist()}"


def label_index(classes, y):
    """Index of each label of ``y`` in the sorted array ``classes`` (an estimator's ``classes_``).

    Parameters
    ----------
    classes : array-like of shape (n_classes,) or None
        The labels of the output columns, sorted and distinct as ``np.unique`` gives them
        (as scikit-learn's ``classes_`` and skorch's are). ``None`` means the labels are
        the column indices themselves.
    y : array-like of shape (n_samples,)
        Labels: numbers or strings.

    Returns
    -------
    index : ndarray of shape (n_samples,) of int64

    Raises
    ------
    ValueError
        If ``classes`` is not sorted and distinct, if a label of ``y`` is not in
        ``classes`` (or, with ``classes=None``, if ``y`` is not made of integers in
        ``0..``).

    Examples
    --------
    >>> import numpy as np
    >>> from amrlearn.utils._labels import label_index
    >>> label_index(np.array([3, 7]), [7, 3, 7]).tolist()
    [1, 0, 1]
    >>> label_index(np.array(["cat", "dog"]), ["dog"]).tolist()
    [1]
    """
    y = np.asarray(y)
    if classes is None:
        if y.dtype.kind not in "iu" or (y.size and y.min() < 0):
            raise ValueError(
                "This model has no classes_ (a bare torch module): its outputs are indexed "
                "by class number, so y must hold integer labels 0..n_outputs-1, got "
                f"{_describe(y)}. Encode the labels, or name the label of each output with "
                "as_logit_fn(module, classes=[...])."
            )
        return y.astype(np.int64)
    classes = np.asarray(classes)
    if classes.size == 0:
        raise ValueError("The model has no classes.")
    check_classes(classes)
    try:
        idx = np.clip(np.searchsorted(classes, y), 0, len(classes) - 1)
        bad = classes[idx] != y
    except TypeError as exc:  # e.g. string labels against numeric classes
        raise ValueError(
            f"y (dtype {y.dtype}) cannot be matched with the model's classes "
            f"(dtype {classes.dtype})."
        ) from exc
    if np.any(bad):
        raise ValueError(
            f"y contains labels not seen during fit: {np.unique(y[bad])[:5].tolist()}; "
            f"the classes are {classes.tolist()[:10]}."
        )
    return idx.astype(np.int64)


def check_classes(classes):
    """Refuse ``classes`` that are not sorted and distinct (as ``np.unique`` gives them).

    The label of each output column of a classifier, in order: scikit-learn's and
    skorch's ``classes_``. Returns ``classes`` as an array.

    Examples
    --------
    >>> from amrlearn.utils._labels import check_classes
    >>> check_classes(["a", "b"]).tolist()
    ['a', 'b']
    >>> check_classes([2, 1])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: classes must be sorted and distinct, got [2, 1]: ...
    """
    c = np.asarray(classes)
    try:
        ok = c.ndim == 1 and bool(np.all(c[1:] > c[:-1]))
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(
            f"classes must be sorted and distinct, got {c.tolist()[:10]}: the label of each "
            "output column, as np.unique gives them (a fitted net's classes_)."
        )
    return c
