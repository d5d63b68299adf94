"""The hard-margin QP from a guess of its support vectors: a primal-dual active-set method.

When nearly every sample is a support vector (more features than samples, as on sparse
text data), the working set grows to nearly all samples and each interior-point solve costs
a dozen Cholesky factorizations of the kernel matrix of the working set. Between two
working-set rounds the support changes little, so its guess (the previous support vectors
and the added violators) makes the QP one linear system: the KKT system of the QP with
those constraints active. The corrections of the guess reuse the first factorization: a
changed active set is a small bordered system around it (a Schur complement).
"""

import numpy as np
import scipy.sparse as sp
from scipy.linalg.lapack import dsysv

from ._ipm import _cho_solve, _cholesky, _dense_gram, _dense_product

__all__ = ["solve_hard_margin_active_set"]

# The method gives up when this many systems in a row have not lowered the number of wrong
# signs (negative duals and violated constraints); 3,000 x 1,000 normal data needed 4.
_PATIENCE = 5

# A changed active set is solved around the factorization of the first one while the
# constraints added and removed are at most this fraction of it (the Schur complement's
# solves cost 2 k n^2 against n^3 / 3 for a new factorization).
_UPDATE_FRACTION = 0.1


class _KKTSystems:
    """Solves ``[K_II, y_I; y_I', 0] [lam_I; b] = [1; 0]``, ``K = Z Z'``, for active sets
    ``I`` (sorted indices), reusing the Cholesky factorization of a base set ``B``.

    With at most ``n_features`` rows ``K_II`` is positive definite (rows in general
    position) and is factorized by Cholesky, ``b`` eliminated; with ``n_features + 1`` rows
    it is singular and the bordered system is solved whole (symmetric indefinite). For a
    set ``I`` near ``B`` (added ``S``, removed ``R``), the rows ``R`` are freed by
    multipliers ``mu`` and ``lam_R = 0`` imposed, which borders ``K_BB`` by
    ``C = [K_BS, E_R, y_B]``; only the Schur complement ``D - C' K_BB^-1 C`` is factorized.
    Every method raises ``LinAlgError`` where its system is singular.
    """

    def __init__(self, Z, y, gram):
        self.Z, self.y, self.gram = Z, y, gram
        self.base = None

    def kernel(self, rows, cols):
        if self.gram is not None:
            return self.gram[np.ix_(rows, cols)]
        return _dense_product(self.Z[rows], self.Z[cols])

    def solve(self, active):
        """``(lam_I, b, updated)``: ``updated`` when solved around the base."""
        if self.base is not None:
            solved = self._around_base(active)
            if solved is not None:
                return (*solved, True)
        return (*self._direct(active), False)

    def _direct(self, active):
        Z_I, y_I = self.Z[active], self.y[active]
        if self.gram is not None:
            # symmetric: the transpose of the C-ordered block is the same matrix, in
            # LAPACK's (Fortran) order
            K_II = self.gram[np.ix_(active, active)].T
        else:
            K_II = _dense_gram(Z_I.T if sp.issparse(Z_I) else np.asfortranarray(Z_I.T))
        n_I, ones = len(active), np.ones(len(active))
        if n_I <= self.Z.shape[1]:
            factor = _cholesky(K_II)
            p, q = _cho_solve(factor, ones), _cho_solve(factor, y_I)
            self.base = (active, factor, p)
            b = (y_I @ p) / (y_I @ q)
            return p - q * b, b
        self.base = None
        bordered = np.zeros((n_I + 1, n_I + 1), order="F")
        bordered[:n_I, :n_I] = K_II  # the lower triangle is read
        bordered[n_I, :n_I] = y_I
        *_, x, info = dsysv(bordered, np.append(ones, 0.0), lower=1, overwrite_a=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"singular KKT system (LAPACK info {info})")
        return x[:n_I], x[n_I]

    def _around_base(self, active):
        rows, factor, g = self.base  # g = K_BB^-1 1
        added = np.setdiff1d(active, rows, assume_unique=True)
        removed = np.setdiff1d(rows, active, assume_unique=True)
        n_s, n_r = len(added), len(removed)
        if n_s + n_r > _UPDATE_FRACTION * len(rows):
            return None
        k = n_s + n_r + 1  # lam_S, mu_R, b
        C = np.zeros((len(rows), k), order="F")
        if n_s:
            C[:, :n_s] = self.kernel(rows, added)
        C[np.searchsorted(rows, removed), n_s + np.arange(n_r)] = 1.0
        C[:, -1] = self.y[rows]
        D = np.zeros((k, k))
        if n_s:
            D[:n_s, :n_s] = self.kernel(added, added)
            D[:n_s, -1] = D[-1, :n_s] = self.y[added]
        W = _cho_solve(factor, C)
        rhs = np.concatenate([np.ones(n_s), np.zeros(n_r + 1)]) - C.T @ g
        z = np.linalg.solve(D - C.T @ W, rhs)
        lam_B = g - W @ z
        lam = np.empty(len(active))
        in_base = np.isin(active, rows)
        lam[in_base] = lam_B[np.searchsorted(rows, active[in_base])]
        lam[~in_base] = z[:n_s]
        return lam, z[-1]


