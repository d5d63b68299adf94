"""A penalty is a part: ``penalty=`` on the nets, its routing, schedule, pickles, combinations."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from amrlearn.neural import (
    AdversarialNeuralNetClassifier,
    AMRMarginPenalty,
    AMRNeuralNetClassifier,
    DeepDefenseNeuralNetClassifier,
    DeepDefensePenalty,
    MMRNeuralNetClassifier,
    MMRPenalty,
    OrthogonalityPenalty,
    Penalty,
    RegularizedNeuralNetClassifier,
    orthogonality_penalty,
)
from amrlearn.neural._penalties import amr_margin_loss
from amrlearn.neural._penalty import Clock
from amrlearn.neural._regions import mmr_penalty, region_distances

OLD_NETS = Path(__file__).parent / "data" / "old_nets.pkl"


def _data(n=24, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, d)).astype(np.float32)
    y = (X[:, 0] > 0.5).astype(np.int64)
    return X, y


def _seq(d=5, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(d, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


FAST = {"max_epochs": 1, "batch_size": 8, "random_state": 0, "verbose": 0}


# ------------------------------------------------------------------ old pickles
def test_nets_pickled_before_penalties_were_parts_load_and_predict_the_same():
    old = pickle.loads(OLD_NETS.read_bytes())
    X, y = old["X"], old["y"]
    # the penalties' fitted state moves from the net to them (values read with the old code)
    assert old["amr"].ortho_every_ == 8 and old["amr"].n_train_steps_ == 4
    assert old["mmr"].n_hidden_ == 6
    for name, cls in [
        ("amr", AMRNeuralNetClassifier),
        ("dd", DeepDefenseNeuralNetClassifier),
        ("mmr", MMRNeuralNetClassifier),
    ]:
        net = old[name]
        assert type(net) is cls
        np.testing.assert_array_equal(net.predict_proba(X), old[f"{name}_proba"])
        assert set(net.predict(X)) <= set(y)
        assert net.penalty is None and list(net.penalties_) == list(net._own_penalties())
        twin = clone(net)  # the parameters survive
        assert twin.get_params()["lam"] == net.lam
        net.partial_fit(X, y)  # the rebuilt penalties train
        assert np.isfinite(net.history[-1, "train_loss"])


def test_a_regularized_net_pickles_with_its_penalties():
    X, y = _data()
    net = AMRNeuralNetClassifier(_seq(), penalty=MMRPenalty(weight=0.5), **FAST).fit(X, y)
    net.penalties_["ortho"].value(net.module_)  # a cache that is not pickled
    back = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(back.predict_proba(X), net.predict_proba(X))
    assert list(back.penalties_) == ["margin", "ortho", "mmr"]
    assert "_cache" not in vars(back.penalties_["ortho"])


# ------------------------------------------------------------------ combinations
def test_amr_with_pgd_training_adds_the_margin_term_to_the_adversarial_loss():
    X, y = _data()
    net = AdversarialNeuralNetClassifier(
        _seq(), penalty=AMRMarginPenalty, penalty__weight=0.3, penalty__tau=2.0,
        attack__eps=0.1, attack__steps=2, **FAST,
    ).initialize()  # fmt: skip
    x, t = torch.as_tensor(X), torch.as_tensor(y)
    logits = net.module_(x)
    expected = torch.nn.functional.cross_entropy(logits, t) - 0.3 * amr_margin_loss(
        logits, net.module_[2].weight, t, 2.0
    )
    loss = net.get_loss(net.infer(x), t, X=x, training=True)
    assert torch.allclose(loss, expected)
    seen = []
    real = net.penalties_["margin"].compute
    net.penalties_["margin"].compute = lambda n, b, c: seen.append(b.X) or real(n, b, c)
    net.partial_fit(X, y)
    assert len(seen) == 3 and np.isfinite(net.history[-1, "train_loss"])
    # the term is computed on the adversarial examples, not on the clean batch
    for b in seen:
        assert not (torch.as_tensor(b)[:, None] == x[None]).all(-1).any()


def test_amr_with_mmr_adds_both_terms():
    X, y = _data()
    net = AMRNeuralNetClassifier(
        _seq(), lam=0.2, tau=1.0, beta=0.01, ortho_every=1,
        penalty=MMRPenalty, penalty__weight=0.5, penalty__warmup_epochs=0, penalty__k_B=3,
        **FAST,
    ).initialize()  # fmt: skip
    x, t = torch.as_tensor(X), torch.as_tensor(y)
    m = net.module_
    logits = m(x)
    d_region, d_decision = region_distances(m, x, t)
    expected = (
        torch.nn.functional.cross_entropy(logits, t)
        - 0.2 * amr_margin_loss(logits, m[2].weight, t, 1.0)
        + 0.01 * orthogonality_penalty(m)
        + 0.5 * mmr_penalty(d_region, d_decision, k_B=3, k_D=1, gamma_B=0.45, gamma_D=0.45).mean()
    )
    assert torch.allclose(net.get_loss(net.infer(x), t, X=x, training=True), expected)
    # MMR is a training penalty: validation losses carry AMR's two terms only
    valid = (
        torch.nn.functional.cross_entropy(logits, t)
        - 0.2 * amr_margin_loss(logits, m[2].weight, t, 1.0)
        + 0.01 * orthogonality_penalty(m)
    )
    assert torch.allclose(net.get_loss(net.infer(x), t, X=x, training=False), valid)
    net.fit(X, y)
    assert np.isfinite(net.history[-1, "train_loss"]) and net.penalties_["mmr"].n_hidden_ == 8


# ------------------------------------------------------------------ routing
def test_penalty_parameters_are_routed_like_skorch_parts():
    X, y = _data()
    single = RegularizedNeuralNetClassifier(
        _seq(), penalty=DeepDefensePenalty, penalty__weight=0.1, penalty__max_iter=2, **FAST
    ).initialize()
    assert single.penalties_["deepdefense"].get_params()["max_iter"] == 2
    listed = RegularizedNeuralNetClassifier(
        _seq(),
        penalty=[AMRMarginPenalty(tau=3.0), ("mmr2", MMRPenalty)],
        penalty__margin__weight=0.4,
        penalty__mmr2__k_B=2,
        **FAST,
    ).initialize()
    assert list(listed.penalties_) == ["margin", "mmr2"]
    assert listed.penalties_["margin"].weight == 0.4 and listed.penalties_["margin"].tau == 3.0
    assert listed.penalties_["mmr2"].k_B == 2
    assert listed.penalty[0].weight == 0.1  # the instance given is cloned, not changed
    listed.set_params(penalty__margin__tau=0.5)  # an initialized net rebuilds its penalties
    assert listed.penalties_["margin"].tau == 0.5
    amr = AMRNeuralNetClassifier(_seq(), **FAST).initialize().set_params(tau=7.0, beta=0.0)
    assert amr.penalties_["margin"].tau == 7.0 and amr.penalties_["ortho"].weight == 0.0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"penalty": [AMRMarginPenalty, MMRPenalty], "penalty__mm__weight": 1.0},
         ValueError, "no penalty of that name"),
        ({"penalty": [MMRPenalty, MMRPenalty]}, ValueError, "Two penalties are named"),
        ({"penalty": torch.nn.MSELoss}, TypeError, "Penalty classes or instances"),
        ({"penalty": OrthogonalityPenalty(weight=-1.0)}, ValueError, "weight"),
        ({"penalty": MMRPenalty(every="auto")}, ValueError, "no cost model"),
        ({"penalty": MMRPenalty(k_B=(0.1, 0.2, 0.3))}, ValueError, "k_B as a tuple"),
    ],
)  # fmt: skip
def test_bad_penalties_are_refused_with_a_clear_error(kwargs, error, match):
    with pytest.raises(error, match=match):
        RegularizedNeuralNetClassifier(_seq(), **kwargs, **FAST).initialize()


def test_a_penalty_that_reads_the_inputs_needs_them():
    X, y = _data()
    net = RegularizedNeuralNetClassifier(_seq(), penalty=MMRPenalty, **FAST).initialize()
    x, t = torch.as_tensor(X), torch.as_tensor(y)
    with pytest.raises(ValueError, match="needs the batch X"):
        net.get_loss(net.infer(x), t, training=True)


def test_clone_and_grid_search_over_the_thin_nets_parameters():
    X, y = _data(n=32)
    net = AMRNeuralNetClassifier(_seq(), lam=0.2, tau=3.0, **FAST)
    twin = clone(net)
    assert twin.get_params()["tau"] == 3.0 and twin.get_params()["lam"] == 0.2
    search = GridSearchCV(net, {"tau": [1.0, 3.0], "lam": [0.0, 0.1]}, cv=2).fit(X, y)
    best = search.best_estimator_
    assert best.penalties_["margin"].tau == best.tau
    assert best.penalties_["margin"].weight == best.lam


# ------------------------------------------------------------------ one clock
def _clock(epoch=1, step=0, training=True, in_step=True, max_epochs=10, macs=None):
    return Clock(epoch, step, training, in_step, max_epochs, macs)


def test_one_clock_schedules_start_warmup_and_lazy_steps():
    p = Penalty(start_epoch=3, warmup_epochs=2, every=4).initialize(None)
    assert [p.scale(None, _clock(epoch=e)) for e in (1, 2, 3, 4, 5)] == [0, 0, 2.0, 4, 4]
    assert [p.scale(None, _clock(epoch=5, step=s)) for s in range(5)] == [4, 0, 0, 0, 4]
    assert p.scale(None, _clock(epoch=5, step=1, in_step=False)) == 1  # validation
    dd = DeepDefensePenalty(start_epoch=2).initialize(None)
    assert dd.scale(None, _clock(epoch=2, training=False)) == 0  # training only


def test_penalty_terms_average_per_sample_values():
    class Ones(Penalty):
        name = "ones"

        def compute(self, net, batch, clock):
            return torch.arange(len(batch.y), dtype=torch.float32)  # 0, 1, ..., n-1

    X, y = _data(n=8)
    net = RegularizedNeuralNetClassifier(
        _seq(), penalty=Ones, penalty__weight=2.0, penalty__reg_batch_size=4, **FAST
    ).initialize()
    x, t = torch.as_tensor(X), torch.as_tensor(y)
    term = net.penalty_loss(net.infer(x), t, X=x, training=True)
    assert float(term) == 2.0 * 1.5  # mean of 0..3, the first reg_batch_size samples
