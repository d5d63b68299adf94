"""The mathematics of the Average Margin Regularizer for a binary linear classifier.

Section 4.1 of Wu & Yu: the losses phi of Theorem 2, the hinge functions ``H_s``, the
truncated margin and its difference-of-convex identity (10), the objective (11), the
conditional risk of Theorem 2, and one step of the convex-concave procedure (CCCP) that
minimizes (11) on the unit sphere. Pure numpy/scipy; the estimator
:class:`~amrlearn.linear_model.AMRLogisticRegression` is a thin layer over these.

Conventions. Labels are ``y in {-1, +1}``. A classifier is ``(w, b)`` with
``||w||_2 = 1`` and the margin of sample ``i`` is ``m_i = y_i (w.x_i + b)``, which is its
signed l2 distance to the decision boundary because ``w`` has unit norm. The paper drops
the bias "w.l.o.g."; here it is free. Sums are averaged over the samples (the paper
writes sums): both terms of (11) are scaled alike, so the minimizers are the same.
"""

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

__all__ = [
    "LOSSES",
    "amr_objective",
    "amr_regularizer",
    "cccp_linearization",
    "cccp_step",
    "conditional_risk",
    "exponential_loss",
    "hinge",
    "hinge_loss",
    "logistic_loss",
    "smoothed_hinge",
    "truncated_margin",
]

_EXP_CAP = 700.0  # exp(700) is near float64's largest value


# --- the losses phi of Theorem 2: decreasing, continuous, bounded below, phi'(0) < 0 ----


def logistic_loss(t):
    """Logistic loss ``phi(t) = log(1 + exp(-t))``, computed without overflow.

    Examples
    --------
    >>> from amrlearn.linear_model._cccp import logistic_loss
    >>> round(float(logistic_loss(0.0)), 4)
    0.6931
    """
    return np.logaddexp(0.0, -np.asarray(t, dtype=np.float64))


def hinge_loss(t):
    """Hinge loss ``phi(t) = max(0, 1 - t)``, which is ``H_1(t)``.

    Examples
    --------
    >>> from amrlearn.linear_model._cccp import hinge_loss
    >>> hinge_loss([-1.0, 0.5, 2.0])
    array([2. , 0.5, 0. ])
    """
    return hinge(t, 1.0)


def exponential_loss(t):
    """Exponential loss ``phi(t) = exp(-t)`` (capped at ``exp(700)`` to stay finite).

    Examples
    --------
    >>> from amrlearn.linear_model._cccp import exponential_loss
    >>> float(exponential_loss(0.0))
    1.0
    """
    return np.exp(np.minimum(-np.asarray(t, dtype=np.float64), _EXP_CAP))


#: The losses of Theorem 2 by name.
LOSSES = {"logistic": logistic_loss, "hinge": hinge_loss, "exponential": exponential_loss}


def _loss_value_grad(t, loss, smoothing):
    """Value and derivative of ``phi`` at ``t``; the hinge loss is smoothed by ``smoothing``."""
    if loss == "logistic":
        return np.logaddexp(0.0, -t), -expit(-t)
    if loss == "exponential":
        e = np.exp(np.minimum(-t, _EXP_CAP))
        return e, -e
    if loss == "hinge":
        return _smoothed_hinge_value_grad(t, 1.0, smoothing)
    raise ValueError(f"unknown loss {loss!r}; expected one of {sorted(LOSSES)}.")


# --- eq. (10): the truncated margin as a difference of convex functions -----------------


def hinge(t, s):
    """``H_s(t) = max(0, s - t)``: convex, non-increasing, zero for ``t >= s``.

    Examples
    --------
    >>> from amrlearn.linear_model._cccp import hinge
    >>> hinge([-1.0, 0.0, 3.0], 2.0)
    array([3., 2., 0.])
    """
    return np.maximum(0.0, s - np.asarray(t, dtype=np.float64))


