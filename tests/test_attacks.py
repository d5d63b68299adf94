"""Tests of amrlearn.attacks: L2PGD, robust_accuracy, DDN, and the torch adapter."""

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

from amrlearn.attacks import DDN, L2PGD, robust_accuracy, uniform_l2_ball
from amrlearn.metrics import linear_margins
from amrlearn.utils import as_logit_fn


def _accuracy(net, X, y):
    was = net.training
    net.eval()
    with torch.no_grad():
        acc = (net(torch.as_tensor(X)).argmax(1).numpy() == y).mean()
    net.train(was)
    return acc


def test_eps_zero_gives_clean_accuracy_and_restores_train_mode(bn_mlp, digits):
    X, y = digits
    bn_mlp.train()
    clean = _accuracy(bn_mlp, X, y)
    X_adv = L2PGD(eps=0.0, steps=5, step_size=0.1, random_state=0)(bn_mlp, X, y)
    np.testing.assert_array_equal(X_adv, X)
    assert bn_mlp.training, "the module's previous mode must be restored"
    assert _accuracy(bn_mlp, X_adv, y) == clean
    assert robust_accuracy(bn_mlp, X, y, eps=[0.0], steps=5).tolist() == [clean]
    assert bn_mlp.training
    # eps = 0 inside a grid: still the clean accuracy.
    acc = robust_accuracy(bn_mlp, X, y, eps=[0.0, 0.3], steps=10, step_size=0.05, random_state=0)
    assert acc[0] == clean


@pytest.mark.parametrize("random_start", [True, False])
def test_perturbation_within_ball_and_box(bn_mlp, cnn, digits, random_start):
    X, y = digits
    for net, Xin in ((bn_mlp, X), (cnn, X.reshape(-1, 1, 8, 8))):
        eps = 0.7
        X_adv = L2PGD(eps=eps, steps=30, step_size=0.1, random_start=random_start, random_state=0)(
            net, Xin, y
        )
        assert X_adv.shape == Xin.shape
        norms = np.linalg.norm((X_adv - Xin).reshape(len(Xin), -1), axis=1)
        assert norms.max() <= eps * (1 + 1e-6)
        assert X_adv.min() >= 0.0 and X_adv.max() <= 1.0
        # The attack does something: it breaks some samples.
        assert _accuracy(net, X_adv, y) < _accuracy(net, Xin, y)


def test_random_start_is_uniform_in_the_ball():
    d, eps, n = 6, 0.8, 3000
    gen = torch.Generator().manual_seed(0)
    delta = uniform_l2_ball((n, 2, 3), eps, generator=gen)
    r = delta.flatten(1).norm(dim=1).numpy()
    # Uniform in the ball <=> (r / eps)^d ~ U(0, 1) (and the direction is isotropic).
    assert stats.kstest((r / eps) ** d, "uniform").pvalue > 1e-3
    # The common mistake, radius eps * U, fails the same test.
    wrong = eps * torch.rand(n, generator=gen).numpy()
    assert stats.kstest((wrong / eps) ** d, "uniform").pvalue < 1e-6
    unit = delta.flatten(1) / delta.flatten(1).norm(dim=1, keepdim=True)
    assert np.abs(unit.mean(0).numpy()).max() < 4 / np.sqrt(n)

    # The start that L2PGD itself uses (steps=0 returns it), on flat inputs, no box.
    x = np.zeros((n, d), dtype=np.float32)
    net = torch.nn.Linear(d, 2)
    y = np.zeros(n, dtype=np.int64)
    X0 = L2PGD(eps=eps, steps=0, clip=None, early_stop=False, random_state=1)(net, x, y)
    r0 = np.linalg.norm(X0, axis=1)
    assert stats.kstest((r0 / eps) ** d, "uniform").pvalue > 1e-3


def test_robust_accuracy_non_increasing_and_shared_grid(bn_mlp, digits):
    X, y = digits
    grid = [0.8, 0.0, 0.2, 0.4, 1.2]
    acc = robust_accuracy(bn_mlp, X, y, eps=grid, steps=40, step_size=0.05, random_state=0)
    assert acc.shape == (5,)
    ordered = acc[np.argsort(grid)]
    assert np.all(np.diff(ordered) <= 0)
    assert ordered[-1] < ordered[0]
    # Sharing the grid gives the same answer as one radius at a time, or a stronger one.
    alone = robust_accuracy(bn_mlp, X, y, eps=[0.4], steps=40, step_size=0.05, random_state=0)
    assert acc[3] <= alone[0] + 0.02


