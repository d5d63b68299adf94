"""MMR: exact linear-region distances against brute force, the penalty, the estimator."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from torch import nn

from amrlearn.metrics import margin_report
from amrlearn.neural import MMRNeuralNetClassifier, models
from amrlearn.neural._regions import check_piecewise_linear, mmr_penalty, region_distances


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)
    ).double()


def _convnet():
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(1, 2, 3, stride=2, padding=1),  # 1x6x6 -> 2x3x3
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(18, 5),
        nn.ReLU(),
        nn.Linear(5, 3),
    ).double()


def _conv_matrix(conv, in_shape):
    """The convolution as a dense matrix, entry by entry from its weights (no conv call)."""
    c_in, h, w = in_shape
    (kh, kw), (s, _), (p, _) = conv.kernel_size, conv.stride, conv.padding
    ho, wo = (h + 2 * p - kh) // s + 1, (w + 2 * p - kw) // s + 1
    W = conv.weight.detach().numpy()
    A = np.zeros((conv.out_channels, ho, wo, c_in, h, w))
    for o in range(conv.out_channels):
        for i in range(ho):
            for j in range(wo):
                for c in range(c_in):
                    for a in range(kh):
                        for b in range(kw):
                            r, q = i * s + a - p, j * s + b - p
                            if 0 <= r < h and 0 <= q < w:
                                A[o, i, j, c, r, q] = W[o, c, a, b]
    bias = np.repeat(conv.bias.detach().numpy(), ho * wo)
    return A.reshape(conv.out_channels * ho * wo, c_in * h * w), bias


def _affine_layers(net, in_shape):
    """(matrix, bias) of every affine layer, between the ReLUs, for a Sequential."""
    layers, shape = [], in_shape
    for m in net:
        if isinstance(m, nn.Conv2d):
            A, b = _conv_matrix(m, shape)
            layers.append((A, b))
            k, st, pad = m.kernel_size[0], m.stride[0], m.padding[0]
            shape = (m.out_channels, *[(n + 2 * pad - k) // st + 1 for n in shape[1:]])
        elif isinstance(m, nn.Linear):
            layers.append((m.weight.detach().numpy(), m.bias.detach().numpy()))
    return layers


def _brute_force(layers, x, y):
    """Distances from the activation pattern: the region's affine maps, layer by layer."""
    A, c = np.eye(x.size), np.zeros(x.size)  # the region's map of the current layer's input
    d_region = []
    for k, (W, b) in enumerate(layers):
        A, c = W @ A, W @ c + b  # pre-activations z = A x0 + c on the region
        z = A @ x + c
        if k == len(layers) - 1:
            break
        d_region.append(np.abs(z) / np.linalg.norm(A, axis=1))
        mask = (z > 0).astype(float)
        A, c = mask[:, None] * A, mask * c
    d_dec = np.array(
        [np.inf if j == y else (z[y] - z[j]) / np.linalg.norm(A[j] - A[y]) for j in range(len(z))]
    )
    return np.concatenate(d_region), d_dec


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_distances_equal_brute_force_distances_of_the_region(kind):
    net, shape = (_mlp(), (4,)) if kind == "mlp" else (_convnet(), (1, 6, 6))
    torch.manual_seed(2)
    x = torch.randn(7, *shape, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    d_region, d_decision = region_distances(net, x, y)
    layers = _affine_layers(net, shape)
    for i in range(len(y)):
        ref_region, ref_dec = _brute_force(layers, x[i].flatten().numpy(), int(y[i]))
        np.testing.assert_allclose(d_region[i].detach().numpy(), ref_region, rtol=1e-10)
        np.testing.assert_allclose(d_decision[i].detach().numpy(), ref_dec, rtol=1e-10)


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_the_region_boundary_found_by_bisection_along_the_normal_is_at_the_distance(kind):
    net, shape = (_mlp(), (4,)) if kind == "mlp" else (_convnet(), (1, 6, 6))
    relus = [m for m in net if isinstance(m, nn.ReLU)]
    seen = []
    for r in relus:
        r.register_forward_pre_hook(lambda m, inp: seen.append(inp[0].flatten(1)))

    def pattern_and_z(x):
        seen.clear()
        net(x)
        z = torch.cat(seen, 1)
        return z > 0, z

    torch.manual_seed(3)
    x = torch.randn(1, *shape, dtype=torch.float64)
    d_region, _ = region_distances(net, x, torch.tensor([0]))
    j = int(d_region[0].argmin())
    dist = float(d_region[0, j].detach())
    # The normal of unit j's hyperplane, pointing towards it: -sign(z_j) grad z_j.
    xg = x.clone().requires_grad_(True)
    pat0, z = pattern_and_z(xg)
    (grad,) = torch.autograd.grad(z[0, j], xg)
    u = -torch.sign(z[0, j]).detach() * grad / grad.norm()
    lo, hi = 0.0, 2 * dist
    assert torch.equal(pattern_and_z(x + hi * u)[0], pat0) is False
    for _ in range(60):
        mid = (lo + hi) / 2
        same = torch.equal(pattern_and_z(x + mid * u)[0], pat0)
        lo, hi = (mid, hi) if same else (lo, mid)
    assert abs(hi - dist) < 1e-9 * max(1.0, dist)


def _mlp_10_20_20_3(inplace):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(10, 20),
        nn.ReLU(inplace=inplace),
        nn.Linear(20, 20),
        nn.ReLU(inplace=inplace),
        nn.Linear(20, 3),
    ).double()


