"""Exact l2 margins of linear classifiers: eq. (2)-(7) of Wu & Yu.

Pure numpy. The estimator-facing functions read ``coef_``, ``intercept_`` and
``classes_`` from any fitted scikit-learn linear classifier and call the pure functions
below, which take the weights directly.
"""

import numbers
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_array, check_is_fitted

from .._math._margin import pair_distances, signed_margins
from ..utils._affine import pipeline_affine
from ..utils._labels import label_index

__all__ = [
    "closest_boundary_point",
    "linear_margins",
    "margins_from_scores",
    "summarize_margins",
]


def _linear_parts(estimator):
    """Return ``(coef, intercept, transform)`` of a fitted linear classifier.

    ``coef`` has shape (n_outputs, n_features): one row for a binary model, one per class
    otherwise. A Pipeline whose earlier steps are per-feature affine scalers
    (StandardScaler, MinMaxScaler, MaxAbsScaler, 'passthrough') is folded exactly into the
    weights, so the margin is measured in the raw input space. Any other preprocessing is
    applied by ``transform`` and the margin is then measured in the space that the final
    step sees (with a warning).
    """
    from sklearn.pipeline import Pipeline

    transform = None
    if isinstance(estimator, Pipeline):
        coef, intercept, _ = _linear_parts(estimator.steps[-1][1])
        scale, shift, bad = pipeline_affine(estimator)
        if bad is None:
            if scale is not None:
                intercept = intercept + coef @ shift
                coef = coef * scale
            return coef, intercept, None
        warnings.warn(
            "The pipeline has a non-affine preprocessing step: margins are measured in the "
            "space that its final linear step sees, not in the raw input space.",
            UserWarning,
            stacklevel=3,
        )
        return coef, intercept, estimator[:-1].transform

    check_is_fitted(estimator, "coef_")
    coef = estimator.coef_
    if sp.issparse(coef):  # e.g. sklearn's SVC fitted on sparse X; (n_outputs, n_features)
        coef = coef.toarray()
    coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
    _check_argmax_model(estimator, coef)
    intercept = np.asarray(getattr(estimator, "intercept_", 0.0), dtype=np.float64)
    intercept = np.broadcast_to(np.atleast_1d(intercept), (coef.shape[0],)).copy()
    return coef, intercept, transform


def _check_argmax_model(estimator, coef):
    """Refuse weights that do not predict by the sign (binary) or argmax of ``X @ coef.T + b``.

    One-vs-one models (SVC and NuSVC with a linear kernel and more than two classes) have
    one row per pair of classes and predict by voting; their margins are not eq. (6).
    """
    from sklearn.svm import SVC, NuSVC

    n_classes = len(getattr(estimator, "classes_", ()))
    if n_classes < 2:
        return
    expected = 1 if n_classes == 2 else n_classes
    if coef.shape[0] != expected or (n_classes > 2 and isinstance(estimator, (SVC, NuSVC))):
        raise ValueError(
            f"{type(estimator).__name__} with {n_classes} classes and coef_ of shape "
            f"{coef.shape} does not predict by the argmax of one linear score per class "
            "(one-vs-one?), so eq. (6) does not give its margins. Use a one-vs-rest or "
            "multinomial linear model such as LinearSVC or LogisticRegression."
        )


