"""``AMRLogisticRegression``: objective (11) of Wu & Yu by CCCP, and its multiclass form."""

import warnings
from numbers import Integral, Real

import numpy as np
from scipy.special import expit, softmax
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from ..utils._compat import (
    Interval,
    LinearClassifierMixin,
    StrOptions,
    _fit_context,
    validate_data,
)
from ._binary import (
    _WARM_START_ITER,
    _class_means,
    _fit_binary,
    _inner_tolerances,
    _mean_direction,
    _sample_scale,
)
from ._cccp import LOSSES, cccp_step
from ._multinomial import _FTOL_FACTOR, fit_multinomial_amr, nearest_centroid_start

__all__ = ["AMRLogisticRegression"]


class AMRLogisticRegression(LinearClassifierMixin, BaseEstimator):
    """Logistic regression with the Average Margin Regularizer, on the unit sphere.

    Minimizes objective (11) of Wu & Yu over unit-norm weights and a free bias:

    ``mean_i phi(m_i) + lam * mean_i [H_tau - H_0](m_i)``, ``m_i = y_i (w.x_i + b)``,
    ``||w||_2 = 1``,

    where ``H_s(t) = max(0, s - t)``. Since ``||w|| = 1``, ``m_i`` is the signed l2
    distance of ``x_i`` to the decision boundary, and the regularizer equals
    ``tau - [m_i]_0^tau``: it rewards correctly classified samples for their distance to
    the boundary, up to ``tau``. The minimization uses the convex-concave procedure
    (CCCP).

    With more than two classes it minimizes the multinomial logistic loss plus ``lam``
    times the truncated multiclass margin of eq. (14) with ``Phi(x) = x``, the exact l2
    distance ``m_i = min_{k != y_i} (f_{y_i} - f_k)(x_i) / ||w_{y_i} - w_k||``, under an
    l2 norm constraint in Lagrangian form (``C``); see Notes.

    Parameters
    ----------
    tau : float, default=5.0
        Truncation of the margin, ``tau >= 0``, in the units of ``X`` (the paper uses 5 on
        MNIST scaled to [0, 1]).
    lam : float, default=0.1
        Weight ``lambda >= 0`` of the regularizer. ``lam=0`` is logistic regression
        restricted to the sphere.
    C : float, default=1.0
        Multiclass only: inverse strength of the l2 penalty ``||W||_F^2 / (2 C n)`` of the
        multinomial loss, as in :class:`~sklearn.linear_model.LogisticRegression` (the
        norm constraint in Lagrangian form, see Notes). Binary problems use the unit
        sphere and ignore it.
    loss : {"logistic", "hinge", "exponential"}, default="logistic"
        The decreasing loss ``phi`` (Theorem 2 makes each Fisher consistent with the
        regularizer). Multiclass problems take only ``"logistic"`` (multinomial).
    fit_intercept : bool, default=True
        Learn the free bias ``b``. The paper omits it "w.l.o.g."; a user cannot.
    tol : float, default=1e-4
        Stop when an iteration (outer CCCP iteration, or multiclass L-BFGS iteration)
        lowers the objective by less than ``tol`` times its value. Also sets the inner
        solver's tolerance.
    max_iter : int, default=100
        Maximum number of CCCP (outer) iterations (binary), or of L-BFGS iterations of
        each stage (multiclass: the ``"logistic"`` start, then the AMR objective).
    init : {"logistic", "mean"} or array-like, default="logistic"
        Starting point. ``"logistic"``: plain logistic regression on the sphere (the
        ``lam=0`` problem), solved loosely: three L-BFGS iterations from ``"mean"`` (as
        good a start as ten, for fewer function evaluations in all; see
        ``benchmarks/bench_amr_logistic.py``). Multiclass: scikit-learn's multinomial
        logistic regression (``lam=0``) from zero. ``"mean"``: the unit difference of the
        class means, with the bias through their midpoint (multiclass: the
        nearest-centroid classifier). An array of shape (n_features,) (binary) gives the
        direction, normalized; one of shape (n_classes, n_features) (multiclass) the
        weights, with biases through the mean of ``X``.
    random_state : int, RandomState instance or None, default=None
        Used only when the class means coincide: the starting direction is then drawn at
        random.
    verbose : int, default=0
        Show a progress bar over the iterations.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
        Binary: the unit-norm weights. Multiclass: one row per class, centred
        (``coef_.sum(axis=0)`` is 0 at a stationary point).
    intercept_ : ndarray of shape (1,) or (n_classes,)
    n_iter_ : ndarray of shape (1,)
        CCCP iterations (binary) or L-BFGS iterations on the AMR objective (multiclass).
    objective_path_ : ndarray of shape (n_steps,)
        The objective (averaged over samples) at the starting point and after every
        accepted iteration; never increasing. Binary: objective (11). Multiclass: the
        objective of the Notes.
    relaxation_tight_ : ndarray of bool of shape (n_steps - 1,)
        Binary: for each accepted iteration, whether its convex subproblem was solved
        globally, i.e. the minimizer of its ball relaxation lies on the sphere (see
        Notes). Multiclass: empty (no convex relaxation).
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Defined only when ``X`` has feature names that are all strings.

    See Also
    --------
    amrlearn.HardMarginSVC : The maximum minimum-margin classifier.
    amrlearn.metrics.margin_report : Exact margins of the fitted model.
    sklearn.linear_model.LogisticRegression : The unregularized peer.

    Notes
    -----
    **CCCP.** ``[H_tau - H_0](m)`` is a difference of convex functions (eq. (10)). At the
    current iterate, the concave part ``-H_0(m) = min(0, m)`` is replaced by its tangent
    ``s_i m`` (``s_i = 1`` if ``m_i < 0``, else 0), which lies above it. The resulting
    convex majorizer ``mean(phi(m) + lam H_tau(m) + lam s m)`` touches the objective at
    the iterate, so minimizing it never increases the objective.

    **The sphere.** The sphere is not convex, but the majorizer is convex in ``(w, b)``,
    so its minimum over the *ball* ``||w|| <= 1`` is a convex problem. Each step minimizes
    the majorizer on the sphere with L-BFGS in the scale-invariant parametrization
    ``w = v / ||v||``, started at the current iterate (a descent method, so the
    majorizer decreases). At the point found, the gradient ``g`` in ``w`` is parallel to
    ``w``. If ``g.w <= 0`` the KKT conditions of the ball problem hold with multiplier
    ``-g.w >= 0``: the point is the ball relaxation's global minimizer and thus the exact
    sphere-constrained step (``relaxation_tight_`` is True). This is the usual case: the
    loss and ``H_tau`` decrease when correctly classified margins are scaled up, so they
    push ``w`` outward. Otherwise the ball's minimizer lies inside (for instance when the
    classes overlap heavily and ``lam`` is small) and the step is a local descent step on
    the sphere; the objective still never increases.

    The map ``v -> v / ||v||`` ignores the length of ``v``, so each inner solve starts
    with ``||v||`` equal to the root-mean-square norm of the samples: L-BFGS's first
    trial step (of unit length) then turns ``w`` by a sensible angle and the curvatures in
    ``v`` and in ``b`` are of the same order. The inner solves stop when an L-BFGS
    iteration lowers the majorizer by less than ``tol / 1000`` (relative).

    **Smoothing.** ``H_tau`` (and the hinge loss) are replaced in the inner problem by
    their Moreau envelopes with a parameter that starts at ``1e-2 max(tau, 1)`` and is
    divided by 10 at every iteration (floor ``1e-8 max(tau, 1)``). A step is accepted only
    if the exact objective (11) does not increase; otherwise it is recomputed with less
    smoothing. ``objective_path_`` records the exact objective.

    **Multiclass.** The objective is
    ``mean_i [CE(f(x_i), y_i) + lam (tau - [m_i]_0^tau)] + ||W||_F^2 / (2 C n)`` with the
    exact l2 margin ``m_i`` above (negative when misclassified), the margin that
    :func:`~amrlearn.metrics.margin_report` measures. *The norm constraint.* In the binary
    case the unit sphere does two jobs: it makes ``y (w.x + b)`` a distance, and it stops
    the loss from being lowered by inflating ``w``. Here ``m_i`` is a distance at any
    scale, and both ``m_i`` and the multinomial loss are unchanged when a common vector
    is added to every ``w_k``; only the second job is left, on the class *differences*.
    The constraint is the ball ``||W||_F <= R`` in its Lagrangian form, scikit-learn's
    penalty with its ``C``; at any stationary point the rows are centred, since the
    gradients of both terms sum to zero over the classes, so it bounds exactly the
    root-mean-square of ``||w_j - w_k||`` (``sum_{j<k} ||w_j - w_k||^2 = K ||W||_F^2``
    for centred rows). A *fixed* radius, the literal analogue of the binary sphere
    (centred rows, unit RMS pairwise difference), reduces to (11) for two classes, but it
    fixes the softmax's temperature in the units of ``X``, and costs accuracy where
    class distances are small in those units (digits scaled to [0, 1]; the measurements
    are in ``docs/architecture.md``). Normalizing each pairwise difference is possible
    only when the class weights form a regular simplex. One-vs-rest was dropped: with
    unit-norm weights and a 1:9 imbalance every sub-model learned "rest".

    *The solver.* The regularizer is a difference of convex functions of ``m_i``, but
    ``m_i`` is a minimum of ratios of affine functions, neither convex nor concave in
    ``(W, b)``, so the DC split does not carry over. L-BFGS minimizes the objective
    directly; its line search accepts only steps of sufficient (Armijo) decrease, so
    ``objective_path_`` decreases at every iteration. At a kink (a margin crossing 0 or
    ``tau``, a change of competing class) a failed line search restarts L-BFGS from the
    current point. ``predict_proba`` is the softmax of the scores.

    For binary problems ``decision_function`` is the signed distance to the boundary and
    ``predict_proba`` its sigmoid. Sparse ``X`` (CSR, CSC) is used as is: every step
    needs only products with ``X`` and ``X.T``.

    Averages replace the paper's sums in (11); both terms scale alike, so the minimizers
    (and the meaning of ``lam``) are the same.

    References
    ----------
    .. [1] K. Wu and Y. Yu, "Understanding Adversarial Robustness: The Trade-off between
       Minimum and Average Margin", arXiv:1907.11780, 2019. Section 4.1.
    .. [2] A. L. Yuille and A. Rangarajan, "The Concave-Convex Procedure", Neural
       Computation 15(4), 2003.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from amrlearn.linear_model import AMRLogisticRegression
    >>> from amrlearn.metrics import margin_report
    >>> X, y = load_digits(n_class=2, return_X_y=True)
    >>> clf = AMRLogisticRegression(tau=20.0, lam=0.1).fit(X / 16.0, y)
    >>> round(float(np.linalg.norm(clf.coef_)), 6)
    1.0
    >>> bool(np.all(np.diff(clf.objective_path_) <= 0))
    True
    >>> margin_report(clf, X / 16.0, y)["accuracy"]
    1.0
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = AMRLogisticRegression().fit(X / 16.0, y)
    >>> clf.coef_.shape, bool(np.all(np.diff(clf.objective_path_) <= 0))
    ((10, 64), True)
    """

    _parameter_constraints = {
        "tau": [Interval(Real, 0, None, closed="left")],
        "lam": [Interval(Real, 0, None, closed="left")],
        "C": [Interval(Real, 0, None, closed="neither")],
        "loss": [StrOptions(set(LOSSES))],
        "fit_intercept": ["boolean"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "init": [StrOptions({"logistic", "mean"}), "array-like"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        *,
        tau=5.0,
        lam=0.1,
        C=1.0,
        loss="logistic",
        fit_intercept=True,
        tol=1e-4,
        max_iter=100,
        init="logistic",
        random_state=None,
        verbose=0,
    ):
        self.tau = tau
        self.lam = lam
        self.C = C
        self.loss = loss
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.init = init
        self.random_state = random_state
        self.verbose = verbose

    def _binary_start(self, X, t, rng, scale):
        """``(w0, b0)`` of the binary problem with labels ``t`` in {-1, +1}."""
        if isinstance(self.init, str):
            w, b = _mean_direction(X, t, rng)
            if self.init == "logistic":
                gtol, ftol = _inner_tolerances(self.tol)
                w, b = cccp_step(
                    w,
                    b,
                    X,
                    t,
                    lam=0.0,
                    tau=self.tau,
                    loss="logistic",
                    fit_intercept=self.fit_intercept,
                    max_inner=_WARM_START_ITER,
                    gtol=gtol,
                    ftol=ftol,
                    scale=scale,
                )[:2]
            return w, b
        w = self._init_array(X.shape[1], 1)[0]
        w = w / np.linalg.norm(w)
        pos, neg = _class_means(X, t)
        return w, -float(w @ (pos + neg)) / 2.0

    def _init_array(self, n_features, n_rows):
        init = np.atleast_2d(np.asarray(self.init, dtype=np.float64))
        if init.shape != (n_rows, n_features):
            raise ValueError(
                f"init has shape {np.shape(self.init)}; expected ({n_features},) for a binary "
                f"problem or ({n_rows}, {n_features}) for {n_rows} classes."
            )
        if not np.all(np.isfinite(init)) or np.any(np.linalg.norm(init, axis=1) == 0):
            raise ValueError("init must be finite with nonzero rows.")
        return init

    def _fit_multiclass(self, X, y_index):
        """The multinomial AMR of :mod:`._multinomial`, from its start."""
        K = len(self.classes_)
        common = dict(
            tau=float(self.tau),
            C=float(self.C),
            fit_intercept=self.fit_intercept,
            tol=float(self.tol),
            max_iter=self.max_iter,
            verbose=self.verbose,
        )
        if isinstance(self.init, str):
            W0, b0 = nearest_centroid_start(X, y_index, K)
            if self.init == "logistic":
                # scikit-learn's multinomial LR from zero, solved loosely (L-BFGS stops when
                # an iteration gains less than tol, relative): the AMR stage refines it.
                loose = {**common, "tol": common["tol"] / _FTOL_FACTOR}
                W0, b0 = fit_multinomial_amr(
                    X, y_index, np.zeros_like(W0), np.zeros(K), lam=0.0, **loose
                )[:2]
        else:
            W0 = self._init_array(X.shape[1], K)
            b0 = -np.asarray(W0 @ np.asarray(X.mean(axis=0)).ravel())
        return fit_multinomial_amr(X, y_index, W0, b0, lam=float(self.lam), **common)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit the model: CCCP for two classes, a monotone L-BFGS for more.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data; CSR and CSC matrices are used as they are.
        y : array-like of shape (n_samples,)
            Target labels.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        X, y = validate_data(
            self, X, y, dtype=[np.float64, np.float32], accept_sparse=["csr", "csc"]
        )
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise ValueError(
                "AMRLogisticRegression needs samples of at least 2 classes in the data; "
                f"got 1 class: {self.classes_[0]!r}."
            )
        if n_classes == 2:
            t = np.where(y_index == 1, 1.0, -1.0)
            scale = _sample_scale(X)
            w0, b0 = self._binary_start(X, t, check_random_state(self.random_state), scale)
            w, b, n_iter, path, tight, converged = _fit_binary(
                X,
                t,
                w0,
                b0,
                lam=float(self.lam),
                tau=float(self.tau),
                loss=self.loss,
                fit_intercept=self.fit_intercept,
                tol=float(self.tol),
                max_iter=self.max_iter,
                verbose=self.verbose,
                scale=scale,
            )
            coef, intercept = w.reshape(1, -1), np.array([b], dtype=np.float64)
        else:
            if self.loss != "logistic":
                raise ValueError(
                    f"loss={self.loss!r} is binary only; the multiclass model uses the "
                    "multinomial logistic loss (loss='logistic')."
                )
            coef, intercept, n_iter, path, converged = self._fit_multiclass(X, y_index)
            tight = np.zeros(0, dtype=bool)
        if not converged:
            warnings.warn(
                f"The fit did not converge: it reached max_iter={self.max_iter} before the "
                "objective stopped decreasing (increase max_iter or tol), or the inner "
                "L-BFGS solver failed (non-finite values; check the scale of X).",
                ConvergenceWarning,
                stacklevel=2,
            )
        self.coef_ = coef
        self.intercept_ = intercept
        self.n_iter_ = np.array([n_iter], dtype=np.int32)
        self.objective_path_ = np.asarray(path, dtype=np.float64)
        self.relaxation_tight_ = np.asarray(tight, dtype=bool)
        return self

    def decision_function(self, X):
        """Binary: signed l2 distance to the boundary. Multiclass: the class scores.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            Binary: positive for ``classes_[1]``, and the signed distance to the boundary
            (unit-norm weights). Multiclass: ``X @ coef_.T + intercept_``, whose argmax is
            the prediction; exact margins come from :func:`~amrlearn.metrics.margin_report`.
        """
        check_is_fitted(self)
        X = validate_data(
            self, X, reset=False, dtype=[np.float64, np.float32], accept_sparse=["csr", "csc"]
        )
        scores = np.asarray(X @ self.coef_.T.astype(X.dtype, copy=False), dtype=np.float64)
        scores = scores + self.intercept_
        return scores.ravel() if scores.shape[1] == 1 else scores

    def predict_proba(self, X):
        """Class probabilities: the sigmoid of the distance (binary), the softmax of the scores.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``; each row sums to 1, and its argmax is ``predict``.
        """
        scores = self.decision_function(X)
        if scores.ndim == 1:
            p = expit(scores)
            return np.column_stack([1.0 - p, p])
        return softmax(scores, axis=1)

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
        """
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
