"""Tests of amrlearn.svm.HardMarginSVC: closed forms, KKT, errors, and libsvm on MNIST."""

import pickle
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning
from sklearn.svm import SVC
from sklearn.utils._param_validation import InvalidParameterError

import amrlearn
from amrlearn.metrics import linear_margins, margin_report
from amrlearn.svm import HardMarginSVC


def _separable(n=300, d=5, gap=0.5, seed=0):
    """Gaussian samples labelled by a random hyperplane, with a band of width 2*gap removed."""
    rng = np.random.RandomState(seed)
    w = rng.randn(d)
    w /= np.linalg.norm(w)
    X = rng.randn(4 * n, d)
    s = X @ w + 0.3
    keep = np.abs(s) > gap
    X, s = X[keep][:n], s[keep][:n]
    return X, (s > 0).astype(np.int64)


def _check_kkt(clf, X, y, rtol=1e-6):
    """The fitted (w, b, alpha) satisfy the KKT conditions of the hard-margin QP."""
    y_pm = np.where(y == clf.classes_[1], 1.0, -1.0)
    w, b = clf.coef_[0], clf.intercept_[0]
    alpha_y = clf.dual_coef_[0]
    alpha = alpha_y * y_pm[clf.support_]
    functional = y_pm * (X @ w + b)
    # Dual feasibility, and the signs of dual_coef_ are those of the labels.
    assert np.all(alpha > 0)
    # Stationarity: w = sum alpha_i y_i x_i and sum alpha_i y_i = 0.
    assert_allclose(alpha_y @ clf.support_vectors_, w, rtol=0, atol=rtol * np.linalg.norm(w))
    assert abs(alpha_y.sum()) <= rtol * np.abs(alpha).sum()
    # Primal feasibility on every sample, and complementarity: the support vectors are active.
    assert functional.min() >= 1 - clf.tol
    assert_allclose(functional[clf.support_], 1.0, atol=1e-5)
    # Strong duality: ||w||^2 = sum alpha_i.
    assert_allclose(w @ w, alpha.sum(), rtol=1e-5)


def test_two_points_closed_form():
    rng = np.random.RandomState(1)
    xp, xn = rng.randn(4), rng.randn(4)
    X = np.vstack([xn, xp])
    clf = HardMarginSVC().fit(X, [0, 1])
    d = xp - xn
    w = 2 * d / (d @ d)
    assert_allclose(clf.coef_, [w], rtol=1e-6)
    assert_allclose(clf.intercept_, [-w @ (xp + xn) / 2], rtol=1e-6, atol=1e-8)
    assert_allclose(clf.margin_, np.linalg.norm(d) / 2, rtol=1e-6)
    assert_array_equal(clf.support_, [0, 1])
    alpha = 2 / (d @ d)
    assert_allclose(clf.dual_coef_, [[-alpha, alpha]], rtol=1e-6)
    assert clf.coef_.shape == (1, 4) and clf.intercept_.shape == (1,)


def test_symmetric_points_closed_form():
    # The closest pair is (-1, 0), (1, 0): w = (1, 0), b = 0, margin 1; the others are inactive.
    X = np.array([[-1.0, 0.0], [-3.0, 2.0], [-2.0, -5.0], [1.0, 0.0], [4.0, 1.0], [2.5, -3.0]])
    y = np.array([0, 0, 0, 1, 1, 1])
    clf = HardMarginSVC().fit(X, y)
    assert_allclose(clf.coef_, [[1.0, 0.0]], atol=1e-7)
    assert_allclose(clf.intercept_, [0.0], atol=1e-7)
    assert_allclose(clf.margin_, 1.0, rtol=1e-7)
    assert_array_equal(clf.support_, [0, 3])
    assert_array_equal(clf.n_support_, [1, 1])
    assert_array_equal(clf.support_vectors_, X[[0, 3]])
    assert_array_equal(clf.predict(X), y)
    _check_kkt(clf, X, y)


