"""Minimum-norm attacks against exact margins: DeepFool, FMN and MinimumNormEnsemble.

Where the true margin is known (affine models; ReLU nets at points whose closest
boundary lies in their own linear region), the upper bound must be tight.
"""

import numpy as np
import pytest
import torch
from sklearn.utils._param_validation import InvalidParameterError

import amrlearn.attacks as amrlearn_attacks
from amrlearn.attacks import (
    DDN,
    FMN,
    DeepFool,
    MinimizationAttack,
    MinimumNormEnsemble,
    boundary_search,
    deepfool_perturbation,
)
from amrlearn.metrics import margin_bounds, margins_from_scores


class Hidden(torch.nn.Module):
    """A linear map that the library cannot recognize as affine."""

    def __init__(self, lin):
        super().__init__()
        self.lin = lin

    def forward(self, x):
        return self.lin(x) * 1.0


def _linear_case(d, k, n=60, seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    lin = torch.nn.Linear(d, k).to(dtype)
    X = torch.rand(n, d, dtype=dtype).numpy()
    W = lin.weight.detach().double().numpy()
    b = lin.bias.detach().double().numpy()
    exact, pred = margins_from_scores(X.astype(np.float64) @ W.T + b, W)
    return Hidden(lin).eval(), X, exact, pred


def _predict(net, X):
    with torch.no_grad():
        return net(torch.as_tensor(X)).argmax(1).numpy()


@pytest.mark.parametrize("d, k", [(7, 2), (7, 4), (50, 10), (784, 10)])
def test_deepfool_is_exact_on_affine_maps(d, k):
    net, X, exact, pred = _linear_case(d, k)
    X_adv, dist = DeepFool(clip=None)(net, X, pred)
    np.testing.assert_allclose(dist, exact, rtol=1e-5)
    assert np.all(_predict(net, X_adv) != pred)


@pytest.mark.parametrize("d, k", [(7, 2), (7, 4), (50, 10), (100, 10)])
def test_default_upper_bound_within_one_percent_on_affine_maps(d, k):
    # float32, as users' nets are: within 1 % of the float64 closed form, every sample.
    net, X, exact, pred = _linear_case(d, k, dtype=torch.float32)
    res = margin_bounds(net, X, lower=False)
    assert res["exact"] is None, "the library must not see that the map is linear"
    ratio = res["upper"] / exact
    assert np.all(np.abs(ratio - 1) <= 0.01), ratio
    X_adv, dist = MinimumNormEnsemble(clip=None)(net, X, pred)
    np.testing.assert_array_equal(dist, res["upper"])
    assert np.all(_predict(net, X_adv) != pred)


def test_fmn_never_beats_the_exact_margin_and_often_matches_it():
    net, X, exact, pred = _linear_case(50, 10)
    X_adv, dist = FMN(steps=100, clip=None)(net, X, pred)
    assert np.all(np.isfinite(dist))
    assert np.all(dist >= exact * (1 - 1e-9))
    assert np.median(dist / exact) < 1.001
    assert np.all(_predict(net, X_adv) != pred)


def _region_margins(net, X):
    """Per sample: the distance to the decision hyperplanes of the affine map of its
    linear region, and the distance to the region's own boundary (MMR's computation)."""
    lins = [m for m in net if isinstance(m, torch.nn.Linear)]
    Ws = [m.weight.detach().double().numpy() for m in lins]
    bs = [m.bias.detach().double().numpy() for m in lins]
    to_plane, to_region = [], []
    for x in X:
        A, c, region = np.eye(len(x)), np.zeros(len(x)), np.inf
        for W, b in zip(Ws[:-1], bs[:-1]):
            A, c = W @ A, W @ c + b  # pre-activations z = A x + c inside the region
            z, norms = A @ x + c, np.linalg.norm(A, axis=1)
            region = min(region, np.min(np.abs(z[norms > 0]) / norms[norms > 0]))
            on = (z > 0).astype(float)
            A, c = A * on[:, None], c * on
        A, c = Ws[-1] @ A, Ws[-1] @ c + bs[-1]
        dist, _ = margins_from_scores((A @ x + c)[None], A)
        to_plane.append(dist[0])
        to_region.append(region)
    return np.array(to_plane), np.array(to_region)


@pytest.fixture(scope="module")
def relu_net_and_points():
    """A tiny random ReLU MLP and points whose closest boundary lies in their region.

    If the ball of radius ``d`` (the distance to the region's decision hyperplanes)
    lies in the region, the net equals its affine map on the ball, so ``d`` is the
    exact margin.
    """
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(4, 16),
        torch.nn.ReLU(),
        torch.nn.Linear(16, 16),
        torch.nn.ReLU(),
        torch.nn.Linear(16, 3),
    ).double()
    X = np.random.default_rng(0).uniform(size=(600, 4))
    to_plane, to_region = _region_margins(net, X)
    inside = to_plane < to_region * (1 - 1e-6)
    assert inside.sum() >= 40
    return net, X[inside][:40], to_plane[inside][:40]


