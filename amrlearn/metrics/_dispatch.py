"""One dispatcher decides how the margin of an estimator is measured.

Every scorer, plot, callback, benchmark and experiment asks :func:`sample_margins`, so
that a margin means one thing everywhere:

* a linear model (``coef_``, or a Pipeline ending in one): the closed form, exact;
* a torch module or a skorch net: Theorem 3's Lipschitz lower bound (the paper's
  choice), and optionally a minimum-norm attack's upper bound, through
  :func:`amrlearn.metrics.margin_bounds`. Torch is imported only on this branch.
"""

import numpy as np

__all__ = ["is_linear_model", "is_torch_model", "sample_margins"]


def is_linear_model(estimator):
    """True for a fitted linear classifier, or a Pipeline that ends in one."""
    from sklearn.pipeline import Pipeline

    if isinstance(estimator, Pipeline):
        return is_linear_model(estimator.steps[-1][1])
    return hasattr(estimator, "coef_") and not is_torch_model(estimator)


def is_torch_model(estimator):
    """True for a ``torch.nn.Module`` or a skorch net (checked without importing torch)."""
    import sys

    if "torch" not in sys.modules:
        return False
    import torch

    if isinstance(estimator, torch.nn.Module):
        return True
    skorch = sys.modules.get("skorch")
    return skorch is not None and isinstance(estimator, skorch.NeuralNet)


def sample_margins(estimator, X, y=None, *, bound_params=None, upper=False, kind="auto"):
    """Per-sample signed l2 margins of ``estimator`` on ``X``, measured the right way.

    Parameters
    ----------
    estimator : fitted estimator
        A linear classifier (exact margins) or a torch module / skorch net (bounds).
    X : array-like of shape (n_samples, n_features) or (n_samples, *input_shape)
    y : array-like of shape (n_samples,), default=None
        True labels: margins are negated where the prediction is wrong. ``None`` gives
        unsigned distances.
    bound_params : dict, default=None
        Budget of the neural bounds (``radius``, ``n_batches``, ``batch_size``,
        ``attack_steps``, ``random_state``, ``device``...), passed to
        :func:`~amrlearn.metrics.margin_bounds` over the cheap default
        ``{"radius": 5.0, "n_batches": 1, "batch_size": 128, "attack_steps": 100}``;
        ``{"n_batches": 50, "batch_size": 1024}`` is the paper's budget. Ignored for
        linear models.
    upper : bool, default=False
        Also compute the minimum-norm attack's upper bound (neural models only; linear
        models report the exact margin as both bounds).
    kind : {"auto", "feature"}, default="auto"
        ``"auto"`` measures as above. ``"feature"`` asks a net that has a
        ``feature_margins(X, y)`` method (:mod:`amrlearn.neural`) for its feature-space
        margin of eq. (14) alone, without the input-space bounds: cheap, for tracking
        during training. ``margin`` then equals ``feature`` and ``method`` is
        ``"feature"``.

    Returns
    -------
    result : dict
        ``margin`` (ndarray, the signed margin that the statistics use: exact, or the
        lower bound), ``method`` (``"exact"`` or ``"lipschitz_lower_bound"``), ``y_pred``
        (predicted labels), and, where known, ``upper`` (signed upper bound) and
        ``feature`` (feature-space margin of eq. (14)).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from amrlearn.metrics import sample_margins
    >>> X = np.array([[0.0], [1.0], [3.0], [4.0]]); y = np.array([0, 0, 1, 1])
    >>> res = sample_margins(LogisticRegression().fit(X, y), X, y)
    >>> res["method"], res["margin"].shape
    ('exact', (4,))
    """
    if kind not in ("auto", "feature"):
        raise ValueError(f"kind must be 'auto' or 'feature', got {kind!r}.")
    if kind == "feature":
        if not hasattr(estimator, "feature_margins"):
            raise TypeError(
                f"kind='feature' needs a net with a feature_margins method; "
                f"{type(estimator).__name__} has none."
            )
        feature = np.asarray(estimator.feature_margins(X, y))
        return {
            "margin": feature,
            "method": "feature",
            "y_pred": np.asarray(estimator.predict(X)),
            "feature": feature,
        }
    if is_linear_model(estimator):
        from ._linear import linear_margins

        margin = linear_margins(estimator, X, y)
        out = {"margin": margin, "method": "exact", "y_pred": np.asarray(estimator.predict(X))}
        if upper:
            out["upper"] = margin.copy()
        return out
    if is_torch_model(estimator):
        from ._bounds import CHEAP_BOUND_PARAMS, margin_bounds

        # A cheap budget by default; bound_params overrides it key by key.
        params = {**CHEAP_BOUND_PARAMS, **(bound_params or {})}
        res = margin_bounds(estimator, X, y, upper=upper, **params)
        out = {
            "margin": res["lower"],
            "method": "exact" if res.get("exact") is not None else "lipschitz_lower_bound",
            "y_pred": res["y_pred"],
        }
        if res.get("exact") is not None:
            out["margin"] = res["exact"]
        if upper and res.get("upper") is not None:
            out["upper"] = res["upper"]
        if hasattr(estimator, "feature_margins"):
            out["feature"] = estimator.feature_margins(X, y)
        return out
    from sklearn.base import BaseEstimator
    from sklearn.utils.validation import check_is_fitted

    if isinstance(estimator, BaseEstimator):
        check_is_fitted(estimator)  # an unfitted estimator: sklearn's NotFittedError
    raise TypeError(
        f"Cannot measure the margin of {type(estimator).__name__}: expected a fitted linear "
        "classifier (with coef_), a Pipeline ending in one, a torch.nn.Module or a skorch net."
    )
