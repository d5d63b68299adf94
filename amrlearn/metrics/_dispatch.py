"""One dispatcher decides how the margin of an estimator is measured.

Every scorer, plot, callback, benchmark and experiment asks :func:`sample_margins`, so
that a margin means one thing everywhere:

* a linear model (``coef_``, or a Pipeline ending in one): the closed form, exact;
* a torch module or a skorch net (or a Pipeline of affine scalers ending in one): the
  closed form where the module is affine, else Theorem 3's Lipschitz estimate (the
  paper's choice), and optionally an interval from a minimum-norm attack, through
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
    """True for a ``torch.nn.Module``, a skorch net, or a Pipeline ending in one.

    Checked without importing torch.
    """
    import sys

    from sklearn.pipeline import Pipeline

    if isinstance(estimator, Pipeline):
        return is_torch_model(estimator.steps[-1][1])
    if "torch" not in sys.modules:
        return False
    import torch

    if isinstance(estimator, torch.nn.Module):
        return True
    skorch = sys.modules.get("skorch")
    return skorch is not None and isinstance(estimator, skorch.NeuralNet)


def sample_margins(
    estimator, X, y=None, *, bound_params=None, upper=False, certified=False, kind="auto"
):
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
        Also return ``lower`` and ``upper``, an interval that holds each signed margin
        (:func:`~amrlearn.metrics.margin_bounds`: the minimum-norm attack gives one end,
        the Lipschitz estimate tightened by the attack's points the other). Linear models
        give the exact margin as both ends. ``margin`` does not depend on it.
    certified : bool, default=False
        Also return ``certified``, the signed certified margins
        (:func:`~amrlearn.metrics.certified_margins`): the exact margins of a linear
        model, ``None`` for a net that is not certifiable.
    kind : {"auto", "feature"}, default="auto"
        ``"auto"`` measures as above. ``"feature"`` asks a net that has a
        ``feature_margins(X, y)`` method (:mod:`amrlearn.neural`) for its feature-space
        margin of eq. (14) alone, without the input-space bounds: cheap, for tracking
        during training. ``margin`` then equals ``feature`` and ``method`` is
        ``"feature"``.

    Returns
    -------
    result : dict
        - ``margin``: ndarray, the signed margin that the statistics use: exact (linear
          models and affine modules), or the paper's estimator, the Theorem 3 estimate
          alone (never tightened by an attack, whatever ``upper`` is);
        - ``method``: ``"exact"`` or ``"lipschitz_lower_bound"`` (the Theorem 3
          estimate; the name is kept for compatibility, it is no guaranteed bound);
        - ``y_pred``: predicted labels;
        - with ``upper=True``: ``lower`` and ``upper``, the ordered interval
          (``lower <= upper``) that holds each signed margin;
        - with ``certified=True``: ``certified`` (ndarray or ``None``);
        - for nets with ``feature_margins``: ``feature``, the feature-space margin of
          eq. (14).

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
            out["lower"], out["upper"] = margin.copy(), margin.copy()
        if certified:
            out["certified"] = margin.copy()
        return out
    if is_torch_model(estimator):
        from ._bounds import CHEAP_BOUND_PARAMS, margin_bounds

        # A cheap budget by default; bound_params overrides it key by key.
        params = {**CHEAP_BOUND_PARAMS, **(bound_params or {})}
        res = margin_bounds(estimator, X, y, upper=upper, certified=certified, **params)
        exact = res["exact"] is not None
        out = {
            "margin": res["exact"] if exact else res["lipschitz"],
            "method": "exact" if exact else "lipschitz_lower_bound",
            "y_pred": res["y_pred"],
        }
        if upper:
            out["lower"], out["upper"] = res["lower"], res["upper"]
        if certified:
            out["certified"] = res["certified"]
        if hasattr(estimator, "feature_margins"):
            out["feature"] = estimator.feature_margins(X, y)
        return out
    from sklearn.base import BaseEstimator
    from sklearn.utils.validation import check_is_fitted

    if isinstance(estimator, BaseEstimator):
        check_is_fitted(estimator)  # an unfitted estimator: sklearn's NotFittedError
    raise TypeError(
        f"Cannot measure the margin of {type(estimator).__name__}: expected a fitted linear "
        "classifier (with coef_), a torch.nn.Module, a skorch net, or a Pipeline ending in "
        "one of them."
    )