def test_in_place_relus_give_the_distances_and_gradients_of_the_same_network():
    # The ReLU overwrites its input: the pre-activations must be read before it does.
    torch.manual_seed(1)
    x = torch.randn(32, 10, dtype=torch.float64)
    y = torch.randint(0, 3, (32,))
    out = {}
    for inplace in (False, True):
        net = _mlp_10_20_20_3(inplace)
        d_region, d_decision = region_distances(net, x, y)
        pen = mmr_penalty(d_region, d_decision, k_B=8, k_D=2, gamma_B=0.45, gamma_D=0.45)
        pen.sum().backward()
        out[inplace] = (d_region, d_decision, [p.grad for p in net.parameters()])
    (r0, d0, g0), (r1, d1, g1) = out[False], out[True]
    torch.testing.assert_close(r1, r0, rtol=1e-12, atol=0)
    torch.testing.assert_close(d1, d0, rtol=1e-12, atol=0)
    for a, b in zip(g1, g0):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


class _Mixed(nn.Module):
    """nn.ReLU, and an activation the hooks cannot see in forward."""

    def __init__(self, functional):
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.fc2, self.fc3 = nn.Linear(4, 6), nn.Linear(6, 5), nn.Linear(5, 3)
        self.act, self.functional = nn.ReLU(), functional

    def forward(self, x):
        return self.fc3(self.functional(self.fc2(self.act(self.fc1(x)))))


@pytest.mark.parametrize(
    "functional",
    [torch.relu, lambda t: torch.nn.functional.relu(t, inplace=True), torch.tanh],
    ids=["torch.relu", "F.relu-inplace", "torch.tanh"],
)
def test_activations_the_hooks_cannot_see_are_refused(functional):
    module = _Mixed(functional).double()
    x = torch.randn(8, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="activation .* not an nn.ReLU module"):
        region_distances(module, x, torch.zeros(8, dtype=torch.long))
    X, _ = _data(16)
    net = MMRNeuralNetClassifier(
        _Mixed, module__functional=functional, lam=1.0, max_epochs=1, verbose=0
    )
    with pytest.raises(ValueError, match="not an nn.ReLU module"):
        net.fit(X[:, :4], np.arange(16) % 3)