def truncated_margin(t, tau):
    """The truncated margin ``[t]_0^tau = min(max(t, 0), tau)`` of eq. (9).

    Eq. (10) writes it as a difference of convex functions. The paper prints
    ``-[t]_0^tau = H_tau(t) - H_0(t) + tau``; the sign of ``tau`` is a typo, the identity is
    ``-[t]_0^tau = H_tau(t) - H_0(t) - tau`` (check ``t >= tau``: the left side is
    ``-tau`` and ``H_tau - H_0`` is 0). The constant does not change the minimizers of (11).

    Examples
    --------
    >>> import numpy as np
    >>> from amrlearn.linear_model._cccp import amr_regularizer, truncated_margin
    >>> t = np.array([-1.0, 0.5, 7.0])
    >>> truncated_margin(t, 5.0)
    array([0. , 0.5, 5. ])
    >>> np.allclose(-truncated_margin(t, 5.0), amr_regularizer(t, 5.0) - 5.0)
    True
    """
    return np.clip(np.asarray(t, dtype=np.float64), 0.0, tau)


def amr_regularizer(t, tau):
    """The average margin regularizer ``psi(t) = H_tau(t) - H_0(t)`` of eq. (11) and Theorem 2.

    Equal to ``tau - [t]_0^tau``: constant ``tau`` for wrong predictions (``t < 0``),
    decreasing on ``[0, tau]`` and zero beyond ``tau``.

    Examples
    --------
    >>> from amrlearn.linear_model._cccp import amr_regularizer
    >>> amr_regularizer([-2.0, 1.0, 9.0], 5.0)
    array([5., 4., 0.])
    """
    return hinge(t, tau) - hinge(t, 0.0)


def smoothed_hinge(t, s, smoothing):
    """The Moreau envelope of ``H_s`` with parameter ``smoothing`` (a Huberized hinge).

    ``0`` for ``t >= s``, ``(s - t)^2 / (2 mu)`` on ``(s - mu, s)`` and ``s - t - mu / 2``
    below. It is convex with a ``1/mu``-Lipschitz derivative, and
    ``H_s - mu/2 <= smoothed_hinge <= H_s``: the error vanishes with ``mu``.

    Examples
    --------
    >>> from amrlearn.linear_model._cccp import smoothed_hinge
    >>> smoothed_hinge([0.0, 0.95, 2.0], 1.0, 0.1)
    array([0.95  , 0.0125, 0.    ])
    """
    return _smoothed_hinge_value_grad(np.asarray(t, dtype=np.float64), s, smoothing)[0]


def _smoothed_hinge_value_grad(t, s, mu):
    if mu <= 0:
        gap = s - t
        return np.maximum(gap, 0.0), np.where(gap > 0, -1.0, 0.0)
    gap = s - t
    lin = gap >= mu
    quad = (gap > 0) & ~lin
    value = np.where(lin, gap - 0.5 * mu, np.where(quad, gap * gap / (2.0 * mu), 0.0))
    grad = np.where(lin, -1.0, np.where(quad, -gap / mu, 0.0))
    return value, grad


# --- eq. (11) and Theorem 2 ---------------------------------------------------------------


def amr_objective(margins, *, lam, tau, loss="logistic"):
    """Objective (11), averaged: ``mean(phi(m) + lam * (H_tau - H_0)(m))``.

    Parameters
    ----------
    margins : array-like of shape (n_samples,)
        ``m_i = y_i (w.x_i + b)`` with ``||w|| = 1`` (signed distances).
    lam : float
        Weight of the regularizer, ``lambda >= 0``.
    tau : float
        Truncation, ``tau >= 0``.
    loss : {"logistic", "hinge", "exponential"}, default="logistic"

    Returns
    -------
    value : float

    Examples
    --------
    >>> from amrlearn.linear_model._cccp import amr_objective
    >>> round(amr_objective([1.0, 2.0], lam=0.0, tau=5.0), 4)
    0.2201
    """
    m = np.asarray(margins, dtype=np.float64)
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; expected one of {sorted(LOSSES)}.")
    return float(np.mean(LOSSES[loss](m) + lam * amr_regularizer(m, tau)))


