"""``margin_report``: the one margin scorer, for cross_validate and GridSearchCV."""

import functools
import numbers

import numpy as np

from ._dispatch import sample_margins
from ._linear import summarize_margins

__all__ = [
    "avg_margin_scorer",
    "make_margin_refit",
    "make_margin_report",
    "margin_report",
    "min_margin_scorer",
]

DEFAULT_QUANTILES = (0.1, 0.25, 0.75, 0.9)


def margin_report(
    estimator, X, y, *, quantiles=DEFAULT_QUANTILES, upper=None, certified=True, bound_params=None
):
    """Accuracy and margin statistics of a fitted classifier: a multi-metric scorer.

    The estimator's type decides how margins are measured (see
    :func:`~amrlearn.metrics.sample_margins`): exactly for linear models and affine
    modules, by the Theorem 3 estimate (the paper's: a sampled Lipschitz constant, not a
    guaranteed bound) for other neural nets. The margin statistics never depend on
    ``upper``.

    To choose a model in a search, do not refit on ``avg_margin`` alone: the mean of
    ``|m|`` counts misclassified samples too, and a broken model can have the largest.
    :func:`make_margin_refit` picks the largest margin among the most accurate
    candidates.

    Parameters
    ----------
    estimator : fitted classifier
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    quantiles : sequence of float, default=(0.1, 0.25, 0.75, 0.9)
        Quantiles of the signed margins to report.
    upper : bool, default=None
        Also report ``avg_margin_lower`` and ``avg_margin_upper``, which bracket the
        average margin (see Returns), from the minimum-norm ensemble
        (:class:`~amrlearn.attacks.MinimumNormEnsemble`). ``None`` means yes for neural
        nets and no for linear models (whose margins are exact).
    certified : bool, default=True
        Also report ``avg_certified_margin`` (see Returns), from
        :func:`~amrlearn.metrics.certified_margins`. ``False`` leaves the key out.
    bound_params : dict, default=None
        Budget of the neural bracket (see :func:`~amrlearn.metrics.margin_bounds`). The
        default is cheap enough for cross-validation: 128 points drawn in the ball of
        radius 5 per sample for the Theorem 3 estimate, 100 steps of the minimum-norm
        ensemble's FMN and DDN for the upper end.
        ``{"n_batches": 50, "batch_size": 1024}`` gives the paper's budget (50 x 1024
        points; the paper also evaluates on a subset of 500 samples).

    Returns
    -------
    report : dict of str to float
        ``accuracy``, ``min_margin`` (signed minimum), ``avg_margin`` (mean ``|m|``),
        ``avg_margin_correct``, ``median_margin``, one ``qNN_margin`` per quantile, all
        of the exact margins or of the paper's estimator; for neural nets (not affine)
        with ``upper``: ``avg_margin_lower`` and ``avg_margin_upper``, the means of the
        two ends of each sample's interval on ``|m|`` (the Theorem 3 estimate tightened
        by the ensemble's points, and the ensemble's distance), and ``median_margin_lower``
        and ``median_margin_upper``, the medians of the two ends of the signed
        interval (they bracket the signed median margin; the upper one is the median
        minimum-norm distance, negative for misclassified samples); and
        ``avg_feature_margin`` for nets with a feature-space margin. With ``certified``:
        ``avg_certified_margin``, the mean ``|m|`` (as ``avg_margin``) of the certified
        margins, proven lower bounds on each ``|m|`` (so at most the true average
        margin): the exact ``avg_margin`` for linear models and affine modules, NaN for
        a net that is not certifiable (a layer that ``certified_margins`` does not
        list, such as Tanh). NaN rather than a missing key keeps the keys of every
        report the same, which ``cross_validate`` and ``GridSearchCV`` need; a search
        warns about the non-finite scores.

    See Also
    --------
    make_margin_report : The same scorer with other defaults (quantiles, budget).
    make_margin_refit : A ``refit`` rule for searches scored with this report.

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
    ['test_accuracy', 'test_avg_certified_margin', 'test_avg_margin']
    """
    from ._dispatch import is_torch_model

    y = np.asarray(y)
    if upper is None:
        upper = is_torch_model(estimator)
    res = sample_margins(
        estimator, X, y, bound_params=bound_params, upper=upper, certified=certified
    )
    report = {"accuracy": float(np.mean(np.asarray(res["y_pred"]) == y))}
    report.update(summarize_margins(res["margin"], quantiles=quantiles))
    if "upper" in res and res["method"] != "exact":
        ends = np.abs(np.stack([res["lower"], res["upper"]]))
        report["avg_margin_lower"] = float(ends.min(axis=0).mean())
        report["avg_margin_upper"] = float(ends.max(axis=0).mean())
        report["median_margin_lower"] = float(np.median(res["lower"]))
        report["median_margin_upper"] = float(np.median(res["upper"]))
    if certified:
        cert = res["certified"]
        report["avg_certified_margin"] = (
            float("nan") if cert is None else float(np.abs(cert).mean())
        )
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


