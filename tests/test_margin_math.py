"""Eq. (6)/(14) in one module: numpy and torch forms, equal weight rows, gradients."""

import numpy as np
import pytest
import torch

from amrlearn._math._margin import (
    pair_distances,
    pair_distances_torch,
    signed_margins,
    signed_margins_torch,
)
from amrlearn.linear_model._multinomial import multiclass_margins
from amrlearn.metrics import linear_margins, margins_from_scores


def _problem(seed, n=30, K=5, d=7):
    rng = np.random.default_rng(seed)
    W, b = rng.normal(size=(K, d)), rng.normal(size=K)
    X, y = rng.normal(size=(n, d)), rng.integers(0, K, n)
    return W, b, X, y


@pytest.mark.parametrize("seed", range(3))
def test_numpy_and_torch_forms_agree(seed):
    W, b, X, y = _problem(seed)
    S = X @ W.T + b
    for ref in (y, S.argmax(1)):
        m, k = signed_margins(S, pair_distances(W), ref)
        mt, kt = signed_margins_torch(
            torch.tensor(S), pair_distances_torch(torch.tensor(W)), torch.tensor(ref)
        )
        np.testing.assert_allclose(mt.numpy(), m, rtol=1e-12, atol=0)
        np.testing.assert_array_equal(kt.numpy(), k)
    # Brute force for the true classes: the hyperplane f_y = f_k nearest, k != y.
    m = signed_margins(S, pair_distances(W), y)[0]
    brute = [
        min((S[i, c] - S[i, j]) / np.linalg.norm(W[c] - W[j]) for j in range(5) if j != c)
        for i, c in enumerate(y)
    ]
    np.testing.assert_allclose(m, brute, rtol=1e-12)


def _equal_rows_case():
    # Class 1 copies class 0 with a higher bias; class 3 copies class 2 exactly.
    W = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    b = np.array([0.0, 1.0, 0.0, 0.0])
    X = np.array([[3.0, 1.0], [0.0, 5.0], [0.5, 0.4]])
    return W, b, X


def test_equal_weight_rows_follow_the_documented_rule():
    W, b, X = _equal_rows_case()
    S = X @ W.T + b
    dist = pair_distances(W)
    assert dist[0, 1] == 0 and dist[2, 3] == 0
    # Reference 0: class 1 beats it everywhere, so 0 wins nowhere: -inf.
    m, k = signed_margins(S, dist, np.array([0, 0, 0]))
    np.testing.assert_array_equal(m, [-np.inf] * 3)
    np.testing.assert_array_equal(k, [1, 1, 1])
    # Reference 1: class 0 never beats it (left out); the nearest of classes 2 and 3,
    # which are identical to each other, decides. Reference 2: its twin 3 is left out.
    m1, _ = signed_margins(S, dist, np.array([1, 1, 1]))
    m2, k2 = signed_margins(S, dist, np.array([2, 2, 2]))
    expect1 = (S[:, 1] - S[:, 2]) / np.sqrt(2.0)
    np.testing.assert_allclose(m1, expect1, rtol=1e-15)
    np.testing.assert_allclose(m2, -expect1, rtol=1e-15)
    np.testing.assert_array_equal(k2, [1, 1, 1])
    # The torch form gives the same, with finite gradients.
    Wt = torch.tensor(W, requires_grad=True)
    St = torch.tensor(X) @ Wt.T + torch.tensor(b)
    out = [
        signed_margins_torch(St, pair_distances_torch(Wt), torch.full((3,), c))[0]
        for c in (0, 1, 2)
    ]
    for mt, mn in zip(out, (m, m1, m2), strict=True):
        np.testing.assert_allclose(mt.detach().numpy(), mn, rtol=1e-12)
    torch.stack([o.clamp(-5, 5) for o in out]).sum().backward()
    assert torch.isfinite(Wt.grad).all()


def test_no_competitor_gives_plus_inf_in_both_forms():
    W = np.ones((3, 2))
    S = np.array([[2.0, 1.0, 1.0]])
    assert signed_margins(S, pair_distances(W), [0])[0][0] == np.inf
    mt = signed_margins_torch(
        torch.tensor(S), pair_distances_torch(torch.tensor(W)), torch.tensor([0])
    )
    assert mt[0].item() == np.inf


def test_multinomial_margin_is_minus_inf_where_the_class_wins_nowhere():
    # Fails before the one margin module: the Gram form of ||w_y - w_k|| met the equal
    # rows as a tiny or zero distance, and a sample whose class can never win got a
    # positive or a finite margin.
    W, b, X = _equal_rows_case()
    m = multiclass_margins(W, b, X, np.array([0, 0, 0]))
    np.testing.assert_array_equal(m, [-np.inf] * 3)
    # Identical classes 2 and 3: the twin is left out, not a margin of 0.
    assert np.all(multiclass_margins(W, b, X, np.array([2, 2, 2])) != 0)


def test_linear_metric_and_multinomial_share_the_margin():
    W, b, X, y = _problem(4)
    S = X @ W.T + b
    pred = S.argmax(1)
    dist, _ = margins_from_scores(S, W, y)
    np.testing.assert_array_equal(np.abs(dist), multiclass_margins(W, b, X, pred))
    correct = pred == y
    np.testing.assert_array_equal(dist[correct], multiclass_margins(W, b, X, y)[correct])
    # Equal rows in a fitted model: the twin that never wins is left out.
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression().fit(X, y)
    clf.coef_[1], clf.intercept_[1] = clf.coef_[0], clf.intercept_[0] - 1.0
    assert np.all(np.isfinite(linear_margins(clf, X, y)))