def test_working_set_matches_full_qp_and_kkt():
    X, y = _separable(n=400, d=6)
    full = HardMarginSVC(working_set=False).fit(X, y)
    ws = HardMarginSVC(chunk_size=10).fit(X, y)
    assert full.n_iter_ == 1
    assert ws.n_iter_ > 1  # constraint generation really ran several rounds
    assert_allclose(ws.coef_, full.coef_, rtol=1e-5)
    assert_allclose(ws.intercept_, full.intercept_, rtol=1e-5, atol=1e-7)
    assert_array_equal(ws.support_, full.support_)
    assert_allclose(ws.dual_coef_, full.dual_coef_, rtol=1e-4)
    _check_kkt(ws, X, y)
    _check_kkt(full, X, y)


_TIGHT_CLARABEL = {"tol_gap_rel": 1e-12, "tol_gap_abs": 1e-12, "tol_feas": 1e-12}


@pytest.mark.parametrize("space", ["features", "kernel"])
@pytest.mark.parametrize("shape", [(120, 5), (30, 60)])  # more constraints than features, fewer
@pytest.mark.parametrize("sparse", [False, True])
def test_ipm_matches_clarabel_in_both_spaces(space, shape, sparse):
    # The built-in interior-point method solves its Newton steps in the feature space (the
    # primal normal equations) or the kernel space (the dual's); either way it is the QP
    # that Clarabel solves through cvxpy.
    import scipy.sparse as sp

    from amrlearn.svm._ipm import solve_hard_margin_ipm
    from amrlearn.svm._qp import _solve_hard_margin_qp

    X, y01 = _separable(n=shape[0], d=shape[1], seed=7)
    y = np.where(y01 == 1, 1.0, -1.0)
    X = sp.csr_matrix(X) if sparse else X
    w, b, alpha = solve_hard_margin_ipm(X, y, space=space)
    w_ref, b_ref, alpha_ref = _solve_hard_margin_qp(
        X, y, solver="CLARABEL", solver_options=_TIGHT_CLARABEL
    )
    assert_allclose(w, w_ref, rtol=0, atol=1e-7 * np.linalg.norm(w_ref))
    assert_allclose(b, b_ref, rtol=0, atol=1e-7 * max(1.0, abs(b_ref)))
    assert_allclose(alpha, alpha_ref, rtol=0, atol=1e-6 * alpha_ref.max())
    assert (y * (X @ w + b)).min() >= 1 - 1e-9


@pytest.mark.parametrize("shape", [(40, 3), (10, 30)])
def test_ipm_gives_up_on_infeasible_constraints(shape):
    # The same point with both labels: no hard margin. The method returns None and the
    # estimator hands the QP to Clarabel, which certifies infeasibility (below).
    from amrlearn.svm._ipm import solve_hard_margin_ipm

    X, y01 = _separable(n=shape[0], d=shape[1], seed=8)
    X = np.vstack([X, X[:1]])
    y = np.where(np.concatenate([y01, 1 - y01[:1]]) == 1, 1.0, -1.0)
    assert solve_hard_margin_ipm(X, y) is None


@pytest.mark.parametrize("working_set", [True, False])
def test_auto_solver_uses_no_cvxpy_and_matches_clarabel(working_set, monkeypatch):
    import cvxpy as cp

    X, y = _separable(n=400, d=6, seed=9)
    ref = HardMarginSVC(
        solver="CLARABEL", solver_options=_TIGHT_CLARABEL, working_set=working_set, chunk_size=20
    ).fit(X, y)

    def no_cvxpy(*args, **kwargs):
        raise AssertionError("cvxpy was called")

    monkeypatch.setattr(cp.Problem, "solve", no_cvxpy)
    auto = HardMarginSVC(working_set=working_set, chunk_size=20).fit(X, y)
    assert auto.get_params()["solver"] == "auto"
    assert_allclose(auto.coef_, ref.coef_, rtol=1e-7)
    assert_allclose(auto.intercept_, ref.intercept_, rtol=1e-7, atol=1e-9)
    assert_array_equal(auto.support_, ref.support_)
    assert_allclose(auto.dual_coef_, ref.dual_coef_, rtol=1e-6)
    _check_kkt(auto, X, y, rtol=1e-8)