def margins_from_scores(scores, coef, y_index=None):
    """Signed l2 margins of a linear model from its scores: eq. (6).

    Parameters
    ----------
    scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
        ``X @ coef.T + intercept``. One column (or a 1-D array) means a binary model whose
        positive class is the second one.
    coef : ndarray of shape (1, n_features) or (n_classes, n_features)
        The weights that produced ``scores``.
    y_index : ndarray of shape (n_samples,) of int, default=None
        Index of each sample's true class in ``classes_``. ``None`` returns the unsigned
        distance to the decision boundary.

    Returns
    -------
    margins : ndarray of shape (n_samples,)
        Distance to the boundary of the predicted region, negated where the prediction is
        wrong. A sample whose region has no boundary (identical weight rows) gets ``inf``.
    pred_index : ndarray of shape (n_samples,)
        Index of the predicted class.

    Examples
    --------
    >>> import numpy as np
    >>> from amrlearn.metrics import margins_from_scores
    >>> m, pred = margins_from_scores(np.array([3.0, -4.0]), np.array([[3.0, 4.0]]), [1, 1])
    >>> m
    array([ 0.6, -0.8])
    """
    scores = np.asarray(scores, dtype=np.float64)
    coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
    if scores.ndim == 2 and scores.shape[1] == 1:
        scores = scores[:, 0]
    if scores.ndim == 1:
        norm = np.linalg.norm(coef[0])
        with np.errstate(divide="ignore", invalid="ignore"):
            dist = np.abs(scores) / norm
        pred = (scores > 0).astype(np.intp)
    else:
        pred = np.argmax(scores, axis=1)
        dist = signed_margins(scores, pair_distances(coef), pred)[0]  # >= 0: c = yhat
    if y_index is None:
        return dist, pred
    sign = np.where(pred == np.asarray(y_index), 1.0, -1.0)
    return sign * dist, pred


def _final_classes(estimator):
    from sklearn.pipeline import Pipeline

    est = estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
    return np.asarray(est.classes_)


def _prepare(estimator, X):
    coef, intercept, transform = _linear_parts(estimator)
    # Sparse X stays sparse: margins need only X @ coef.T (one sparse product).
    X = check_array(X, dtype=np.float64, accept_sparse=["csr", "csc"])
    if transform is not None:
        X = transform(X)
        X = X.astype(np.float64) if sp.issparse(X) else np.asarray(X, dtype=np.float64)
    if X.shape[1] != coef.shape[1]:
        raise ValueError(
            f"X has {X.shape[1]} features, but the estimator expects {coef.shape[1]} features."
        )
    return coef, intercept, X


def linear_margins(estimator, X, y=None):
    """Exact signed l2 margins of a fitted linear classifier: eq. (6).

    For a binary model ``f(x) = w.x + b`` the distance to the boundary is
    ``|f(x)| / ||w||``. For a multiclass model that predicts ``argmax_k f_k(x)`` it is the
    distance to the boundary of the predicted region,
    ``min_{k != yhat} (f_yhat(x) - f_k(x)) / ||w_yhat - w_k||``.
    The margin is that distance, negated where the prediction is wrong.

    Parameters
    ----------
    estimator : fitted linear classifier
        Anything with ``coef_``, ``intercept_`` and ``classes_`` that predicts by the sign or
        the argmax of ``X @ coef_.T + intercept_``: LogisticRegression, LinearSVC,
        SGDClassifier, :class:`~amrlearn.HardMarginSVC`,
        :class:`~amrlearn.AMRLogisticRegression`, or a Pipeline ending in one of them.
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Samples. CSR and CSC matrices stay sparse (one sparse product).
    y : array-like of shape (n_samples,), default=None
        True labels. ``None`` returns the unsigned distances.

    Returns
    -------
    margins : ndarray of shape (n_samples,)

    See Also
    --------
    closest_boundary_point : The point at which each distance is attained, eq. (7).
    margin_report : Summaries of these margins, as a scorer.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from amrlearn.metrics import linear_margins
    >>> X = np.array([[-2.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    >>> y = np.array([0, 0, 1, 1])
    >>> clf = LogisticRegression().fit(X, y)
    >>> np.round(linear_margins(clf, X, y), 2)
    array([2.14, 1.14, 0.86, 2.86])
    """
    coef, intercept, X = _prepare(estimator, X)
    scores = np.asarray(X @ coef.T) + intercept
    y_index = None
    if y is not None:
        y = np.asarray(y)
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} samples but y has {y.shape[0]}.")
        y_index = label_index(_final_classes(estimator), y)
    return margins_from_scores(scores, coef, y_index)[0]


