"""The fast paths of objective (15): fused margin term, Gram penalty, lazy and probed penalty.

Each fast path is checked against the plain formula it replaces (float64, value and
gradient) and each cheaper schedule against the exact penalty it estimates.
"""

import numpy as np
import pytest
import torch
from sklearn.utils._param_validation import InvalidParameterError

from amrlearn.neural import AMRNeuralNetClassifier, feature_margin, models, orthogonality_penalty
from amrlearn.neural._penalties import _gram_penalty, amr_margin_loss, amr_margin_term


def _problem(n=64, d=12, c=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    F = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    W = torch.randn(c, d, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(c, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, c, (n,), generator=g)
    return F, W, b, y


# ------------------------------------------------------- fused margin term
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("tau", [0.4, 50.0])  # some margins clamped at tau / none
def test_margin_loss_equals_the_composite_formula(normalize, tau):
    F, W, b, y = _problem()
    z = F @ W.T + b
    correct = z.argmax(1) == y
    assert 0 < int(correct.sum()) < len(y)  # both kinds of samples are present
    ref = amr_margin_term(feature_margin(F, W, b, y, normalize=normalize), correct, tau)
    ref_grads = torch.autograd.grad(ref, (F, W, b))
    z = F @ W.T + b
    fast = amr_margin_loss(z, W, y, tau, normalize=normalize)
    fast_grads = torch.autograd.grad(fast, (F, W, b))
    torch.testing.assert_close(fast, ref, rtol=1e-12, atol=1e-12)
    for a, r in zip(fast_grads, ref_grads):
        torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-12)
    if tau < 1:  # the clamp is active for some samples: the test covers that branch
        m = feature_margin(F, W, b, y, normalize=normalize).detach()
        assert bool(((m > tau) & correct).any())


@pytest.mark.parametrize("normalize", [True, False])
def test_margin_loss_passes_gradcheck(normalize):
    F, W, b, y = _problem(n=20, d=4, c=3, seed=1)
    z = (F @ W.T + b).detach().requires_grad_()
    Wl = W.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda z, W: amr_margin_loss(z, W, y, 1.5, normalize=normalize), (z, Wl)
    )


def test_margin_loss_rejects_bad_shapes():
    with pytest.raises(ValueError, match="logits of shape"):
        amr_margin_loss(torch.zeros(4, 3), torch.zeros(2, 5), torch.zeros(4), 1.0)
    with pytest.raises(ValueError, match="two classes"):
        amr_margin_loss(torch.zeros(4, 1), torch.zeros(1, 5), torch.zeros(4), 1.0)


# ------------------------------------------------------------ Gram penalty
def _naive_penalty(w):
    w = w.reshape(w.shape[0], -1)
    return ((w @ w.T - torch.eye(w.shape[0], dtype=w.dtype)) ** 2).sum()


@pytest.mark.parametrize("shape", [(9, 4), (4, 9), (5, 3, 2, 2), (6, 6)])
@pytest.mark.parametrize("gram", ["auto", "input", "output"])
def test_gram_penalty_value_and_gradient_match_the_formula(shape, gram):
    w = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    w = (w / 2).requires_grad_()
    value = _gram_penalty(w, gram)
    grad = torch.autograd.grad(value, w)[0]
    ref = _naive_penalty(w)
    ref_grad = torch.autograd.grad(ref, w)[0]
    torch.testing.assert_close(value, ref, rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-10, atol=1e-10)
    assert torch.autograd.gradcheck(lambda w: _gram_penalty(w, gram), (w,))


# -------------------------------------------------------- Hutchinson probes
def test_hutchinson_gradient_is_unbiased():
    g = torch.Generator().manual_seed(3)
    w = (torch.randn(30, 20, dtype=torch.float64, generator=g) / 4).requires_grad_()
    exact = torch.autograd.grad(orthogonality_penalty([w]), w)[0]
    draws = [
        torch.autograd.grad(orthogonality_penalty([w], n_probes=2, generator=g), w)[0]
        for _ in range(2000)
    ]
    mean = torch.stack(draws).mean(0)
    assert not torch.allclose(draws[0], exact, rtol=0.05)  # one draw is noisy...
    rel = float((mean - exact).norm() / exact.norm())
    assert rel < 0.05  # ...their mean is the exact gradient


# ------------------------------------------------------- lazy penalty (net)
def _toy(n=48, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, d)).astype(np.float32)
    y = ((X[:, 0] + X[:, 1] > 1).astype(np.int64) + (X[:, 2] > 0.7)).astype(np.int64)
    return X, y


