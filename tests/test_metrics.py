"""Tests of the exact linear margins (eq. 2-7) and of the margin_report scorer."""

import pickle
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler
from sklearn.svm import SVC, LinearSVC

from amrlearn.metrics import (
    avg_margin_scorer,
    closest_boundary_point,
    linear_margins,
    make_margin_refit,
    margin_report,
    margins_from_scores,
    min_margin_scorer,
    sample_margins,
    summarize_margins,
)

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
finite = st.floats(-5, 5, allow_nan=False, allow_infinity=False, width=64)


def make_linear(coef, intercept, classes=None):
    """A LogisticRegression whose weights are ``coef`` and ``intercept`` (as if fitted)."""
    coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
    n_classes = 2 if coef.shape[0] == 1 else coef.shape[0]
    clf = LogisticRegression()
    clf.coef_ = coef
    clf.intercept_ = np.atleast_1d(np.asarray(intercept, dtype=np.float64))
    clf.classes_ = np.arange(n_classes) if classes is None else np.asarray(classes)
    clf.n_features_in_ = coef.shape[1]
    return clf


@st.composite
def linear_problems(draw, multiclass=None, min_gap=0.2):
    """A linear model (binary or multiclass) with well-separated weights, and samples."""
    n_features = draw(st.integers(1, 5))
    if multiclass is None:
        multiclass = draw(st.booleans())
    n_rows = draw(st.integers(3, 5)) if multiclass else 1
    coef = draw(arrays(np.float64, (n_rows, n_features), elements=finite))
    # Keep the geometry non-degenerate: ||w|| >= min_gap (binary), or rows at least
    # min_gap apart (multiclass), through the first feature.
    if n_rows == 1:
        coef[0, 0] = np.copysign(min_gap + abs(coef[0, 0]), coef[0, 0])
    else:
        steps = draw(arrays(np.float64, (n_rows,), elements=st.floats(min_gap, 3.0)))
        order = draw(st.permutations(range(n_rows)))
        coef[:, 0] = (np.cumsum(steps) - steps.sum() / 2)[order]
    intercept = draw(arrays(np.float64, (n_rows,), elements=finite))
    n_samples = draw(st.integers(1, 8))
    X = draw(arrays(np.float64, (n_samples, n_features), elements=finite))
    return make_linear(coef, intercept), X


def _scale_tol(clf, X):
    """Rounding scale of a margin: (||x|| + |b| / ||w||) per sample."""
    coef = clf.coef_
    if coef.shape[0] == 1:
        wmin = np.linalg.norm(coef[0])
    else:
        d = np.linalg.norm(coef[:, None] - coef[None], axis=2)
        wmin = d[np.triu_indices(len(coef), 1)].min()
    return 1.0 + np.linalg.norm(X, axis=1) + np.abs(clf.intercept_).max() / wmin


def _first_change(clf, X, directions, t_max=1e4, n_iter=80):
    """Per sample, the distance along each unit direction at which ``predict`` first changes.

    A brute force that uses only ``predict``: the predicted region is convex, so along a
    ray the prediction is the original one on an interval [0, t*), found by bisection.
    """
    y0 = clf.predict(X)
    n, n_dir = directions.shape[:2]
    Xr = np.repeat(X, n_dir, axis=0)
    D = directions.reshape(n * n_dir, -1)
    y0r = np.repeat(y0, n_dir)
    lo = np.zeros(len(Xr))
    hi = np.full(len(Xr), t_max)
    changes = clf.predict(Xr + hi[:, None] * D) != y0r
    for _ in range(n_iter):
        mid = (lo + hi) / 2
        same = clf.predict(Xr + mid[:, None] * D) == y0r
        lo = np.where(same, mid, lo)
        hi = np.where(same, hi, mid)
    t = np.where(changes, hi, np.inf)
    return t.reshape(n, n_dir)


# --------------------------------------------------------------------------- properties