def test_auto_solver_hands_large_or_failed_qps_to_clarabel(monkeypatch):
    # solver="auto" tries the built-in method while its dense Newton matrix is at most
    # _IPM_MAX_SIZE on a side; Clarabel solves larger QPs and those where the method gives up.
    import amrlearn.svm._qp as qp

    X, y = _separable(n=100, d=4, seed=10)
    expected = HardMarginSVC(working_set=False).fit(X, y)
    calls = []

    def gives_up(X, y, **kwargs):
        calls.append(X.shape)

    monkeypatch.setattr(qp, "solve_hard_margin_ipm", gives_up)
    monkeypatch.setattr(qp, "_IPM_MAX_SIZE", 4)  # below min(100, 4 + 1)
    clf = HardMarginSVC(working_set=False).fit(X, y)
    assert calls == []
    assert_allclose(clf.coef_, expected.coef_, rtol=1e-6)
    monkeypatch.setattr(qp, "_IPM_MAX_SIZE", 5)
    clf = HardMarginSVC(working_set=False).fit(X, y)
    assert calls == [(100, 4)]
    assert_allclose(clf.coef_, expected.coef_, rtol=1e-6)


def _clarabel_reference(X, y01):
    from amrlearn.svm._qp import _solve_hard_margin_qp

    y = np.where(y01 == 1, 1.0, -1.0)
    return y, _solve_hard_margin_qp(X, y, solver="CLARABEL", solver_options=_TIGHT_CLARABEL)


@pytest.mark.parametrize(
    "shape, wrong",
    [
        ((60, 80), True),  # K_II definite (Cholesky): a wrong guess is corrected
        ((300, 4), False),  # n_features + 1 supports (indefinite system): the polish
    ],
)
def test_active_set_solves_from_a_guess(shape, wrong):
    from amrlearn.svm._active_set import solve_hard_margin_active_set

    X, y01 = _separable(n=shape[0], d=shape[1], seed=11)
    y, (w_ref, b_ref, alpha_ref) = _clarabel_reference(X, y01)
    support = alpha_ref > 1e-6 * alpha_ref.max()
    guess = support.copy()
    if wrong:
        guess[np.flatnonzero(support)[0]] = False  # a support vector missed...
        guess[np.flatnonzero(~support)[:2]] = True  # ...and two samples that are not
    else:
        assert support.sum() == shape[1] + 1
    w, b, alpha = solve_hard_margin_active_set(X, y, guess)
    assert_allclose(w, w_ref, rtol=0, atol=1e-8 * np.linalg.norm(w_ref))
    assert_allclose(b, b_ref, rtol=0, atol=1e-8 * max(1.0, abs(b_ref)))
    assert_allclose(alpha, alpha_ref, rtol=0, atol=1e-7 * alpha_ref.max())
    assert_array_equal(alpha > 0, support)
    assert (y * (X @ w + b)).min() >= 1 - 1e-9


@pytest.mark.parametrize("with_gram", [False, True])
def test_kkt_system_around_a_factorization_equals_a_fresh_one(with_gram):
    # An active set near the factorized one (2 removed, 3 added) is solved by a Schur
    # complement around the first factorization; the answer is the fresh solve's.
    from amrlearn.svm._active_set import _KKTSystems

    rng = np.random.RandomState(16)
    Z = rng.randn(60, 80)
    y = np.where(rng.rand(60) > 0.5, 1.0, -1.0)
    gram = Z @ Z.T if with_gram else None
    first = np.arange(0, 50)
    near = np.union1d(np.setdiff1d(first, [4, 30]), [52, 55, 59])
    systems = _KKTSystems(Z, y, gram)
    systems.solve(first)
    lam, b, updated = systems.solve(near)
    assert updated
    lam_ref, b_ref, updated = _KKTSystems(Z, y, gram).solve(near)
    assert not updated
    assert_allclose(lam, lam_ref, rtol=1e-8, atol=1e-10 * np.abs(lam_ref).max())
    assert_allclose(b, b_ref, rtol=1e-8, atol=1e-10)
    K = Z[near] @ Z[near].T
    assert_allclose(K @ lam + y[near] * b, 1.0, atol=1e-8)
    assert abs(y[near] @ lam) < 1e-8 * np.abs(lam).sum()