def closest_boundary_point(estimator, X):
    """The closest point on the decision boundary of a linear classifier: eq. (7).

    Binary: ``x - f(x) w / ||w||^2``. Multiclass: the projection of ``x`` onto the
    hyperplane ``f_yhat = f_k`` of the nearest competing class ``k``; it lies on the
    boundary of the predicted region, and no other class scores higher there.

    Parameters
    ----------
    estimator : fitted linear classifier
        As for :func:`linear_margins`. A pipeline is accepted only when its preprocessing
        folds into the weights (affine scalers).
    X : {array-like, sparse matrix} of shape (n_samples, n_features)

    Returns
    -------
    X_boundary : ndarray of shape (n_samples, n_features)
        Minimum-norm adversarial points; ``||X_boundary - X||`` equals the margins.
        Always a dense ndarray, also for sparse ``X``: ``x - m w / ||w||`` is dense
        wherever ``w`` is, so a sparse result would only cost more memory than the
        dense one (``n_samples * n_features`` floats; on large sparse data, call it on
        slices of rows). The sparse rows are added into the dense result, without a
        dense copy of ``X``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.svm import LinearSVC
    >>> from amrlearn.metrics import closest_boundary_point, linear_margins
    >>> X = np.array([[0.0, 0.0], [0.0, 2.0]]); y = np.array([0, 1])
    >>> clf = LinearSVC().fit(X, y)
    >>> Xb = closest_boundary_point(clf, X)
    >>> np.allclose(linear_margins(clf, Xb), 0.0)
    True
    """
    coef, intercept, transform = _linear_parts(estimator)
    if transform is not None:
        raise ValueError(
            "closest_boundary_point needs the input space: the pipeline does not fold."
        )
    coef, intercept, X = _prepare(estimator, X)
    scores = np.asarray(X @ coef.T) + intercept
    if coef.shape[0] == 1:
        w = coef[0]
        return _plus(X, -np.outer(scores[:, 0] / (w @ w), w))
    rows = np.arange(X.shape[0])
    pred = np.argmax(scores, axis=1)
    k = signed_margins(scores, pair_distances(coef), pred)[1]  # the nearest competitor
    d = coef[pred] - coef[k]  # normal of the hyperplane f_yhat - f_k = 0
    step = (scores[rows, pred] - scores[rows, k]) / np.einsum("ij,ij->i", d, d)
    return _plus(X, -step[:, None] * d)


def _plus(X, D):
    """``X + D`` as a dense ndarray, ``D`` dense; sparse ``X`` is added in place into ``D``."""
    if not sp.issparse(X):
        return X + D
    C = sp.coo_matrix(X.tocsr(copy=True))
    C.sum_duplicates()
    D[C.row, C.col] += C.data
    return D


def summarize_margins(margins, *, quantiles=(0.1, 0.25, 0.75, 0.9)):
    """The paper's margin statistics of a vector of signed margins.

    Parameters
    ----------
    margins : array-like of shape (n_samples,)
        Signed margins (positive where correct), as returned by :func:`linear_margins`.
    quantiles : sequence of float, default=(0.1, 0.25, 0.75, 0.9)
        Quantiles of the signed margins to report, each in [0, 1].

    Returns
    -------
    summary : dict of str to float
        ``min_margin`` (the paper's signed minimum), ``avg_margin`` (the paper's mean of
        ``|m|``), ``avg_margin_correct`` (mean over correctly classified samples, NaN if
        none), ``median_margin`` and ``q<percent>_margin`` for each quantile (signed).

    Examples
    --------
    >>> from amrlearn.metrics import summarize_margins
    >>> s = summarize_margins([1.0, 2.0, -0.5, 3.0], quantiles=())
    >>> s["min_margin"], s["avg_margin"], s["avg_margin_correct"]
    (-0.5, 1.625, 2.0)
    """
    m = np.asarray(margins, dtype=np.float64).ravel()
    if m.size == 0:
        raise ValueError("summarize_margins needs at least one margin.")
    if np.isnan(m).any():
        raise ValueError("margins contain NaN.")
    correct = m[m > 0]
    out = {
        "min_margin": float(m.min()),
        "avg_margin": float(np.abs(m).mean()),
        "avg_margin_correct": float(correct.mean()) if correct.size else float("nan"),
        "median_margin": float(np.median(m)),
    }
    for q in quantiles:
        if not isinstance(q, numbers.Real) or not 0 <= q <= 1:
            raise ValueError(f"quantiles must lie in [0, 1], got {q!r}.")
        out[f"q{round(100 * q):02d}_margin"] = float(np.quantile(m, q))
    return out