@SETTINGS
@given(problem=linear_problems(), c=st.floats(1e-3, 1e3), data=st.data())
def test_margins_invariant_to_positive_scaling(problem, c, data):
    clf, X = problem
    y = data.draw(arrays(np.int64, len(X), elements=st.sampled_from(clf.classes_.tolist())))
    scaled = make_linear(c * clf.coef_, c * clf.intercept_, clf.classes_)
    np.testing.assert_allclose(
        linear_margins(scaled, X, y), linear_margins(clf, X, y), rtol=1e-9, atol=1e-12
    )


@SETTINGS
@given(problem=linear_problems())
def test_closest_boundary_point_has_margin_zero(problem):
    clf, X = problem
    Xb = closest_boundary_point(clf, X)
    m = linear_margins(clf, X)
    tol = 1e-6 * _scale_tol(clf, X)
    assert np.all(np.abs(linear_margins(clf, Xb)) <= tol)
    # It is the closest point: its distance is the margin.
    np.testing.assert_allclose(np.linalg.norm(Xb - X, axis=1), m, rtol=1e-9, atol=1e-12)
    # And it is on the boundary, not merely at the right distance: a little past it the
    # prediction changes.
    far = m > 1e-3
    if far.any():
        beyond = X[far] + 1.001 * (Xb[far] - X[far])
        assert np.all(clf.predict(beyond) != clf.predict(X[far]))


@SETTINGS
@given(problem=linear_problems(multiclass=False), delta=st.floats(-10, 10))
def test_moving_along_the_normal_changes_the_margin_by_delta(problem, delta):
    clf, X = problem
    w = clf.coef_[0]
    moved = X + delta * w / np.linalg.norm(w)
    tol = 1e-9 * (_scale_tol(clf, X) + abs(delta))
    positive = np.full(len(X), clf.classes_[1])  # signed margin = f(x) / ||w||
    np.testing.assert_allclose(
        linear_margins(clf, moved, positive),
        linear_margins(clf, X, positive) + delta,
        atol=tol.max(),
    )
    negative = np.full(len(X), clf.classes_[0])  # signed margin = -f(x) / ||w||
    np.testing.assert_allclose(
        linear_margins(clf, moved, negative),
        linear_margins(clf, X, negative) - delta,
        atol=tol.max(),
    )


@SETTINGS
@given(problem=linear_problems(multiclass=True), seed=st.integers(0, 2**32 - 1))
def test_multiclass_margin_matches_brute_force(problem, seed):
    clf, X = problem
    m = linear_margins(clf, X)
    pred = np.searchsorted(clf.classes_, clf.predict(X))
    # Directions towards every competitor's hyperplane (-(w_yhat - w_k)), plus random ones.
    W = clf.coef_
    normals = -(W[pred][:, None, :] - W[None, :, :])  # (n, K, d), zero row at k = yhat
    norms = np.linalg.norm(normals, axis=2, keepdims=True)
    normals = np.where(norms > 0, normals / np.where(norms > 0, norms, 1), 0)
    mask = np.ones(normals.shape[:2], bool)
    mask[np.arange(len(X)), pred] = False
    normals = normals[mask].reshape(len(X), W.shape[0] - 1, -1)
    rng = np.random.default_rng(seed)
    rand = rng.normal(size=(len(X), 8, W.shape[1]))
    rand /= np.linalg.norm(rand, axis=2, keepdims=True)
    t_normal = _first_change(clf, X, normals)
    t_rand = _first_change(clf, X, rand)
    tol = 1e-7 * _scale_tol(clf, X)
    # Brute force: the nearest change along the normals is the margin...
    np.testing.assert_allclose(t_normal.min(axis=1), m, atol=tol.max(), rtol=1e-7)
    # ... and no direction reaches another class sooner.
    assert np.all(t_rand.min(axis=1) >= m - tol)


# --------------------------------------------------------------------------- known values


