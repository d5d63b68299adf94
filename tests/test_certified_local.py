"""Local certified margins (``certified_margins(method="crown")``): CROWN over the l2 ball.

Every radius is checked against a distance known to be at least the true one (the nearest
grid point of another class on 2-D inputs, the minimum-norm attack's adversarial points),
and against the global certificate it must never fall below. The relaxations and the
pre-activation boxes are checked by sampling.
"""

import numpy as np
import pytest
import torch
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from amrlearn.attacks import MinimumNormEnsemble
from amrlearn.metrics import _local, certified_margins
from amrlearn.metrics._chain import Chain, module_chain

RTOL = 1e-6  # the attack's distances are verified in float32


def _assert_below(cert, dist):
    bad = np.abs(cert) > dist * (1 + RTOL) + 1e-7
    assert not bad.any(), f"{bad.sum()} radii exceed the distance: {cert[bad]} > {dist[bad]}"


def _net_2d(kind, seed=0):
    torch.manual_seed(seed)
    if kind == "mlp":
        net = nn.Sequential(
            nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)
        )
    elif kind == "batchnorm":
        net = nn.Sequential(nn.Linear(2, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Linear(12, 4))
        with torch.no_grad():
            net[1].running_mean.uniform_(-1, 1)
            net[1].running_var.uniform_(0.05, 2.0)
            net[1].weight.uniform_(-2, 2)
    else:  # 2 inputs as a 1 x 1 x 2 image; max pooling over the two columns
        net = nn.Sequential(
            nn.Unflatten(1, (1, 1, 2)), nn.Conv2d(1, 6, 1), nn.ReLU(), nn.MaxPool2d((1, 2)),
            nn.Flatten(), nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3),
        )  # fmt: skip
    return net.eval()


@pytest.mark.parametrize("kind", ["mlp", "batchnorm", "maxpool"])
def test_between_the_global_radius_and_the_exact_distance_on_a_grid(kind):
    """A grid point of another class is at least as far as the boundary: the local
    radius must stay below its distance, and never below the global certificate."""
    net = _net_2d(kind)
    t = np.linspace(-3, 3, 301, dtype=np.float32)
    grid = np.stack(np.meshgrid(t, t), -1).reshape(-1, 2)
    X = np.random.default_rng(0).uniform(-2, 2, size=(60, 2)).astype(np.float32)
    with torch.no_grad():
        g_pred = net(torch.from_numpy(grid)).argmax(1).numpy()
        pred = net(torch.from_numpy(X)).argmax(1).numpy()
    d = np.linalg.norm(X[:, None, :] - grid[None], axis=2)
    upper = np.where(g_pred[None] != pred[:, None], d, np.inf).min(axis=1)
    glob = certified_margins(net, X)
    crown = certified_margins(net, X, method="crown")
    assert np.all(crown >= glob) and np.all(crown <= upper)
    assert np.median(crown) > 1.2 * np.median(glob)  # it pays on these nets


def _small_nets():
    torch.manual_seed(3)
    deep = nn.Sequential(
        nn.Linear(10, 24), nn.ReLU(), nn.Linear(24, 24), nn.ReLU(), nn.Linear(24, 24),
        nn.ReLU(), nn.Linear(24, 4),
    )  # fmt: skip
    bn = nn.Sequential(
        nn.Linear(10, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 5)
    )
    conv = nn.Sequential(  # overlapping, padded, ceil-mode max pooling
        nn.Unflatten(1, (1, 5, 5)), nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), nn.Conv2d(3, 4, 2),
        nn.BatchNorm2d(4), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(4, 3),
    )  # fmt: skip
    return [
        pytest.param(deep, 10, id="mlp3"),
        pytest.param(bn, 10, id="batchnorm"),
        pytest.param(conv, 25, id="conv-maxpool"),
    ]


@pytest.mark.parametrize("net, d", _small_nets())
def test_never_exceeds_the_attack_on_random_nets(net, d):
    net.eval()
    X = np.random.default_rng(1).uniform(size=(30, d)).astype(np.float32)
    with torch.no_grad():
        pred = net(torch.from_numpy(X)).argmax(1).numpy()
    _, dist = MinimumNormEnsemble(steps=40, clip=None, random_state=0)(net, X, pred)
    glob = certified_margins(net, X)
    crown = certified_margins(net, X, method="crown")
    assert np.all(crown >= glob)
    _assert_below(crown, dist)
    assert np.mean(crown > glob) > 0.5


def test_signed_like_the_global_margins(digits, mlp):
    X, y = digits
    y = y[:40].copy()
    y[:5] = (y[:5] + 1) % 10
    glob = certified_margins(mlp, X[:40], y)
    crown = certified_margins(mlp, X[:40], y, method="crown")
    assert np.array_equal(np.sign(crown), np.sign(glob))
    assert np.all(np.abs(crown) >= np.abs(glob))
    pred = mlp(torch.from_numpy(X[:40])).argmax(1).numpy()
    _, dist = MinimumNormEnsemble(steps=30, clip=None, random_state=0)(mlp, X[:40], pred)
    _assert_below(crown, dist)