def test_active_set_gives_up():
    from amrlearn.svm._active_set import solve_hard_margin_active_set

    X, y01 = _separable(n=40, d=3, seed=12)
    y = np.where(y01 == 1, 1.0, -1.0)
    everything = np.ones(len(y), dtype=bool)  # more than n_features + 1 active: singular
    assert solve_hard_margin_active_set(X, y, everything) is None
    assert solve_hard_margin_active_set(X, y, ~everything) is None  # nothing active
    # The same point with both labels: the KKT system is singular.
    X2, y2 = np.vstack([X, X[:1]]), np.append(y, -y[0])
    guess = np.zeros(len(y2), dtype=bool)
    guess[[0, len(y2) - 1]] = True
    assert solve_hard_margin_active_set(X2, y2, guess) is None


@pytest.mark.parametrize("sparse", [False, True])
def test_kernel_cache_follows_the_working_sets(sparse):
    import scipy.sparse as sp

    from amrlearn.svm._ipm import KernelCache

    rng = np.random.RandomState(15)
    X = rng.randn(40, 7)
    y = np.where(rng.rand(40) > 0.5, 1.0, -1.0)
    Z = X * y[:, None]
    cache = KernelCache(sp.csr_matrix(X) if sparse else X, y)
    # grow, drop some and add others, start over
    for rows in ([3, 5, 8], [3, 4, 5, 8, 20], [0, 4, 8, 20, 39], [1, 2]):
        rows = np.array(rows)
        assert_allclose(cache(rows), Z[rows] @ Z[rows].T, rtol=1e-12, atol=1e-12)
    cache.clear()
    assert_allclose(cache(np.arange(40)), Z @ Z.T, rtol=1e-12, atol=1e-12)


def test_working_set_rounds_use_the_active_set(monkeypatch):
    # More features than samples: only the first round needs the interior-point method;
    # every later one is solved from the guessed support, and the result is Clarabel's.
    import amrlearn.svm._qp as qp

    calls = []
    original = qp.solve_hard_margin_ipm

    def spy(X, y, **kwargs):
        calls.append(X.shape)
        return original(X, y, **kwargs)

    monkeypatch.setattr(qp, "solve_hard_margin_ipm", spy)
    X, y01 = _separable(n=120, d=150, seed=13)
    clf = HardMarginSVC(chunk_size=10).fit(X, y01)
    assert clf.n_iter_ > 2 and len(calls) == 1
    _, (w_ref, b_ref, _) = _clarabel_reference(X, y01)
    assert_allclose(clf.coef_[0], w_ref, rtol=0, atol=1e-8 * np.linalg.norm(w_ref))
    assert_allclose(clf.intercept_[0], b_ref, rtol=0, atol=1e-8 * max(1.0, abs(b_ref)))
    _check_kkt(clf, X, y01, rtol=1e-9)


@pytest.mark.parametrize("working_set", [True, False])
def test_not_separable_raises_with_more_features_than_samples(working_set):
    X, y = _separable(n=60, d=80, seed=14)
    X = np.vstack([X, X[:1]])
    y = np.concatenate([y, 1 - y[:1]])
    with pytest.raises(ValueError, match="not linearly separable.*61 samples.*CLARABEL"):
        HardMarginSVC(working_set=working_set, chunk_size=10).fit(X, y)


