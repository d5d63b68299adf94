"""Certified margins: provable lower bounds on the l2 distance to the decision boundary.

Every certificate is checked against a distance that is known to be at least the true
one: the closed form (affine models), the nearest point of another class on a dense grid
(2-D inputs), and the closest adversarial point that the minimum-norm attacks find.
"""

import contextlib
import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.nn import functional as F

from amrlearn.attacks import MinimumNormEnsemble
from amrlearn.exceptions import EvaluationWarning
from amrlearn.metrics import certified_margins, layerwise_lipschitz, linear_margins
from amrlearn.metrics._spectral import (
    adjoint_of,
    conv2d_norm_bound,
    gram_iteration_bound,
    positive_map_bound,
    power_iteration,
)
from amrlearn.utils import as_logit_fn

# The attack's distances are verified in float32: allow its rounding, nothing more.
RTOL = 1e-6


def _attack_distances(net, X, steps=40, clip=(0.0, 1.0)):
    fn = as_logit_fn(net)
    with torch.no_grad(), fn.eval_mode():
        pred = fn(torch.as_tensor(X)).argmax(1).numpy()
    attack = MinimumNormEnsemble(steps=steps, clip=clip, random_state=0)
    _, dist = attack(net, X, fn.index_label(pred))
    return pred, dist


def _assert_below(cert, dist):
    cert = np.abs(cert)
    bad = cert > dist * (1 + RTOL) + 1e-7
    assert not bad.any(), f"{bad.sum()} certificates exceed the distance: {cert[bad]} > {dist[bad]}"


# -- exactness on affine models ----------------------------------------------------------


@pytest.mark.parametrize("binary", [False, True])
def test_linear_models_are_certified_exactly(digits, binary):
    X, y = digits
    y = y % 2 if binary else y
    for est in (
        LogisticRegression(max_iter=300).fit(X[:300], y[:300]),
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(X[:300], y[:300]),
    ):
        cert = certified_margins(est, X[300:400], y[300:400])
        np.testing.assert_allclose(cert, linear_margins(est, X[300:400], y[300:400]), rtol=1e-10)
        assert np.any(cert < 0) and np.any(cert > 0)


def test_affine_module_is_certified_exactly(digits, train):
    X, y = digits
    torch.manual_seed(0)
    lin = train(nn.Linear(64, 10), X, y, steps=30).eval()
    cert = certified_margins(nn.Sequential(nn.Flatten(), lin), X[:50].reshape(-1, 1, 8, 8), y[:50])
    est = LogisticRegression()
    est.coef_, est.intercept_ = (
        lin.weight.detach().double().numpy(),
        lin.bias.detach().double().numpy(),
    )
    est.classes_ = np.arange(10)
    np.testing.assert_allclose(cert, linear_margins(est, X[:50], y[:50]), rtol=1e-5, atol=1e-6)


def test_tight_where_the_relu_net_is_affine_around_the_points():
    """All ReLUs on: the global bound is the exact pairwise one, so the certificate is the
    exact distance; any loss of tightness beyond the documented 1e-6 would show."""
    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(2, 2))
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 3))
    with torch.no_grad():
        net[0].weight.copy_(q)
        net[0].bias.fill_(50.0)  # active on the whole region the boundary lies in
    X = np.random.default_rng(0).uniform(-2, 2, size=(100, 2)).astype(np.float32)
    with torch.no_grad():
        W2, b2 = net[2].weight.double(), net[2].bias.double()
        W = (W2 @ q.double()).numpy()
        b = (W2 @ net[0].bias.double() + b2).numpy()
    exact = np.full(len(X), np.inf)
    scores = X.astype(np.float64) @ W.T + b
    pred = scores.argmax(1)
    for k in range(3):
        w = W[pred] - W[k]
        d = (scores[np.arange(len(X)), pred] - scores[:, k]) / np.linalg.norm(w, axis=1).clip(
            1e-300
        )
        exact = np.where(pred == k, exact, np.minimum(exact, d))
    cert = certified_margins(net, X)
    assert np.all(cert <= exact * (1 + 1e-9))
    np.testing.assert_allclose(cert, exact, rtol=1e-5, atol=1e-5)


