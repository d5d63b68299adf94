"""Tests of the input-space margin bounds: Theorem 3 and margin_bounds / margin_report."""

import copy

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC
from sklearn.utils._param_validation import InvalidParameterError

from amrlearn.attacks import DDN, L2PGD, MinimumNormEnsemble
from amrlearn.metrics import (
    linear_margins,
    lipschitz_margin_bound,
    margin_bounds,
    margin_report,
    margins_from_scores,
    sample_margins,
)
from amrlearn.metrics._bounds import _local_lipschitz
from amrlearn.neural.models import LR
from amrlearn.utils import as_logit_fn, is_affine_module

BUDGET = {"radius": 5.0, "n_batches": 1, "batch_size": 256, "attack_steps": 100}


@pytest.mark.parametrize(
    "make",
    [
        lambda X, y: LogisticRegression(max_iter=500).fit(X, y),  # multiclass
        lambda X, y: LinearSVC().fit(X, y % 2),  # binary: logits [0, w.x + b]
    ],
)
def test_linear_estimators_bounds_are_exact(digits, make):
    X, y = digits
    clf = make(X, y)
    yy = y if len(clf.classes_) > 2 else y % 2
    res = margin_bounds(clf, X, yy, **BUDGET)
    exact = linear_margins(clf, X, yy)
    np.testing.assert_allclose(res["exact"], exact, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(res["lower"], exact, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(res["upper"], exact, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(res["lipschitz"], exact, rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(res["y_pred"], clf.predict(X))
    # The linear bound is not capped at the radius: it holds for every r.
    assert np.abs(exact).max() > 0.5
    small_r = lipschitz_margin_bound(clf, X, radius=0.5)
    np.testing.assert_allclose(small_r, np.abs(exact), rtol=1e-5, atol=1e-5)


def test_single_linear_module_is_exact_on_images(digits, train):
    X, y = digits
    torch.manual_seed(0)
    net = train(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)), X, y).eval()
    Xi = X.reshape(-1, 1, 8, 8)
    res = margin_bounds(net, Xi, y, **BUDGET)
    assert res["exact"] is not None
    np.testing.assert_allclose(res["lower"], res["exact"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(res["upper"], res["exact"], rtol=1e-5, atol=1e-5)
    # With an explicit attack, DDN's distance bounds the exact margin from above.
    res2 = margin_bounds(net, Xi[:20], y[:20], attack=DDN(steps=50, clip=None), **BUDGET)
    assert np.all(np.abs(res2["upper"]) >= np.abs(res2["exact"]) - 1e-5)


def test_jacobian_gives_every_class_gradient(cnn, digits):
    """With one point per sample (the centre), L_k is ||grad (f_yhat - f_k)(x)||, as
    autograd computes it class by class."""
    X, _ = digits
    x = torch.from_numpy(X[:6].reshape(-1, 1, 8, 8))
    fn = as_logit_fn(cnn)
    with torch.no_grad():
        pred = fn(x).argmax(1)
    L = _local_lipschitz(
        fn,
        x,
        pred,
        radius=1.0,
        n_samples=1,
        batch_size=4,
        clip=None,
        generator=torch.Generator().manual_seed(0),
        verbose=0,
    )
    xr = x.clone().requires_grad_(True)
    out = cnn(xr)
    for k in range(10):
        diff = out[torch.arange(6), pred] - out[:, k]
        (g,) = torch.autograd.grad(diff.sum(), xr, retain_graph=True)
        expected = g.flatten(1).norm(dim=1).numpy()
        np.testing.assert_allclose(L[:, k].numpy(), expected, rtol=1e-5, atol=1e-6)


def test_deterministic_under_seed_and_clip(mlp, digits):
    X, _ = digits
    X = X[:30]
    kw = {"radius": 2.0, "n_batches": 2, "batch_size": 64}
    a = lipschitz_margin_bound(mlp, X, random_state=0, **kw)
    b = lipschitz_margin_bound(mlp, X, random_state=0, **kw)
    c = lipschitz_margin_bound(mlp, X, random_state=1, **kw)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    r1 = margin_bounds(mlp, X, random_state=5, **BUDGET)
    r2 = margin_bounds(mlp, X, random_state=5, **BUDGET)
    for key in ("lower", "upper"):
        np.testing.assert_array_equal(r1[key], r2[key])
    # Clipping to the data box changes the sampled set, deterministically too.
    d1 = lipschitz_margin_bound(mlp, X, clip=(0, 1), **kw)
    d2 = lipschitz_margin_bound(mlp, X, clip=(0, 1), **kw)
    np.testing.assert_array_equal(d1, d2)
    assert not np.array_equal(d1, a)
    bounds, y_pred = lipschitz_margin_bound(mlp, X, return_pred=True, **kw)
    assert y_pred.shape == (30,)


def test_bad_input(mlp, digits):
    X, y = digits
    with pytest.raises(InvalidParameterError):
        lipschitz_margin_bound(mlp, X, radius=0.0)
    with pytest.raises(InvalidParameterError):
        margin_bounds(mlp, X, n_batches=0)
    Xn = X[:5].copy()
    Xn[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        lipschitz_margin_bound(mlp, Xn)
    with pytest.raises(ValueError, match="shape"):
        margin_bounds(mlp, X[:5], y[:4])
    with pytest.raises(TypeError, match="MinimizationAttack"):
        margin_bounds(mlp, X[:5], attack="ddn")
    with pytest.raises(ValueError, match="clip"):
        lipschitz_margin_bound(mlp, X[:5], clip=(1.0, 0.0))


def _closed_form(weight, bias, X, y):
    """Eq. (6) in numpy from a module's weights: the independent reference."""
    W = weight.detach().double().numpy()
    b = bias.detach().double().numpy()
    scores = X.reshape(len(X), -1).astype(np.float64) @ W.T + b
    return margins_from_scores(scores, W, y)[0]


def test_affine_modules_take_the_closed_form(digits):
    X, y = digits
    X, y = X[:100], y[:100]
    torch.manual_seed(0)
    lr = LR(64)
    with torch.no_grad():
        lr.last_linear.weight.mul_(5.0)  # margins well inside the radius of the bound
    exact = _closed_form(lr.last_linear.weight, lr.last_linear.bias, X, y)
    assert is_affine_module(lr)
    for Xin in (X, X.reshape(-1, 1, 8, 8)):  # LR takes flat vectors and images
        res = sample_margins(lr, Xin, y)
        assert res["method"] == "exact"
        np.testing.assert_allclose(res["margin"], exact, rtol=1e-6, atol=1e-8)
        b = margin_bounds(lr, Xin, y, **BUDGET)
        np.testing.assert_allclose(b["exact"], exact, rtol=1e-6, atol=1e-8)
        np.testing.assert_array_equal(b["lower"], b["exact"])
        np.testing.assert_array_equal(b["upper"], b["exact"])
    # The bound is not capped at the radius: it is the exact distance.
    np.testing.assert_allclose(
        lipschitz_margin_bound(lr, X, radius=0.01), np.abs(exact), rtol=1e-6, atol=1e-8
    )
    # A Sequential of affine layers composes exactly (two linear maps, dropout, flatten).
    torch.manual_seed(0)
    seq = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.Dropout(0.5), torch.nn.Linear(16, 10)
    )
    W = seq[3].weight @ seq[1].weight
    bias = seq[3].weight @ seq[1].bias + seq[3].bias
    res = sample_margins(seq, X.reshape(-1, 1, 8, 8), y)
    assert res["method"] == "exact"
    np.testing.assert_allclose(res["margin"], _closed_form(W, bias, X, y), rtol=1e-5)


def test_skorch_net_of_an_affine_module_is_exact(digits):
    import skorch

    X, y = digits
    net = skorch.NeuralNetClassifier(LR, module__in_features=64, verbose=0).initialize()
    lin = net.module_.last_linear
    res = sample_margins(net, X[:50], y[:50])
    assert res["method"] == "exact"
    expected = _closed_form(lin.weight, lin.bias, X[:50], y[:50])
    np.testing.assert_allclose(res["margin"], expected, rtol=1e-6, atol=1e-8)


def test_affinity_is_structural_or_declared():
    class OneLinearThenRelu(torch.nn.Module):  # one Linear, but not affine
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 3)

        def forward(self, x):
            return torch.relu(self.lin(x))

    class Liar(OneLinearThenRelu):
        amrlearn_affine = True

    assert not is_affine_module(OneLinearThenRelu())
    assert not is_affine_module(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh()))
    assert is_affine_module(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Identity()))
    X = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    assert margin_bounds(OneLinearThenRelu(), X, upper=False, **BUDGET)["exact"] is None
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="not an affine function"):
        margin_bounds(Liar(), X, upper=False, **BUDGET)


