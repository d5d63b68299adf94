"""The hard-margin linear SVM: the maximum minimum-margin classifier (Theorem 1's reference).

The primal QP ``min 1/2 ||w||^2  s.t.  y_i (w.x_i + b) >= 1`` is solved by the built-in
dense methods or, with a named solver, written in cvxpy as it reads (:mod:`._qp`). On
large data the QP is solved by constraint generation: a small working set of constraints
is solved, the violated constraints of the full problem are added, and the loop stops when
every constraint of the full problem holds, which certifies the working-set solution
optimal for the full problem.
"""

import warnings
from numbers import Integral, Real

import cvxpy as cp
import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.multiclass import check_classification_targets, type_of_target

from ..utils import progress
from ..utils._compat import (
    Interval,
    LinearClassifierMixin,
    StrOptions,
    _fit_context,
    validate_data,
    validate_parameter_constraints,
)
from ._ipm import KernelCache
from ._qp import _SUPPORT_RTOL, _solve_hard_margin_qp

__all__ = ["HardMarginSVC"]

# Working-set constraints whose dual is below this fraction of the largest dual, and whose
# margin exceeds 1 + tol, are dropped between rounds (they are inactive at the optimum).
_DROP_RTOL = 1e-6
# With more constraints than features the active-set method's systems hold at most
# n_features + 1 constraints; a support above this fraction of that leaves its updates no
# room, and they wander (18,000 x 250 gap data, 249 support vectors: never settled in 30
# systems), so the QP goes straight to the interior-point method.
_GUESS_FRACTION = 0.9
# A working set that would hold more than this fraction of the samples holds them all.
_ALL_FRACTION = 0.75
# The kernel matrix of a working set is kept across rounds up to this many constraints
# (128 MB), and twice n_features + 1: beyond, most of the working set is rows that the
# active-set method (at most n_features + 1 of them) never reads, and keeping their kernel
# costs more than it saves (18,000 x 250 gap data: 0.14 s of 0.55).
_KERNEL_CACHE_MAX = 4000


