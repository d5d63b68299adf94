"""Training for certified margins: AMR's margin="certified" and the GloRo baseline.

The Lipschitz bound in training is checked against the certificate's, its gradients
against finite differences, and the training against standard training on the digits.
"""

import pickle

import numpy as np
import pytest
import torch
from torch import nn

from amrlearn.metrics import certified_margins, layerwise_lipschitz
from amrlearn.neural import AMRNeuralNetClassifier, GloRoNeuralNetClassifier, gloro_logits, models
from amrlearn.neural._lipschitz import FeatureLipschitz, pairwise_lipschitz


def _conv_net():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(),
        nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.MaxPool2d(2), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(8, 12), nn.ReLU(), nn.Linear(12, 10),
    )  # fmt: skip
    with torch.no_grad():
        net[4].running_var.uniform_(0.5, 2.0)
        net[4].weight.uniform_(0.5, 1.5)
    return net.eval()


@pytest.mark.parametrize(
    "make", [_conv_net, lambda: models.MLP(64, hidden=16)], ids=["conv", "mlp"]
)
def test_training_bound_against_the_certificate(make):
    """``"bound"`` holds: at least the certificate's proven bound (which norms whole
    segments exactly where it can); ``"power"`` converges to the segments' norms from
    below, so it stays under the certificate."""
    net = make()
    X = torch.rand(4, 64)
    layer = "11" if isinstance(net, nn.Sequential) else "last_linear"
    certified = layerwise_lipschitz(net, X)["feature"]
    bound = FeatureLipschitz(net, layer, X, method="bound")(net).detach().item()
    power = FeatureLipschitz(net, layer, X, method="power", n_power_iter=300)
    estimate = power(net).detach().item()
    assert bound >= certified * (1 - 1e-5)
    assert estimate <= certified * (1 + 1e-5)
    if isinstance(net, models.MLP):  # one segment: power, the exact norm and the bound agree
        exact = torch.linalg.matrix_norm(net.hidden_layer.weight.detach().double(), ord=2)
        np.testing.assert_allclose([bound, estimate], float(exact), rtol=1e-4)
    # Validation reads the power vectors without moving them.
    assert power(net, update=False).item() == power(net, update=False).item()


def _tiny_double_net(**kw):
    torch.manual_seed(3)
    module = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    module = module.double()
    return kw.pop("cls", AMRNeuralNetClassifier)(
        module, classes=[0, 1, 2], verbose=0, **kw
    ).initialize()


def _loss_and_directional_check(net, X, y, n_dirs=4, h=1e-6):
    """Autograd's gradient of ``get_loss`` against central finite differences along
    random directions of all the parameters (float64)."""
    params = [p for p in net.module_.parameters()]

    def loss():
        return net.get_loss(net.infer(X), y, X=X, training=False)

    net.module_.zero_grad()
    value = loss()
    value.backward()
    grads = [p.grad.clone() for p in params]
    assert all(float(g.abs().sum()) > 0 for g in grads)  # every weight and bias reached
    rng = torch.Generator().manual_seed(0)
    for _ in range(n_dirs):
        dirs = [torch.randn(p.shape, generator=rng, dtype=p.dtype) for p in params]
        with torch.no_grad():
            for p, d in zip(params, dirs):
                p.add_(h * d)
            up = float(loss())
            for p, d in zip(params, dirs):
                p.sub_(2 * h * d)
            down = float(loss())
            for p, d in zip(params, dirs):
                p.add_(h * d)
        analytic = sum(float((g * d).sum()) for g, d in zip(grads, dirs))
        assert (up - down) / (2 * h) == pytest.approx(analytic, rel=1e-4, abs=1e-7)
    return value.detach().item()


