"""The mathematics of the multiclass Average Margin Regularizer for a linear classifier.

Objective: the multinomial logistic loss, the l2 penalty of scikit-learn's
``LogisticRegression`` (the norm constraint in Lagrangian form, see below) and ``lam``
times the truncated multiclass margin of eq. (14) of Wu & Yu with ``Phi(x) = x``,

``J(W, b) = mean_i [CE(f(x_i), y_i) + lam (tau - [m_i]_0^tau)] + ||W||_F^2 / (2 C n)``,
``f_k(x) = w_k.x + b_k``, ``m_i = min_{k != y_i} (f_{y_i}(x_i) - f_k(x_i)) / ||w_{y_i} - w_k||``.

``m_i`` is the exact signed l2 distance of ``x_i`` to the boundary of its class's region
(negative when misclassified). It is invariant to the scale of ``(W, b)`` and to adding a
common vector to every ``w_k``, as is the loss to the latter; so the margin term needs no
normalization, and the norm constraint's one job is the one the unit sphere does for the
loss in the binary case: to stop the loss from being lowered by inflating the weights. The
constraint is the ball ``||W||_F <= R`` in its Lagrangian form ``||W||_F^2 / (2 C n)``; at
every stationary point the rows are centred (``sum_k w_k = 0``), because both the loss and
the margin term have gradients that sum to zero over the classes.

The regularizer is a difference of convex functions of ``m_i``, but ``m_i`` is a minimum of
ratios of affine functions, neither convex nor concave in ``(W, b)``: the DC split of the
binary case does not carry over. The objective is minimized by L-BFGS, whose line search
enforces sufficient decrease at every iteration, so its path is monotone
(:func:`fit_multinomial_amr`). Pure numpy/scipy; dense or scipy.sparse ``X``.
"""

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp, softmax

from .._math._margin import pair_distances, signed_margins
from ..utils import progress

__all__ = [
    "fit_multinomial_amr",
    "multiclass_amr_objective",
    "multiclass_margins",
    "nearest_centroid_start",
]

# L-BFGS restarts after an abnormal line-search termination (at a kink of the objective
# the quasi-Newton model can be poor; a restart from the same point drops its memory).
_MAX_RESTARTS = 5
# L-BFGS stops when an iteration lowers the objective by less than tol * _FTOL_FACTOR
# (relative): on the nonsmooth objective single iterations can be short, so the per-
# iteration test is finer than the resolution tol asked for.
_FTOL_FACTOR = 1e-2


def _scores(X, W, b):
    return np.asarray(X @ W.T.astype(X.dtype, copy=False), dtype=np.float64) + b


def multiclass_margins(W, b, X, y):
    """Eq. (14) with ``Phi(x) = x``: signed l2 distance to the true class's region boundary.

    ``m_i = min_{k != y_i} ((w_{y_i} - w_k).x_i + b_{y_i} - b_k) / ||w_{y_i} - w_k||``:
    positive when ``x_i`` is classified correctly, and then its exact l2 distance to the
    decision boundary; negative otherwise. Equal weight rows follow the rule of
    :mod:`amrlearn._math._margin`: ``-inf`` where class ``y_i`` wins nowhere, and a
    class that never beats ``y_i`` is left out.

    Parameters
    ----------
    W : ndarray of shape (n_classes, n_features)
    b : ndarray of shape (n_classes,)
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
        Class indices in ``0 .. n_classes - 1``.

    Returns
    -------
    margins : ndarray of shape (n_samples,)

    Examples
    --------
    >>> import numpy as np
    >>> from amrlearn.linear_model._multinomial import multiclass_margins
    >>> W = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]); b = np.zeros(3)
    >>> multiclass_margins(W, b, np.array([[2.0, 0.0]]), np.array([0]))
    array([1.41421356])
    """
    return signed_margins(_scores(X, W, b), pair_distances(W), np.asarray(y))[0]


def multiclass_amr_objective(W, b, X, y, *, lam, tau, C=np.inf):
    """The multiclass AMR objective ``J(W, b)`` of this module (see its docstring).

    Parameters
    ----------
    W : ndarray of shape (n_classes, n_features)
    b : ndarray of shape (n_classes,)
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
        Class indices.
    lam, tau : float
        Weight and truncation of the margin term.
    C : float, default=inf
        Inverse strength of the l2 penalty; ``inf`` drops it.

    Returns
    -------
    value : float

    Examples
    --------
    >>> import numpy as np
    >>> from amrlearn.linear_model._multinomial import multiclass_amr_objective
    >>> W = np.array([[0.5], [-0.5]]); b = np.zeros(2)
    >>> X = np.array([[1.0], [-1.0]]); y = np.array([0, 1])
    >>> round(multiclass_amr_objective(W, b, X, y, lam=0.0, tau=1.0), 4)  # log(1 + e^-1)
    0.3133
    """
    return _value_grad(W, b, X, np.asarray(y), lam, tau, C, gradient=False)[0]


