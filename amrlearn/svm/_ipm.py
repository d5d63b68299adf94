"""A dense primal-dual interior-point method for the hard-margin QP of a working set.

The QP ``min 1/2 ||w||^2  s.t.  y_i (w.x_i + b) >= 1`` of a few hundred or thousand
constraints is small and dense; a general sparse conic solver spends most of its time
factorizing the dense constraint block with a sparse LDL. Here each Newton step is solved
with dense BLAS/LAPACK in the smaller of the two spaces: the ``(n_features + 1)``-square
normal matrix (more constraints than features) or the ``n_constraints``-square kernel
matrix (more features than constraints), which :class:`KernelCache` keeps from one
working set to the next.
"""

import numpy as np
import scipy.sparse as sp
from scipy.linalg.blas import dsyrk
from scipy.linalg.lapack import dpotrf, dpotrs

__all__ = ["KernelCache", "solve_hard_margin_ipm"]

# Fraction of the distance to the boundary of the positive orthant taken by each step.
_STEP_FRACTION = 0.99


def _dense_gram(G):
    """``G' G`` as a dense ndarray of which the lower triangle is read (dense ``G``: BLAS
    fills only that one); ``G`` dense or sparse, never densified itself."""
    if not sp.issparse(G):
        return dsyrk(1.0, G, trans=1, lower=1)
    gram = (G.T @ G).tocoo()
    out = np.zeros(gram.shape, order="F")
    out[gram.row, gram.col] = gram.data  # one entry per position after the product
    return out


def _signed_rows(X, y, rows):
    """The rows ``y_i x_i`` of ``rows``, sparse (CSR) where ``X`` is."""
    if sp.issparse(X):
        return (sp.diags(y[rows]) @ X[rows]).tocsr()
    return X[rows] * y[rows, None]


def _dense_product(A, B):
    """``A B'`` as a dense ndarray; ``A``, ``B`` dense or sparse, never densified."""
    if not sp.issparse(A):
        return A @ B.T
    product = (A @ B.T).tocoo()
    out = np.zeros(product.shape)
    out[product.row, product.col] = product.data
    return out


class KernelCache:
    """The kernel matrix ``K = Z Z'`` (``Z``: the rows ``y_i x_i``) of a working set, kept
    from round to round: a round computes only the rows of the constraints it adds.

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,) with values in {-1, +1}
    """

    def __init__(self, X, y):
        self.X, self.y = X, y
        self.clear()

    def clear(self):
        """Forget the kept matrix (its memory)."""
        self.rows, self.K = np.empty(0, dtype=np.intp), np.empty((0, 0))

    def __call__(self, rows):
        """``K`` of the sorted sample indices ``rows``, full and symmetric."""
        K = np.empty((len(rows), len(rows)), order="F")
        kept = np.isin(rows, self.rows)
        here, there = np.flatnonzero(kept), np.searchsorted(self.rows, rows[kept])
        K[np.ix_(here, here)] = self.K[np.ix_(there, there)]
        new = np.flatnonzero(~kept)
        if len(new):
            Z = _signed_rows(self.X, self.y, rows)
            block = _dense_product(Z[new], Z)
            K[new, :] = block
            K[:, new] = block.T
        self.rows, self.K = rows, K
        return K


# LAPACK is called directly: scipy.linalg's wrappers cost more than the factorization
# of the small matrices of a working set.
def _cholesky(M):
    """Lower Cholesky factor of ``M`` (only its lower triangle is read), in place."""
    factor, info = dpotrf(M, lower=1, clean=0, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"Cholesky factorization failed (LAPACK info {info})")
    return factor


def _cho_solve(factor, b):
    x, info = dpotrs(factor, b, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"Cholesky solve failed (LAPACK info {info})")
    return x


def _max_step(v, dv):
    """Largest step in [0, 1] that keeps ``v + step * dv`` nonnegative."""
    neg = dv < 0
    return min(1.0, np.min(-v[neg] / dv[neg], initial=np.inf))