@pytest.mark.parametrize("lipschitz", ["bound", "power"])
def test_certified_amr_gradients_match_finite_differences(lipschitz):
    X = torch.randn(16, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    net = _tiny_double_net(lam=1.0, tau=10.0, beta=0.0, margin="certified", lipschitz=lipschitz)
    with torch.no_grad():
        logits = net.module_(X)
    y = logits.argmax(1).numpy()  # every sample right: the margin term is active
    # A first call with training=True builds the power vectors (a first estimate).
    net.get_loss(net.infer(X), torch.as_tensor(y), X=X, training=True)
    value = _loss_and_directional_check(net, X, torch.as_tensor(y))
    # The margin term is that of the certified margins: [m / P]_0^tau over the batch.
    P = net.feature_lipschitz(X).detach().item()
    margins = certified_margins(net.module_, X.numpy(), y)
    ce = float(torch.nn.functional.cross_entropy(logits, torch.as_tensor(y)))
    term = ce - value
    assert term > 0 and P > 0
    if lipschitz == "bound":  # P holds, so each m / P is at most the certified margin
        assert term <= np.mean(np.minimum(margins, 10.0)) + 1e-6


@pytest.mark.parametrize("lipschitz", ["bound", "power"])
def test_gloro_gradients_match_finite_differences(lipschitz):
    X = torch.randn(16, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    net = _tiny_double_net(cls=GloRoNeuralNetClassifier, eps=0.3, lipschitz=lipschitz)
    y = torch.as_tensor(np.arange(16) % 3)
    net.get_loss(net.infer(X), y, X=X, training=True)
    _loss_and_directional_check(net, X, y)


def test_gloro_logits():
    torch.manual_seed(0)
    f = torch.randn(20, 4, dtype=torch.float64)
    W = torch.randn(4, 6, dtype=torch.float64)
    L = pairwise_lipschitz(W, 1.7)
    np.testing.assert_allclose(L.diagonal(), 0.0)
    np.testing.assert_allclose(L[0, 1], 1.7 * float((W[0] - W[1]).norm()))
    aug = gloro_logits(f, L, 0.4)
    j = f.argmax(1)
    for n in range(20):  # the definition, sample by sample
        others = [float(f[n, i] + 0.4 * L[i, j[n]]) for i in range(4) if i != j[n]]
        assert float(aug[n, 4]) == pytest.approx(max(others))
    # eps = 0: the bottom logit is the runner-up, so GloRo's loss is not the plain
    # cross-entropy but the cross-entropy with one more logit, larger.
    y = torch.arange(20) % 4
    zero = gloro_logits(f, L, 0.0)
    np.testing.assert_allclose(zero[:, 4], f.topk(2, dim=1).values[:, 1])
    ce = torch.nn.functional.cross_entropy
    assert float(ce(zero, y)) > float(ce(f, y))
    np.testing.assert_allclose(
        float(ce(zero, y)),
        float(-(f[torch.arange(20), y] - torch.logsumexp(zero, dim=1)).mean()),
        rtol=1e-12,
    )


def test_gloro_bottom_logit_is_the_certificate(digits, mlp):
    """``f_j > f_bot`` at eps exactly when the certificate's radius exceeds eps, with the
    certificate's own bound for ``P``."""
    X = digits[0][:200]
    lip = layerwise_lipschitz(mlp, X)
    with torch.no_grad():
        f = mlp(torch.from_numpy(X)).double()
    L = pairwise_lipschitz(mlp[2].weight.detach().double(), lip["feature"])
    np.testing.assert_allclose(L.numpy(), lip["pairwise"], rtol=1e-5)
    cert = certified_margins(mlp, X)
    for eps in (0.1, 0.3):
        aug = gloro_logits(f, L, eps)
        robust = (aug[:, :10].max(1).values > aug[:, 10]).numpy()
        clear = np.abs(cert - eps) > 1e-4 * eps  # away from the rounding at the edge
        np.testing.assert_array_equal(robust[clear], (cert > eps)[clear])
        assert 0 < robust.mean() < 1


def _digits_split(digits):
    X, y = digits
    return X[:480], y[:480], X[480:], y[480:]


COMMON = dict(
    module=models.MLP, module__in_features=64, module__hidden=32, max_epochs=12, lr=0.05,
    batch_size=32, iterator_train__shuffle=True, verbose=0, random_state=0,
)  # fmt: skip


def test_certified_training_raises_the_certified_margin(digits):
    """A few epochs on the digits: certified AMR and GloRo end with larger certified
    margins (and more samples certified at 0.5) than standard training, at a small cost
    in accuracy."""
    Xtr, ytr, Xte, yte = _digits_split(digits)
    nets = {
        "std": AMRNeuralNetClassifier(lam=0.0, beta=0.0, **COMMON),
        "certified": AMRNeuralNetClassifier(
            lam=0.5, tau=1.0, beta=1e-3, margin="certified", **COMMON
        ),
        "gloro": GloRoNeuralNetClassifier(eps=0.3, **COMMON),
    }
    stats = {}
    for name, net in nets.items():
        cert = certified_margins(net.fit(Xtr, ytr), Xte, yte)
        acc = np.mean(net.predict(Xte) == yte)
        stats[name] = (acc, np.abs(cert).mean(), np.mean(cert > 0.5))
    acc, avg, vra = stats["std"]
    assert acc > 0.8  # 480 training digits, 12 epochs
    for name in ("certified", "gloro"):
        assert stats[name][0] > acc - 0.1, stats
        assert stats[name][1] > 1.1 * avg, stats
        assert stats[name][2] > vra + 0.05, stats


def test_nets_round_trip_and_refuse_what_they_cannot_bound(digits):
    X, y = digits[0][:96], digits[1][:96]
    net = GloRoNeuralNetClassifier(eps=0.2, warmup_epochs=4, **{**COMMON, "max_epochs": 2})
    net.fit(X, y)
    assert net.current_eps() == pytest.approx(0.1)  # epoch 2 of a 4-epoch ramp
    assert isinstance(net.feature_lipschitz_, FeatureLipschitz)
    copy = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(copy.predict(X), net.predict(X))
    copy.partial_fit(X, y, epochs=1)  # the bound is rebuilt for the unpickled module
    assert copy.current_eps() == pytest.approx(0.15)  # the ramp goes on
    net.initialize()
    assert net.feature_lipschitz_ is None
    tanh = nn.Sequential(nn.Linear(64, 8), nn.Tanh(), nn.Linear(8, 10))
    for cls, kw in (
        (AMRNeuralNetClassifier, {"margin": "certified"}),
        (GloRoNeuralNetClassifier, {}),
    ):
        with pytest.raises(ValueError, match="Tanh is not supported"):
            cls(tanh, max_epochs=1, verbose=0, **kw).fit(X, y)
    scaled = nn.Sequential(nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 10), nn.BatchNorm1d(10))
    with pytest.raises(ValueError, match="not the module's output"):
        GloRoNeuralNetClassifier(scaled, feature_layer="2", max_epochs=1, verbose=0).fit(X, y)
    with pytest.raises(ValueError, match="last layer"):
        FeatureLipschitz(scaled, "2", torch.from_numpy(X[:2]))
    with pytest.raises(ValueError, match="lipschitz"):
        AMRNeuralNetClassifier(models.MLP, lipschitz="svd", max_epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="eps"):
        GloRoNeuralNetClassifier(models.MLP, eps=-1.0, max_epochs=1).fit(X, y)


def test_experiment_recipe_builds_the_certified_methods():
    """The experiments' recipe knows certified AMR and GloRo (their defaults, and the
    configuration's overrides), so a table can list them as rows."""
    from amrlearn.experiments import _recipe, table1

    cfg = {**table1.default_config("medium"), "gloro": {"eps": {"mnist": 1.0}}}
    data = {"X_test": np.zeros((4, 784), np.float32), "y_test": np.arange(4)}
    kw = dict(callbacks=[], max_epochs=2)
    net, params = _recipe.build_net(
        "mnist", "MLP", "certified AMR", cfg, data, torch.device("cpu"), **kw
    )
    assert isinstance(net, AMRNeuralNetClassifier) and net.margin == "certified"
    assert params == {"lam": 0.3, "beta": cfg["beta"], "tau": 2.0, "margin": "certified",
                      "lipschitz": "power"}  # fmt: skip
    net, params = _recipe.build_net("mnist", "CNN", "GloRo", cfg, data, torch.device("cpu"), **kw)
    assert isinstance(net, GloRoNeuralNetClassifier)
    assert (net.eps, net.warmup_epochs) == (1.0, 8)  # half of the CNN's 15 medium epochs