def _frozen_net(**kw):
    """One full batch per epoch and lr=0: every step sees the same weights and data."""
    params = dict(
        module__in_features=6,
        module__hidden=16,
        module__n_classes=3,
        lr=0.0,
        batch_size=-1,
        verbose=0,
    )
    params.update(kw)
    return AMRNeuralNetClassifier(models.MLP, **params)


@pytest.mark.parametrize("every", [1, 3])
def test_lazy_penalty_weighs_every_kth_step_by_k(every):
    X, y = _toy()
    beta = 0.05
    net = _frozen_net(beta=beta, lam=0.2, ortho_every=every, max_epochs=2 * every + 1)
    net.fit(X, y)
    assert net.n_train_steps_ == 2 * every + 1
    # outside a training step, get_loss is objective (15) with weight beta
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    with torch.no_grad():
        full = float(net.get_loss(net.infer(Xt), yt, training=True))
        penalty = float(orthogonality_penalty(net.module_))
    assert penalty > 1.0
    base = full - beta * penalty
    losses = net.history[:, "train_loss"]
    expected = [
        base + (every * beta * penalty if s % every == 0 else 0.0) for s in range(len(losses))
    ]
    np.testing.assert_allclose(losses, expected, rtol=1e-5)
    # over any `every` consecutive steps, the lazy penalty sums to the exact one
    np.testing.assert_allclose(np.sum(losses[:every]), every * full, rtol=1e-5)


def test_step_counter_resets_on_fit_and_continues_on_partial_fit():
    X, y = _toy()
    net = _frozen_net(ortho_every=4, max_epochs=3).fit(X, y)
    assert net.n_train_steps_ == 3
    net.partial_fit(X, y, epochs=1)
    assert net.n_train_steps_ == 4
    net.fit(X, y)
    assert net.n_train_steps_ == 3


def test_lazy_penalty_moves_the_weights_like_the_exact_one():
    # Plain SGD, penalty only: k lazy steps of weight k*beta from the same start equal k
    # exact steps to first order; here lr is small, so they agree closely.
    X, y = _toy()
    weights = {}
    for every in (1, 4):
        torch.manual_seed(0)
        net = _frozen_net(
            lam=0.0,
            beta=1.0,
            ortho_every=every,
            max_epochs=4,
            lr=1e-4,
            optimizer__momentum=0.0,
            optimizer__nesterov=False,
        )
        net.fit(X, y)
        weights[every] = net.module_.hidden_layer.weight.detach().clone()
    torch.manual_seed(0)
    start = _frozen_net(max_epochs=0).initialize().module_.hidden_layer.weight.detach()
    moved = (weights[1] - start).norm()
    assert float(moved) > 1e-4
    assert float((weights[4] - weights[1]).norm()) < 0.02 * float(moved)


def test_validation_loss_uses_the_exact_weight():
    X, y = _toy()
    net = _frozen_net(beta=0.05, ortho_every=5, max_epochs=1).initialize()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    with torch.no_grad():
        penalty = float(orthogonality_penalty(net.module_))
        lam0 = _frozen_net(beta=0.0, max_epochs=1).initialize()
        lam0.module_.load_state_dict(net.module_.state_dict())
        base = float(lam0.get_loss(lam0.infer(Xt), yt))
        valid = float(net.get_loss(net.infer(Xt), yt, training=False))
    assert valid == pytest.approx(base + 0.05 * penalty, rel=1e-5)


@pytest.mark.parametrize("value", [0, -2, 1.5, "4"])
def test_invalid_ortho_every_raises(value):
    X, y = _toy()
    with pytest.raises(InvalidParameterError, match="ortho_every"):
        _frozen_net(ortho_every=value, max_epochs=1).fit(X, y)


def test_default_is_auto_and_exact_stays_available():
    net = _frozen_net()
    assert net.ortho_every == "auto" and net.ortho_probes is None
    X, y = _toy()
    exact = _frozen_net(ortho_every=1, max_epochs=1).fit(X, y)  # the every-step penalty
    assert exact.ortho_every_ == 1


def test_forward_counter_counts_linear_and_conv_multiply_adds():
    from amrlearn.neural._lazy import _ForwardCounter, penalty_multiply_adds

    module = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, groups=1),  # (2, 3, 6, 6) -> (2, 4, 4, 4)
        torch.nn.Conv2d(4, 4, 1, groups=2),  # -> (2, 4, 4, 4), 2 inputs per output
        torch.nn.Flatten(),
        torch.nn.Linear(64, 5),
    )
    counter = _ForwardCounter(module)
    module(torch.zeros(2, 3, 6, 6))
    counter.remove()
    assert counter.macs == 2 * (4 * 16 * 27 + 4 * 16 * 2 + 5 * 64)
    module(torch.zeros(2, 3, 6, 6))
    assert counter.macs == 2 * (4 * 16 * 27 + 4 * 16 * 2 + 5 * 64)  # hooks removed
    # W flattened to out x d: 2 out d min(out, d) each
    assert penalty_multiply_adds(module) == 2 * (4 * 27 * 4 + 4 * 2 * 2 + 5 * 64 * 5)