def _value_grad(W, b, X, y, lam, tau, C, gradient=True):
    """Objective and its gradient in ``(W, b)`` (a.e.; at kinks, one-sided choices)."""
    n, K = X.shape[0], W.shape[0]
    S = _scores(X, W, b)
    rows = np.arange(n)
    value = float(np.mean(logsumexp(S, axis=1) - S[rows, y]))
    value += 0.5 * float(np.vdot(W, W)) / (C * n)
    if lam > 0:
        norms = pair_distances(W)
        m, k = signed_margins(S, norms, y)
        value += lam * float(np.mean(tau - np.clip(m, 0.0, tau)))
    if not gradient:
        return value, None, None
    dS = softmax(S, axis=1)
    dS[rows, y] -= 1.0
    dS /= n
    gW_extra = W / (C * n)
    active = (m > 0) & (m < tau) if lam > 0 else np.zeros(n, dtype=bool)
    if np.any(active):
        # d/dm of lam * mean(tau - m) on (0, tau) is -lam / n; through the scores, m moves
        # by 1 / ||w_y - w_k|| per unit of f_y and the opposite per unit of f_k.
        i, yi, ki = rows[active], y[active], k[active]
        nrm = norms[yi, ki]
        c = -lam / n / nrm
        np.add.at(dS, (i, yi), c)
        np.add.at(dS, (i, ki), -c)
        # Through the norm: dm/dw_y = -m (w_y - w_k) / ||w_y - w_k||^2, the opposite for w_k.
        Q = np.zeros((K, K))
        np.add.at(Q, (yi, ki), -lam / n * m[active] / nrm**2)
        Q = Q + Q.T
        gW_extra = gW_extra - (np.diag(Q.sum(axis=1)) - Q) @ W
    gW = np.asarray(X.T @ dS.astype(X.dtype, copy=False), dtype=np.float64).T + gW_extra
    return value, gW, dS.sum(axis=0)


def nearest_centroid_start(X, y, n_classes):
    """The nearest-centroid classifier ``f_k(x) = mu_k.x - ||mu_k||^2 / 2``, centred.

    Class means come from one sparse-friendly product.

    Returns
    -------
    W : ndarray of shape (n_classes, n_features)
    b : ndarray of shape (n_classes,)

    Examples
    --------
    >>> import numpy as np
    >>> from amrlearn.linear_model._multinomial import nearest_centroid_start
    >>> W, b = nearest_centroid_start(np.array([[0.0], [2.0]]), np.array([0, 1]), 2)
    >>> W.ravel(), b
    (array([-1.,  1.]), array([ 1., -1.]))
    """
    Y = np.zeros((X.shape[0], n_classes), dtype=X.dtype)
    Y[np.arange(X.shape[0]), y] = 1.0
    Y /= Y.sum(axis=0)
    M = np.asarray(X.T @ Y, dtype=np.float64).T
    b = -0.5 * np.einsum("ij,ij->i", M, M)
    return M - M.mean(axis=0), b - b.mean()


def fit_multinomial_amr(
    X, y, W0, b0, *, lam, tau, C=1.0, fit_intercept=True, tol=1e-4, max_iter=100, verbose=0
):
    """Minimize the multiclass AMR objective from ``(W0, b0)`` by a monotone L-BFGS.

    L-BFGS's line search accepts a step only if it satisfies the sufficient-decrease
    (Armijo) condition, so the exact objective decreases strictly at every iteration; it is
    recorded after each one. The objective is piecewise smooth (kinks where a margin
    crosses 0 or ``tau``, or where its competing class changes). Where the line search
    fails at a kink, L-BFGS is restarted from the current point with an empty memory (at
    most 5 times); the fit stops when a restart makes no progress.

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
        Class indices.
    W0 : ndarray of shape (n_classes, n_features)
    b0 : ndarray of shape (n_classes,)
    lam, tau, C : float
        As in :func:`multiclass_amr_objective`.
    fit_intercept : bool, default=True
    tol : float, default=1e-4
        L-BFGS stops when an iteration lowers the objective by less than ``tol / 100``
        (relative), or the largest gradient entry is below ``tol / 100``.
    max_iter : int, default=100
        L-BFGS iterations in all.
    verbose : int, default=0

    Returns
    -------
    W : ndarray of shape (n_classes, n_features)
    b : ndarray of shape (n_classes,)
        Centred.
    n_iter : int
    path : ndarray
        The objective at the start and after every iteration; non-increasing.
    converged : bool
    """
    K, d = W0.shape
    y = np.asarray(y)
    b0 = np.asarray(b0, dtype=np.float64) if fit_intercept else np.zeros(K)

    def unpack(z):
        return z[: K * d].reshape(K, d), (z[K * d :] if fit_intercept else np.zeros(K))

    last = {}  # the most recent evaluation: the callback's point is normally that one

    def fun(z):
        W, b = unpack(z)
        value, gW, gb = _value_grad(W, b, X, y, lam, tau, C)
        last.update(z=z.copy(), value=value)
        grad = np.concatenate([gW.ravel(), gb]) if fit_intercept else gW.ravel()
        return value, grad

    def value_at(z):
        return last["value"] if np.array_equal(z, last.get("z")) else fun(z)[0]

    z = np.concatenate([W0.ravel(), b0]) if fit_intercept else np.array(W0, dtype=float).ravel()
    path = [fun(z)[0]]
    n_iter, converged, ftol = 0, False, tol * _FTOL_FACTOR
    bar = progress(range(_MAX_RESTARTS + 1), verbose=verbose, desc="multinomial AMR")
    for _ in bar:
        start = len(path)
        res = minimize(
            fun,
            z,
            jac=True,
            method="L-BFGS-B",
            callback=lambda zk: path.append(value_at(zk)),
            options={"maxiter": max_iter - n_iter, "ftol": ftol, "gtol": ftol, "maxcor": 20},
        )
        n_iter += len(path) - start
        value = value_at(res.x)
        if value < path[-1]:  # a final point the callback did not see
            path.append(value)
        if value <= path[start - 1]:
            z = res.x
        progressed = path[-1] < path[start - 1] - tol * abs(path[start - 1])
        if res.status == 0 or (res.status != 1 and not progressed):
            converged = True
            break
        if n_iter >= max_iter:
            break
    bar.close()
    W, b = unpack(z)
    return W.copy(), b - b.mean(), n_iter, np.asarray(path), converged