def test_margin_equals_min_linear_margin():
    X, y = _separable(n=200, d=4, seed=3)
    clf = HardMarginSVC(chunk_size=20).fit(X, y)
    margins = linear_margins(clf, X, y)
    assert margins.min() > 0
    assert_allclose(clf.margin_, margins.min(), rtol=1e-6)
    assert_allclose(margins[clf.support_], clf.margin_, rtol=1e-5)


def test_hard_margin_beats_soft_margin_min_margin():
    # The hard-margin SVM has the largest minimum margin of all linear classifiers.
    from sklearn.linear_model import LogisticRegression

    X, y = _separable(n=200, d=4, seed=4)
    clf = HardMarginSVC().fit(X, y)
    other = LogisticRegression().fit(X, y)
    assert linear_margins(other, X, y).min() < clf.margin_


@pytest.mark.parametrize("working_set", [True, False])
def test_not_separable_raises(working_set):
    X, y = _separable(n=200, d=3, seed=5)
    X = np.vstack([X, X[:1]])
    y = np.concatenate([y, 1 - y[:1]])  # the same point with both labels
    clf = HardMarginSVC(working_set=working_set, chunk_size=10)
    with pytest.raises(ValueError, match="not linearly separable") as err:
        clf.fit(X, y)
    # The message gives the size of the data, not that of the working set (issue 9).
    assert "201 samples" in str(err.value), str(err.value)


def test_not_separable_xor_raises():
    X = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    with pytest.raises(ValueError, match="not linearly separable"):
        HardMarginSVC().fit(X, [0, 0, 1, 1])