def solve_hard_margin_active_set(X, y, support, *, gram=None, tol=1e-9, max_iter=4):
    """Solve the hard-margin QP of ``(X, y)`` from a guess of its support.

    With the constraints of ``I`` active, the QP's KKT conditions are the linear system
    ``[K_II, y_I; y_I', 0] [lam_I; b] = [1; 0]`` with ``K = Z Z'``, ``Z`` the rows
    ``y_i x_i``, and ``w = Z_I' lam_I``. Its solution is optimal when ``lam_I >= 0`` and
    every other constraint holds; otherwise ``I`` loses its negative duals and gains its
    violated constraints (the primal-dual active-set update; the most violated first, to
    at most ``n_features + 1`` in all), and the system is solved again, around the first
    factorization while ``I`` stays near the first set. From the support found by an
    interior-point method, one system makes its solution exact (a polish).

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_constraints, n_features)
    y : ndarray of shape (n_constraints,) with values in {-1, +1}
    support : ndarray of bool of shape (n_constraints,)
        The guess of the active constraints.
    gram : ndarray of shape (n_constraints, n_constraints), default=None
        The kernel matrix ``K`` of the rows ``y_i x_i``, where the caller has it; else the
        blocks of ``K`` are computed.
    tol : float, default=1e-9
        Feasibility tolerance of the constraints, and of the linear solve.
    max_iter : int, default=4
        Largest number of linear systems solved.

    Returns
    -------
    result : tuple ``(w, b, alpha)`` or None
        The KKT point (``alpha`` holds the constraint duals), or ``None`` when the active
        set did not settle within ``max_iter`` systems, repeats, wanders (five systems
        without fewer wrong signs), holds more constraints than ``n_features + 1``, or its
        system is singular or too ill-conditioned to meet ``tol``.
    """
    Z = (sp.diags(y) @ X).tocsr() if sp.issparse(X) else X * y[:, None]
    systems = _KKTSystems(Z, y, gram)
    active = np.flatnonzero(support)
    seen = set()
    n_solved, fewest_wrong, since_fewest = 0, np.inf, 0
    while n_solved < max_iter:
        key = active.tobytes()
        if not 0 < len(active) <= X.shape[1] + 1 or key in seen:
            return None
        try:
            lam, b, updated = systems.solve(active)
        except np.linalg.LinAlgError:
            return None
        n_solved += 1
        dual = np.zeros(len(y))
        dual[active] = lam
        w = np.asarray(Z.T @ dual).ravel()
        functional = np.asarray(Z @ w).ravel() + y * b
        if not np.all(np.isfinite(functional)) or np.abs(functional[active] - 1).max() > tol:
            if updated:  # solve it afresh
                systems.base = None
                continue
            return None  # the system was too ill-conditioned for an exact solution
        seen.add(key)
        inactive = np.ones(len(y), dtype=bool)
        inactive[active] = False
        violated = np.flatnonzero(inactive & (functional < 1 - tol))
        negative = lam < 0
        n_wrong = negative.sum() + len(violated)
        if n_wrong == 0:
            return w, float(b), dual
        if n_wrong < fewest_wrong:
            fewest_wrong, since_fewest = n_wrong, 0
        else:
            since_fewest += 1
            if since_fewest >= _PATIENCE:
                return None  # the updates wander
        kept = active[~negative]
        room = X.shape[1] + 1 - len(kept)  # the system holds at most n_features + 1
        if room < len(violated):
            violated = violated[np.argsort(functional[violated], kind="stable")[: max(room, 1)]]
        active = np.union1d(kept, violated)
    return None
