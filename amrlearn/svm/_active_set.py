"""The hard-margin QP from a guess of its support vectors: a primal-dual active-set method.

When nearly every sample is a support vector (more features than samples, as on sparse
text data), the working set grows to nearly all samples and each interior-point solve costs
a dozen Cholesky factorizations of the kernel matrix of the working set. Between two
working-set rounds the support changes little, so its guess (the previous support vectors
and the added violators) makes the QP one linear system: the KKT system of the QP with
those constraints active. One or two corrections of the guess, each a factorization,
usually end with every KKT condition met.
"""

import numpy as np
import scipy.sparse as sp
from scipy.linalg.lapack import dsysv

from ._ipm import _cho_solve, _cholesky, _dense_gram

__all__ = ["solve_hard_margin_active_set"]


def _solve_kkt(gram, y_I, d):
    """``(lam_I, b)`` of ``[K_II, y_I; y_I', 0] [lam_I; b] = [1; 0]``, ``K_II = Z_I Z_I'``.

    ``gram`` is ``K_II`` (its lower triangle is read, and overwritten). With at most
    ``d = n_features`` rows ``K_II`` is positive definite (rows in general position) and
    is factorized by Cholesky, ``b`` eliminated; with ``d + 1`` rows ``K_II`` is singular
    and the bordered system is solved whole (symmetric indefinite). Raises ``LinAlgError``
    where the system is singular.
    """
    n_I = len(y_I)
    ones = np.ones(n_I)
    if n_I <= d:
        factor = _cholesky(gram)
        p, q = _cho_solve(factor, ones), _cho_solve(factor, y_I)
        b = (y_I @ p) / (y_I @ q)
        return p - q * b, b
    bordered = np.zeros((n_I + 1, n_I + 1), order="F")
    bordered[:n_I, :n_I] = gram  # the lower triangle is read
    bordered[n_I, :n_I] = y_I
    *_, x, info = dsysv(bordered, np.append(ones, 0.0), lower=1, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"singular KKT system (LAPACK info {info})")
    return x[:n_I], x[n_I]


def solve_hard_margin_active_set(X, y, support, *, gram=None, tol=1e-9, max_iter=4):
    """Solve the hard-margin QP of ``(X, y)`` from a guess of its support.

    With the constraints of ``I`` active, the QP's KKT conditions are the linear system
    ``[K_II, y_I; y_I', 0] [lam_I; b] = [1; 0]`` with ``K = Z Z'``, ``Z`` the rows
    ``y_i x_i``, and ``w = Z_I' lam_I``. Its solution is optimal when ``lam_I >= 0`` and
    every other constraint holds; otherwise ``I`` loses its negative duals and gains its
    violated constraints (the primal-dual active-set update; the most violated first, to
    at most ``n_features + 1`` in all), and the system is solved again. From the support
    found by an interior-point method, one system makes its solution exact (a polish).

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_constraints, n_features)
    y : ndarray of shape (n_constraints,) with values in {-1, +1}
    support : ndarray of bool of shape (n_constraints,)
        The guess of the active constraints.
    gram : ndarray of shape (n_constraints, n_constraints), default=None
        The kernel matrix ``K`` of the rows ``y_i x_i``, where the caller has it; else the
        blocks ``K_II`` are computed.
    tol : float, default=1e-9
        Feasibility tolerance of the constraints, and of the linear solve.
    max_iter : int, default=4
        Largest number of linear systems solved.

    Returns
    -------
    result : tuple ``(w, b, alpha)`` or None
        The KKT point (``alpha`` holds the constraint duals), or ``None`` when the active
        set did not settle within ``max_iter`` systems, repeats, holds more constraints
        than ``n_features + 1``, or its system is singular or too ill-conditioned to meet
        ``tol``.
    """
    Z = (sp.diags(y) @ X).tocsr() if sp.issparse(X) else X * y[:, None]
    active = np.flatnonzero(support)
    seen = set()
    for _ in range(max_iter):
        key = active.tobytes()
        if not 0 < len(active) <= X.shape[1] + 1 or key in seen:
            return None
        seen.add(key)
        Z_I = Z[active]
        if gram is None:
            K_II = _dense_gram(Z_I.T if sp.issparse(Z_I) else np.asfortranarray(Z_I.T))
        else:
            # symmetric: the transpose of the C-ordered block is the same matrix, and is
            # in LAPACK's (Fortran) order
            K_II = gram[np.ix_(active, active)].T
        try:
            lam, b = _solve_kkt(K_II, y[active], X.shape[1])
        except np.linalg.LinAlgError:
            return None
        w = np.asarray(Z_I.T @ lam).ravel()
        functional = np.asarray(Z @ w).ravel() + y * b
        if not np.all(np.isfinite(functional)) or np.abs(functional[active] - 1).max() > tol:
            return None  # the system was too ill-conditioned for an exact solution
        inactive = np.ones(len(y), dtype=bool)
        inactive[active] = False
        violated = np.flatnonzero(inactive & (functional < 1 - tol))
        negative = lam < 0
        if not negative.any() and len(violated) == 0:
            alpha = np.zeros(len(y))
            alpha[active] = lam
            return w, float(b), alpha
        kept = active[~negative]
        room = X.shape[1] + 1 - len(kept)  # the system holds at most n_features + 1
        if room < len(violated):
            violated = violated[np.argsort(functional[violated], kind="stable")[: max(room, 1)]]
        active = np.union1d(kept, violated)
    return None