# -- against the exact distance on 2-D inputs ---------------------------------------------


def _small_nets():
    torch.manual_seed(1)
    plain = nn.Sequential(
        nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)
    )
    bn = nn.Sequential(nn.Linear(2, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Linear(12, 4))
    with torch.no_grad():
        bn[1].running_mean.uniform_(-1, 1)
        bn[1].running_var.uniform_(0.05, 2.0)
        bn[1].weight.uniform_(-2, 2)
    images = nn.Sequential(  # 2 inputs seen as a 1 x 1 x 2 image
        nn.Unflatten(1, (1, 1, 2)), nn.Conv2d(1, 6, (1, 2)), nn.ReLU(), nn.Flatten(),
        nn.Linear(6, 3),
    )  # fmt: skip
    return [plain, bn, images]


@pytest.mark.parametrize("net", _small_nets(), ids=["mlp", "batchnorm", "conv"])
def test_never_exceeds_the_exact_distance_on_a_dense_grid(net):
    """A grid point of another class is at least as far as the boundary, so its distance
    bounds the true one from above: every certificate must stay below it."""
    net.eval()
    t = np.linspace(-3, 3, 301, dtype=np.float32)
    grid = np.stack(np.meshgrid(t, t), -1).reshape(-1, 2)
    X = np.random.default_rng(0).uniform(-2, 2, size=(100, 2)).astype(np.float32)
    with torch.no_grad():
        g_pred = net(torch.from_numpy(grid)).argmax(1).numpy()
        pred = net(torch.from_numpy(X)).argmax(1).numpy()
    d = np.linalg.norm(X[:, None, :] - grid[None], axis=2)
    upper = np.where(g_pred[None] != pred[:, None], d, np.inf).min(axis=1)
    cert = certified_margins(net, X)
    assert np.all(cert >= 0) and np.all(cert <= upper)
    assert np.median(cert / upper) > 0.01  # and not trivially small


# -- against attacks on trained nets --------------------------------------------------------


def _conv_net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 20, 3, padding=1), nn.ReLU(),
        nn.Conv2d(20, 20, 3, padding=1), nn.BatchNorm2d(20), nn.ReLU(),  # 1280 -> FFT bound
        nn.MaxPool2d(2),
        nn.Conv2d(20, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Dropout(0.1), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10),
    )  # fmt: skip


def test_never_exceeds_the_attack_on_trained_nets(digits, mlp, bn_mlp, train):
    X, y = digits
    conv = train(_conv_net(), X[:300], y[:300], steps=40)
    for net in (mlp, bn_mlp, conv):
        was = net.training
        cert, lip = certified_margins(net, X[:40], y[:40], return_lipschitz=True)
        assert net.training == was  # the mode is restored
        pred, dist = _attack_distances(net, X[:40], steps=30)
        assert np.all((cert > 0) == (pred == y[:40]))
        _assert_below(cert, dist)
        assert np.median(np.abs(cert)) > 1e-3
    methods = " ".join(f["method"] for f in lip["factors"])  # the conv net's
    assert "circular convolution" in methods and "exact" in methods


@pytest.mark.parametrize("name", ["MLP", "LeNetSmall", "LeNet", "CNN", "ConvNet"])
def test_zoo_models_are_read_and_bounded(name):
    from amrlearn.neural import models

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    if name == "ConvNet":
        net, X, shape = models.ConvNet(), rng.uniform(size=(4, 3072)), (3, 32, 32)
    else:
        net = models.MLP(784, hidden=32) if name == "MLP" else getattr(models, name)()
        X, shape = rng.uniform(size=(3 if name == "CNN" else 6, 784)), (1, 28, 28)
    X = X.astype(np.float32)
    cert = certified_margins(net, X)
    pred, dist = _attack_distances(net, X, steps=5)
    assert np.all(cert > 0)
    _assert_below(cert, dist)
    if name in ("LeNetSmall", "ConvNet"):  # flat and image input alike
        np.testing.assert_allclose(certified_margins(net, X.reshape(-1, *shape)), cert)