def conditional_risk(alpha, eta, *, lam, tau, loss="logistic"):
    """Conditional risk of Theorem 2 for ``ell = phi + lam * (H_tau - H_0)``.

    ``C_eta(alpha) = eta * ell(alpha) + (1 - eta) * ell(-alpha)``: the expected loss of the
    decision ``alpha`` at a point whose label is +1 with probability ``eta``.

    The paper's Definition 1 writes ``phi(1 - alpha)`` in the second term; that is a typo:
    the conditional risk of a margin loss takes ``-alpha`` (the margin of the label -1).

    Parameters
    ----------
    alpha : array-like
        Decisions (real scores).
    eta : float
        ``P(y = +1 | x)`` in [0, 1].
    lam, tau : float
        The regularizer's weight and truncation, both >= 0.
    loss : {"logistic", "hinge", "exponential"}, default="logistic"

    Returns
    -------
    risk : ndarray, the shape of ``alpha``

    Examples
    --------
    >>> import numpy as np
    >>> from amrlearn.linear_model._cccp import conditional_risk
    >>> a = np.linspace(-5, 5, 1001)
    >>> float(a[np.argmin(conditional_risk(a, 0.8, lam=1.0, tau=2.0))]) > 0
    True
    """
    a = np.asarray(alpha, dtype=np.float64)
    phi = LOSSES[loss]

    def ell(t):
        return phi(t) + lam * amr_regularizer(t, tau)

    return eta * ell(a) + (1.0 - eta) * ell(-a)


# --- the convex-concave procedure ---------------------------------------------------------


def cccp_linearization(margins):
    """Slopes of the tangent of the concave part ``-H_0`` at the current margins.

    ``-H_0(m) = min(0, m)`` is concave, so it lies below its tangent at any ``m_k``:
    ``min(0, m) <= s * m`` with ``s = 1`` if ``m_k < 0`` and ``s = 0`` otherwise (at
    ``m_k = 0`` the supergradient 0 is chosen). Replacing ``-lam * H_0(m_i)`` by
    ``lam * s_i * m_i`` gives a convex majorizer of (11) that touches it at the current
    iterate.

    Examples
    --------
    >>> from amrlearn.linear_model._cccp import cccp_linearization
    >>> cccp_linearization([-1.0, 0.0, 2.0])
    array([1., 0., 0.])
    """
    return (np.asarray(margins, dtype=np.float64) < 0).astype(np.float64)


def _surrogate(z, X, y, slopes, lam, tau, loss, smoothing, fit_intercept):
    """Value and gradient of the (smoothed) CCCP majorizer in ``z = (v, b)``, ``w = v/||v||``.

    The map ``v -> v / ||v||`` turns the sphere constraint into an unconstrained problem:
    the gradient in ``v`` is the tangential part of the gradient in ``w``, over ``||v||``.
    """
    d = X.shape[1]
    v = z[:d]
    nv = np.sqrt(v @ v)
    w = v / nv
    b = z[d] if fit_intercept else 0.0
    m = y * (X @ w.astype(X.dtype, copy=False)).astype(np.float64, copy=False) + y * b
    n = m.shape[0]
    phi, dphi = _loss_value_grad(m, loss, smoothing)
    value = phi.sum()
    dm = dphi
    if lam > 0:
        h, dh = _smoothed_hinge_value_grad(m, tau, smoothing)
        value += lam * (h.sum() + slopes @ m)
        dm = dm + lam * (dh + slopes)
    value /= n
    r = dm * y / n
    g_w = (X.T @ r.astype(X.dtype, copy=False)).astype(np.float64, copy=False)
    g_v = (g_w - (g_w @ w) * w) / nv
    grad = np.zeros_like(z)  # without an intercept its slot must read 0, not stale memory
    grad[:d] = g_v
    if fit_intercept:
        grad[d] = r.sum()
    return value, grad, g_w, w, m