def test_relu_region_margins_are_found(relu_net_and_points):
    net, X, exact = relu_net_and_points
    pred = _predict(net, X)
    _, dist = DeepFool(clip=None)(net, X, pred)
    np.testing.assert_allclose(dist, exact, rtol=1e-5)
    X_adv, dist = MinimumNormEnsemble(steps=20, clip=None)(net, X, pred)
    assert np.all(np.abs(dist / exact - 1) <= 0.01)
    assert np.all(_predict(net, X_adv) != pred)
    # What the issue reported: DDN alone is loose here.
    _, ddn = DDN(steps=100, clip=None, random_state=0)(net, X, pred)
    assert np.median(ddn / exact) > 1.01


@pytest.mark.parametrize("make", [DeepFool, FMN, MinimumNormEnsemble])
def test_points_are_misclassified_and_in_the_box(relu_net_and_points, make):
    net, X, _ = relu_net_and_points
    pred = _predict(net, X)
    X_adv, dist = make(clip=(0.0, 1.0))(net, X, pred)
    found = np.isfinite(dist)
    assert found.mean() > 0.8
    assert X_adv.min() >= 0.0 and X_adv.max() <= 1.0
    assert np.all(_predict(net, X_adv[found]) != pred[found])
    np.testing.assert_allclose(dist[found], np.linalg.norm(X_adv - X, axis=1)[found])
    np.testing.assert_array_equal(X_adv[~found], X[~found])


def test_misclassified_samples_get_zero_and_images_work():
    net, X, _, pred = _linear_case(12, 3, n=10)
    wrong = (pred + 1) % 3
    wrong[5:] = pred[5:]
    for attack in (DeepFool(clip=None), FMN(steps=5, clip=None), MinimumNormEnsemble(steps=5)):
        X_adv, dist = attack(net, X, wrong)
        assert np.all(dist[:5] == 0) and np.all(dist[5:] > 0)
        np.testing.assert_array_equal(X_adv[:5], X[:5])
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(8, 3))
    conv = conv.double()
    imgs = np.random.default_rng(0).uniform(size=(6, 1, 4, 4))
    X_adv, dist = MinimumNormEnsemble(steps=10)(conv, imgs, _predict(conv, imgs))
    assert X_adv.shape == imgs.shape and np.all(np.isfinite(dist))


def test_boundary_search_pulls_back_along_the_segment():
    net, X, exact, pred = _linear_case(5, 3, n=20)
    x, far = torch.from_numpy(X), torch.from_numpy(X) + 0.0
    x_df, _, _ = deepfool_perturbation(net, x, torch.from_numpy(pred), overshoot=1.0)
    far = x + 3 * (x_df - x)
    out = boundary_search(net, x, far, torch.from_numpy(pred), steps=30)
    np.testing.assert_allclose((out - x).norm(dim=1).numpy(), exact, rtol=1e-6)
    # Not adversarial at the end: unchanged.
    same = boundary_search(net, x, x + 1e-9, torch.from_numpy(pred))
    np.testing.assert_array_equal(same.numpy(), (x + 1e-9).numpy())


