"""Margin-distribution regularizers and FGSM-RS (beyond the paper)."""

import numpy as np
import pytest
import torch

from amrlearn.attacks import FGSMRS, L2PGD
from amrlearn.neural._distribution import (
    deepfool_input_margin,
    margin_spread_term,
    soft_min_margin_term,
)
from amrlearn.neural._penalties import amr_margin_term
from amrlearn.utils import as_logit_fn


def _net(seed=0, d=6, c=3):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(d, 16), torch.nn.ReLU(), torch.nn.Linear(16, c)
    ).double()


# --- soft minimum -------------------------------------------------------------------


def test_soft_min_between_min_and_mean_and_tends_to_both():
    m = torch.tensor([0.3, 1.7, 4.0, -1.0, 9.0], dtype=torch.float64)
    correct = m > 0
    mean = amr_margin_term(m, correct, 5.0)
    low = m.clamp(0, 5).min()
    for T in (0.05, 0.5, 5.0):
        v = soft_min_margin_term(m, 5.0, T)
        assert low - 1e-12 <= v <= mean + 1e-12
    assert torch.isclose(soft_min_margin_term(m, 5.0, 1e6), mean, atol=1e-5)
    assert torch.isclose(soft_min_margin_term(m, 5.0, 1e-4), low, atol=1e-3)
    # monotone in T: a colder soft minimum weighs the small margins more
    vals = [float(soft_min_margin_term(m, 5.0, T)) for T in (0.1, 0.3, 1.0, 3.0)]
    assert vals == sorted(vals)


def test_soft_min_gradient_is_right_and_weighs_small_margins():
    m = torch.tensor([0.3, 1.7, 4.0, 2.2], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: soft_min_margin_term(t, 5.0, 0.7), (m,))
    (g,) = torch.autograd.grad(soft_min_margin_term(m, 5.0, 0.7), m)
    assert torch.isclose(g.sum(), torch.tensor(1.0, dtype=torch.float64))  # softmax weights
    assert g[0] > g[1] > g[3] > g[2] > 0


def test_soft_min_refuses_bad_hyperparameters():
    m = torch.ones(3)
    with pytest.raises(ValueError, match="temperature"):
        soft_min_margin_term(m, 5.0, 0.0)
    with pytest.raises(ValueError, match="tau"):
        soft_min_margin_term(m, -1.0, 1.0)


# --- spread ---------------------------------------------------------------------------


def test_spread_is_the_variance_of_the_truncated_correct_margins():
    rng = np.random.default_rng(0)
    m_np = rng.normal(1.0, 2.0, size=50)
    correct = rng.uniform(size=50) < 0.8
    m = torch.tensor(m_np, requires_grad=True)
    v = margin_spread_term(m, torch.tensor(correct), 3.0)
    assert np.isclose(float(v.detach()), np.var(np.clip(m_np[correct], 0, 3.0)))
    sel = torch.tensor(correct)

    def f(t):
        return margin_spread_term(t, sel, 3.0)

    # gradcheck away from the kinks at 0 and tau
    m2 = torch.tensor(np.clip(m_np, 0.1, 2.9) + rng.uniform(-0.05, 0.05, 50), requires_grad=True)
    assert torch.autograd.gradcheck(f, (m2,))
    (g,) = torch.autograd.grad(f(m2), m2)
    assert torch.all(g[~sel] == 0)


def test_spread_of_fewer_than_two_correct_is_zero_with_a_gradient():
    m = torch.tensor([1.0, -1.0], requires_grad=True)
    v = margin_spread_term(m, torch.tensor([True, False]), 5.0)
    assert float(v) == 0.0
    v.backward()
    assert torch.all(m.grad == 0)


# --- one-step input margin ---------------------------------------------------------------


def test_deepfool_input_margin_is_exact_on_an_affine_net():
    torch.manual_seed(0)
    lin = torch.nn.Linear(5, 4).double()
    x = torch.randn(20, 5, dtype=torch.float64)
    y = torch.randint(0, 4, (20,))
    d = deepfool_input_margin(lin, x, y)
    z = lin(x).detach()
    W = lin.weight.detach()
    other = z.scatter(1, y[:, None], -np.inf).argmax(1)
    gap = z.gather(1, y[:, None])[:, 0] - z.gather(1, other[:, None])[:, 0]
    expect = gap / (W[y] - W[other]).norm(dim=1)
    assert torch.allclose(d, expect)