def test_determinism_under_seed(bn_mlp, digits):
    X, y = digits
    a = L2PGD(eps=0.5, steps=10, step_size=0.05, random_state=3)(bn_mlp, X, y)
    b = L2PGD(eps=0.5, steps=10, step_size=0.05, random_state=3)(bn_mlp, X, y)
    c = L2PGD(eps=0.5, steps=10, step_size=0.05, random_state=4)(bn_mlp, X, y)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    r1 = robust_accuracy(bn_mlp, X, y, eps=[0.3, 0.6], steps=10, random_state=0)
    r2 = robust_accuracy(bn_mlp, X, y, eps=[0.3, 0.6], steps=10, random_state=0)
    np.testing.assert_array_equal(r1, r2)


def test_batch_size_reaches_the_model(digits):
    X, y = digits
    seen = []

    class Spy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(64, 10)

        def forward(self, x):
            seen.append(x.shape[0])
            return self.lin(x)

    L2PGD(eps=0.3, steps=2, batch_size=32)(Spy(), X, y)
    assert max(seen) == 32
    seen.clear()
    robust_accuracy(Spy(), X, y, eps=[0.3], steps=2, batch_size=50)
    assert max(seen) <= 50
    seen.clear()
    DDN(steps=2, batch_size=16)(Spy(), X, y)
    assert max(seen) == 16


def test_tuple_output_and_tensor_input(digits):
    X, y = digits

    class WithFeatures(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Linear(64, 16)
            self.head = torch.nn.Linear(16, 10)

        def forward(self, x):
            f = torch.relu(self.body(x))
            return self.head(f), f

    torch.manual_seed(0)
    net = WithFeatures()
    Xt = torch.from_numpy(X[:50])
    out = L2PGD(eps=0.2, steps=3, step_size=0.1, random_state=0)(net, Xt, torch.from_numpy(y[:50]))
    assert torch.is_tensor(out) and out.shape == Xt.shape


def test_linear_estimator_robust_accuracy_is_exact():
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(300, 5)).astype(np.float32)
    y = np.where(X @ np.arange(1, 6) > 7.5, "b", "a")  # string labels, through classes_
    clf = LogisticRegression().fit(X, y)
    fn = as_logit_fn(clf)
    idx = fn(torch.from_numpy(X)).argmax(1).numpy()
    np.testing.assert_array_equal(fn.index_label(idx), clf.predict(X))
    margins = linear_margins(clf, X, y)
    eps = [0.05, 0.1, 0.2]
    acc = robust_accuracy(
        clf, X, y, eps=eps, steps=30, step_size=0.02, clip=None, random_start=False
    )
    for e, a in zip(eps, acc):
        # From x, PGD on a binary linear model walks straight to the boundary.
        assert abs(a - np.mean(margins > e)) <= 1 / len(X)


def test_skorch_net(digits):
    import skorch

    X, y = digits
    torch.manual_seed(0)
    net = skorch.NeuralNetClassifier(
        torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)),
        criterion=torch.nn.CrossEntropyLoss,  # the module returns logits
        max_epochs=10,
        lr=0.5,
        train_split=None,
        verbose=0,
    ).fit(X, y)
    acc = robust_accuracy(net, X, y, eps=[0.0, 0.5], steps=20, step_size=0.05, random_state=0)
    assert acc[0] == pytest.approx(np.mean(net.predict(X) == y))
    assert acc[1] < acc[0]
    X_adv, dist = DDN(steps=20)(net, X[:40], y[:40])
    assert X_adv.shape == (40, 64) and dist.shape == (40,)


def test_ddn_upper_bounds_the_linear_margin_and_is_vectorized():
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(60, 4)).astype(np.float32)
    y = (X.sum(1) > 2).astype(np.int64)
    clf = LogisticRegression().fit(X, y)
    exact = linear_margins(clf, X)
    pred = clf.predict(X)
    X_adv, dist = DDN(steps=200, clip=None)(clf, X, pred)
    assert np.all(dist >= exact - 1e-5)
    assert np.all(dist <= exact * 1.1 + 1e-3)
    np.testing.assert_allclose(np.linalg.norm(X_adv - X, axis=1), dist, rtol=1e-5, atol=1e-6)
    assert np.all(clf.predict(X_adv) != pred)
    # Batched and one-by-one runs agree: the samples do not interact.
    _, dist1 = DDN(steps=200, clip=None, batch_size=1)(clf, X[:8], pred[:8])
    np.testing.assert_allclose(dist1, dist[:8], rtol=1e-5)
    # Misclassified samples are at distance 0.
    _, d0 = DDN(steps=5, clip=None)(clf, X[:5], 1 - pred[:5])
    np.testing.assert_array_equal(d0, 0.0)