def _flat_net():
    """Every hidden unit is dead near 0: the logits are the last bias, f_0 - f_1 = 1."""
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2)).double()
    with torch.no_grad():
        net[0].bias.fill_(-100.0)
        net[2].bias.copy_(torch.tensor([1.0, 0.0]))
    return net


def test_a_misclassified_point_on_a_flat_region_is_penalized_as_misclassified():
    # grad f_0 - grad f_1 = 0 on the region: class 0 wins everywhere on it, so the points
    # of class 1 are misclassified (the authors' floor 1e-5 sqrt(D) on the norm).
    net = _flat_net()
    x = 0.1 * torch.randn(4, 2, dtype=torch.float64)
    y = torch.tensor([1, 1, 0, 0])
    d_region, d_decision = region_distances(net, x, y)
    floor = 1e-5 * 2**0.5
    torch.testing.assert_close(d_decision[:2, 0], torch.full((2,), -1 / floor, dtype=torch.float64))
    assert bool((d_decision[2:, 1] > 0).all())  # class 0 is right: no decision penalty
    pen = mmr_penalty(d_region, d_decision, k_B=1, k_D=1, gamma_B=0.45, gamma_D=0.45)
    torch.testing.assert_close(
        pen[:2], torch.full((2,), 1 + 1 / (floor * 0.45), dtype=torch.float64)
    )
    torch.testing.assert_close(pen[2:], torch.zeros(2, dtype=torch.float64))
    # Finite gradients, which raise f_1 against f_0 through the last bias.
    pen.sum().backward()
    assert all(bool(torch.isfinite(p.grad).all()) for p in net.parameters())
    assert net[2].bias.grad[0] > 0 > net[2].bias.grad[1]


def test_penalty_is_the_mean_hinge_over_the_closest_hyperplanes():
    d_region = torch.tensor([[0.9, 0.1, 0.3, 5.0]])
    d_decision = torch.tensor([[float("inf"), -0.5, 0.2]])
    got = mmr_penalty(d_region, d_decision, k_B=2, k_D=1, gamma_B=0.5, gamma_D=1.0)
    # region: the two closest 0.1, 0.3 -> (0.8 + 0.4) / 2; decision: -0.5 -> 1.5.
    assert torch.allclose(got, torch.tensor([0.6 + 1.5]))
    got = mmr_penalty(d_region, d_decision, k_B=10, k_D=10, gamma_B=0.5, gamma_D=1.0)
    assert torch.allclose(got, torch.tensor([(0.8 + 0.4) / 4 + (1.5 + 0.8) / 2]))


def test_gradients_reach_every_parameter():
    net = _convnet()
    x = torch.randn(5, 1, 6, 6, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1])
    d_region, d_decision = region_distances(net, x, y)
    mmr_penalty(d_region, d_decision, k_B=40, k_D=2, gamma_B=10.0, gamma_D=10.0).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name


@pytest.mark.parametrize(
    "module",
    [
        nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2)),
        nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), nn.ReLU(), nn.Flatten()),
        nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2)),
    ],
)
def test_non_piecewise_linear_modules_get_a_clear_error_at_initialize(module):
    net = MMRNeuralNetClassifier(module, verbose=0)
    with pytest.raises(ValueError, match="piecewise-linear ReLU network"):
        net.initialize()


def test_functional_relus_are_refused_and_lenetsmall_is_accepted():
    with pytest.raises(ValueError, match="no nn.ReLU"):
        MMRNeuralNetClassifier(models.MLP, module__in_features=4, verbose=0).initialize()
    assert check_piecewise_linear(models.LeNetSmall()) == 3
    # lam=0 is standard training: any module.
    MMRNeuralNetClassifier(models.MLP, module__in_features=4, lam=0.0, verbose=0).initialize()


def _data(n=64):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    return X, (X[:, 0] + X[:, 1] > 0).astype(np.int64)


def _seq():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 2))


