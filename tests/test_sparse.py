"""Sparse input (issue 15): CSR and CSC give the dense results, without densifying X."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_digits

from amrlearn.linear_model import AMRLogisticRegression
from amrlearn.metrics import closest_boundary_point, linear_margins, margin_report
from amrlearn.svm import HardMarginSVC

FORMATS = [sp.csr_matrix, sp.csc_matrix, sp.csr_array]


def _sparse_binary(seed=0, n=300, d=40, density=0.2):
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=density, random_state=seed, format="csr")
    w = rng.normal(size=d)
    score = X @ w
    y = (score > np.median(score)).astype(int)
    return X, y


def _sparse_separable(seed=0, n=200, d=30):
    """Separable with a gap: samples within 0.1 of a random hyperplane are dropped."""
    X, _ = _sparse_binary(seed, n=n, d=d)
    w = np.random.default_rng(seed + 1).normal(size=d)
    score = X @ w
    score = score - np.median(score)
    keep = np.abs(score) > 0.1 * np.abs(score).std()
    return X[keep], (score[keep] > 0).astype(int)


def _digits_sparse():
    X, y = load_digits(return_X_y=True)
    X = X[:600] / 16.0
    return sp.csr_matrix(X), y[:600]


def _no_toarray(monkeypatch, n_samples=None, n_features=None):
    """Make densifying X, or a block of ``n_samples`` or more of its rows, fail the test
    (libraries may densify their own small matrices)."""

    def guard(original):
        def refuse(self, *args, **kwargs):
            rows_ok = n_samples is None or self.shape[0] >= n_samples
            if rows_ok and (n_features is None or self.shape[1] == n_features):
                raise AssertionError(f"a sparse matrix of shape {self.shape} was made dense")
            return original(self, *args, **kwargs)

        return refuse

    for cls in (sp.csr_matrix, sp.csc_matrix, sp.csr_array, sp.csc_array):
        for name in ("toarray", "todense"):
            monkeypatch.setattr(cls, name, guard(getattr(cls, name)))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_amr_logistic_binary_sparse_equals_dense(fmt, fit_intercept, monkeypatch):
    X, y = _sparse_binary()
    Xd = X.toarray()
    dense = AMRLogisticRegression(lam=0.3, tau=1.0, fit_intercept=fit_intercept).fit(Xd, y)
    _no_toarray(monkeypatch)
    sparse = AMRLogisticRegression(lam=0.3, tau=1.0, fit_intercept=fit_intercept).fit(fmt(X), y)
    np.testing.assert_allclose(sparse.coef_, dense.coef_, atol=1e-8)
    np.testing.assert_allclose(sparse.intercept_, dense.intercept_, atol=1e-8)
    np.testing.assert_allclose(sparse.objective_path_[-1], dense.objective_path_[-1], atol=1e-10)
    np.testing.assert_allclose(
        sparse.decision_function(fmt(X)), dense.decision_function(Xd), atol=1e-8
    )


@pytest.mark.parametrize("fmt", [sp.csr_matrix, sp.csc_matrix])
def test_amr_logistic_multiclass_sparse_equals_dense(fmt, monkeypatch):
    X, y = _digits_sparse()
    Xd = X.toarray()
    dense = AMRLogisticRegression().fit(Xd, y)
    _no_toarray(monkeypatch)
    sparse = AMRLogisticRegression().fit(fmt(X), y)
    np.testing.assert_allclose(sparse.coef_, dense.coef_, atol=1e-8)
    np.testing.assert_allclose(sparse.intercept_, dense.intercept_, atol=1e-8)
    np.testing.assert_allclose(sparse.predict_proba(fmt(X)), dense.predict_proba(Xd), atol=1e-8)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("working_set", [True, False])
def test_hard_margin_sparse_equals_dense(fmt, working_set, monkeypatch):
    X, y = _sparse_separable()
    params = dict(working_set=working_set, chunk_size=20, solver_options=None)
    dense = HardMarginSVC(**params).fit(X.toarray(), y)
    _no_toarray(monkeypatch, n_samples=20, n_features=X.shape[1])  # working sets >= 20 rows
    sparse = HardMarginSVC(**params).fit(fmt(X), y)
    np.testing.assert_allclose(sparse.coef_, dense.coef_, atol=1e-8, rtol=1e-7)
    np.testing.assert_allclose(sparse.intercept_, dense.intercept_, atol=1e-8, rtol=1e-7)
    assert np.array_equal(sparse.support_, dense.support_)
    assert sp.issparse(sparse.support_vectors_)
    assert sparse.support_vectors_.shape == dense.support_vectors_.shape


@pytest.mark.parametrize("fmt", FORMATS)
def test_margins_sparse_equal_dense(fmt, monkeypatch):
    from sklearn.linear_model import LogisticRegression

    for X, y in (_sparse_binary(), _digits_sparse()):
        clf = LogisticRegression(max_iter=500).fit(X.toarray(), y)
        Xd = X.toarray()
        m_dense = linear_margins(clf, Xd, y)
        r_dense = margin_report(clf, Xd, y)
        b_dense = closest_boundary_point(clf, Xd)
        with monkeypatch.context() as mp:
            _no_toarray(mp)
            m_sparse = linear_margins(clf, fmt(X), y)
            r_sparse = margin_report(clf, fmt(X), y)
            b_sparse = closest_boundary_point(clf, fmt(X))
        np.testing.assert_allclose(m_sparse, m_dense, atol=1e-10)
        assert r_sparse.keys() == r_dense.keys()
        for key in r_dense:
            np.testing.assert_allclose(r_sparse[key], r_dense[key], atol=1e-10)
        # closest_boundary_point returns a dense ndarray for sparse X (documented).
        assert isinstance(b_sparse, np.ndarray) and not sp.issparse(b_sparse)
        np.testing.assert_allclose(b_sparse, b_dense, atol=1e-10)
        np.testing.assert_allclose(np.abs(linear_margins(clf, b_sparse)), 0.0, atol=1e-8)


def test_sparse_input_is_not_copied_to_dense_float64(monkeypatch):
    # float32 CSR is kept as it is by the estimator (the products upcast per call).
    X, y = _sparse_binary()
    X32 = X.astype(np.float32)
    _no_toarray(monkeypatch)
    clf = AMRLogisticRegression(lam=0.1).fit(X32, y)
    assert clf.coef_.dtype == np.float64
    assert clf.score(X32, y) > 0.8


def test_margins_of_a_model_with_sparse_coef():
    # sklearn's SVC fitted on sparse X stores a sparse coef_; its margins are still exact.
    from sklearn.svm import SVC

    X, y = _sparse_separable()
    dense = SVC(kernel="linear", C=1e3).fit(X.toarray(), y)
    sparse = SVC(kernel="linear", C=1e3).fit(X, y)
    assert sp.issparse(sparse.coef_)
    np.testing.assert_allclose(
        linear_margins(sparse, X, y), linear_margins(dense, X.toarray(), y), atol=1e-6
    )