def test_torch_form_gradient_matches_finite_differences():
    W, b, X, y = _problem(5, n=6, K=4, d=3)
    phi = torch.tensor(X, requires_grad=True)
    Wt = torch.tensor(W, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    yt = torch.tensor(y)

    def margins(phi, Wt, bt):
        return signed_margins_torch(phi @ Wt.T + bt, pair_distances_torch(Wt), yt)[0]

    assert torch.autograd.gradcheck(margins, (phi, Wt, bt))


def _equal_rows_problem(dtype, seed, equal_rows):
    """Features, weights, biases, labels, and the columns that make the logits.

    With ``equal_rows``: ``w_1 = w_2`` and ``b_1 = b_2`` (the logit gap is exactly 0:
    ``+inf`` by the equal-rows rule, left out of the minimum), ``w_3 = w_7`` with
    ``b_3 < b_7`` (class 3 wins nowhere: ``-inf``); the logits' column 2 is column 1, so
    that the gap is 0 to the bit. The first ten samples lie far along ``w_1`` with label 1,
    so that class 1 wins there with class 2 its exact tie (excluded from the minimum).
    """
    g = torch.Generator().manual_seed(seed)
    phi = torch.randn(128, 16, generator=g, dtype=dtype)
    W = torch.randn(10, 16, generator=g, dtype=dtype)
    b = torch.randn(10, generator=g, dtype=dtype)
    y = torch.randint(0, 10, (128,), generator=g)
    cols = list(range(10))
    if equal_rows:
        W[2], b[2], cols[2] = W[1], b[1], 1
        W[7], b[7] = W[3], b[3] + 1.0
        phi[:10] += 8 * W[1]
        y[:30] = torch.tensor([1] * 10 + [2, 3, 7, 3, 7] * 4)
        # no label 2 where the tie 1 = 2 is on top (the subgradient there is documented
        # to differ)
        top = (phi @ W.T + b).argmax(1)
        y[(y == 2) & ((top == 1) | (top == 2))] = 0
        assert (y == 2).any()
    return phi, W, b, y, cols


@pytest.mark.parametrize("equal_rows", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("normalize", [True, False])
def test_torch_form_equals_the_feature_margin_of_the_nets(dtype, normalize, equal_rows):
    from amrlearn.neural._penalties import feature_margin

    phi, W, b, y, _ = _equal_rows_problem(dtype, 0, equal_rows)
    dist = pair_distances_torch(W) if normalize else None
    for ref in (y, None):
        expected = feature_margin(phi, W, b, ref, normalize=normalize)
        ref = (phi @ W.T + b).argmax(1) if ref is None else ref
        got = signed_margins_torch(phi @ W.T + b, dist, ref)[0]
        assert torch.equal(got, expected)
    if equal_rows and normalize:  # the rule of the module docstring, not a clamp
        m = feature_margin(phi, W, b, y)
        assert torch.isinf(m[y == 3]).all() and (m[y == 3] < 0).all()


@pytest.mark.parametrize("equal_rows", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("normalize", [True, False])
def test_autograd_through_torch_form_equals_the_fused_margin_loss(dtype, normalize, equal_rows):
    """Value and gradients (features, weights, biases) of the fused term and of autograd
    through the torch form agree, equal weight rows included."""
    from amrlearn.neural._penalties import amr_margin_loss, amr_margin_term

    phi0, W0, b0, y, cols = _equal_rows_problem(dtype, 1, equal_rows)
    results = []
    for fused in (True, False):
        phi, W, b = (t.clone().requires_grad_(True) for t in (phi0, W0, b0))
        logits = (phi @ W.T + b)[:, cols]
        if fused:
            term = amr_margin_loss(logits, W, y, 0.5, normalize=normalize)
        else:
            dist = pair_distances_torch(W) if normalize else None
            m = signed_margins_torch(logits, dist, y)[0]
            term = amr_margin_term(m, logits.argmax(1) == y, 0.5)
        results.append((term.detach(), *torch.autograd.grad(term, (phi, W, b))))
    if equal_rows and normalize:  # class 1 wins with a finite margin; class 3 nowhere
        m = signed_margins_torch((phi0 @ W0.T + b0)[:, cols], pair_distances_torch(W0), y)[0]
        assert (m[:10] > 0).all() and torch.isfinite(m[:10]).all()
        assert (m[y == 3] == -float("inf")).all()
    tol = {torch.float64: (1e-12, 1e-14), torch.float32: (1e-5, 1e-7)}[dtype]
    for got, expected in zip(*results):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, expected, rtol=tol[0], atol=tol[1])


def test_pure_maths_imports_only_numpy_torch_scipy_and_utils():
    import ast
    from pathlib import Path

    allowed = ("numpy", "torch", "scipy", "amrlearn.utils", "amrlearn._math.")
    root = Path(__file__).resolve().parents[1] / "amrlearn" / "_math"
    found = []
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = "amrlearn" if node.level == 2 else "amrlearn._math" if node.level else ""
                found.append(".".join(p for p in (base, node.module or "") if p))
    bad = [n for n in found if not (n == "amrlearn._math" or n.startswith(allowed))]
    assert found and not bad, bad
