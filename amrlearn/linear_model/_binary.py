"""The CCCP loop for objective (11): one binary problem, from a start to a fixed point.

:func:`~amrlearn.linear_model._cccp.cccp_step` is one iteration; this module drives it
(smoothing schedule, acceptance of steps on the exact objective, stopping rule) and holds
the starting points. Dense or scipy.sparse ``X``: only products with ``X`` and ``X.T``.
"""

import numpy as np
import scipy.sparse as sp

from ..utils import progress
from ._cccp import amr_objective, cccp_linearization, cccp_step

# Smoothing of the kinks of H_tau (and of the hinge loss) at the first CCCP iteration,
# relative to max(tau, 1); it is divided by 10 at every iteration down to the floor.
_SMOOTHING_START = 1e-2
_SMOOTHING_FLOOR = 1e-8
_SMOOTHING_RETRIES = 4
# L-BFGS iterations of the logistic warm start (init="logistic"): a rough solution is
# enough, CCCP refines it.
_WARM_START_ITER = 3


def _class_means(X, y):
    """Means of the samples with ``y > 0`` and with ``y < 0``, in one pass over ``X``."""
    pos = y > 0
    weights = np.column_stack([pos / pos.sum(), ~pos / (~pos).sum()]).astype(X.dtype)
    means = (X.T @ weights).astype(np.float64, copy=False)
    return means[:, 0], means[:, 1]


def _mean_direction(X, y, rng):
    """Unit class-mean difference and the bias through the midpoint (random if degenerate)."""
    pos, neg = _class_means(X, y)
    w = pos - neg
    norm = np.linalg.norm(w)
    if not np.isfinite(norm) or norm <= 1e-12:
        w = rng.standard_normal(X.shape[1])
        norm = np.linalg.norm(w)
    w = w / norm
    return w, -float(w @ (pos + neg)) / 2.0


def _margins(w, b, X, y):
    return y * (X @ w.astype(X.dtype, copy=False)).astype(np.float64, copy=False) + y * b


def _inner_tolerances(tol):
    """``(gtol, ftol)`` of the inner L-BFGS solves for the outer tolerance ``tol``.

    The outer loop stops when an iteration lowers the objective by less than ``tol``
    (relative); the inner solves stop when an L-BFGS iteration lowers the majorizer by less
    than ``tol / 1000`` (relative), so they are solved well below the outer resolution
    (tests/test_amr_logistic.py compares with a tight solve).
    """
    tol = max(tol, 1e-10)
    return tol * 1e-1, tol * 1e-3


def _sample_scale(X):
    """Root-mean-square norm of the samples: the starting ``||v||`` of the inner solves."""
    if sp.issparse(X):  # no squared copy of X: the stored values, once duplicates are summed
        X.sum_duplicates()
        sq = np.vdot(X.data, X.data)
    else:
        sq = np.vdot(X, X)
    scale = float(np.sqrt(sq / X.shape[0]))
    return scale if np.isfinite(scale) and scale > 0 else 1.0


def _fit_binary(X, y, w0, b0, *, lam, tau, loss, fit_intercept, tol, max_iter, verbose, scale=1.0):
    """CCCP for one binary problem with labels ``y`` in {-1, +1}, from ``(w0, b0)``.

    Returns ``(w, b, n_iter, objective_path, tight, converged)``.
    """
    gtol, ftol = _inner_tolerances(tol)
    w, b = w0, (b0 if fit_intercept else 0.0)
    margins = _margins(w, b, X, y)
    obj = amr_objective(margins, lam=lam, tau=tau, loss=loss)
    path, tight = [obj], []
    # Moreau smoothing moves the inner objective by at most lam * mu / 2 (H_tau) plus
    # mu / 2 (hinge loss): start where that is a fraction tol of the objective.
    weight = lam + (1.0 if loss == "hinge" else 0.0)
    floor = _SMOOTHING_FLOOR * max(tau, 1.0)
    smoothing = _SMOOTHING_START * max(tau, 1.0)
    if weight > 0:
        smoothing = max(min(smoothing, tol * abs(obj) / weight), floor)
    n_iter, converged = 0, False
    bar = progress(range(max_iter), verbose=verbose, desc="CCCP")
    for _ in bar:
        n_iter += 1
        slopes = cccp_linearization(margins)
        accepted, success = None, True
        for _retry in range(_SMOOTHING_RETRIES):
            w_new, b_new, info = cccp_step(
                w,
                b,
                X,
                y,
                lam=lam,
                tau=tau,
                loss=loss,
                smoothing=smoothing,
                fit_intercept=fit_intercept,
                gtol=gtol,
                ftol=ftol,
                scale=scale,
                margins=margins,
            )
            m_new = info["margins"]
            obj_new = amr_objective(m_new, lam=lam, tau=tau, loss=loss)
            success = info["success"]
            if success and obj_new <= obj:
                accepted = (w_new, b_new, m_new, obj_new, info)
                break
            # The smoothed step overshot the exact objective: smooth less and retry.
            smoothing = max(smoothing * 1e-2, floor)
        if accepted is None:
            # No descent left at the finest smoothing is a fixed point, unless the inner
            # solver failed (non-finite values, or stopped at its start): not converged.
            converged = success
            break
        w, b, margins, obj_new, info = accepted
        decrease = obj - obj_new
        obj = obj_new
        path.append(obj)
        tight.append(info["tight"])
        # A fixed point of CCCP: the tangent at the new iterate is the one just used, so
        # the next majorizer is the same convex function, whose minimizer (global when
        # the relaxation is tight) we hold. Or the objective has stopped decreasing.
        same_tangent = lam == 0 or np.array_equal(cccp_linearization(margins), slopes)
        if (same_tangent and info["tight"]) or decrease <= tol * abs(path[-2]):
            converged = True
            break
        smoothing = max(smoothing * 1e-1, floor)
    return w, b, n_iter, np.asarray(path), np.asarray(tight, dtype=bool), converged