def test_deepfool_is_differentiable_in_the_weights():
    net, X, _, pred = _linear_case(6, 4, n=8)
    x = torch.from_numpy(X)
    x_adv, is_adv, _ = deepfool_perturbation(
        net, x, torch.from_numpy(pred), max_iter=3, create_graph=True
    )
    assert is_adv.all()
    (x_adv - x).norm(dim=1).sum().backward()
    grad = net.lin.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_bad_parameters():
    net, X, _, pred = _linear_case(4, 3, n=4)
    with pytest.raises(InvalidParameterError):
        DeepFool(overshoot=0.0)(net, X, pred)
    with pytest.raises(InvalidParameterError):
        FMN(steps=0)(net, X, pred)
    with pytest.raises(TypeError, match="MinimizationAttack"):
        MinimumNormEnsemble(attacks=["DDN"])(net, X, pred)
    with pytest.raises(ValueError, match="at least one"):
        MinimumNormEnsemble(attacks=[])(net, X, pred)
    with pytest.raises(ValueError, match="outside the box"):
        MinimumNormEnsemble()(net, X + 2.0, pred)


def test_deepfool_moves_along_the_free_faces_of_the_box():
    # At the corner x = 0, the closest boundary point of -3 x1 + x2 = 0.5 lies outside the
    # box; inside it, the closest one is (0, 0.5). Plain DeepFool steps outwards, is
    # clipped back to the corner and never gets there.
    lin = torch.nn.Linear(2, 2).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.0, 0.0], [-3.0, 1.0]]))
        lin.bias.copy_(torch.tensor([0.0, -0.5]))
    net = Hidden(lin)
    X = np.zeros((1, 2))
    X_adv, dist = DeepFool(clip=(0.0, 1.0))(net, X, np.array([0]))
    np.testing.assert_allclose(dist, [0.5], rtol=1e-5)
    np.testing.assert_allclose(X_adv, [[0.0, 0.5]], atol=1e-5)
    _, dist = MinimumNormEnsemble(steps=10, clip=(0.0, 1.0))(net, X, np.array([0]))
    np.testing.assert_allclose(dist, [0.5], rtol=1e-5)


def test_ensemble_warm_starts_the_attacks_that_declare_it():
    """``accepts_x_init`` declares the warm start; the signature of ``run`` is not read."""
    seen = []

    class Recorder(MinimizationAttack):
        accepts_x_init = True

        def __init__(self, clip=None, batch_size=256, device=None, verbose=0, random_state=None):
            self.clip = clip
            self.batch_size = batch_size
            self.device = device
            self.verbose = verbose
            self.random_state = random_state

        def run(self, fn, x, y, **kwargs):
            seen.append(sorted(kwargs))
            return x, torch.full((x.shape[0],), float("inf"), dtype=torch.float64)

    class Cold(Recorder):
        accepts_x_init = False

    net = torch.nn.Linear(3, 2)
    X = torch.rand(5, 3)
    y = net(X).argmax(1)
    MinimumNormEnsemble(attacks=[Recorder(), Cold()], refine_steps=0)(net, X, y)
    assert seen == [["generator", "x_init"], ["generator"]]
    assert FMN.accepts_x_init and not DDN.accepts_x_init and not DeepFool.accepts_x_init


def test_deepfool_maths_has_one_home_and_unchanged_numbers():
    from amrlearn._math import _deepfool
    from amrlearn.neural import _ddpenalty

    for name in ("class_gap_gradients", "deepfool_perturbation", "deepfool_step"):
        assert getattr(amrlearn_attacks, name) is getattr(_deepfool, name)
        assert getattr(_ddpenalty, name) is getattr(_deepfool, name)
    # A small ReLU net with fixed weights; the iterates as the attack module gave them
    # before the maths moved (two samples need two jumps).
    rng = np.random.default_rng(4)
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    net = net.double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.from_numpy(rng.normal(size=tuple(p.shape))))
    x = torch.from_numpy(rng.uniform(size=(4, 2)))
    x_adv, is_adv, n_iter = deepfool_perturbation(net, x, net(x).argmax(1))
    expected = [
        [-0.05726982695342031, -0.2501691677252771],
        [-0.2044139707666518, 0.2752806920312724],
        [-0.3081037970658881, 0.5483846158110985],
        [-0.07250258790274022, -0.20627789978037103],
    ]
    np.testing.assert_allclose(x_adv.detach().numpy(), expected, rtol=1e-12)
    assert is_adv.all() and n_iter.tolist() == [2, 1, 1, 2]
