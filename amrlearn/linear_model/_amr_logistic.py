"""``AMRLogisticRegression``: objective (11) of Wu & Yu, solved by CCCP on the unit sphere."""

import warnings
from numbers import Integral, Real

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from ..utils import progress
from ..utils._compat import (
    Interval,
    LinearClassifierMixin,
    StrOptions,
    _fit_context,
    validate_data,
)
from ._cccp import LOSSES, amr_objective, cccp_linearization, cccp_step

__all__ = ["AMRLogisticRegression"]

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
    (on MNIST 0 vs 1 the margins then agree with a 1e-12 inner tolerance to ~1e-5).
    """
    tol = max(tol, 1e-10)
    return tol * 1e-1, tol * 1e-3


def _sample_scale(X):
    """Root-mean-square norm of the samples: the starting ``||v||`` of the inner solves."""
    scale = float(np.linalg.norm(X)) / np.sqrt(X.shape[0])
    return scale if np.isfinite(scale) and scale > 0 else 1.0


def _fit_binary(X, y, w0, b0, *, lam, tau, loss, fit_intercept, tol, max_iter, verbose,
                scale=1.0):
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
            w_new, b_new, info = cccp_step(w, b, X, y, lam=lam, tau=tau, loss=loss,
                                           smoothing=smoothing, fit_intercept=fit_intercept,
                                           gtol=gtol, ftol=ftol, scale=scale,
                                           margins=margins)
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


class AMRLogisticRegression(LinearClassifierMixin, ClassifierMixin, BaseEstimator):
    """Logistic regression with the Average Margin Regularizer, on the unit sphere.

    Minimizes objective (11) of Wu & Yu over unit-norm weights and a free bias:

    ``mean_i phi(m_i) + lam * mean_i [H_tau - H_0](m_i)``, ``m_i = y_i (w.x_i + b)``,
    ``||w||_2 = 1``,

    where ``H_s(t) = max(0, s - t)``. Since ``||w|| = 1``, ``m_i`` is the signed l2
    distance of ``x_i`` to the decision boundary, and the regularizer equals
    ``tau - [m_i]_0^tau``: it rewards correctly classified samples for their distance to
    the boundary, up to ``tau``. The minimization uses the convex-concave procedure
    (CCCP).

    Parameters
    ----------
    tau : float, default=5.0
        Truncation of the margin, ``tau >= 0``, in the units of ``X`` (the paper uses 5 on
        MNIST scaled to [0, 1]).
    lam : float, default=0.1
        Weight ``lambda >= 0`` of the regularizer. ``lam=0`` is logistic regression
        restricted to the sphere.
    loss : {"logistic", "hinge", "exponential"}, default="logistic"
        The decreasing loss ``phi`` (Theorem 2 makes each Fisher consistent with the
        regularizer).
    fit_intercept : bool, default=True
        Learn the free bias ``b``. The paper omits it "w.l.o.g."; a user cannot.
    tol : float, default=1e-4
        Stop when an outer CCCP iteration lowers the objective by less than
        ``tol`` times its value. Also sets the inner solver's tolerance.
    max_iter : int, default=100
        Maximum number of CCCP (outer) iterations per binary problem.
    init : {"logistic", "mean"} or array-like, default="logistic"
        Starting point. ``"logistic"``: plain logistic regression on the sphere (the
        ``lam=0`` problem), solved loosely: three L-BFGS iterations from ``"mean"``, which
        on MNIST 0 vs 1 reach the same CCCP solution as ten, in fewer function
        evaluations (20 in all instead of 24). ``"mean"``: the unit difference
        of the class means, with the bias through their midpoint. An array of shape
        (n_features,) (binary) or (n_classes, n_features) (multiclass) gives the
        directions; they are normalized.
    random_state : int, RandomState instance or None, default=None
        Used only when the class means coincide: the starting direction is then drawn at
        random.
    verbose : int, default=0
        Show a progress bar over the CCCP iterations (and the classes).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
        Unit-norm weights (each row, for one-vs-rest).
    intercept_ : ndarray of shape (1,) or (n_classes,)
    n_iter_ : ndarray of shape (1,) or (n_classes,)
        CCCP iterations run for each binary problem.
    objective_path_ : ndarray or list of ndarray
        Objective (11) (averaged over samples) at the starting point and after every
        accepted CCCP iteration; never increasing. A list with one array per class for
        multiclass problems.
    relaxation_tight_ : ndarray of bool or list of ndarray
        For each accepted iteration, whether its convex subproblem was solved globally,
        i.e. the minimizer of its ball relaxation lies on the sphere (see Notes).
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

    **Multiclass.** One-vs-rest: one binary problem (class ``k`` against the rest) per
    class, each with unit-norm weights. ``decision_function`` returns the signed distance
    of each sample to each class's hyperplane; ``predict`` takes the argmax;
    ``predict_proba`` normalizes the per-class sigmoids, as scikit-learn's one-vs-rest
    logistic regression does. For binary problems ``decision_function`` is the signed
    distance to the boundary and ``predict_proba`` its sigmoid.

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
    """

    _parameter_constraints = {
        "tau": [Interval(Real, 0, None, closed="left")],
        "lam": [Interval(Real, 0, None, closed="left")],
        "loss": [StrOptions(set(LOSSES))],
        "fit_intercept": ["boolean"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "init": [StrOptions({"logistic", "mean"}), "array-like"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, *, tau=5.0, lam=0.1, loss="logistic", fit_intercept=True, tol=1e-4,
                 max_iter=100, init="logistic", random_state=None, verbose=0):
        self.tau = tau
        self.lam = lam
        self.loss = loss
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.init = init
        self.random_state = random_state
        self.verbose = verbose

    def _initial_directions(self, X, targets, rng, scale):
        """One ``(w0, b0)`` per binary problem."""
        if isinstance(self.init, str):
            starts = [_mean_direction(X, t, rng) for t in targets]
            if self.init == "logistic":
                gtol, ftol = _inner_tolerances(self.tol)
                starts = [
                    cccp_step(w, b, X, t, lam=0.0, tau=self.tau, loss="logistic",
                              fit_intercept=self.fit_intercept, max_inner=_WARM_START_ITER,
                              gtol=gtol, ftol=ftol, scale=scale)[:2]
                    for (w, b), t in zip(starts, targets)
                ]
            return starts
        init = np.atleast_2d(np.asarray(self.init, dtype=np.float64))
        if init.shape != (len(targets), X.shape[1]):
            raise ValueError(
                f"init has shape {np.shape(self.init)}; expected ({X.shape[1]},) for a binary "
                f"problem or ({len(targets)}, {X.shape[1]}) for {len(targets)} classes."
            )
        norms = np.linalg.norm(init, axis=1)
        if not np.all(np.isfinite(init)) or np.any(norms == 0):
            raise ValueError("init must be finite with nonzero rows.")
        out = []
        for row, norm, t in zip(init, norms, targets):
            w = row / norm
            pos, neg = _class_means(X, t)
            out.append((w, -float(w @ (pos + neg)) / 2.0))
        return out

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit the model by CCCP (one-vs-rest for more than two classes).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,)
            Target labels.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise ValueError(
                "AMRLogisticRegression needs samples of at least 2 classes in the data; "
                f"got 1 class: {self.classes_[0]!r}."
            )
        if n_classes == 2:
            targets = [np.where(y == self.classes_[1], 1.0, -1.0)]
        else:
            targets = [np.where(y == c, 1.0, -1.0) for c in self.classes_]
        rng = check_random_state(self.random_state)
        scale = _sample_scale(X)
        starts = self._initial_directions(X, targets, rng, scale)

        coef, intercept, n_iter, paths, tights = [], [], [], [], []
        all_converged = True
        problems = progress(list(zip(targets, starts)), verbose=self.verbose and n_classes > 2,
                            desc="one-vs-rest")
        for t, (w0, b0) in problems:
            w, b, it, path, tight, converged = _fit_binary(
                X, t, w0, b0, lam=float(self.lam), tau=float(self.tau), loss=self.loss,
                fit_intercept=self.fit_intercept, tol=float(self.tol),
                max_iter=self.max_iter, verbose=self.verbose, scale=scale,
            )
            coef.append(w)
            intercept.append(b)
            n_iter.append(it)
            paths.append(path)
            tights.append(tight)
            all_converged &= converged
        if not all_converged:
            warnings.warn(
                f"CCCP did not converge: it reached max_iter={self.max_iter} before the "
                "objective stopped decreasing (increase max_iter or tol), or the inner "
                "L-BFGS solver failed (non-finite values; check the scale of X).",
                ConvergenceWarning,
                stacklevel=2,
            )
        self.coef_ = np.vstack(coef)
        self.intercept_ = np.asarray(intercept, dtype=np.float64)
        self.n_iter_ = np.asarray(n_iter, dtype=np.int32)
        self.objective_path_ = paths[0] if n_classes == 2 else paths
        self.relaxation_tight_ = tights[0] if n_classes == 2 else tights
        return self

    def decision_function(self, X):
        """Signed l2 distance of each sample to the decision boundary (unit-norm weights).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            Binary: positive for ``classes_[1]``. Multiclass: the signed distance to each
            class's one-vs-rest hyperplane.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        scores = X.astype(np.float64, copy=False) @ self.coef_.T + self.intercept_
        return scores.ravel() if scores.shape[1] == 1 else scores

    def predict_proba(self, X):
        """Class probabilities: the sigmoid of the signed distance (normalized for OvR).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``; each row sums to 1, and its argmax is ``predict``.
        """
        scores = self.decision_function(X)
        if scores.ndim == 1:
            p = expit(scores)
            return np.column_stack([1.0 - p, p])
        p = expit(scores)
        return p / p.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
        """
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))