def test_fitted_net_and_its_labels(digits):
    from amrlearn.neural import AMRNeuralNetClassifier
    from amrlearn.neural.models import MLP

    X, y = digits
    labels = np.array(list("abcdefghij"))[y]
    net = AMRNeuralNetClassifier(
        MLP, module__in_features=64, module__hidden=32, lam=0.0, max_epochs=5, lr=0.5,
        random_state=0, verbose=0,
    ).fit(X, labels)  # fmt: skip
    cert = certified_margins(net, X[:40], labels[:40])
    right = net.predict(X[:40]) == labels[:40]
    assert np.all((cert > 0) == right) and right.mean() > 0.5
    np.testing.assert_allclose(np.abs(cert), certified_margins(net.module_, X[:40]))
    pipe = make_pipeline(StandardScaler(), net).fit(X, labels)
    cert = certified_margins(pipe, X[:40], labels[:40])
    pred, dist = _attack_distances(pipe, X[:40])
    assert np.all((cert > 0) == (pipe.predict(X[:40]) == labels[:40]))
    _assert_below(cert, dist)


# -- the bounds themselves ---------------------------------------------------------------


def _matrix_norm(lin, shape):
    """The norm of a linear map from its full matrix (small shapes only)."""
    d = int(np.prod(shape))
    M = lin(torch.eye(d, dtype=torch.float64).reshape(d, *shape)).reshape(d, -1)
    return float(torch.linalg.matrix_norm(M, ord=2))


def _conv_matrix_norm(W, shape, **args):
    return _matrix_norm(lambda x: F.conv2d(x, W, None, **args), shape)


@pytest.mark.parametrize(
    "c_in, c_out, k, n, args",
    [
        (3, 4, 3, 7, dict(padding=1)),
        (2, 3, 3, 9, dict(stride=2, padding=1)),
        (2, 2, 3, 8, dict(dilation=2, padding=2)),
        (4, 6, 2, 6, dict(groups=2)),
        (1, 5, 4, 10, dict(stride=(2, 3), padding=(1, 0))),
        (3, 3, 1, 5, dict()),
    ],
)
def test_conv_bound_is_above_the_exact_norm_and_power_iteration(c_in, c_out, k, n, args):
    torch.manual_seed(0)
    groups = args.get("groups", 1)
    W = torch.randn(c_out, c_in // groups, k, k, dtype=torch.float64)
    shape = (c_in, n, n)
    exact = _conv_matrix_norm(W, shape, **args)

    def lin(x):
        return F.conv2d(x, W, None, **args)

    power = power_iteration(lin, adjoint_of(lin, shape), shape)
    kw = {key: args.get(key, 1) for key in ("stride", "dilation", "groups")}
    eig, _ = conv2d_norm_bound(W, shape, **kw)
    gram, _ = conv2d_norm_bound(W, shape, method="gram", **kw)
    assert power <= exact * (1 + 1e-9)
    assert exact <= eig * (1 + 1e-9)
    assert eig <= gram * (1 + 1e-9)
    assert gram <= eig * 1.01  # 12 Gram steps are close to exact


def test_conv_bound_is_tight_for_stride_one_on_large_inputs():
    torch.manual_seed(0)
    W = torch.randn(4, 4, 3, 3, dtype=torch.float64)
    exact = _conv_matrix_norm(W, (4, 16, 16), padding=1)
    bound, _ = conv2d_norm_bound(W, (4, 16, 16))
    assert exact <= bound <= 1.05 * exact


def test_circular_norm_at_the_input_size_is_no_bound():
    """Why the grid is enlarged: with zero padding, a circular convolution of the input's
    own size can have a smaller norm than the layer."""
    W = torch.tensor([[[[1.0, -1.0, 0.0], [0.0, 1.0, -1.0], [1.0, 0.0, 0.0]]]], dtype=torch.float64)
    n = 3
    exact = _conv_matrix_norm(W, (1, n, n), padding=1)
    same = float(torch.fft.fft2(W[0, 0], s=(n, n)).abs().max())
    bound, _ = conv2d_norm_bound(W, (1, n, n))
    assert same < exact <= bound


def test_gram_iteration_bounds_the_largest_singular_value():
    torch.manual_seed(0)
    M = torch.randn(20, 7, 5, dtype=torch.complex128)
    top = torch.linalg.svdvals(M)[:, 0]
    for n_iter in (0, 1, 4, 12):
        bound = gram_iteration_bound(M, n_iter)
        assert torch.all(bound >= top * (1 - 1e-12))
        assert torch.all(bound <= top * 5 ** (1 / 2 ** (n_iter + 1)) * (1 + 1e-12))
    assert float(gram_iteration_bound(torch.zeros(3, 3), 5)) == 0.0


def test_layerwise_bounds_and_pooling_factors():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(3, stride=1), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(8, 3),
    ).eval()  # fmt: skip
    X = torch.rand(4, 1, 8, 8)
    lip = layerwise_lipschitz(net, X, estimate=True)
    kinds = [f["kind"] for f in lip["factors"]]
    assert kinds == ["segment", "relu", "maxpool"]
    assert lip["factors"][2]["bound"] == 3.0  # each input in up to 3 x 3 windows
    seg = lip["factors"][0]
    assert seg["estimate"] <= seg["bound"] * (1 + 1e-9)
    assert lip["feature"] >= np.prod([f["bound"] for f in lip["factors"]])
    P = lip["pairwise"]
    assert P.shape == (3, 3) and np.allclose(P, P.T) and np.all(np.diag(P) == 0)
    # average pooling: Schur's bound is exact, 1 / k, without overlap, and holds with it
    for k, stride, exact in ((2, 2, 0.5), (3, 3, 1 / 3), (3, 1, None)):
        shape = (2, 9, 9)

        def lin(x, k=k, stride=stride):
            return F.avg_pool2d(x, k, stride)

        out = tuple(lin(torch.zeros(1, *shape, dtype=torch.float64)).shape[1:])
        bound = positive_map_bound(lin, adjoint_of(lin, shape), shape, out)
        if exact is not None:
            assert bound == pytest.approx(exact, rel=1e-12)
        assert bound >= _matrix_norm(lin, shape) * (1 - 1e-12)
    cert = certified_margins(net, X)
    _, dist = _attack_distances(net, X.numpy(), steps=20)
    _assert_below(cert, dist)


