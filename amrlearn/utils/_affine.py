"""Affine preprocessing: the scikit-learn scalers that are ``x -> x * scale + shift``.

Pure numpy. The exact linear margins fold these steps into a linear model's weights,
and the torch adapter folds them into the logit function, so that both measure in the
raw input space. Any other step is not known to be affine, and is refused or reported.
"""

import numpy as np

__all__ = ["affine_of", "pipeline_affine"]


def affine_of(step):
    """``(scale, shift)`` with ``step.transform(x) == x * scale + shift``, or ``(None, None)``.

    Known: a fitted ``StandardScaler``, ``MinMaxScaler`` (without ``clip``) and
    ``MaxAbsScaler``.
    """
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler

    if isinstance(step, StandardScaler):
        scale = 1.0 / step.scale_ if step.scale_ is not None else 1.0
        # with_mean=False still stores mean_ (when with_std=True), but does not subtract it.
        mean = step.mean_ if step.with_mean and step.mean_ is not None else 0.0
        n = step.n_features_in_
        scale = np.broadcast_to(scale, (n,)).astype(np.float64)
        return scale, -np.broadcast_to(mean, (n,)) * scale
    if isinstance(step, MinMaxScaler) and not step.clip:
        return step.scale_.astype(np.float64), step.min_.astype(np.float64)
    if isinstance(step, MaxAbsScaler):
        return 1.0 / step.scale_, np.zeros_like(step.scale_, dtype=np.float64)
    return None, None


def pipeline_affine(pipeline):
    """The preprocessing of a Pipeline (every step but the last) as one affine map.

    Parameters
    ----------
    pipeline : sklearn.pipeline.Pipeline, fitted

    Returns
    -------
    scale, shift : ndarray of shape (n_features,) or None
        ``pipeline[:-1].transform(x) == x * scale + shift``; both ``None`` when there is
        no preprocessing ('passthrough' steps only).
    bad : object or None
        The first step that is not a known affine scaler (then ``scale`` and ``shift``
        are ``None``), else ``None``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from amrlearn.utils._affine import pipeline_affine
    >>> X = np.array([[0.0], [2.0], [4.0]]); y = [0, 0, 1]
    >>> pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    >>> scale, shift, bad = pipeline_affine(pipe)
    >>> bool(np.allclose(X * scale + shift, StandardScaler().fit_transform(X))), bad
    (True, None)
    """
    scale, shift = None, None  # x -> x * scale + shift, composed over the steps
    for _, step in pipeline.steps[:-1]:
        if step is None or step == "passthrough":
            continue
        s, t = affine_of(step)
        if s is None:
            return None, None, step
        scale = s if scale is None else scale * s
        shift = t if shift is None else shift * s + t
    return scale, shift, None