def test_affine_and_pipeline_models(digits):
    """Affine models keep their exact margin; a Pipeline's scaler is part of the chain."""
    from sklearn.linear_model import LogisticRegression

    from amrlearn.neural import AMRNeuralNetClassifier
    from amrlearn.neural.models import MLP

    X, y = digits
    est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=200)).fit(X[:200], y[:200])
    np.testing.assert_array_equal(
        certified_margins(est, X[200:230], y[200:230], method="crown"),
        certified_margins(est, X[200:230], y[200:230]),
    )
    net = AMRNeuralNetClassifier(
        MLP, module__in_features=64, module__hidden=16, lam=0.0, max_epochs=3, lr=0.5,
        random_state=0, verbose=0,
    )  # fmt: skip
    pipe = make_pipeline(StandardScaler(), net).fit(X[:300], y[:300])
    crown = certified_margins(pipe, X[:20], y[:20], method="crown")
    glob = certified_margins(pipe, X[:20], y[:20])
    assert np.array_equal(np.sign(crown), np.sign(glob)) and np.all(np.abs(crown) >= np.abs(glob))
    attack = MinimumNormEnsemble(steps=30, clip=None, random_state=0)
    _, dist = attack(pipe, X[:20], pipe.predict(X[:20]))
    _assert_below(crown, dist)


def test_bad_method():
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    with pytest.raises(ValueError, match="method"):
        certified_margins(net, np.zeros((2, 4), dtype=np.float32), method="ibp")


# -- the relaxations and the boxes, by sampling --------------------------------------------


def test_relu_relaxation_holds_on_random_boxes():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 500, dtype=torch.float64, generator=gen) * 2
    lower, upper = torch.minimum(a, b), torch.maximum(a, b)
    a_l, b_l, a_u, b_u = _local.relu_relaxation(lower, upper)
    t = torch.rand(200, 500, dtype=torch.float64, generator=gen)
    t[0], t[1] = 0.0, 1.0  # the corners
    z = lower + t * (upper - lower)
    y = torch.relu(z)
    assert torch.all(a_l * z + b_l <= y + 1e-12) and torch.all(y <= a_u * z + b_u + 1e-12)
    stable = (lower >= 0) | (upper <= 0)  # exact there
    assert torch.allclose((a_u * z + b_u)[:, stable], y[:, stable])
    assert torch.allclose((a_l * z + b_l)[:, stable], y[:, stable])
    assert torch.all((a_u >= 0) & (a_u <= 1) & ((a_l == 0) | (a_l == 1)))


@pytest.mark.parametrize(
    "pool",
    [nn.MaxPool2d(2), nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
     nn.MaxPool2d(2, stride=1, dilation=2)],
)  # fmt: skip
def test_max_pool_relaxation_holds_on_random_boxes(pool):
    gen = torch.Generator().manual_seed(0)
    ops = module_chain(nn.Sequential(pool))
    p = _local._Pool(ops[0], (2, 7, 7), tuple(pool(torch.zeros(1, 2, 7, 7)).shape[1:]))
    center = torch.randn(4, 2, 7, 7, dtype=torch.float64, generator=gen)
    width = torch.rand(4, 2, 7, 7, dtype=torch.float64, generator=gen) * 0.5
    width[0] = 0.0  # decided windows
    lower, upper = center - width, center + width
    select, decided, top = p.relax(lower, upper)
    for _ in range(50):
        x = lower + torch.rand(lower.shape, dtype=torch.float64, generator=gen) * 2 * width
        y = pool(x).flatten(2)
        chosen = x.flatten(2).gather(2, select)
        assert torch.all(chosen <= y) and torch.all(y <= top)
        assert torch.equal(y[decided], chosen[decided])
    assert decided[0].all() and not decided[1:].all()


def test_pre_activation_boxes_hold_by_sampling(monkeypatch):
    """The boxes of every nonlinearity, by CROWN and by interval arithmetic, contain the
    pre-activations of points sampled on the ball (its sphere included)."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Unflatten(1, (1, 4, 4)), nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(12, 10), nn.BatchNorm1d(10), nn.ReLU(),
        nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 3),
    ).eval()  # fmt: skip
    with torch.no_grad():
        net[6].running_var.uniform_(0.2, 2.0)
    x0 = torch.rand(3, 16, dtype=torch.float64)
    r = torch.tensor([0.1, 0.5, 2.0], dtype=torch.float64)
    u = torch.randn(400, 3, 16, dtype=torch.float64)
    u = u / u.norm(dim=2, keepdim=True) * torch.rand(400, 3, 1, dtype=torch.float64) ** (1 / 16)
    u[:200] /= u[:200].norm(dim=2, keepdim=True)  # on the sphere
    pts = (x0 + r[:, None] * u).reshape(-1, 16)
    for neurons in (0, 10_000):  # interval arithmetic, CROWN
        monkeypatch.setattr(_local, "CROWN_NEURONS", neurons)
        chain = Chain(module_chain(net), x0)
        prop = _local._Propagator(chain)
        boxes = prop.bounds(x0, r)
        z = pts
        for i, op in enumerate(chain.ops):
            if i in boxes:
                lo, up = (b.repeat(400, *[1] * (b.dim() - 1)) for b in boxes[i])
                assert torch.all(lo - 1e-9 <= z) and torch.all(z <= up + 1e-9), (neurons, i)
            z = op(z)
        assert len(boxes) == 4  # relu, max pooling, relu, relu
