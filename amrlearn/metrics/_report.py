"""``margin_report``: the one margin scorer, for cross_validate and GridSearchCV."""

import functools

import numpy as np

from ._dispatch import sample_margins
from ._linear import summarize_margins

__all__ = ["avg_margin_scorer", "make_margin_report", "margin_report", "min_margin_scorer"]

DEFAULT_QUANTILES = (0.1, 0.25, 0.75, 0.9)


def margin_report(estimator, X, y, *, quantiles=DEFAULT_QUANTILES, upper=None, bound_params=None):
    """Accuracy and margin statistics of a fitted classifier: a multi-metric scorer.

    The estimator's type decides how margins are measured (see
    :func:`~amrlearn.metrics.sample_margins`): exactly for linear models and affine
    modules, by Theorem 3's Lipschitz estimate (the paper's) for other neural nets. The
    margin statistics never depend on ``upper``.

    Parameters
    ----------
    estimator : fitted classifier
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    quantiles : sequence of float, default=(0.1, 0.25, 0.75, 0.9)
        Quantiles of the signed margins to report.
    upper : bool, default=None
        Also report ``avg_margin_lower`` and ``avg_margin_upper``, which bracket the
        average margin (see Returns), from a minimum-norm attack. ``None`` means yes for
        neural nets and no for linear models (whose margins are exact).
    bound_params : dict, default=None
        Budget of the neural bounds (see :func:`~amrlearn.metrics.margin_bounds`). The
        default is cheap enough for cross-validation: 128 points drawn in the ball of
        radius 5 per sample for the lower bound, 100 DDN steps for the upper one.
        ``{"n_batches": 50, "batch_size": 1024}`` gives the paper's budget (50 x 1024
        points; the paper also evaluates on a subset of 500 samples).

    Returns
    -------
    report : dict of str to float
        ``accuracy``, ``min_margin`` (signed minimum), ``avg_margin`` (mean ``|m|``),
        ``avg_margin_correct``, ``median_margin``, one ``qNN_margin`` per quantile, all
        of the exact margins or of the paper's estimator; for neural nets (not affine)
        with ``upper``: ``avg_margin_lower`` and ``avg_margin_upper``, the means of the
        two ends of each sample's interval on ``|m|`` (the Lipschitz bound tightened by
        the attack's points, and the attack's distance), and ``median_margin_lower``
        and ``median_margin_upper``, the medians of the two ends of the signed
        interval (they bracket the signed median margin; the upper one is the median
        minimum-norm distance, negative for misclassified samples); and
        ``avg_feature_margin`` for nets with a feature-space margin.

    See Also
    --------
    make_margin_report : The same scorer with other defaults (quantiles, budget).

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.model_selection import cross_validate
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn.svm import LinearSVC
    >>> from amrlearn.metrics import margin_report
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> cv = cross_validate(make_pipeline(StandardScaler(), LinearSVC()), X, y,
    ...                     scoring=margin_report, cv=3)
    >>> sorted(k for k in cv if k.startswith("test_"))[:3]
    ['test_accuracy', 'test_avg_margin', 'test_avg_margin_correct']
    """
    from ._dispatch import is_torch_model

    y = np.asarray(y)
    if upper is None:
        upper = is_torch_model(estimator)
    res = sample_margins(estimator, X, y, bound_params=bound_params, upper=upper)
    report = {"accuracy": float(np.mean(np.asarray(res["y_pred"]) == y))}
    report.update(summarize_margins(res["margin"], quantiles=quantiles))
    if "upper" in res and res["method"] != "exact":
        ends = np.abs(np.stack([res["lower"], res["upper"]]))
        report["avg_margin_lower"] = float(ends.min(axis=0).mean())
        report["avg_margin_upper"] = float(ends.max(axis=0).mean())
        report["median_margin_lower"] = float(np.median(res["lower"]))
        report["median_margin_upper"] = float(np.median(res["upper"]))
    if "feature" in res:
        report["avg_feature_margin"] = float(np.abs(res["feature"]).mean())
    return report


def make_margin_report(**params):
    """Build a :func:`margin_report` scorer with other defaults.

    Parameters
    ----------
    **params
        Keyword arguments of :func:`margin_report`: ``quantiles``, ``upper``,
        ``bound_params`` (e.g. the paper's budget, ``{"n_batches": 50, "batch_size": 1024}``).

    Returns
    -------
    scorer : callable ``(estimator, X, y) -> dict``

    Examples
    --------
    >>> from amrlearn.metrics import make_margin_report
    >>> scorer = make_margin_report(quantiles=(0.5,))
    >>> callable(scorer)
    True
    """
    return functools.partial(margin_report, **params)


def min_margin_scorer(estimator, X, y):
    """Scorer ``(estimator, X, y) -> float``: the signed minimum margin (greater is better).

    A plain callable rather than ``make_scorer``: ``make_scorer`` hands its metric only
    predictions, while a margin needs the estimator's geometry.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from amrlearn.metrics import min_margin_scorer
    >>> X = np.array([[0.0], [1.0], [3.0], [4.0]]); y = np.array([0, 0, 1, 1])
    >>> min_margin_scorer(LogisticRegression().fit(X, y), X, y) > 0
    True
    """
    return summarize_margins(sample_margins(estimator, X, y)["margin"], quantiles=())["min_margin"]


def avg_margin_scorer(estimator, X, y):
    """Scorer ``(estimator, X, y) -> float``: the paper's average margin, mean ``|m|``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from amrlearn.metrics import avg_margin_scorer
    >>> X = np.array([[0.0], [1.0], [3.0], [4.0]]); y = np.array([0, 0, 1, 1])
    >>> round(avg_margin_scorer(LogisticRegression().fit(X, y), X, y), 3)
    1.5
    """
    return summarize_margins(sample_margins(estimator, X, y)["margin"], quantiles=())["avg_margin"]