@pytest.mark.parametrize(
    "model, shape, batch, expected",
    [
        ("MLP", (784,), 128, 64),  # the penalty costs 4 steps: lazy, at the cap
        ("CNN", (1, 28, 28), 128, 1),  # 2.8 % of a step: exact
        ("CNN", (1, 28, 28), 32, 1),  # 11 % of a step: still exact
        ("LeNet", (1, 28, 28), 32, 37),  # 183 %: 37 steps bring it under 5 %
    ],
)
def test_auto_schedule_is_exact_where_the_penalty_is_cheap(model, shape, batch, expected):
    kw = {"module__in_features": 784} if model == "MLP" else {}
    X = np.random.default_rng(0).uniform(size=(batch, *shape)).astype(np.float32)
    y = np.arange(batch) % 10
    net = AMRNeuralNetClassifier(
        getattr(models, model), **kw, batch_size=batch, max_epochs=1, train_split=None, verbose=0
    ).initialize()
    assert net.ortho_every_ is None  # picked at the first training step
    net.partial_fit(X, y)
    assert net.ortho_every_ == expected
    net.partial_fit(X, y)  # the schedule stays through partial_fit
    assert net.ortho_every_ == expected and net.n_train_steps_ == 2


def test_auto_schedule_weighs_its_steps_like_the_chosen_integer():
    X, y = _toy()
    kw = dict(beta=0.05, lam=0.2, max_epochs=5, batch_size=4)
    torch.manual_seed(0)
    auto = _frozen_net(**kw).fit(X, y)
    # A 6-16-3 MLP on batches of 4: the penalty is 1,440 multiply-adds, a step 1,728
    # (83 %): lazy, every ceil(0.83 / 0.05) = 17 steps.
    assert auto.ortho_every_ == 17
    torch.manual_seed(0)
    fixed = _frozen_net(**kw, ortho_every=17).fit(X, y)
    np.testing.assert_allclose(
        auto.history[:, "train_loss"], fixed.history[:, "train_loss"], rtol=1e-6
    )
    steps = [s for epoch in auto.history for s in epoch["batches"]]
    assert len(steps) == auto.n_train_steps_ > 34
    # the steps that carry the penalty (weight 17 beta) stand out in the batch losses
    jumps = [
        i for i in range(1, len(steps)) if steps[i]["train_loss"] > steps[i - 1]["train_loss"] + 1
    ]
    assert jumps == list(range(17, len(steps), 17))


def test_validation_computes_the_penalty_once_per_state_of_the_weights(monkeypatch):
    """The penalty does not depend on the batch: skorch's validation batches (no autograd)
    share one evaluation per state of the weights, instead of paying for it per batch."""
    from amrlearn.neural import _amrpenalty as _net  # where the penalty is computed

    calls = []
    real = _net.orthogonality_penalty

    def counting(module, **kw):
        calls.append(torch.is_grad_enabled())
        return real(module, **kw)

    monkeypatch.setattr(_net, "orthogonality_penalty", counting)
    X, y = _toy(n=120)
    # 80 training samples in batches of 20 (4 steps per epoch), 40 validation samples in
    # 2 batches, 3 epochs, the exact every-step penalty.
    net = _frozen_net(lam=0.0, beta=0.05, ortho_every=1, max_epochs=3, batch_size=20, lr=0.01)
    net.set_params(
        train_split=lambda ds, y=None: (
            torch.utils.data.Subset(ds, range(80)),
            torch.utils.data.Subset(ds, range(80, 120)),
        )
    )
    net.fit(X, y)
    assert calls.count(True) == 3 * 4  # every training step
    assert calls.count(False) == 3  # once per validation pass, not once per batch
    # the validation loss still holds beta times the penalty of the weights after the epoch
    Xv, yv = torch.from_numpy(X[80:]), torch.from_numpy(y[80:])
    with torch.no_grad():
        penalty = float(real(net.module_))
        base = float(torch.nn.functional.cross_entropy(net.infer(Xv)[0], yv))
    assert net.history[-1, "valid_loss"] == pytest.approx(base + 0.05 * penalty, rel=1e-5)
    # the weights are those of the last validation pass: no new evaluation; a change of the
    # weights outside training is seen, once
    before = len(calls)
    with torch.no_grad():
        net.get_loss(net.infer(Xv), yv)
        net.module_.hidden_layer.weight.mul_(2.0)
        net.get_loss(net.infer(Xv), yv)
        net.get_loss(net.infer(Xv), yv)
    assert len(calls) - before == 1
