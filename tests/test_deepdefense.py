"""Deep Defense: DeepFool's exactness, the unrolled gradients, and the estimator."""

import copy
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from amrlearn.attacks import deepfool_perturbation
from amrlearn.metrics import margin_report
from amrlearn.neural import AMRNeuralNetClassifier, DeepDefenseNeuralNetClassifier, models
from amrlearn.neural._ddpenalty import (
    deep_defense_penalty,
    deep_defense_rho,
    targeted_deepfool_perturbation,
)


def _linear(seed=0, d=4, k=4):
    torch.manual_seed(seed)
    return torch.nn.Linear(d, k).double()


def _closest_boundary_point(W, b, x, y):
    """Eq. (7): the projection of x onto the nearest hyperplane f_k = f_y (numpy)."""
    best = None
    for k in range(W.shape[0]):
        if k == y:
            continue
        w = W[k] - W[y]
        g = w @ x + b[k] - b[y]  # < 0: x is in y's region
        dist = abs(g) / np.linalg.norm(w)
        if best is None or dist < best[0]:
            best = (dist, x - g / (w @ w) * w)
    return best


def test_deepfool_finds_the_closest_boundary_point_of_a_linear_model():
    lin = _linear()
    x = torch.randn(20, 4, dtype=torch.float64)
    y = lin(x).argmax(1)
    x_adv, is_adv, n_iter = deepfool_perturbation(lin, x, y, max_iter=1, overshoot=0.02)
    assert bool(is_adv.all()) and n_iter.tolist() == [1] * 20
    W, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    for i in range(20):
        dist, point = _closest_boundary_point(W, b, x[i].numpy(), int(y[i]))
        found = x[i].numpy() + (x_adv[i] - x[i]).detach().numpy() / 1.02
        np.testing.assert_allclose(found, point, atol=1e-5)
        assert abs(np.linalg.norm(found - x[i].numpy()) - dist) < 1e-5


def test_targeted_deepfool_lands_on_the_target_hyperplane_of_a_linear_model():
    lin = _linear(1)
    x = torch.randn(10, 4, dtype=torch.float64)
    src = lin(x).argmax(1)
    tgt = (src + 1) % 4
    x_adv, _ = targeted_deepfool_perturbation(lin, x, src, tgt, max_iter=1, overshoot=0.0)
    with torch.no_grad():
        f = lin(x_adv)
    rows = torch.arange(10)
    assert torch.allclose(f[rows, tgt], f[rows, src], atol=1e-10)
    # ... at the foot of the perpendicular from x: dx is along w_tgt - w_src.
    w = lin.weight[tgt] - lin.weight[src]
    cos = torch.nn.functional.cosine_similarity((x_adv - x).detach(), w.detach(), dim=1)
    assert torch.allclose(cos.abs(), torch.ones(10, dtype=torch.float64))


def _tiny_convnet():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3, padding=1),
        torch.nn.MaxPool2d(2),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(3 * 3 * 3, 8),
        torch.nn.ReLU(),
        torch.nn.Linear(8, 3),
    ).double()


def test_gradients_reach_every_parameter_through_the_unrolled_iterations():
    net = _tiny_convnet()
    x = torch.rand(6, 1, 6, 6, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    rho, correct = deep_defense_rho(net, x, y, max_iter=3)
    assert bool(correct.any()) and bool((~correct).any())  # both kinds of samples
    deep_defense_penalty(rho, correct).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name


def test_the_unrolled_gradient_matches_finite_differences():
    # With masks, chosen classes and iteration counts fixed (a small step keeps them),
    # rho is a smooth function of the weights: autograd through every DeepFool iterate
    # and linearization must equal its finite differences.
    torch.manual_seed(3)
    net = torch.nn.Sequential(
        torch.nn.Linear(3, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3)
    ).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1])

    def value():
        rho, correct = deep_defense_rho(net, x, y, max_iter=4)
        return deep_defense_penalty(rho, correct, c=2.0, d=1.0)

    value().backward()
    h = 1e-6
    for p in net.parameters():
        for idx in [(0,) * p.dim(), tuple(s - 1 for s in p.shape)]:
            with torch.no_grad():
                p[idx] += h
                up = float(value())
                p[idx] -= 2 * h
                down = float(value())
                p[idx] += h
            fd, ad = (up - down) / (2 * h), float(p.grad[idx])
            assert abs(fd - ad) <= 1e-5 * max(1.0, abs(ad))