def _with_wrong_labels(y, n_wrong=12):
    y = y.copy()
    y[:n_wrong] = (y[:n_wrong] + 1) % 10
    return y


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_interval_is_ordered_for_every_sample(request, digits, name):
    net = request.getfixturevalue(name)
    X, y = digits
    X = X[:40] if name == "mlp" else X[:20].reshape(-1, 1, 8, 8)
    y = _with_wrong_labels(y[: len(X)], 6)
    kw = {**BUDGET, "batch_size": 64, "attack_steps": 50}
    res = margin_bounds(net, X, y, **kw)
    assert res["exact"] is None
    correct = res["y_pred"] == y
    assert 0 < correct.sum() < len(y)
    assert np.all(res["lower"] <= res["upper"])
    assert np.all((res["lower"] > 0) == correct) and np.all((res["upper"] < 0) == ~correct)
    # The attack's end is the distance that a separate run of the same attack finds.
    _, dist = MinimumNormEnsemble(steps=50, clip=None, random_state=0)(net, X, res["y_pred"])
    np.testing.assert_array_equal(res["upper"][correct], dist[correct])
    np.testing.assert_array_equal(res["lower"][~correct], -dist[~correct])
    # The other end is the Lipschitz bound tightened by the attack: at most the paper's.
    alone = lipschitz_margin_bound(net, X, radius=5.0, n_batches=1, batch_size=64)
    np.testing.assert_array_equal(np.abs(res["lipschitz"]), alone)
    tightened = np.where(correct, res["lower"], -res["upper"])
    assert np.all(tightened <= alone) and np.all(tightened > 0)
    # Without the attack, the ends it would give are the trivial ones.
    half = margin_bounds(net, X, y, upper=False, **kw)
    np.testing.assert_array_equal(half["lipschitz"], res["lipschitz"])
    np.testing.assert_array_equal(half["upper"][correct], np.inf)
    np.testing.assert_array_equal(half["lower"][~correct], -np.inf)
    np.testing.assert_array_equal(half["upper"][~correct], -alone[~correct])
    other = margin_bounds(net, X, y, lower=False, **kw)
    assert other["lipschitz"] is None
    np.testing.assert_array_equal(other["lower"][correct], 0.0)
    np.testing.assert_array_equal(other["upper"][correct], dist[correct])