def test_batch_norm_is_folded_into_the_convolution():
    """A wide batch norm scale on a channel whose weights are small is not a product of
    norms: the folded layer's norm is what counts."""
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 2, 3, padding=1, bias=False)
    bn = nn.BatchNorm2d(2).eval()
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 1, 1] = 0.01
        conv.weight[1, 1, 1, 1] = 1.0
        bn.weight.copy_(torch.tensor([100.0, 1.0]))
    net = nn.Sequential(conv, bn, nn.ReLU(), nn.Flatten(), nn.Linear(2 * 24 * 24, 2)).eval()
    lip = layerwise_lipschitz(net, torch.rand(2, 2, 24, 24))
    assert lip["factors"][0]["bound"] == pytest.approx(1.0 / np.sqrt(1 + bn.eps), rel=1e-5)


# -- refusals ---------------------------------------------------------------------------


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return x + torch.relu(self.fc(x))


class _MySequential(nn.Sequential):
    def forward(self, x):
        return super().forward(x) * 2


@pytest.mark.parametrize(
    "make, match",
    [
        (
            lambda: nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)),
            "Tanh is not supported",
        ),
        (lambda: nn.Sequential(_Residual(), nn.Linear(4, 3)), "_Residual is not supported"),
        (lambda: _Residual(), "_Residual is not supported"),
        (lambda: _MySequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), "not supported"),
        (
            lambda: nn.Sequential(
                nn.Linear(4, 8),
                nn.BatchNorm1d(8, track_running_stats=False),
                nn.ReLU(),
                nn.Linear(8, 3),
            ),  # fmt: skip
            "running statistics",
        ),
        (
            lambda: nn.Sequential(
                nn.Unflatten(1, (1, 2, 2)),
                nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"),
                nn.ReLU(),
                nn.Flatten(),
                nn.Linear(8, 3),
            ),  # fmt: skip
            "padding_mode",
        ),
        (lambda: nn.Sequential(nn.Linear(4, 8), nn.LeakyReLU(), nn.Linear(8, 3)), "LeakyReLU"),
        (lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1)), "at least 2 logits"),
    ],
)
def test_unsupported_models_are_refused(make, match):
    X = np.random.default_rng(0).uniform(size=(5, 4)).astype(np.float32)
    with pytest.raises(ValueError, match=match):
        certified_margins(make(), X)
    with pytest.raises(ValueError, match=match):
        layerwise_lipschitz(make(), X)


