"""One hard-margin QP: the built-in dense methods, or a cvxpy solver.

``min 1/2 ||w||^2  s.t.  y_i (w.x_i + b) >= 1`` is solved, with ``solver="auto"``, by the
active-set method from a guessed support (:mod:`._active_set`), else the interior-point
method (:mod:`._ipm`) polished by the active-set method, else Clarabel; with a named solver,
it is written in cvxpy as it reads. An infeasible QP raises the "not linearly separable"
error, any other unsuccessful status a ``RuntimeError``.
"""

import cvxpy as cp
import numpy as np

from ._active_set import solve_hard_margin_active_set
from ._ipm import solve_hard_margin_ipm

# A constraint is a support vector when its dual exceeds this fraction of the largest dual.
# Interior-point duals of inactive constraints are of the order of the solver tolerance
# (1e-8 relative), those of support vectors are not; 1e-4 sits between the two.
_SUPPORT_RTOL = 1e-4
# Linear systems the active-set method may solve from a guessed support before the QP
# goes to the interior-point method. With more constraints than features a system (at
# most n_features + 1 square) costs a fraction of an interior-point iteration (whose
# normal matrix sums over every constraint), so more are allowed (3,000 x 1,000 normal
# data: 13 and 21 systems where an interior-point solve costs about 30 of them).
_ACTIVE_SET_MAX_ITER = {"kernel": 10, "features": 30}
# The built-in interior-point method factorizes a dense matrix of the smaller of the working
# set's size and n_features + 1; above this size solver="auto" hands the QP to Clarabel.
_IPM_MAX_SIZE = 6000

_INFEASIBLE = (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE)


def _solve_hard_margin_qp(
    X, y, *, solver, solver_options=None, n_total=None, support=None, gram=None
):
    """Solve ``min 1/2 ||w||^2 s.t. y_i (w.x_i + b) >= 1`` exactly as written.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,) with values in {-1, +1}
    solver : str
        ``"auto"`` (the built-in interior-point method, with Clarabel for the QPs it does
        not take or cannot solve) or a cvxpy solver name.
    solver_options : dict, default=None
        Keyword arguments of :meth:`cvxpy.Problem.solve` (with ``"auto"``: of Clarabel's).
    n_total : int, default=None
        Size of the training data when ``X`` is a working set of it (for the message).
    support : ndarray of bool of shape (n_samples,), default=None
        A guess of the support vectors. With ``solver="auto"``, and at most
        ``n_features + 1`` of them, the active-set method tries it first.
    gram : ndarray of shape (n_samples, n_samples), default=None
        The kernel matrix of the rows ``y_i x_i``, where the caller keeps it: the
        active-set method takes its blocks, the interior-point method (kernel space) all.

    Returns
    -------
    w : ndarray of shape (n_features,)
    b : float
    alpha : ndarray of shape (n_samples,)
        The constraint duals (Lagrange multipliers), ``w = sum_i alpha_i y_i x_i``.

    Raises
    ------
    ValueError
        If the problem is infeasible: the samples are not linearly separable.
    RuntimeError
        If the solver ends with any status other than optimal or infeasible.
    """
    if solver == "auto":
        result = None
        if support is not None and support.sum() <= X.shape[1] + 1:
            space = "kernel" if X.shape[0] <= X.shape[1] else "features"
            result = solve_hard_margin_active_set(
                X, y, support, gram=gram, max_iter=_ACTIVE_SET_MAX_ITER[space]
            )
        if result is None and min(X.shape[0], X.shape[1] + 1) <= _IPM_MAX_SIZE:
            result = solve_hard_margin_ipm(X, y, gram=gram)
            if result is not None:
                # Polish: the KKT system of the support found, solved exactly.
                alpha = result[2]
                support = alpha > _SUPPORT_RTOL * alpha.max()
                polished = solve_hard_margin_active_set(X, y, support, gram=gram, max_iter=2)
                result = polished or result
        if result is not None:
            return result
        # Too large for dense algebra, or the interior-point method did not reach its
        # tolerance (as when the constraints are infeasible): Clarabel decides.
        solver = "CLARABEL"
    w = cp.Variable(X.shape[1])
    b = cp.Variable()
    constraints = [cp.multiply(y, X @ w + b) >= 1]
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(w)), constraints)
    problem.solve(solver=solver, **(solver_options or {}))
    if problem.status in _INFEASIBLE:
        n = X.shape[0] if n_total is None else n_total
        where = "" if n == X.shape[0] else f" (already on a working set of {X.shape[0]})"
        raise ValueError(
            f"The data are not linearly separable: the hard-margin QP on the {n} samples is "
            f"{problem.status} (solver {solver}){where}. A hard-margin SVM exists only for "
            "linearly separable classes; use a soft-margin classifier such as "
            "sklearn.svm.LinearSVC instead."
        )
    if problem.status != cp.OPTIMAL:
        raise RuntimeError(
            f"The hard-margin QP ended with solver status {problem.status!r} (solver "
            f"{solver}), not 'optimal'; no result is returned. Try another solver, "
            "other solver_options, or rescaled features."
        )
    alpha = np.atleast_1d(np.asarray(constraints[0].dual_value, dtype=np.float64))
    return np.asarray(w.value, dtype=np.float64), float(b.value), np.maximum(alpha, 0.0)