def test_paper_estimator_below_an_independent_attack(mlp, digits):
    """Theorem 3's estimate, untightened, never exceeds the distance to an adversarial
    point that a separate attack finds (it samples L_k; nothing forces this)."""
    X, y = digits
    X, y = X[:60], y[:60]
    bound, y_pred = lipschitz_margin_bound(
        mlp, X, radius=5.0, n_batches=2, batch_size=256, return_pred=True
    )
    X_adv, dist = DDN(steps=300, clip=None, random_state=1)(mlp, X, y_pred)
    with torch.no_grad():
        assert np.all(mlp(torch.from_numpy(X_adv)).argmax(1).numpy() != y_pred)
    assert np.all(bound <= dist)
    # And PGD finds nothing inside the certified ball of each of a few samples.
    fn = as_logit_fn(mlp)
    idx = torch.from_numpy(y_pred)
    for i in range(0, 60, 6):
        attack = L2PGD(eps=float(bound[i]), steps=100, step_size=bound[i] / 20, clip=None)
        x = torch.from_numpy(X[i : i + 1])
        broken = attack.broken(fn, x, idx[i : i + 1], generator=torch.Generator().manual_seed(0))
        assert not broken.any()
    # A looser estimate (a tiny budget, a huge radius) does exceed the attack: the check
    # above can fail.
    loose = lipschitz_margin_bound(mlp, X, radius=50.0, n_batches=1, batch_size=1)
    assert np.any(loose > dist)