def cccp_step(
    w,
    b,
    X,
    y,
    *,
    lam,
    tau,
    loss="logistic",
    smoothing=0.0,
    fit_intercept=True,
    max_inner=200,
    gtol=1e-6,
    ftol=1e-12,
    scale=1.0,
    margins=None,
):
    """One CCCP iteration for objective (11) on the unit sphere.

    Linearizes ``-lam * H_0`` at ``(w, b)`` (:func:`cccp_linearization`) and minimizes the
    convex remainder ``mean(phi(m) + lam * H_tau(m) + lam * s * m)`` over ``||w|| = 1`` and
    a free ``b``, starting from ``(w, b)``.

    How the sphere is handled: the remainder is convex in ``(w, b)``, so its minimum over
    the *ball* ``||w|| <= 1`` is a convex problem. This step minimizes over the sphere
    itself with L-BFGS in the scale-invariant parametrization ``w = v / ||v||`` (a
    descent method started at the current iterate, so the majorizer never increases).
    At the point it returns, the gradient ``g`` in ``w`` is parallel to ``w``; if
    ``g.w <= 0`` the KKT conditions of the ball problem hold with multiplier ``-g.w >= 0``,
    so the point is the global minimizer of the convex ball relaxation, hence of the
    sphere-constrained step: the relaxation is *tight*. Otherwise the ball's minimizer is
    inside the sphere and the step is a local (still descending) sphere step; this is
    reported in ``info["tight"]``.

    Nonsmooth kinks (``H_tau`` and the hinge loss) are replaced by their Moreau envelopes
    with parameter ``smoothing`` (:func:`smoothed_hinge`); the caller drives it to zero
    and keeps a step only if the exact objective (11) does not increase.

    Parameters
    ----------
    w : ndarray of shape (n_features,)
        Current unit-norm weights.
    b : float
        Current bias.
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
        Labels in {-1, +1}.
    lam, tau : float
    loss : {"logistic", "hinge", "exponential"}, default="logistic"
    smoothing : float, default=0.0
    fit_intercept : bool, default=True
    max_inner : int, default=200
        L-BFGS iterations.
    gtol : float, default=1e-6
        L-BFGS tolerance on the projected gradient.
    ftol : float, default=1e-12
        L-BFGS tolerance on the relative decrease of the majorizer per iteration.
    scale : float, default=1.0
        Norm of ``v`` at the start. The map ``v -> v / ||v||`` is invariant to it, but
        L-BFGS's first trial step has unit length: with ``||v|| = scale`` it turns ``w``
        by about ``1 / scale`` radians. A scale of the order of the norm of the samples
        balances the curvature in ``v`` with the curvature in ``b`` and makes that first
        step a reasonable one.
    margins : ndarray of shape (n_samples,), default=None
        ``y (X w + b)`` if the caller has them (saves a pass over ``X``).

    Returns
    -------
    w_new : ndarray of shape (n_features,)
    b_new : float
    info : dict
        ``tight`` (bool, see above), ``multiplier`` (``-g.w``), ``n_evals`` (function
        evaluations), ``surrogate`` (value of the majorizer at the new point),
        ``margins`` (``y (X w_new + b_new)``) and ``success`` (False when the step ended on
        non-finite values, or when L-BFGS failed without leaving its starting point).

    Examples
    --------
    >>> import numpy as np
    >>> from amrlearn.linear_model._cccp import cccp_step
    >>> X = np.array([[0.0, 1.0], [0.0, 2.0], [1.0, -1.0], [2.0, -1.0]])
    >>> y = np.array([-1.0, -1.0, 1.0, 1.0])
    >>> w, b, info = cccp_step(np.array([1.0, 0.0]), 0.0, X, y, lam=0.1, tau=1.0)
    >>> round(float(np.linalg.norm(w)), 6), info["tight"]
    (1.0, True)
    """
    d = X.shape[1]
    y = np.asarray(y, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    if margins is None:
        margins = y * (X @ w.astype(X.dtype, copy=False) + b)
    m = np.asarray(margins, dtype=np.float64)
    slopes = cccp_linearization(m) if lam > 0 else np.zeros_like(y)
    z0 = np.append(scale * w / np.linalg.norm(w), b if fit_intercept else 0.0)
    counter = [0]
    last = {}  # the most recent evaluation: L-BFGS returns its last accepted point

    def fun(z):
        counter[0] += 1
        val, grad, g_w, w_z, m_z = _surrogate(
            z, X, y, slopes, lam, tau, loss, smoothing, fit_intercept
        )
        last.update(z=z.copy(), val=val, g_w=g_w, w=w_z, m=m_z)
        return val, grad

    res = minimize(
        fun,
        z0,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_inner, "gtol": gtol, "ftol": ftol, "maxcor": 10},
    )
    z = res.x
    if not np.array_equal(z, last["z"]):
        fun(z)
    val, g_w, w_new, m_new = last["val"], last["g_w"], last["w"], last["m"]
    b_new = float(z[d]) if fit_intercept else 0.0
    multiplier = -float(g_w @ w_new)
    # A step that ends on non-finite values, or an L-BFGS run that stops without a
    # successful line search at its starting point, is not a minimizer of the majorizer.
    finite = bool(np.isfinite(val) and np.all(np.isfinite(g_w)) and np.all(np.isfinite(z)))
    moved = not np.array_equal(z, z0)
    info = {
        "tight": multiplier >= 0.0,
        "multiplier": multiplier,
        "n_evals": counter[0],
        "surrogate": float(val),
        "margins": m_new,
        "success": finite and (bool(res.success) or moved),
    }
    return w_new, b_new, info