def _blobs(n=120, seed=0, gap=0.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2)).astype(np.float32)
    y = (X[:, 0] + 0.3 * X[:, 1] > 0).astype(np.int64)
    X[:, 0] += np.where(y == 1, gap, -gap)
    return X + np.array([3.0, 3.0], dtype=np.float32), y


def _deepfool_rho(module, X):
    """DeepFool's relative distances (50 iterations) of the module's predictions."""
    x = torch.as_tensor(X)
    with torch.no_grad():
        pred = module(x)[0].argmax(1)
    x_adv, _, _ = deepfool_perturbation(lambda t: module(t)[0], x, pred, max_iter=50)
    return ((x_adv - x).norm(dim=1) / x.norm(dim=1)).detach().numpy()


def _dd(**kw):
    params = dict(
        module=models.MLP,
        module__in_features=2,
        module__hidden=16,
        module__n_classes=2,
        lr=0.05,
        batch_size=40,
        random_state=0,
        verbose=0,
    )
    return DeepDefenseNeuralNetClassifier(**{**params, **kw})


def test_a_few_deep_defense_steps_raise_the_deepfool_norm_of_the_training_points():
    X, y = _blobs(gap=0.5)
    std = AMRNeuralNetClassifier(
        models.MLP,
        module__in_features=2,
        module__hidden=16,
        module__n_classes=2,
        lam=0.0,
        beta=0.0,
        lr=0.05,
        batch_size=40,
        max_epochs=10,
        random_state=0,
        verbose=0,
    ).fit(X, y)

    def finetune(lam):
        # warm_start: module_ holds the trained Std weights and fit continues from them.
        net = _dd(lam=lam, lr=0.01, max_epochs=5, warm_start=True).initialize()
        net.module_.load_state_dict(std.module_.state_dict())
        return net.fit(X, y)

    def closest(module):  # the mean rho of the closest fifth of the points
        return np.sort(_deepfool_rho(module, X))[: len(X) // 5].mean()

    before = closest(std.module_)
    dd, plain = finetune(1.0), finetune(0.0)
    assert closest(dd.module_) > 1.15 * before
    assert closest(dd.module_) > 1.1 * closest(plain.module_)
    assert dd.score(X, y) >= std.score(X, y)


def test_finetuning_starts_from_the_given_trained_module_and_pretrain_epochs_are_standard():
    X, y = _blobs()
    std = _dd(lam=0.0, max_epochs=3).fit(X, y)
    # lam=0 for the first 3 epochs: the same weights as the standard net's.
    both = _dd(lam=1.0, pretrain_epochs=3, max_epochs=3).fit(X, y)
    for a, b in zip(std.module_.parameters(), both.module_.parameters(), strict=True):
        assert torch.equal(a, b)
    # A trained module instance is used as it is: the first epoch's loss is the trained one.
    tuned = DeepDefenseNeuralNetClassifier(
        copy.deepcopy(std.module_), lam=0.0, max_epochs=1, lr=0.0, verbose=0
    ).fit(X, y)
    for a, b in zip(std.module_.parameters(), tuned.module_.parameters(), strict=True):
        assert torch.equal(a, b)


def test_the_penalty_enters_the_training_loss_only_after_pretraining():
    X, y = _blobs(40)
    net = _dd(lam=2.0, max_epochs=1).initialize()
    x, t = torch.as_tensor(X), torch.as_tensor(y)
    ce = torch.nn.functional.cross_entropy(net.module_(x)[0], t)
    loss = net.get_loss(net.infer(x), t, X=x, training=True)
    rho, correct = deep_defense_rho(lambda z: net.module_(z)[0], x, t)
    expected = ce + 2.0 * deep_defense_penalty(rho, correct)
    assert torch.allclose(loss, expected)
    assert torch.allclose(net.get_loss(net.infer(x), t, X=x, training=False), ce)
    # reg_batch_size: the penalty of the batch's first samples only.
    net.set_params(reg_batch_size=5)
    loss = net.get_loss(net.infer(x), t, X=x, training=True)
    rho, correct = deep_defense_rho(lambda z: net.module_(z)[0], x[:5], t[:5])
    assert torch.allclose(loss, ce + 2.0 * deep_defense_penalty(rho, correct))


@pytest.mark.parametrize(
    "bad", [{"lam": -1.0}, {"c": -1.0}, {"max_iter": 0}, {"pretrain_epochs": -1}]
)
def test_invalid_hyperparameters_are_refused(bad):
    X, y = _blobs(20)
    with pytest.raises(ValueError, match=next(iter(bad))):
        _dd(max_epochs=1, **bad).fit(X, y)


def test_gridsearch_clone_pickle_and_margin_report():
    X, y = _blobs(60)
    labels = np.where(y == 1, "b", "a")
    grid = GridSearchCV(_dd(max_epochs=2, max_iter=2), {"c": [5.0, 25.0]}, cv=2).fit(X, labels)
    assert grid.best_params_["c"] in (5.0, 25.0)
    net = grid.best_estimator_
    assert clone(net).get_params()["max_iter"] == 2
    again = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(again.predict(X), net.predict(X))
    report = margin_report(net, X, labels, upper=False, bound_params={"n_batches": 1})
    assert 0.0 <= report["accuracy"] <= 1.0 and np.isfinite(report["avg_margin"])


def test_the_dd_recipe_fine_tunes_with_weight_decay_on_the_weights_only():
    """The authors' fine-tuning SGD: weight decay 5e-4 on the weights, none on the biases
    (their bias group); the Std phase before it decays nothing."""
    from amrlearn.experiments import table2
    from amrlearn.experiments._recipe import DD_DEFAULTS, build_net, n_epochs

    config = {**table2.default_config("quick"), "dd": {}}  # the authors' 5 epochs
    data = {"X_test": np.zeros((2, 1, 28, 28), np.float32), "y_test": np.arange(2)}
    max_epochs = n_epochs(config, "LeNet", "DD")
    net, params = build_net(
        "mnist", "LeNet", "DD", config, data, "cpu", callbacks=[], max_epochs=max_epochs
    )
    net.set_params(classes=np.arange(10)).initialize()
    schedule = dict(net.callbacks_)["dd_schedule"]

    def decay_of_each_parameter():
        group_of = {id(p): g for g in net.optimizer_.param_groups for p in g["params"]}
        return {name: group_of[id(p)]["weight_decay"] for name, p in net.module_.named_parameters()}

    for epoch in range(1, max_epochs + 1):
        net.history.new_epoch()
        schedule.on_epoch_begin(net)
        decay = decay_of_each_parameter()
        assert len(decay) == 2 * sum(1 for m in net.module_.modules() if hasattr(m, "bias"))
        if epoch <= params["pretrain_epochs"]:
            assert set(decay.values()) == {0.0}, epoch
            continue
        for name, value in decay.items():
            expected = 0.0 if name.endswith("bias") else DD_DEFAULTS["weight_decay"]
            assert value == expected, (epoch, name)
        assert {g["lr"] for g in net.optimizer_.param_groups} == {
            DD_DEFAULTS["lr"] / (2 if epoch == max_epochs else 1)
        }