class _NewtonSystem:
    """Newton steps of the hard-margin QP, in the smaller of two spaces.

    The QP is ``min 1/2 u' P u  s.t.  A u - s = 1, s >= 0`` with ``u = (w, b)``,
    ``A = [Z, y]`` (``Z`` holds the rows ``y_i x_i``), ``P = diag(1, ..., 1, 0)``, and
    duals ``lam >= 0``. With ``D = lam / s``, a Newton step solves

    * (more constraints than features) the normal equations
      ``(P + A' D A) du = -r_dual - A'(r_c / s + D r_prim)``, of size ``n_features + 1``;
    * (fewer) the kernel system ``[K + D^-1, y; y', 0] [dlam; db] = [Z r_w - r_prim -
      r_c / lam; r_b]`` with ``K = Z Z'``, of size ``n_constraints + 1``, and
      ``dw = Z' dlam - r_w``. Eliminating ``w`` there, rather than inverting ``I + Z' D Z``
      by the Woodbury identity, avoids the cancellation of that identity when ``D`` is
      large at the active constraints.
    """

    def __init__(self, Z, y, space="auto", gram=None):
        self.Z, self.y = Z, y
        m, d = Z.shape
        self.kernel_space = m < d + 1 if space == "auto" else space == "kernel"
        if self.kernel_space and gram is not None:
            self.K = gram
        elif self.kernel_space:
            self.K = _dense_gram(Z.T if sp.issparse(Z) else np.asfortranarray(Z.T))
        elif not sp.issparse(Z):
            self.Z = np.asfortranarray(Z)

    def matvec(self, u):
        """``A u``."""
        return np.asarray(self.Z @ u[:-1]).ravel() + self.y * u[-1]

    def rmatvec(self, v):
        """``A' v``."""
        return np.append(np.asarray(self.Z.T @ v).ravel(), self.y @ v)

    def factor(self, s, lam):
        """Factorize the Newton matrix at ``(s, lam)``."""
        self.s, self.lam = s, lam
        if self.kernel_space:
            E = self.K.copy(order="F")
            E.flat[:: E.shape[0] + 1] += s / lam
            self.cho = _cholesky(E)
            self.q = _cho_solve(self.cho, self.y)
            self.yq = self.y @ self.q
            return
        # P + A' D A, by blocks: [I + Z' D Z, Z' D y; y' D Z, y' D y].
        D = lam / s
        root = np.sqrt(D)
        G = (
            self.Z.multiply(root[:, None]).tocsr()
            if sp.issparse(self.Z)
            else self.Z * root[:, None]
        )
        d = self.Z.shape[1]
        M = np.empty((d + 1, d + 1), order="F")  # LAPACK's order: no copy
        M[:d, :d] = _dense_gram(G)
        M[d, :d] = self.Z.T @ (D * self.y)  # only the lower triangle is read
        M[d, d] = D @ self.y**2
        M.flat[: d * (d + 2) : d + 2] += 1.0  # + P: the first d diagonal entries
        self.cho = _cholesky(M)

    def step(self, r_dual, r_prim, r_c):
        """``(du, ds, dlam)`` of the residuals ``P u - A' lam``, ``A u - s - 1`` and the
        complementarity target ``r_c`` (``s * lam`` less the centring)."""
        s, lam = self.s, self.lam
        if self.kernel_space:
            r_w, r_b = r_dual[:-1], r_dual[-1]
            rhs = np.asarray(self.Z @ r_w).ravel() - r_prim - r_c / lam
            p = _cho_solve(self.cho, rhs)
            db = (self.y @ p - r_b) / self.yq
            dlam = p - self.q * db
            du = np.append(np.asarray(self.Z.T @ dlam).ravel() - r_w, db)
            ds = -(r_c + s * dlam) / lam
            return du, ds, dlam
        du = _cho_solve(self.cho, -r_dual - self.rmatvec(r_c / s + lam / s * r_prim))
        ds = self.matvec(du) + r_prim
        dlam = -(r_c + lam * ds) / s
        return du, ds, dlam


def solve_hard_margin_ipm(X, y, *, space="auto", gram=None, tol=1e-9, max_iter=100):
    """Solve the hard-margin QP of ``(X, y)`` with a Mehrotra predictor-corrector method.

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_constraints, n_features)
    y : ndarray of shape (n_constraints,) with values in {-1, +1}
    space : {"auto", "features", "kernel"}, default="auto"
        Where the Newton steps are solved: ``"features"``, the normal equations of size
        ``n_features + 1``; ``"kernel"``, the kernel system of size ``n_constraints + 1``;
        ``"auto"``, the smaller. Both give the same iterates up to rounding.
    gram : ndarray of shape (n_constraints, n_constraints), default=None
        The kernel matrix ``K`` of the rows ``y_i x_i``, where the caller has it.
    tol : float, default=1e-9
        Stops when the largest constraint violation, the stationarity residual relative to
        ``max(1, ||w||)`` and the duality gap relative to ``max(1, ||w||^2)`` are all below
        ``tol``. Where rounding stalls the iterates first, the best iterate is returned if
        these residuals are below ``100 * tol``.
    max_iter : int, default=100

    Returns
    -------
    result : tuple ``(w, b, alpha)`` or None
        ``alpha`` holds the constraint duals. ``None`` when the method did not reach the
        tolerance, or its duals diverge, as they do when the constraints are infeasible:
        the caller then decides with a general solver.
    """
    Z = sp.diags(y) @ X if sp.issparse(X) else X * y[:, None]
    system = _NewtonSystem(Z.tocsr() if sp.issparse(Z) else Z, y, space, gram)
    m, d = X.shape
    u, s, lam = np.zeros(d + 1), np.ones(m), np.ones(m)
    best, best_error, n_worse = None, np.inf, 0
    for _ in range(max_iter):
        r_dual = np.append(u[:-1], 0.0) - system.rmatvec(lam)  # P u - A' lam
        r_prim = system.matvec(u) - s - 1.0
        gap = s @ lam
        w_sq = u[:-1] @ u[:-1]
        error = max(
            np.max(np.abs(r_prim), initial=0.0),
            np.linalg.norm(r_dual) / max(1.0, np.sqrt(w_sq)),
            gap / max(1.0, w_sq),
        )
        if error < best_error:
            best, best_error, n_worse = (u[:-1].copy(), float(u[-1]), lam.copy()), error, 0
        else:
            n_worse += 1
        if error <= tol or n_worse >= 3:
            break
        if not np.all(np.isfinite(lam)) or lam.sum() > 1e14 * max(1.0, w_sq):
            return None  # diverging duals: (nearly) infeasible constraints
        try:
            system.factor(s, lam)
        except np.linalg.LinAlgError:
            break
        # Predictor (affine scaling), then the centring-corrector step.
        du, ds, dlam = system.step(r_dual, r_prim, s * lam)
        alpha = min(_max_step(s, ds), _max_step(lam, dlam))
        mu = gap / m
        sigma = ((s + alpha * ds) @ (lam + alpha * dlam) / m / mu) ** 3
        du, ds, dlam = system.step(r_dual, r_prim, s * lam + ds * dlam - sigma * mu)
        alpha = _STEP_FRACTION * min(_max_step(s, ds), _max_step(lam, dlam))
        u += alpha * du
        s += alpha * ds
        lam += alpha * dlam
    if best_error > 100 * tol:
        return None
    return best