def test_multiclass_margin_by_hand():
    # Three classes on a line: f_k(x) = k * x - k^2 / 2 ... regions split at 0.5 and 1.5.
    clf = make_linear([[0.0], [1.0], [2.0]], [0.0, -0.5, -2.0])
    X = np.array([[-1.0], [0.8], [1.4], [3.0]])
    np.testing.assert_allclose(linear_margins(clf, X), [1.5, 0.3, 0.1, 1.5])
    np.testing.assert_allclose(linear_margins(clf, X, [0, 2, 1, 0]), [1.5, -0.3, 0.1, -1.5])
    np.testing.assert_allclose(closest_boundary_point(clf, X), [[0.5], [0.5], [1.5], [1.5]])


def test_binary_scores_one_column_or_flat():
    coef = np.array([[3.0, 4.0]])
    flat, pred = margins_from_scores(np.array([3.0, -4.0]), coef, [1, 1])
    column, _ = margins_from_scores(np.array([[3.0], [-4.0]]), coef, [1, 1])
    np.testing.assert_allclose(flat, [0.6, -0.8])
    np.testing.assert_allclose(column, flat)
    assert pred.tolist() == [1, 0]


def test_string_labels():
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    by_name = LogisticRegression(max_iter=500).fit(X, names)
    by_index = LogisticRegression(max_iter=500).fit(X, y)
    np.testing.assert_allclose(linear_margins(by_name, X, names), linear_margins(by_index, X, y))


# --------------------------------------------------------------------------- pipelines


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return X[::2], y[::2]  # 285 samples, enough and quick


def _by_hand(scaler_scale, scaler_shift, clf, X, y):
    """Margins of the folded model x -> w . (x * s + t) + b, by hand (binary)."""
    w = clf.coef_[0] * scaler_scale
    b = clf.intercept_[0] + clf.coef_[0] @ scaler_shift
    f = X @ w + b
    sign = np.where((f > 0).astype(int) == np.searchsorted(clf.classes_, y), 1.0, -1.0)
    return sign * np.abs(f) / np.linalg.norm(w)


@pytest.mark.parametrize(
    "scaler, affine",
    [
        (StandardScaler(), lambda s: (1 / s.scale_, -s.mean_ / s.scale_)),
        (StandardScaler(with_mean=False), lambda s: (1 / s.scale_, np.zeros_like(s.scale_))),
        (StandardScaler(with_std=False), lambda s: (np.ones_like(s.mean_), -s.mean_)),
        (MinMaxScaler(), lambda s: (s.scale_, s.min_)),
        (MaxAbsScaler(), lambda s: (1 / s.scale_, np.zeros_like(s.scale_))),
    ],
)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_pipeline_scalers_fold_into_the_weights(cancer, scaler, affine):
    X, y = cancer
    # Convergence does not matter here: any weights must fold exactly.
    pipe = make_pipeline(scaler, LogisticRegression(max_iter=100)).fit(X, y)
    scale, shift = affine(pipe[0])
    expected = _by_hand(scale, shift, pipe[-1], X, y)
    np.testing.assert_allclose(linear_margins(pipe, X, y), expected, rtol=1e-9)
    # The folded boundary is the pipeline's: its closest points have margin zero.
    Xb = closest_boundary_point(pipe, X)
    assert np.abs(pipe.decision_function(Xb)).max() < 1e-6 * np.abs(pipe.decision_function(X)).max()


def test_two_scalers_fold(cancer):
    X, y = cancer
    pipe = make_pipeline(MinMaxScaler(), StandardScaler(), LinearSVC()).fit(X, y)
    f = pipe.decision_function(X)
    Xb = closest_boundary_point(pipe, X)
    np.testing.assert_allclose(np.linalg.norm(Xb - X, axis=1), np.abs(linear_margins(pipe, X)))
    assert np.abs(pipe.decision_function(Xb)).max() < 1e-6 * np.abs(f).max()