def test_a_forward_hook_that_changes_the_logits_is_refused():
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    net[1].register_forward_hook(lambda mod, inp, out: out * 3.0)
    X = np.random.default_rng(0).uniform(size=(5, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="differ from those of the chain"):
        certified_margins(net, X)


def test_zoo_subclass_is_refused():
    from amrlearn.neural.models import MLP

    class Doubled(MLP):
        def forward(self, x):
            logits, features = super().forward(x)
            return 2 * logits, features

    X = np.random.default_rng(0).uniform(size=(3, 784)).astype(np.float32)
    with pytest.raises(ValueError, match="Doubled is not supported"):
        certified_margins(Doubled(784, hidden=8), X)


def test_bad_parameters():
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    X = np.zeros((2, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="conv_bound"):
        certified_margins(net, X, conv_bound="svd")
    with pytest.raises(ValueError, match="batch_size"):
        certified_margins(net, X, batch_size=0)
    with pytest.raises(ValueError, match="y must have shape"):
        certified_margins(net, X, [0])


# -- the certificate beside the other bounds: margin_bounds, robustness_curve, margin_report


@contextlib.contextmanager
def _no_certificate_alarm():
    """The cheap Theorem 3 budget may fall short (its own alarm, let through); the
    certificate's alarm must stay silent."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EvaluationWarning)
        yield
    assert not [w for w in caught if "certified margin exceeds" in str(w.message)]


BOUND_KW = {"n_batches": 1, "batch_size": 64, "attack_steps": 40}


@pytest.mark.parametrize("name", ["mlp", "bn_mlp", "cnn"])
def test_margin_bounds_and_curve_carry_the_certificate(request, digits, name):
    from amrlearn.metrics import margin_bounds, robustness_curve

    net = request.getfixturevalue(name)
    X, y = digits
    X = X[:40] if name != "cnn" else X[:30].reshape(-1, 1, 8, 8)
    y = y[: len(X)].copy()
    y[:4] = (y[:4] + 1) % 10  # a few wrong labels: negative margins
    with _no_certificate_alarm():
        res = margin_bounds(net, X, y, **BOUND_KW)
        curve = robustness_curve(
            net, X, y, eps=[0.0, 0.05, 0.1, 0.2, 0.4], attack_steps=40,
            bound_params={"n_batches": 1, "batch_size": 64},
        )  # fmt: skip
    cert = res["certified"]
    np.testing.assert_allclose(cert, certified_margins(net, X, y), rtol=1e-12)
    right = res["y_pred"] == y
    assert np.all((cert > 0) <= right) and np.all(cert[~right] <= 0)
    # The certificate never passes the attack's end of the interval: where the prediction
    # is right, cert <= upper (the distance found); where wrong, cert >= lower (= -distance).
    d = np.where(right, res["upper"], -res["lower"])
    _assert_below(cert, d)
    assert np.median(np.abs(cert)) > 1e-3
    # The curve: certified accuracy is mean(cert > eps), below the attack's everywhere.
    np.testing.assert_array_equal(curve.certified, cert)
    expected = [(cert > e).mean() for e in curve.eps]
    np.testing.assert_allclose(curve.accuracy_certified, expected, rtol=1e-12)
    np.testing.assert_allclose(curve.accuracy_certified_at(curve.eps), expected, rtol=1e-12)
    assert np.all(curve.accuracy_certified <= curve.accuracy)
    assert margin_bounds(net, X, y, lower=False, certified=False, **BOUND_KW)["certified"] is None


def test_linear_model_certificate_is_its_exact_margin(digits):
    from amrlearn.metrics import margin_bounds, margin_report, robustness_curve

    X, y = digits
    clf = LogisticRegression(max_iter=300).fit(X[:300], y[:300])
    res = margin_bounds(clf, X[300:350], y[300:350])
    np.testing.assert_allclose(res["certified"], res["exact"], rtol=1e-10)
    curve = robustness_curve(clf, X[300:350], y[300:350], eps=[0.0, 0.1, 0.2], clip=None)
    np.testing.assert_allclose(curve.accuracy_certified, curve.accuracy)
    rep = margin_report(clf, X[300:350], y[300:350])
    assert rep["avg_certified_margin"] == pytest.approx(rep["avg_margin"], rel=1e-10)


@pytest.mark.filterwarnings("ignore::amrlearn.exceptions.EvaluationWarning")
def test_unsupported_nets_keep_every_other_number():
    """A Tanh net has no certificate: None in margin_bounds and robustness_curve, NaN in
    margin_report (the keys stay the same), and the rest as before."""
    from amrlearn.metrics import margin_bounds, margin_report, robustness_curve

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).eval()
    X = np.random.default_rng(0).uniform(size=(10, 4)).astype(np.float32)
    y = net(torch.from_numpy(X)).argmax(1).numpy()
    kw = {"n_batches": 1, "batch_size": 16, "attack_steps": 10}
    res = margin_bounds(net, X, y, **kw)
    assert res["certified"] is None and np.all(res["lower"] <= res["upper"])
    curve = robustness_curve(
        net, X, y, eps=[0.0, 0.1], attack_steps=10, bound_params={"batch_size": 16}
    )
    assert curve.certified is None and curve.accuracy_certified is None
    assert curve.accuracy_certified_at([0.1]) is None
    rep = margin_report(net, X, y, bound_params=kw)
    assert np.isnan(rep["avg_certified_margin"]) and np.isfinite(rep["avg_margin"])
    assert "avg_certified_margin" not in margin_report(net, X, y, certified=False, bound_params=kw)
    # Other errors are not swallowed.
    with pytest.raises(ValueError, match="y must have shape|samples"):
        margin_bounds(nn.Sequential(nn.Linear(4, 3)), X, y[:3], **kw)


def test_margin_report_avg_certified_margin(mlp, digits):
    from amrlearn.metrics import margin_report

    X, y = digits[0][:50], digits[1][:50]
    with _no_certificate_alarm():
        rep = margin_report(mlp, X, y, bound_params=BOUND_KW)
    cert = certified_margins(mlp, X, y)
    assert rep["avg_certified_margin"] == pytest.approx(np.abs(cert).mean(), rel=1e-12)
    assert 0 < rep["avg_certified_margin"] <= rep["avg_margin_upper"]


def test_certificate_alarm(monkeypatch, mlp, digits):
    """The alarm that no proven bound can trip: a certificate above a found distance."""
    from amrlearn.exceptions import EvaluationWarning
    from amrlearn.metrics import _certified, margin_bounds

    honest = _certified.certified_radii
    monkeypatch.setattr(_certified, "certified_radii", lambda *a, **k: 100.0 * honest(*a, **k))
    with pytest.warns(EvaluationWarning, match="certified margin exceeds the distance"):
        margin_bounds(mlp, digits[0][:10], digits[1][:10], lower=False, attack_steps=10)


def test_a_diverged_net_is_refused_with_a_clear_error_not_a_lapack_one():
    """NaN weights (a diverged training) used to reach the SVDs and raise LinAlgError."""
    import torch

    from amrlearn.exceptions import NotCertifiableError
    from amrlearn.metrics import certified_margins, layerwise_lipschitz

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    with torch.no_grad():
        net[0].weight[0, 0] = float("nan")
    X = np.random.default_rng(0).uniform(size=(6, 4)).astype(np.float32)
    with pytest.raises(NotCertifiableError, match="not all finite|non-finite"):
        certified_margins(net, X)
    with pytest.raises(NotCertifiableError, match="not all finite|non-finite"):
        layerwise_lipschitz(net, X)