def test_other_solver_status_raises_naming_it():
    X, y = _separable(n=60, d=3)
    clf = HardMarginSVC(solver="CLARABEL", solver_options={"max_iter": 2}, working_set=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # cvxpy's "may be inaccurate"
        with pytest.raises(RuntimeError, match="status 'user_limit'"):
            clf.fit(X, y)


def test_max_rounds_warns():
    X, y = _separable(n=300, d=5)
    with pytest.warns(ConvergenceWarning, match="not certified"):
        clf = HardMarginSVC(chunk_size=4, max_rounds=1).fit(X, y)
    assert clf.n_iter_ == 1


def test_multiclass_raises():
    X = np.arange(12.0).reshape(6, 2)
    with pytest.raises(ValueError, match="Only binary classification is supported"):
        HardMarginSVC().fit(X, [0, 0, 1, 1, 2, 2])
    assert HardMarginSVC().__sklearn_tags__().classifier_tags.multi_class is False


def test_one_class_raises():
    with pytest.raises(ValueError, match="number of classes has to be greater than one"):
        HardMarginSVC().fit(np.eye(3), [1, 1, 1])


def test_string_labels():
    X, y = _separable(n=80, d=3)
    labels = np.array(["neg", "pos"])[y]
    clf = HardMarginSVC().fit(X, labels)
    assert_array_equal(clf.classes_, ["neg", "pos"])
    assert_array_equal(clf.predict(X), labels)
    assert np.all((clf.decision_function(X) > 0) == (labels == "pos"))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_inf_raise(bad):
    X, y = _separable(n=40, d=3)
    clf = HardMarginSVC().fit(X, y)
    Xbad = X.copy()
    Xbad[0, 0] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        HardMarginSVC().fit(Xbad, y)
    with pytest.raises(ValueError, match="NaN|infinity"):
        clf.predict(Xbad)


def test_wrong_feature_count_at_predict():
    X, y = _separable(n=40, d=3)
    clf = HardMarginSVC().fit(X, y)
    assert clf.n_features_in_ == 3
    with pytest.raises(ValueError, match="X has 2 features, but HardMarginSVC is expecting 3"):
        clf.predict(X[:, :2])


def test_separable_versions_of_the_xfailed_checks():
    # tests/test_common.py lists checks that fail only because their data are not
    # separable; their behaviours, on separable data:
    X, y = _separable(n=60, d=3)
    a = HardMarginSVC().fit(X.astype(np.float32), y)
    b = HardMarginSVC().fit(X.tolist(), y.tolist())  # lists, not arrays
    assert_allclose(a.coef_, b.coef_, rtol=1e-5)  # float32 input works; idempotent fit
    assert_allclose(b.fit(X, y).coef_, HardMarginSVC().fit(X, y).coef_)
    with pytest.warns(DataConversionWarning):
        HardMarginSVC().fit(X, y[:, None])
    Xi = np.rint(10 * X).astype(np.int64)
    yi = (Xi @ np.ones(3) > 0).astype(int)
    Xi, yi = Xi[Xi.sum(1) != 0], yi[Xi.sum(1) != 0]
    assert_array_equal(HardMarginSVC().fit(Xi, yi).predict(Xi), yi)


def test_invalid_params():
    X, y = _separable(n=20, d=2)
    with pytest.raises(InvalidParameterError, match="solver"):
        HardMarginSVC(solver="NOT_A_SOLVER").fit(X, y)
    with pytest.raises(InvalidParameterError, match="tol"):
        HardMarginSVC(tol=-1.0).fit(X, y)


def test_verbose_prints_rounds(capsys):
    X, y = _separable(n=200, d=4)
    HardMarginSVC(chunk_size=10, verbose=2).fit(X, y)
    assert "round 1: working set" in capsys.readouterr().out


def test_pickle_and_clone():
    X, y = _separable(n=100, d=3)
    clf = HardMarginSVC(chunk_size=12, tol=1e-7).fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    assert_array_equal(again.predict(X), clf.predict(X))
    assert_array_equal(again.coef_, clf.coef_)
    fresh = clone(clf)
    assert fresh.get_params() == clf.get_params()
    assert not hasattr(fresh, "coef_")


def test_top_level_export():
    assert amrlearn.HardMarginSVC is HardMarginSVC


@pytest.fixture(scope="module")
def mnist_01_subset():
    from amrlearn.datasets import load_mnist

    try:
        X, y = load_mnist(subset="train", classes=(0, 1), return_X_y=True)
    except FileNotFoundError as exc:  # DatasetNotFoundError: set AMRLEARN_DATA
        pytest.skip(f"MNIST not available: {exc}")
    rng = np.random.RandomState(0)
    idx = rng.choice(len(y), 2000, replace=False)
    return X[idx], y[idx]


def test_matches_libsvm_on_mnist_subset(mnist_01_subset):
    X, y = mnist_01_subset
    clf = HardMarginSVC().fit(X, y)
    ref = SVC(kernel="linear", C=1e6).fit(X, y)
    assert np.all(np.abs(ref.dual_coef_) < 1e6)  # libsvm's box is inactive: a hard margin
    w, w_ref = clf.coef_[0], ref.coef_[0]
    assert w @ w_ref / (np.linalg.norm(w) * np.linalg.norm(w_ref)) >= 0.9999
    assert_array_equal(clf.support_, np.sort(ref.support_))
    # libsvm's duals are only as exact as its tol=1e-3; ours are checked by the KKT below.
    ref_dual = ref.dual_coef_[0][np.argsort(ref.support_)]
    assert_array_equal(np.sign(clf.dual_coef_[0]), np.sign(ref_dual))
    assert np.abs(clf.dual_coef_[0] - ref_dual).sum() <= 0.02 * np.abs(ref_dual).sum()
    _check_kkt(clf, X.astype(np.float64), y, rtol=1e-5)

    report = margin_report(clf, X, y)
    assert report["accuracy"] == 1.0
    assert_allclose(report["min_margin"], clf.margin_, rtol=1e-6)
    assert report["avg_margin"] > report["min_margin"] > 0


def test_installed_solvers_is_not_called_at_import():
    # Issue 10: asking cvxpy for its installed solvers probes every solver; do it in fit.
    import subprocess
    import sys

    code = (
        "import cvxpy as cp\n"
        "calls = []\n"
        "original = cp.installed_solvers\n"
        "cp.installed_solvers = lambda: calls.append(1) or original()\n"
        "import amrlearn.svm\n"
        "assert not calls, 'installed_solvers() ran at import'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