def test_loss_is_ce_plus_the_scheduled_weight_times_the_mean_penalty():
    X, y = _data()
    net = MMRNeuralNetClassifier(
        _seq(), lam=2.0, lam_warmup_epochs=4, k_B=3, max_epochs=8, random_state=0, verbose=0
    ).initialize()
    x, t = torch.as_tensor(X), torch.as_tensor(y)
    ce = torch.nn.functional.cross_entropy(net.module_(x), t)
    d_region, d_decision = region_distances(net.module_, x, t)
    pen = mmr_penalty(d_region, d_decision, k_B=3, k_D=1, gamma_B=0.45, gamma_D=0.45)
    loss = net.get_loss(net.infer(x), t, X=x, training=True)
    assert torch.allclose(loss, ce + 2.0 * (1 / 4) * pen.mean())  # epoch 1 of the ramp
    assert torch.allclose(net.get_loss(net.infer(x), t, X=x, training=False), ce)


def test_schedule_of_k_B_and_lam_follows_the_authors():
    X, y = _data()
    lams, ks = [], []

    class Record(MMRNeuralNetClassifier):
        def penalty_loss(self, y_pred, y_true, X=None, training=False):
            out = super().penalty_loss(y_pred, y_true, X=X, training=training)
            if training:
                lams.append(self.current_lam())
                ks.append(self.current_k_B())
            return out

    lenet = Record(
        models.LeNetSmall, lam=1.0, max_epochs=5, lam_warmup_epochs=2, batch_size=10,
        reg_batch_size=2, verbose=0,
    )  # fmt: skip
    Xi = np.random.default_rng(0).uniform(size=(10, 784)).astype(np.float32)
    lenet.fit(Xi, np.arange(10))
    assert lenet.n_hidden_ == 16 * 14 * 14 + 32 * 7 * 7 + 100
    assert lams == [0.5, 1.0, 1.0, 1.0, 1.0]
    assert ks == [int(480 + (96 - 480) * e / 5) for e in range(1, 6)]


def test_a_few_mmr_epochs_push_the_closest_region_boundary_away():
    X, y = _data(128)
    x, t = torch.as_tensor(X), torch.as_tensor(y)

    def closest(lam):  # mean distance to the closest region boundary
        net = MMRNeuralNetClassifier(
            _seq(), lam=lam, gamma_B=0.5, gamma_D=0.5, k_B=1, lam_warmup_epochs=0,
            optimizer=torch.optim.Adam, lr=1e-2, max_epochs=20, random_state=0, verbose=0,
        )  # fmt: skip
        net.fit(X, y)
        d_region, _ = region_distances(net.module_, x, t)
        return float(d_region.detach().min(1).values.mean())

    assert closest(1.0) > 1.4 * closest(0.0)


def test_gridsearch_clone_pickle_and_margin_report():
    X, y = _data()
    labels = np.where(y == 1, "b", "a")
    net = MMRNeuralNetClassifier(_seq(), max_epochs=2, verbose=0)
    grid = GridSearchCV(net, {"gamma_B": [0.2, 0.45]}, cv=2).fit(X, labels)
    best = grid.best_estimator_
    assert clone(best).get_params()["gamma_B"] == grid.best_params_["gamma_B"]
    again = pickle.loads(pickle.dumps(best))
    np.testing.assert_array_equal(again.predict(X), best.predict(X))
    report = margin_report(best, X, labels, upper=False, bound_params={"n_batches": 1})
    assert 0.0 <= report["accuracy"] <= 1.0 and np.isfinite(report["avg_margin"])


@pytest.mark.parametrize("bad", [{"gamma_B": 0.0}, {"k_B": (0.1,)}, {"reg_batch_size": 0}])
def test_invalid_hyperparameters_are_refused(bad):
    X, y = _data(16)
    with pytest.raises(ValueError, match=next(iter(bad))):
        MMRNeuralNetClassifier(_seq(), max_epochs=1, verbose=0, **bad).fit(X, y)