def test_deepfool_input_margin_gradient_matches_finite_differences():
    net = _net()
    x = torch.rand(7, 6, dtype=torch.float64)
    y = torch.randint(0, 3, (7,))
    params = list(net.parameters())

    def f(*ps):
        with torch.no_grad():
            for p, q in zip(params, ps, strict=True):
                p.copy_(q)
        return deepfool_input_margin(net, x, y).sum()

    d = deepfool_input_margin(net, x, y).sum()
    grads = torch.autograd.grad(d, params)
    # directional derivative along a random direction, by central differences
    base = [p.detach().clone() for p in params]
    direction = [torch.randn_like(p) for p in params]
    h = 1e-6
    plus = float(f(*[b + h * v for b, v in zip(base, direction, strict=True)]))
    minus = float(f(*[b - h * v for b, v in zip(base, direction, strict=True)]))
    f(*base)
    fd = (plus - minus) / (2 * h)
    an = sum(float((g * v).sum()) for g, v in zip(grads, direction, strict=True))
    assert np.isclose(fd, an, rtol=1e-4, atol=1e-6)


# --- FGSM-RS -----------------------------------------------------------------------------


def test_fgsm_rs_is_one_step_from_the_random_start():
    net = _net().float()
    x = torch.rand(12, 6)
    y = torch.randint(0, 3, (12,))
    fn = as_logit_fn(net)
    eps = 0.4
    gen = torch.Generator().manual_seed(3)
    x_adv = FGSMRS(eps=eps).run(fn, x, y, generator=gen)
    # by hand: the same start, one normalized cross-entropy step of 1.25 eps, projected
    from amrlearn.attacks._steps import ascent_step, start

    gen = torch.Generator().manual_seed(3)
    delta = start(x, eps, True, (0.0, 1.0), gen).requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(net(x + delta), y, reduction="sum")
    (g,) = torch.autograd.grad(loss, delta)
    expect = x + ascent_step(x, delta.detach(), g, 1.25 * eps, eps, (0.0, 1.0))
    assert torch.equal(x_adv, expect)
    norms = (x_adv - x).flatten(1).norm(dim=1)
    assert torch.all(norms <= eps * (1 + 1e-6))
    assert x_adv.min() >= 0 and x_adv.max() <= 1


def test_fgsm_rs_broken_counts_only_misclassified_points_and_is_weaker_than_pgd():
    net = _net(1).float()
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(200, 6)).astype(np.float32)
    y = net(torch.from_numpy(X)).argmax(1).numpy()
    fn = as_logit_fn(net)
    xt, yt = torch.from_numpy(X), torch.from_numpy(y).long()
    b = FGSMRS(eps=0.3).broken(fn, xt, yt, generator=torch.Generator().manual_seed(0))
    pgd = L2PGD(eps=0.3, steps=50, step_size=0.02).broken(
        fn, xt, yt, generator=torch.Generator().manual_seed(0)
    )
    assert b.dtype == torch.bool and b.shape == (200,)
    # every sample FGSM-RS breaks, a 50-step PGD from its own start breaks too (almost surely)
    assert int((b & ~pgd).sum()) <= 2
    assert int(pgd.sum()) >= int(b.sum())


def test_fgsm_rs_validates_its_parameters():
    X = np.zeros((2, 6), np.float32)
    with pytest.raises(ValueError, match="step_ratio"):
        FGSMRS(eps=0.5, step_ratio=-1)(_net().float(), X, np.zeros(2, int))