def _initial_working_set(X, y, size):
    """Indices of ``size`` samples, half per class, closest to the mean-difference boundary.

    The direction is the difference of the class means; in each class the samples whose
    projection lies furthest towards the other class are taken.
    """
    pos, neg = np.flatnonzero(y > 0), np.flatnonzero(y < 0)
    # mean(X[pos]) - mean(X[neg]) as one product, without copying the rows.
    direction = X.T @ np.where(y > 0, 1.0 / len(pos), -1.0 / len(neg))
    score = X @ direction
    k = max(size // 2, 1)
    return np.concatenate(
        [
            pos[np.argsort(score[pos], kind="stable")[:k]],
            neg[np.argsort(-score[neg], kind="stable")[:k]],
        ]
    )


def _hard_margin_working_set(
    X, y, *, solver, solver_options=None, tol=1e-6, chunk_size=50, max_rounds=100, verbose=0
):
    """Hard-margin QP of the full data by constraint generation.

    Each round solves the QP on a working set of constraints, a relaxation of the full
    problem. If every constraint of the full problem then holds to ``tol``, the working-set
    solution is optimal for the full problem; otherwise the ``chunk_size`` most violated
    constraints (or half the working set's size, if larger) are added, inactive ones
    dropped (with ``solver="auto"`` only while the working set has at most ``n_features``
    constraints), and the loop goes on; a working set of more than three quarters of the
    samples becomes all of them. From the second round on, the previous support vectors and
    the added constraints are the guess of the support handed to the QP solver.

    Returns
    -------
    w : ndarray of shape (n_features,)
    b : float
    alpha : ndarray of shape (n_samples,)
        Duals of all constraints (zero outside the final working set).
    n_rounds : int
        Number of QPs solved.
    n_violated : int
        Constraints of the full problem violated by the returned solution (0 when certified).
    """
    work = np.sort(_initial_working_set(X, y, chunk_size))
    support = None
    cache = KernelCache(X, y) if solver == "auto" else None
    bar = progress(range(1, max_rounds + 1), verbose=verbose, desc="HardMarginSVC rounds")
    for n_rounds in bar:
        solved = work
        # If a subset of the constraints is infeasible, so is the full set: the
        # "not linearly separable" error raised for a working set holds for the data.
        gram = None
        if cache is not None and len(work) <= min(_KERNEL_CACHE_MAX, 2 * X.shape[1] + 2):
            gram = cache(work)
        elif cache is not None:
            cache.clear()
        w, b, alpha_work = _solve_hard_margin_qp(
            X[work],
            y[work],
            solver=solver,
            solver_options=solver_options,
            n_total=X.shape[0],
            support=support,
            gram=gram,
        )
        functional = y * (X @ w + b)
        violated = np.flatnonzero(functional < 1.0 - tol)
        bar.set_postfix(working_set=len(work), violated=len(violated))
        if verbose > 1:
            print(
                f"round {n_rounds}: working set {len(work)}, violated {len(violated)}, "
                f"min y*f {functional.min():.6g}"
            )
        if len(violated) == 0:
            break
        keep = (alpha_work > _DROP_RTOL * alpha_work.max()) | (functional[work] <= 1.0 + tol)
        if len(work) > X.shape[1] and solver == "auto":
            # Past n_features + 1 constraints the built-in method's cost grows only
            # linearly with the working set; dropping would cost rounds (20,000 x 300
            # normal data: 53 rounds with drops, 12 without; 2.4x the time).
            keep[:] = True
        # Grow by at least half the working set: when most samples are support vectors
        # (more features than samples, as on sparse text data) the rounds stay logarithmic.
        n_add = max(chunk_size, len(work) // 2)
        worst = violated[np.argsort(functional[violated], kind="stable")[:n_add]]
        # The next support is guessed: this one and the added violators.
        previous = work[alpha_work > _SUPPORT_RTOL * alpha_work.max()]
        # (at most n_features + 1: the most violated first)
        guess = np.union1d(previous, worst[: max(X.shape[1] + 1 - len(previous), 1)])
        work = np.union1d(work[keep], worst)
        if len(work) > _ALL_FRACTION * len(y):
            # Nearly every sample is in: the full QP costs little more, and certifies.
            work = np.arange(len(y))
            guess = np.union1d(guess, violated)
        support = np.isin(work, guess)
        if len(work) > X.shape[1] and len(previous) > _GUESS_FRACTION * (X.shape[1] + 1):
            support = None  # no room for the active-set method (see _GUESS_FRACTION)
    bar.close()
    alpha = np.zeros(X.shape[0])
    alpha[solved] = alpha_work
    return w, b, alpha, n_rounds, len(violated)


class HardMarginSVC(LinearClassifierMixin, BaseEstimator):
    """Hard-margin linear support vector classifier, solved as a QP.

    Solves ``min 1/2 ||w||^2`` subject to ``y_i (w.x_i + b) >= 1`` for every training
    sample, with ``y_i = +1`` for ``classes_[1]`` and ``-1`` for ``classes_[0]``: the
    linear classifier of largest minimum l2 margin, the reference of the paper's Theorem 1.
    Binary classification of linearly separable data only.

    Parameters
    ----------
    solver : str, default="auto"
        ``"auto"``: each QP is solved by amrlearn's dense QP methods (a primal-dual
        interior-point method and an active-set polish, see Notes), and by Clarabel through
        cvxpy where they do not apply (a dense matrix larger than 6000 on a side, about
        0.6 GB) or give up (as on infeasible constraints, which Clarabel then certifies).
        Otherwise the cvxpy solver to use, any installed one that solves QPs
        (``cvxpy.installed_solvers()``), e.g. ``"CLARABEL"``.
    solver_options : dict, default=None
        Further keyword arguments of :meth:`cvxpy.Problem.solve` (tolerances, e.g.
        ``{"tol_gap_rel": 1e-10}`` for Clarabel); with ``solver="auto"`` they apply to the
        QPs handed to Clarabel.
    working_set : bool, default=True
        Solve by constraint generation on a working set of constraints (fast when the
        support vectors are few, as on image data). ``False`` hands the solver all
        constraints at once.
    tol : float, default=1e-6
        Constraint generation stops when every training sample has
        ``y_i f(x_i) >= 1 - tol``; a sample below is a violated constraint.
    chunk_size : int, default=50
        Size of the initial working set (half per class), and the number of violated
        constraints added per round while the working set is smaller than twice that (then
        half its size). Data of at most ``chunk_size`` samples are solved in one QP.
    max_rounds : int, default=100
        Largest number of working-set QPs to solve. Ignored when ``working_set=False``.
    verbose : int, default=0
        1 shows a progress bar over the rounds; 2 also prints one line per round.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        The class labels; ``classes_[1]`` is the positive class.
    coef_ : ndarray of shape (1, n_features)
        The weight vector ``w``.
    intercept_ : ndarray of shape (1,)
        The intercept ``b``.
    support_ : ndarray of shape (n_SV,)
        Indices of the support vectors in the training data, in increasing order.
    support_vectors_ : {ndarray, sparse matrix} of shape (n_SV, n_features)
        The support vectors, sparse when ``X`` is (as in :class:`sklearn.svm.SVC`).
    n_support_ : ndarray of shape (2,)
        Number of support vectors of each class.
    dual_coef_ : ndarray of shape (1, n_SV)
        ``alpha_i y_i`` of the support vectors, from the constraint duals (scikit-learn's
        convention for :class:`sklearn.svm.SVC`); ``coef_ = dual_coef_ @ support_vectors_``
        up to the solver's tolerance.
    margin_ : float
        The geometric minimum margin ``1 / ||w||``: the l2 distance from the decision
        boundary to the closest training sample.
    n_iter_ : int
        Number of QPs solved (working-set rounds); 1 when ``working_set=False``.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when ``X`` has string feature names.

    See Also
    --------
    sklearn.svm.SVC : ``SVC(kernel="linear", C=1e6)`` approximates the hard margin with libsvm.
    sklearn.svm.LinearSVC : Soft-margin linear SVM, for data that are not separable.
    amrlearn.metrics.linear_margins : Exact margins of every sample.

    Notes
    -----
    With a named cvxpy solver the QP is written as it reads::

        cp.Problem(cp.Minimize(0.5 * cp.sum_squares(w)), [cp.multiply(y, X @ w + b) >= 1])

    and the solver status is checked: an infeasible QP means the data are not linearly
    separable and raises a ``ValueError``; any status other than optimal raises a
    ``RuntimeError`` naming it. No result is returned silently.

    With ``solver="auto"`` a working-set QP is small and dense, and a general sparse conic
    solver spends most of its time on a sparse factorization of a dense block. The built-in
    method is Mehrotra's predictor-corrector on the same QP, with each Newton step solved
    by a dense Cholesky factorization in the smaller of two spaces: the primal normal
    equations of size ``n_features + 1`` when the working set is larger, else the kernel
    system (``K = X X'`` of the working set) of its size. It stops at a constraint
    violation, relative stationarity residual and relative duality gap of ``1e-9``; its
    answer is then polished: the KKT system of the support it found is solved exactly and
    kept if every KKT condition holds (dual signs, and the constraints to ``1e-9``). From
    the second round on, the guessed support (the previous support vectors and the most
    violated added constraints, at most ``n_features + 1``) is tried first in the same
    way (with more constraints than features, only while the support is below 90% of
    ``n_features + 1``: the systems need room), with up to ten primal-dual active-set
    corrections (thirty with more constraints than features, where a system is much
    smaller than an interior-point iteration; five without progress end them), each
    solved around the first factorization while the set changes little: where the support
    changes little between rounds (nearly every sample a support vector, as on sparse text
    data) one factorization replaces a dozen interior-point ones. The kernel matrix of a
    working set of at most ``2 (n_features + 1)`` and 4000 constraints is kept from round
    to round. Where the interior-point method stalls, or its duals diverge as they do on
    infeasible constraints, Clarabel solves the QP and decides, with the messages above.

    With ``working_set=True`` the constraints are generated: the first working set holds
    the samples of each class that lie furthest towards the other class along the
    difference of the class means; each round adds the ``chunk_size`` most violated
    constraints of the full problem (half the working set's size if that is larger, so
    that data whose samples are nearly all support vectors need few rounds) and drops
    those that are inactive (zero dual, margin above ``1 + tol``). With ``solver="auto"``
    nothing is dropped once the working set holds more than ``n_features`` constraints:
    the built-in method's cost then grows only linearly with it, and drops cost rounds. A
    working set of more than three quarters of the samples becomes all of them. Every
    working-set QP is a relaxation of the full QP, so

    * if it is infeasible, the full QP is too: the data are not separable;
    * if its solution satisfies every constraint of the full QP, it is optimal for the full
      QP, with the same duals (zero outside the working set). With the tolerance ``tol``
      the certificate is: ``w / (1 - tol)`` is feasible, so the optimal ``||w||`` lies
      between ``||coef_||`` and ``||coef_|| / (1 - tol)``.

    Dropping only inactive constraints keeps the objective increasing from round to round,
    so no working set repeats. If ``max_rounds`` ends the loop before the certificate, a
    ``ConvergenceWarning`` says how many constraints are still violated.

    The support vectors are the constraints whose dual exceeds ``1e-4`` times the largest
    dual.

    References
    ----------
    .. [1] Wu, K., and Yu, Y. "Understanding Adversarial Robustness: The Trade-off between
       Minimum and Average Margin." arXiv:1907.11780, 2019.
    .. [2] Vapnik, V. "The Nature of Statistical Learning Theory." Springer, 1995.

    Examples
    --------
    >>> import numpy as np
    >>> from amrlearn.svm import HardMarginSVC
    >>> X = np.array([[-2.0, -1.0], [-1.0, -1.0], [1.0, 1.0], [1.0, 2.0]])
    >>> y = np.array(["cat", "cat", "dog", "dog"])
    >>> clf = HardMarginSVC().fit(X, y)
    >>> clf.coef_, clf.margin_  # w = (1/2, 1/2), margin sqrt(2)
    (array([[0.5, 0.5]]), 1.414)
    >>> clf.support_
    array([1, 2])
    >>> clf.predict([[0.5, 3.0]])
    array(['dog'], dtype='<U3')
    """

    _parameter_constraints: dict = {
        # A string here; checked against cvxpy.installed_solvers() in fit, not at import.
        "solver": [str],
        "solver_options": [dict, None],
        "working_set": ["boolean"],
        "tol": [Interval(Real, 0, 1, closed="left")],
        "chunk_size": [Interval(Integral, 2, None, closed="left")],
        "max_rounds": [Interval(Integral, 1, None, closed="left")],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        *,
        solver="auto",
        solver_options=None,
        working_set=True,
        tol=1e-6,
        chunk_size=50,
        max_rounds=100,
        verbose=0,
    ):
        self.solver = solver
        self.solver_options = solver_options
        self.working_set = working_set
        self.tol = tol
        self.chunk_size = chunk_size
        self.max_rounds = max_rounds
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit the maximum-margin hyperplane.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training samples. CSR and CSC matrices are handed to cvxpy as they are.
        y : array-like of shape (n_samples,)
            Labels of exactly two classes, linearly separable.

        Returns
        -------
        self : HardMarginSVC
            The fitted estimator.

        Raises
        ------
        ValueError
            If ``y`` has one class or more than two, or the data are not linearly separable.
        RuntimeError
            If the solver ends with a status other than optimal or infeasible.
        """
        if self.solver != "auto":  # asking cvxpy probes every solver: only when named
            validate_parameter_constraints(
                {"solver": [StrOptions({"auto", *cp.installed_solvers()})]},
                {"solver": self.solver},
                caller_name=type(self).__name__,
            )
        X, y = validate_data(self, X, y, dtype=np.float64, accept_sparse=["csr", "csc"])
        check_classification_targets(y)
        y_type = type_of_target(y, input_name="y")
        if y_type != "binary":
            raise ValueError(
                "Only binary classification is supported. The type of the target "
                f"is {y_type}. HardMarginSVC separates two classes."
            )
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"The number of classes has to be greater than one; got {len(self.classes_)} class"
            )
        y_pm = np.where(y_index == 1, 1.0, -1.0)

        if self.working_set and X.shape[0] > self.chunk_size:
            w, b, alpha, self.n_iter_, n_violated = _hard_margin_working_set(
                X,
                y_pm,
                solver=self.solver,
                solver_options=self.solver_options,
                tol=self.tol,
                chunk_size=self.chunk_size,
                max_rounds=self.max_rounds,
                verbose=self.verbose,
            )
            if n_violated:
                warnings.warn(
                    f"HardMarginSVC stopped after max_rounds={self.max_rounds} working-set "
                    f"rounds with {n_violated} constraints still violated: the result is "
                    "not certified optimal. Increase max_rounds or chunk_size, or set "
                    "working_set=False.",
                    ConvergenceWarning,
                    stacklevel=2,
                )
        else:
            w, b, alpha = _solve_hard_margin_qp(
                X, y_pm, solver=self.solver, solver_options=self.solver_options
            )
            self.n_iter_ = 1

        self.coef_ = w.reshape(1, -1)
        self.intercept_ = np.array([b])
        self.support_ = np.flatnonzero(alpha > _SUPPORT_RTOL * alpha.max())
        self.support_vectors_ = X[self.support_]
        self.n_support_ = np.array(
            [np.sum(y_pm[self.support_] < 0), np.sum(y_pm[self.support_] > 0)], dtype=np.int32
        )
        self.dual_coef_ = (alpha[self.support_] * y_pm[self.support_]).reshape(1, -1)
        norm = np.linalg.norm(w)
        self.margin_ = float(1.0 / norm) if norm > 0 else np.inf
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        tags.input_tags.sparse = True
        return tags