def _margin_refit(cv_results, *, metric, max_accuracy_drop):
    """The refit rule of :func:`make_margin_refit` (a module-level function, so that a
    fitted search that holds it can be pickled)."""
    keys = ("mean_test_accuracy", f"mean_test_{metric}")
    missing = [k for k in keys if k not in cv_results]
    if missing:
        raise ValueError(
            f"cv_results_ has no {', '.join(missing)}: make_margin_refit needs a search "
            f"scored with margin_report (scoring=margin_report), which reports "
            f"'accuracy' and '{metric}'."
        )
    acc = np.asarray(cv_results[keys[0]], dtype=np.float64)
    score = np.asarray(cv_results[keys[1]], dtype=np.float64)
    valid = np.isfinite(acc) & np.isfinite(score)
    if not valid.any():
        raise ValueError(
            f"No candidate has a finite mean accuracy and {metric}: every fit failed or scored NaN."
        )
    eligible = valid & (acc >= acc[valid].max() - max_accuracy_drop)
    return int(np.argmax(np.where(eligible, score, -np.inf)))


def make_margin_refit(metric="avg_margin", *, max_accuracy_drop=0.01):
    """A ``refit`` rule for GridSearchCV: the largest margin among the most accurate.

    ``refit="avg_margin"`` alone can pick a broken model: the paper's average margin is
    the mean of ``|m|``, so misclassified samples far from the boundary raise it as much
    as correct ones. (On MNIST 0 vs 1, AMR with ``tau=10, lam=1`` has the largest average
    margin of the gallery's grid, at 59 % accuracy; its correctly classified samples have
    the largest average margin too.) This rule only considers the candidates whose mean
    cross-validated accuracy is within ``max_accuracy_drop`` of the best one, and among
    them picks the largest mean ``metric``.

    Parameters
    ----------
    metric : str, default="avg_margin"
        A key of :func:`margin_report` (``"avg_margin"``, ``"avg_margin_correct"``,
        ``"median_margin"``, ``"min_margin"``, ``"avg_margin_lower"``...).
    max_accuracy_drop : float, default=0.01
        How far below the best mean accuracy (a fraction: 0.01 is one point) a candidate
        may lie and still be chosen. ``0``: only the most accurate candidates.

    Returns
    -------
    refit : callable ``cv_results -> int``
        Pass it as ``refit=`` to :class:`~sklearn.model_selection.GridSearchCV` (or
        any search) scored with :func:`margin_report`. It returns the index of the
        chosen candidate; a search refitted by a callable has no ``best_score_``.

    Raises
    ------
    ValueError
        From the search, if its ``cv_results_`` lack ``mean_test_accuracy`` or
        ``mean_test_<metric>`` (a search not scored with :func:`margin_report`), or if no
        candidate has finite scores. Candidates with NaN scores (failed fits) are never
        chosen.

    See Also
    --------
    margin_report : The scorer whose keys this rule reads.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn.svm import LinearSVC
    >>> from amrlearn.metrics import make_margin_refit, margin_report
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> search = GridSearchCV(make_pipeline(StandardScaler(), LinearSVC()),
    ...                       {"linearsvc__C": [0.01, 0.1, 1.0]}, scoring=margin_report,
    ...                       refit=make_margin_refit("avg_margin"), cv=3).fit(X, y)
    >>> acc = search.cv_results_["mean_test_accuracy"]
    >>> bool(acc[search.best_index_] >= acc.max() - 0.01)
    True
    """
    if not isinstance(metric, str):
        raise TypeError(f"metric must be a key of margin_report (a str), got {metric!r}.")
    if (
        isinstance(max_accuracy_drop, bool)
        or not isinstance(max_accuracy_drop, numbers.Real)
        or not 0 <= max_accuracy_drop <= 1
    ):
        raise ValueError(
            "max_accuracy_drop must be a fraction in [0, 1] (0.01 is one point of "
            f"accuracy), got {max_accuracy_drop!r}."
        )
    return functools.partial(
        _margin_refit, metric=metric, max_accuracy_drop=float(max_accuracy_drop)
    )