def test_adversarial_training_with_fgsm_rs():
    from amrlearn.neural import AdversarialNeuralNetClassifier, models

    rng = np.random.default_rng(0)
    X = rng.uniform(size=(64, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    net = AdversarialNeuralNetClassifier(
        models.MLP(784, hidden=16, n_classes=3),
        attack=FGSMRS,
        attack__eps=1.0,
        max_epochs=1,
        batch_size=32,
        train_split=None,
        verbose=0,
    ).fit(X, y)
    assert isinstance(net.attack_, FGSMRS) and net.attack_.eps == 1.0
    assert net.predict(X).shape == (64,)


# --- the penalties as parts ----------------------------------------------------------------


def _data(n=48, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, d)).astype(np.float32)
    return X, (X[:, 0] + 0.3 * X[:, 1] > 0.6).astype(np.int64)


def _reg_net(penalty, **kw):
    from amrlearn.neural import RegularizedNeuralNetClassifier, models

    return RegularizedNeuralNetClassifier(
        models.MLP,
        module__in_features=5,
        module__hidden=8,
        module__n_classes=2,
        penalty=penalty,
        max_epochs=1,
        batch_size=16,
        train_split=None,
        verbose=0,
        **kw,
    )


@pytest.mark.parametrize("name", ["soft_min", "spread", "input_margin"])
def test_distribution_penalty_enters_the_loss_as_its_maths_says(name):
    from amrlearn.neural import (
        InputMarginPenalty,
        MarginSpreadPenalty,
        SoftMinMarginPenalty,
        feature_margin,
    )

    cls = {
        "soft_min": SoftMinMarginPenalty,
        "spread": MarginSpreadPenalty,
        "input_margin": InputMarginPenalty,
    }[name]
    X, y = _data()
    net = _reg_net(cls(weight=0.3)).fit(X, y)
    xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    net.module_.train()
    y_pred = net.infer(xt)
    logits = y_pred[0]
    ce = torch.nn.functional.cross_entropy(logits, yt)
    loss = net.get_loss(y_pred, yt, X=xt, training=True)
    if name == "input_margin":
        net.module_.eval()
        from amrlearn.neural._features import logits_of

        d = deepfool_input_margin(lambda z: logits_of(net.module_(z)), xt, yt)
        expect = ce - 0.3 * d.clamp(0, 2.0).mean()
    else:
        layer = net._logits_features_layer(y_pred)[2]
        m = feature_margin(y_pred[1], layer.weight, layer.bias, yt)
        term = (
            -soft_min_margin_term(m, 5.0, 1.0)
            if name == "soft_min"
            else margin_spread_term(m, m > 0, 5.0)
        )
        expect = ce + 0.3 * term
    assert torch.allclose(loss, expect, atol=1e-6)
    assert torch.isfinite(loss)


def test_distribution_penalties_refuse_bad_hyperparameters():
    from amrlearn.neural import InputMarginPenalty, SoftMinMarginPenalty

    X, y = _data()
    with pytest.raises(ValueError, match="temperature"):
        _reg_net(SoftMinMarginPenalty(temperature=0)).fit(X, y)
    with pytest.raises(ValueError, match="tau"):
        _reg_net(InputMarginPenalty(tau=-1)).fit(X, y)


def test_clean_margin_penalty_reads_the_clean_batch_in_adversarial_training():
    from amrlearn.neural import (
        AdversarialNeuralNetClassifier,
        AMRMarginPenalty,
        CleanMarginPenalty,
        models,
    )

    X, y = _data()
    seen = {}

    class Spy(CleanMarginPenalty):
        def compute(self, net, batch, clock):
            seen.setdefault("clean", []).append(net.__dict__.get("_clean_batch"))
            seen.setdefault("x", []).append(batch.X)
            return super().compute(net, batch, clock)

    common = dict(
        module=models.MLP,
        module__in_features=5,
        module__hidden=8,
        module__n_classes=2,
        attack=FGSMRS,
        attack__eps=0.3,
        max_epochs=1,
        batch_size=16,
        train_split=None,
        verbose=0,
    )
    AdversarialNeuralNetClassifier(penalty=Spy(tau=1.0), **common).fit(X, y)
    clean = [c for c in seen["clean"] if c is not None]
    assert len(clean) == 3  # one per training batch
    for (xc, _), xa in zip(clean, seen["x"], strict=False):
        assert not torch.equal(xc, torch.as_tensor(xa))  # the penalty saw clean, the loss adv
        assert set(np.round(xc.numpy().ravel(), 6)) <= set(np.round(X.ravel(), 6))
    # and AMRMarginPenalty, on the adversarial points, also trains
    net = AdversarialNeuralNetClassifier(penalty=AMRMarginPenalty(tau=1.0), **common).fit(X, y)
    assert net.__dict__.get("_clean_batch") is None
