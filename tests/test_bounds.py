"""Tests of the input-space margin bounds: Theorem 3 and margin_bounds / margin_report."""

import numpy as np
import pytest
import torch
from _nets import train, trained_cnn
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC
from sklearn.utils._param_validation import InvalidParameterError

from amrlearn.metrics import (
    linear_margins,
    lipschitz_margin_bound,
    margin_bounds,
    margin_report,
    sample_margins,
)
from amrlearn.metrics._bounds import _local_lipschitz
from amrlearn.utils import as_logit_fn

BUDGET = {"radius": 5.0, "n_batches": 1, "batch_size": 256, "attack_steps": 100}


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32)[:500], y[:500].astype(np.int64)


@pytest.fixture(scope="module")
def mlp(digits):
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)
    )
    return train(net, *digits).eval()


@pytest.fixture(scope="module")
def cnn(digits):
    return trained_cnn(*digits)


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
    np.testing.assert_array_equal(res["y_pred"], clf.predict(X))
    # The linear bound is not capped at the radius: it holds for every r.
    assert np.abs(exact).max() > 0.5
    small_r = lipschitz_margin_bound(clf, X, radius=0.5)
    np.testing.assert_allclose(small_r, np.abs(exact), rtol=1e-5, atol=1e-5)


def test_single_linear_module_is_exact_on_images(digits):
    X, y = digits
    torch.manual_seed(0)
    net = train(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)), X, y).eval()
    Xi = X.reshape(-1, 1, 8, 8)
    res = margin_bounds(net, Xi, y, **BUDGET)
    assert res["exact"] is not None
    np.testing.assert_allclose(res["lower"], res["exact"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(res["upper"], res["exact"], rtol=1e-5, atol=1e-5)
    # With an explicit attack, DDN's distance bounds the exact margin from above.
    from amrlearn.attacks import DDN

    res2 = margin_bounds(net, Xi[:20], y[:20], attack=DDN(steps=50, clip=None), **BUDGET)
    assert np.all(np.abs(res2["upper"]) >= np.abs(res2["exact"]) - 1e-5)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_lower_below_upper_on_trained_nets(request, digits, name):
    net = request.getfixturevalue(name)
    X, y = digits
    X = X[:40] if name == "mlp" else X[:20].reshape(-1, 1, 8, 8)
    y = y[: len(X)]
    res = margin_bounds(net, X, y, **{**BUDGET, "batch_size": 64, "attack_steps": 50})
    assert res["exact"] is None
    lo, up = np.abs(res["lower"]), np.abs(res["upper"])
    assert np.all(np.isfinite(up))
    assert np.all(lo <= up * (1 + 1e-6))
    assert np.all(lo <= BUDGET["radius"]) and np.all(lo > 0)
    # Signed by correctness: both bounds share the sign of (prediction == y).
    correct = res["y_pred"] == y
    assert np.all((res["lower"] > 0) == correct) and np.all((res["upper"] > 0) == correct)
    # The bound alone (no attack points) is no larger than with them... and not zero.
    alone = lipschitz_margin_bound(net, X, radius=5.0, n_batches=1, batch_size=64)
    assert np.all(alone >= lo - 1e-9) and np.all(alone > 0)


def test_jacobian_gives_every_class_gradient(cnn, digits):
    """With one point per sample (the centre), L_k is ||grad (f_yhat - f_k)(x)||, as
    autograd computes it class by class."""
    X, _ = digits
    x = torch.from_numpy(X[:6].reshape(-1, 1, 8, 8))
    fn = as_logit_fn(cnn)
    with torch.no_grad():
        pred = fn(x).argmax(1)
    L = _local_lipschitz(
        fn, x, pred, radius=1.0, n_samples=1, batch_size=4, clip=None,
        generator=torch.Generator().manual_seed(0), verbose=0,
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


def test_margin_report_on_nets(mlp, digits):
    X, y = digits
    X, y = X[:80], y[:80]
    rep = margin_report(mlp, X, y, bound_params={"n_batches": 1, "batch_size": 64})
    for key in ("accuracy", "min_margin", "avg_margin", "avg_margin_upper"):
        assert np.isfinite(rep[key])
    with torch.no_grad():
        acc = (mlp(torch.from_numpy(X)).argmax(1).numpy() == y).mean()
    assert rep["accuracy"] == pytest.approx(acc)
    assert rep["avg_margin"] <= rep["avg_margin_upper"]
    res = sample_margins(mlp, X, y)  # the cheap default budget
    assert res["method"] == "lipschitz_lower_bound"


def test_skorch_net_bounds(digits):
    skorch = pytest.importorskip("skorch")
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
    res = margin_bounds(net, X[:20], y[:20], **{**BUDGET, "batch_size": 64, "attack_steps": 30})
    np.testing.assert_array_equal(res["y_pred"], net.predict(X[:20]))
    assert np.all(np.abs(res["lower"]) <= np.abs(res["upper"]) + 1e-6)


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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda(mlp, digits):
    X, y = digits
    kw = {"radius": 5.0, "n_batches": 2, "batch_size": 256}
    cpu = lipschitz_margin_bound(mlp, X[:50], **kw)
    net = torch.nn.Sequential(*[m for m in mlp]).to("cuda")
    import copy

    net = copy.deepcopy(mlp).to("cuda")
    gpu = lipschitz_margin_bound(net, X[:50], **kw)
    assert np.all(np.isfinite(gpu)) and gpu.shape == cpu.shape
    # Same model, different random draws per device: estimates agree loosely.
    np.testing.assert_allclose(gpu, cpu, rtol=0.2)
    res = margin_bounds(net, X[:50], y[:50], **{**kw, "attack_steps": 50})
    assert np.all(np.abs(res["lower"]) <= np.abs(res["upper"]) + 1e-6)