def test_non_affine_step_warns_and_measures_in_feature_space(cancer):
    X, y = cancer
    pipe = make_pipeline(StandardScaler(), PCA(n_components=5), LogisticRegression()).fit(X, y)
    with pytest.warns(UserWarning, match="non-affine"):
        m = linear_margins(pipe, X, y)
    np.testing.assert_allclose(m, linear_margins(pipe[-1], pipe[:-1].transform(X), y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(ValueError, match="does not fold"):
            closest_boundary_point(pipe, X)


# --------------------------------------------------------------------------- scorers


@pytest.mark.parametrize("estimator", [LogisticRegression(max_iter=2000), LinearSVC()])
def test_margin_report_in_cross_validate(cancer, estimator):
    X, y = cancer
    model = make_pipeline(StandardScaler(), estimator)
    cv = KFold(3, shuffle=True, random_state=0)
    res = cross_validate(model, X, y, scoring=margin_report, cv=cv, return_estimator=True)
    for fold, (_, test) in enumerate(cv.split(X)):
        fitted = res["estimator"][fold]
        m = linear_margins(fitted, X[test], y[test])
        assert res["test_median_margin"][fold] == np.median(m)
        assert res["test_min_margin"][fold] == pytest.approx(m.min())
        assert res["test_avg_margin"][fold] == pytest.approx(np.abs(m).mean())
        assert res["test_avg_margin_correct"][fold] == pytest.approx(m[m > 0].mean())
        assert res["test_q10_margin"][fold] == pytest.approx(np.quantile(m, 0.1))
        assert res["test_accuracy"][fold] == pytest.approx(fitted.score(X[test], y[test]))
    assert np.all(res["test_min_margin"] <= res["test_q10_margin"])


@pytest.mark.parametrize(
    "estimator, grid",
    [
        (LogisticRegression(max_iter=2000), {"logisticregression__C": [0.01, 1.0]}),
        (LinearSVC(), {"linearsvc__C": [0.01, 1.0]}),
    ],
)
def test_margin_report_in_grid_search(cancer, estimator, grid):
    X, y = cancer
    search = GridSearchCV(
        make_pipeline(StandardScaler(), estimator),
        grid,
        scoring=margin_report,
        refit="accuracy",
        cv=3,
    ).fit(X, y)
    results = search.cv_results_
    assert search.best_index_ == np.argmax(results["mean_test_accuracy"])
    assert "mean_test_avg_margin" in results and "rank_test_min_margin" in results
    assert search.score(X, y) == pytest.approx(search.best_estimator_.score(X, y))


def test_multiclass_report_and_single_metric_scorers():
    X, y = load_iris(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    cv = KFold(3, shuffle=True, random_state=1)
    res = cross_validate(model, X, y, scoring=margin_report, cv=cv)
    mins = cross_val_score(model, X, y, scoring=min_margin_scorer, cv=cv)
    avgs = cross_val_score(model, X, y, scoring=avg_margin_scorer, cv=cv)
    np.testing.assert_allclose(mins, res["test_min_margin"])
    np.testing.assert_allclose(avgs, res["test_avg_margin"])
    assert np.all(avgs > 0)


def test_report_signs_and_accuracy():
    clf = make_linear([[1.0, 0.0]], [0.0])
    X = np.array([[2.0, 0.0], [-1.0, 5.0], [0.5, 1.0], [-3.0, 0.0]])
    y = np.array([1, 1, 1, 0])  # the second is wrong, at distance 1
    report = margin_report(clf, X, y, quantiles=(0.5,))
    assert report["accuracy"] == 0.75
    assert report["min_margin"] == -1.0
    assert report["avg_margin"] == pytest.approx((2 + 1 + 0.5 + 3) / 4)
    assert report["avg_margin_correct"] == pytest.approx((2 + 0.5 + 3) / 3)
    assert report["median_margin"] == report["q50_margin"] == pytest.approx(1.25)


def test_sample_margins_of_a_linear_model():
    clf = make_linear([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]], [0.0, 0.0, 0.0])
    X = np.array([[2.0, 1.0], [0.0, 3.0]])
    res = sample_margins(clf, X, [0, 0], upper=True)
    assert res["method"] == "exact"
    np.testing.assert_array_equal(res["y_pred"], [0, 1])
    np.testing.assert_allclose(res["margin"], [1 / np.sqrt(2), -3 / np.sqrt(2)])
    np.testing.assert_array_equal(res["lower"], res["margin"])
    np.testing.assert_array_equal(res["upper"], res["margin"])
    assert "lower" not in sample_margins(clf, X, [0, 0])


@pytest.mark.parametrize("labels", [[3, 7], ["no", "yes"], [3, 7, 11]])
def test_labels_are_mapped_through_classes_everywhere(labels):
    from amrlearn.metrics import margin_bounds

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    score = X @ [1.0, -2.0, 0.5] + 0.5 * rng.standard_normal(120)
    y = np.asarray(labels)[np.digitize(score, np.quantile(score, [0.5, 0.75][: len(labels) - 1]))]
    clf = LogisticRegression().fit(X, y)
    assert 0.6 < clf.score(X, y) < 1.0  # some samples misclassified
    margins = linear_margins(clf, X, y)
    np.testing.assert_array_equal(margins > 0, clf.predict(X) == y)
    report = margin_report(clf, X, y)
    assert report["accuracy"] == clf.score(X, y)
    assert report["avg_margin"] == np.abs(margins).mean()
    bounds = margin_bounds(clf, X, y)
    np.testing.assert_array_equal(bounds["y_pred"], clf.predict(X))
    # margin_bounds sees X in float32, as attacks do.
    np.testing.assert_allclose(bounds["exact"], margins, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(bounds["lipschitz"], bounds["exact"])


# --------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def fitted(cancer):
    X, y = cancer
    return LogisticRegression(max_iter=2000).fit(StandardScaler().fit_transform(X), y)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_raises(fitted, cancer, bad):
    X, y = cancer
    X = X.copy()
    X[3, 2] = bad
    for call in (
        lambda: linear_margins(fitted, X, y),
        lambda: closest_boundary_point(fitted, X),
        lambda: margin_report(fitted, X, y),
    ):
        with pytest.raises(ValueError, match="NaN|infinity"):
            call()


def test_wrong_feature_count_raises(fitted, cancer):
    X, y = cancer
    with pytest.raises(ValueError, match="features"):
        linear_margins(fitted, X[:, :-1], y)
    with pytest.raises(ValueError, match="features"):
        closest_boundary_point(fitted, X[:, :-1])
    with pytest.raises(ValueError, match="features"):
        margin_report(fitted, X[:, :-1], y)


def test_bad_labels_raise(fitted, cancer):
    X, y = cancer
    with pytest.raises(ValueError, match="not seen during fit"):
        linear_margins(fitted, X, np.where(y == 1, 7, y))
    with pytest.raises(ValueError, match="not seen during fit"):
        linear_margins(fitted, X, np.array(["a"] * len(X)))
    with pytest.raises(ValueError, match="samples"):
        linear_margins(fitted, X, y[:-1])


def test_unfitted_estimator_raises_not_fitted():
    X = np.zeros((2, 3))
    with pytest.raises(NotFittedError):
        linear_margins(LogisticRegression(), X)
    with pytest.raises(NotFittedError):
        margin_report(make_pipeline(StandardScaler(), LinearSVC()), X, [0, 1])


def test_non_margin_models_raise_type_error():
    from sklearn.tree import DecisionTreeClassifier

    X, y = load_iris(return_X_y=True)
    with pytest.raises(TypeError, match="Cannot measure the margin"):
        margin_report(DecisionTreeClassifier().fit(X, y), X, y)


def test_one_vs_one_svc_is_refused_and_binary_svc_works(cancer):
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match="one-vs-one"):
        linear_margins(SVC(kernel="linear").fit(X, y), X, y)
    Xb, yb = cancer
    Xb = StandardScaler().fit_transform(Xb)
    svc = SVC(kernel="linear").fit(Xb, yb)
    f = svc.decision_function(Xb)
    expected = np.where(svc.predict(Xb) == yb, 1, -1) * np.abs(f) / np.linalg.norm(svc.coef_)
    np.testing.assert_allclose(linear_margins(svc, Xb, yb), expected)


def test_summarize_margins_checks_input():
    with pytest.raises(ValueError, match="at least one"):
        summarize_margins([])
    with pytest.raises(ValueError, match="NaN"):
        summarize_margins([1.0, np.nan])
    with pytest.raises(ValueError, match="quantiles"):
        summarize_margins([1.0], quantiles=(1.5,))
    assert np.isnan(summarize_margins([-1.0, -2.0])["avg_margin_correct"])


class FixedLinear(ClassifierMixin, BaseEstimator):
    """A linear classifier whose weights are its parameters: ``fit`` learns nothing."""

    def __init__(self, w=(1.0, 0.0), b=0.0):
        self.w = w
        self.b = b

    def fit(self, X, y):
        self.coef_ = np.asarray([self.w], dtype=np.float64)
        self.intercept_ = np.asarray([self.b], dtype=np.float64)
        self.classes_ = np.unique(y)
        self.n_features_in_ = X.shape[1]
        return self

    def decision_function(self, X):
        return np.asarray(X) @ self.coef_[0] + self.intercept_[0]

    def predict(self, X):
        return self.classes_[(self.decision_function(X) > 0).astype(int)]


def _two_blobs(n=60, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    X = np.column_stack([np.where(y == 1, 1.0, -1.0), rng.uniform(-0.1, 0.1, n)])
    return X + rng.normal(0, 0.05, X.shape), y


def test_refit_on_avg_margin_picks_a_broken_model_and_make_margin_refit_does_not():
    # w=(0, 1), b=10 calls every sample class 1, 10 away from its boundary: half of the
    # samples are wrong, yet its mean |m| (about 10) beats the separating model's (about 1).
    X, y = _two_blobs()
    grid = {"w": [(1.0, 0.0), (0.0, 1.0)], "b": [0.0, 10.0]}
    kw = dict(scoring=margin_report, cv=KFold(3, shuffle=True, random_state=0))
    naive = GridSearchCV(FixedLinear(), grid, refit="avg_margin", **kw).fit(X, y)
    assert naive.best_estimator_.score(X, y) == pytest.approx(0.5)
    search = GridSearchCV(FixedLinear(), grid, refit=make_margin_refit(), **kw).fit(X, y)
    assert search.best_params_ == {"b": 0.0, "w": (1.0, 0.0)}
    assert search.best_estimator_.score(X, y) == 1.0
    clone = pickle.loads(pickle.dumps(search))  # a fitted search that holds the rule
    assert clone.best_index_ == search.best_index_


def test_make_margin_refit_rule():
    results = {
        "mean_test_accuracy": np.array([0.99, 0.985, 0.59, 0.97, np.nan]),
        "mean_test_avg_margin": np.array([3.6, 3.7, 6.1, 3.9, 9.0]),
        "mean_test_min_margin": np.array([-1.0, -1.5, -7.9, -2.0, 0.0]),
    }
    assert make_margin_refit()(results) == 1  # within one point of 0.99
    assert make_margin_refit(max_accuracy_drop=0.0)(results) == 0
    assert make_margin_refit(max_accuracy_drop=0.05)(results) == 3
    assert make_margin_refit(max_accuracy_drop=1.0)(results) == 2  # NaN is never chosen
    assert make_margin_refit("min_margin", max_accuracy_drop=0.05)(results) == 0


def test_make_margin_refit_errors():
    with pytest.raises(ValueError, match="scoring=margin_report"):
        make_margin_refit()({"mean_test_score": np.array([1.0])})
    with pytest.raises(ValueError, match="mean_test_avg_margin_lower"):
        make_margin_refit("avg_margin_lower")({"mean_test_accuracy": np.array([1.0])})
    with pytest.raises(ValueError, match="finite"):
        nan = np.array([np.nan])
        make_margin_refit()({"mean_test_accuracy": nan, "mean_test_avg_margin": nan})
    for bad in (-0.1, 1.5, "1%", True):
        with pytest.raises(ValueError, match="max_accuracy_drop"):
            make_margin_refit(max_accuracy_drop=bad)
    with pytest.raises(TypeError, match="metric"):
        make_margin_refit(["avg_margin"])