def test_ddn_on_images_in_box(cnn, digits):
    X, y = digits
    Xi = X[:64].reshape(-1, 1, 8, 8)
    X_adv, dist = DDN(steps=50, random_state=0)(cnn, Xi, y[:64])
    assert X_adv.shape == Xi.shape
    assert X_adv.min() >= 0 and X_adv.max() <= 1
    found = np.isfinite(dist)
    assert found.mean() > 0.9
    with torch.no_grad():
        pred = cnn(torch.from_numpy(X_adv[found])).argmax(1).numpy()
    assert np.all(pred != y[:64][found])


def test_bad_input(bn_mlp, digits):
    X, y = digits
    with pytest.raises(ValueError, match="outside the box"):
        L2PGD(eps=0.1)(bn_mlp, X * 2, y)
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        L2PGD(eps=0.1)(bn_mlp, Xn, y)
    with pytest.raises(ValueError, match="shape"):
        L2PGD(eps=0.1)(bn_mlp, X, y[:-1])
    with pytest.raises(InvalidParameterError):
        L2PGD(eps=-1.0)(bn_mlp, X, y)
    with pytest.raises(InvalidParameterError):
        DDN(gamma=1.5)(bn_mlp, X, y)
    with pytest.raises(ValueError, match="eps"):
        robust_accuracy(bn_mlp, X, y, eps=[])
    with pytest.raises(TypeError, match="logit function"):
        L2PGD(eps=0.1)(object(), X, y)
    with pytest.raises(ValueError, match="not seen"):
        robust_accuracy(LogisticRegression().fit(X, y), X, y + 100, eps=[0.1], steps=1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda(bn_mlp, digits):
    X, y = digits
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    acc = robust_accuracy(net, X, y, eps=[0.0, 0.5], steps=10, device="cuda", random_state=0)
    assert acc[1] <= acc[0]
    X_adv = L2PGD(eps=0.5, steps=10, device="cuda", random_state=0)(net, X, y)
    assert isinstance(X_adv, np.ndarray)
    assert np.linalg.norm(X_adv - X, axis=1).max() <= 0.5 * (1 + 1e-6)
    _, dist = DDN(steps=10, device="cuda")(net, X, y)
    assert dist.shape == (len(X),)


def test_margin_loss_breaks_a_saturated_softmax_that_cross_entropy_cannot():
    # Logit gaps of several hundred: the float32 cross-entropy gradient is exactly zero,
    # so PGD on "ce" never moves (gradient masking); the logit-margin loss still has a
    # gradient and finds the boundary, which every sample is within eps of.
    import torch

    from amrlearn.attacks import L2PGD, robust_accuracy

    torch.manual_seed(0)
    net = torch.nn.Linear(2, 2)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1000.0, 0.0], [-1000.0, 0.0]]))
        net.bias.copy_(torch.tensor([-500.0, 500.0]))  # boundary at x0 = 0.5
    X = np.array([[0.8, 0.5], [0.7, 0.2], [0.2, 0.4], [0.3, 0.9]], dtype=np.float32)
    y = np.array([0, 0, 1, 1])
    # Distance of each point to the boundary x0 = 0.5 is at most 0.3 < eps = 0.5.
    kw = dict(steps=50, step_size=0.05, random_start=False, clip=(0.0, 1.0), random_state=0)
    assert robust_accuracy(net, X, y, eps=[0.5], loss="ce", **kw)[0] == 1.0
    assert robust_accuracy(net, X, y, eps=[0.5], loss="margin", **kw)[0] == 0.0
    assert robust_accuracy(net, X, y, eps=[0.5], loss=("ce", "margin"), **kw)[0] == 0.0
    X_adv = L2PGD(eps=0.5, loss="margin", **kw)(net, X, y)
    assert np.all(np.linalg.norm(X_adv - X, axis=1) <= 0.5 * (1 + 1e-6))
    with pytest.raises(ValueError):
        L2PGD(eps=0.5, loss="hinge")(net, X, y)


# --------------------------------------------------------------------------- pipelines