def test_margin_report_on_nets(mlp, digits):
    X, y = digits
    X, y = X[:80], _with_wrong_labels(y[:80])
    params = {"n_batches": 1, "batch_size": 64, "attack_steps": 40}
    rep = margin_report(mlp, X, y, bound_params=params)
    rep_lower_only = margin_report(mlp, X, y, upper=False, bound_params=params)
    # The paper's estimator does not depend on whether the attack ran.
    for key in ("avg_margin", "min_margin", "avg_margin_correct", "median_margin", "q10_margin"):
        assert rep[key] == rep_lower_only[key]
    assert "avg_margin_upper" not in rep_lower_only
    # Each key is the statistic of its recomputation.
    bound, y_pred = lipschitz_margin_bound(
        mlp, X, radius=5.0, n_batches=1, batch_size=64, return_pred=True
    )
    signed = np.where(y_pred == y, bound, -bound)
    assert rep["avg_margin"] == np.abs(signed).mean()
    assert rep["min_margin"] == signed.min()
    assert rep["accuracy"] == np.mean(y_pred == y)
    _, dist = MinimumNormEnsemble(steps=40, clip=None, random_state=0)(mlp, X, y_pred)
    assert rep["avg_margin_upper"] == dist.mean()
    assert rep["avg_margin_lower"] <= rep["avg_margin"] <= rep["avg_margin_upper"]
    res = sample_margins(mlp, X, y)  # the cheap default budget
    assert res["method"] == "lipschitz_lower_bound"
    assert "upper" not in res


def test_skorch_net_bounds(digits):
    import skorch

    X, y = digits
    torch.manual_seed(0)
    net = skorch.NeuralNetClassifier(
        torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)),
        criterion=torch.nn.CrossEntropyLoss,
        max_epochs=5,
        lr=0.5,
        train_split=None,
        verbose=0,
    ).fit(X, y)
    kw = {**BUDGET, "batch_size": 64, "attack_steps": 30}
    res = margin_bounds(net, X[:20], y[:20], **kw)
    np.testing.assert_array_equal(res["y_pred"], net.predict(X[:20]))
    assert np.all(res["lower"] <= res["upper"])
    same = margin_bounds(net.module_, X[:20], y[:20], **kw)
    for key in ("lower", "upper", "lipschitz"):
        np.testing.assert_array_equal(res[key], same[key])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda(mlp, digits):
    X, y = digits
    net = copy.deepcopy(mlp).to("cuda")
    # One point per sample, the centre: no random draw, so CPU and GPU compute the same.
    kw = {"radius": 5.0, "n_batches": 1, "batch_size": 1}
    cpu = lipschitz_margin_bound(mlp, X[:50], **kw)
    gpu = lipschitz_margin_bound(net, X[:50], **kw)
    np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-6)
    res = margin_bounds(net, X[:50], y[:50], **{**kw, "attack_steps": 50})
    assert np.all(res["lower"] <= res["upper"])
    np.testing.assert_allclose(np.abs(res["lipschitz"]), cpu, rtol=1e-4, atol=1e-6)