def _tiny_scale_problem():
    """Two classes 0.01 apart in raw units: about 2 apart once standardized."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 100)
    X = np.c_[0.01 * y + 0.0005 * rng.standard_normal(200), 0.001 * rng.standard_normal(200)]
    return X.astype(np.float32), y


def test_pipeline_is_attacked_in_the_raw_input_space():
    X, y = _tiny_scale_problem()
    pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    kw = dict(steps=50, step_size=0.05, clip=None, random_start=False, random_state=0)
    # The raw-space answer: every sample is within 0.5 of the boundary.
    margins = linear_margins(pipe, X, y)
    assert margins.max() < 0.5
    assert robust_accuracy(pipe, X, y, eps=[0.0, 0.5], **kw).tolist() == [
        pipe.score(X, y),
        0.0,
    ]
    # What the workaround (attacking the last step on scaled data) answers instead.
    Xs = pipe[:-1].transform(X)
    assert np.abs(linear_margins(pipe[-1], Xs, y)).min() > 0.5
    assert robust_accuracy(pipe[-1], Xs, y, eps=[0.5], **kw)[0] == 1.0
    # Robust accuracy equals the exact answer at every radius (PGD from x walks straight
    # to the boundary of a binary linear model).
    eps = [0.002, 0.004, 0.006]
    acc = robust_accuracy(pipe, X, y, eps=eps, steps=100, step_size=0.0002, clip=None,
                          random_start=False)  # fmt: skip
    for e, a in zip(eps, acc):
        assert abs(a - np.mean(margins > e)) <= 1 / len(X)
    # The logits are those of the pipeline, labels included.
    fn = as_logit_fn(pipe)
    idx = fn(torch.from_numpy(X)).argmax(1).numpy()
    np.testing.assert_array_equal(fn.index_label(idx), pipe.predict(X))


def test_pipeline_ending_in_a_net_scales_inside_torch(digits):
    import skorch

    X, y = digits
    X = X * 10.0 + 3.0  # raw units that a scaler maps back
    torch.manual_seed(0)
    net = skorch.NeuralNetClassifier(
        torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)),
        criterion=torch.nn.CrossEntropyLoss,
        max_epochs=3,
        lr=0.1,
        train_split=None,
        verbose=0,
    )
    pipe = make_pipeline(MinMaxScaler(), net).fit(X, y)
    fn = as_logit_fn(pipe)
    with torch.no_grad():
        logits = fn(torch.from_numpy(X)).numpy()
        expected = net.module_(torch.from_numpy(pipe[0].transform(X).astype(np.float32)))
    np.testing.assert_allclose(logits, expected.numpy(), rtol=1e-5, atol=1e-5)
    acc = robust_accuracy(pipe, X[:50], y[:50], eps=[0.0], clip=None)
    assert acc[0] == np.mean(pipe.predict(X[:50]) == y[:50])


@pytest.mark.parametrize("step", [PCA(n_components=2), FunctionTransformer(np.tanh)])
def test_pipeline_with_non_affine_preprocessing_is_refused(step):
    X, y = _tiny_scale_problem()
    pipe = make_pipeline(step, LogisticRegression()).fit(X, y)
    with pytest.raises(TypeError, match="not a known affine scaler"):
        robust_accuracy(pipe, X, y, eps=[0.1], clip=None)
    with pytest.raises(TypeError, match="not a known affine scaler"):
        DDN(clip=None)(pipe, X, y)


# --------------------------------------------------------------------------- labels


@pytest.mark.parametrize("labels", [[3, 7], ["cat", "dog"]])
def test_labels_go_through_classes(labels):
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(200, 3)).astype(np.float32)
    y = np.asarray(labels)[(X.sum(1) + 0.2 * rng.standard_normal(200) > 1.5).astype(int)]
    clf = LogisticRegression().fit(X, y)
    assert robust_accuracy(clf, X, y, eps=[0.0], clip=None)[0] == clf.score(X, y)
    X_adv = L2PGD(eps=0.3, steps=20, step_size=0.05, clip=None, random_state=0)(clf, X, y)
    m = linear_margins(clf, X, y)
    # Samples within 0.3 of the boundary are broken, the others are not.
    far = np.abs(m) > 0.3 + 1e-4
    np.testing.assert_array_equal((clf.predict(X_adv) == y)[far], (m > 0)[far])
    _, dist = DDN(steps=100, clip=None)(clf, X, clf.predict(X))
    assert np.all(dist >= np.abs(m) - 1e-5)
    with pytest.raises(ValueError, match="not seen"):
        robust_accuracy(clf, X, np.full(200, labels[0] * 2), eps=[0.1], clip=None)


def test_bare_module_with_explicit_classes():
    torch.manual_seed(0)
    module = torch.nn.Linear(3, 2)
    X = np.random.default_rng(0).uniform(size=(50, 3)).astype(np.float32)
    with torch.no_grad():
        idx = module(torch.from_numpy(X)).argmax(1).numpy()
    classes = np.array([3, 7])
    y = classes[idx]
    y[:10] = classes[1 - idx[:10]]  # ten wrong labels
    fn = as_logit_fn(module, classes=classes)
    assert robust_accuracy(fn, X, y, eps=[0.0], clip=None)[0] == 0.8
    with pytest.raises(ValueError, match="integer"):
        robust_accuracy(module, X, y.astype(str), eps=[0.0], clip=None)
    with pytest.raises(TypeError, match="classes"):
        as_logit_fn(LogisticRegression(), classes=classes)


# --------------------------------------------------------------------------- public API


def test_broken_is_public_and_agrees_with_run(bn_mlp, digits):
    X, y = digits
    fn = as_logit_fn(bn_mlp)
    x, yt = torch.from_numpy(X[:200]), torch.from_numpy(y[:200])
    attack = L2PGD(eps=0.5, steps=20, step_size=0.05)
    with fn.eval_mode():
        broken = attack.broken(fn, x, yt, generator=torch.Generator().manual_seed(0))
        x_adv = attack.run(fn, x, yt, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            wrong = fn(x_adv).argmax(1) != yt
    assert broken.dtype == torch.bool and 0 < broken.sum() < 200
    np.testing.assert_array_equal(broken.numpy(), wrong.numpy())
    # At eps=0 the broken samples are exactly the misclassified ones.
    with fn.eval_mode():
        zero = L2PGD(eps=0.0, steps=5).broken(fn, x, yt)
        with torch.no_grad():
            miss = fn(x).argmax(1) != yt
    np.testing.assert_array_equal(zero.numpy(), miss.numpy())
    with pytest.raises(InvalidParameterError):
        L2PGD(eps=-1.0).broken(fn, x, yt)


def test_broken_lives_on_the_base_class():
    """An attack that only writes ``run`` gets ``broken``: misclassified and within eps."""
    from amrlearn.attacks import FixedEpsilonAttack

    class ToBoundary(FixedEpsilonAttack):  # moves every sample to x_0 = 0.5
        _parameter_constraints: dict = {
            **FixedEpsilonAttack._parameter_constraints,
            "eps": "no_validation",
        }

        def __init__(self, eps=1.0, batch_size=256, device=None, verbose=0, random_state=None):
            self.eps = eps
            self.batch_size = batch_size
            self.device = device
            self.verbose = verbose
            self.random_state = random_state

        def run(self, fn, x, y, *, generator=None):
            return torch.full_like(x, 0.5)

    lin = torch.nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0], [-1.0]]))  # class 0 where x > 0
    fn = as_logit_fn(lin)
    x = -torch.arange(6.0)[:, None] - 0.5  # class 1; sample i lies i + 1 from 0.5
    y = torch.ones(6, dtype=torch.long)
    assert ToBoundary(eps=4.0).broken(fn, x, y).tolist() == [True] * 4 + [False] * 2
    assert not ToBoundary(eps=0.0).broken(fn, x, y).any()
    acc = robust_accuracy(lin, x, y, eps=[2.5, 5.0], attack=ToBoundary(), clip=None)
    np.testing.assert_allclose(acc, [4 / 6, 1 / 6])


def test_robust_accuracy_runs_an_attack_instance_in_its_own_batches(digits):
    X, y = digits
    sizes = []

    class Spy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(64, 10)

        def forward(self, x):
            if torch.is_grad_enabled():  # the attack's passes, not the clean one
                sizes.append(x.shape[0])
            return self.lin(x)

    net = Spy()
    with torch.no_grad():
        pred = net(torch.from_numpy(X[:40])).argmax(1).numpy()  # all 40 are candidates
    attack = L2PGD(eps=0.0, steps=2, step_size=1e-3, batch_size=8)
    robust_accuracy(net, X[:40], pred, eps=[0.3], attack=attack, batch_size=50)
    assert max(sizes) == 8
