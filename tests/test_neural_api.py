"""The nets as scikit-learn and skorch users expect them: labels, inputs, seeds, any module,
the attack as a routed part, augmentation of training batches only."""

import pickle

import numpy as np
import pytest
import scipy.sparse
import torch
from sklearn.utils._param_validation import InvalidParameterError

from amrlearn.attacks import L2PGD
from amrlearn.neural import (
    AdversarialNeuralNetClassifier,
    AMRNeuralNetClassifier,
    BatchLoader,
    feature_margin,
    models,
    orthogonality_penalty,
    random_crop_flip,
)
from amrlearn.neural._penalties import amr_margin_term

NETS = [AMRNeuralNetClassifier, AdversarialNeuralNetClassifier]


def _toy(n=60, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, d)).astype(np.float32)
    return X, (X[:, 0] + X[:, 1] > 1).astype(np.int64)


def _net(cls=AMRNeuralNetClassifier, n_classes=2, **kw):
    params = dict(
        module=models.MLP,
        module__in_features=6,
        module__hidden=8,
        module__n_classes=n_classes,
        max_epochs=1,
        verbose=0,
    )
    if cls is AdversarialNeuralNetClassifier:
        params.update(attack__eps=0.1, attack__steps=2)
    params.update(kw)
    return cls(**params)


# ------------------------------------------------------------------------- labels
@pytest.mark.parametrize("cls", NETS)
@pytest.mark.parametrize(
    "labels",
    [np.array([7, 3]), np.array(["dog", "cat"]), np.array([7.0, -1.0])],
    ids=["ints", "strings", "floats"],
)
def test_any_labels_are_encoded_and_predict_returns_them(cls, labels):
    X, y01 = _toy()
    y = labels[y01]
    net = _net(cls, max_epochs=3, random_state=0).fit(X, y)
    np.testing.assert_array_equal(net.classes_, np.sort(labels))
    codes = net.encode_labels(y)
    np.testing.assert_array_equal(codes, np.searchsorted(net.classes_, y))
    proba = net.predict_proba(X)
    np.testing.assert_array_equal(net.predict(X), net.classes_[proba.argmax(1)])
    assert set(net.predict(X)) <= set(labels)
    assert net.score(X, y) == np.mean(net.predict(X) == y)
    fm = net.feature_margins(X, y)
    np.testing.assert_array_equal(fm > 0, net.predict(X) == y)
    with pytest.raises(ValueError, match="not seen during fit"):
        net.encode_labels(np.array([labels[0], "other" if labels.dtype.kind == "U" else 99]))


def test_labels_three_and_seven_train_like_zero_and_one():
    X, y01 = _toy()
    fits = [_net(random_state=0).fit(X, y).predict_proba(X) for y in (y01, 3 + 4 * y01)]
    np.testing.assert_array_equal(fits[0], fits[1])


@pytest.mark.parametrize("cls", NETS)
def test_module_outputs_must_match_the_classes(cls):
    X, y = _toy()
    with pytest.raises(ValueError, match=r"10 outputs but y has 2 classes.*n_classes=2"):
        _net(cls, n_classes=10).fit(X, 3 + 4 * y)


def test_valid_acc_compares_labels_with_labels():
    from skorch.helper import predefined_split

    X, y01 = _toy()
    y = np.array(["no", "yes"])[y01]
    net = _net(max_epochs=2, random_state=0, train_split=None).fit(X, y)
    # a Dataset for validation holds codes, as documented; valid_acc decodes them
    valid = net.get_dataset(X, y)
    net2 = _net(max_epochs=1, random_state=0, train_split=predefined_split(valid)).fit(X, y)
    assert net2.history[-1, "valid_acc"] == net2.score(X, y)
    assert net.score(X, y) > 0


# -------------------------------------------------------------------------- inputs
@pytest.mark.parametrize("cls", NETS)
def test_inputs_are_converted_the_sklearn_way(cls):
    X, y = _toy()
    X8 = (X * 255).astype(np.uint8)
    Xf = X8.astype(np.float32)
    kw = dict(attack__clip=None) if cls is AdversarialNeuralNetClassifier else {}
    ref = _net(cls, random_state=0, **kw).fit(Xf, y).predict_proba(Xf)
    for X_ in (
        X8,
        X8.astype(np.int32),
        Xf.astype(np.float64),
        scipy.sparse.csr_matrix(Xf),
        scipy.sparse.csr_matrix(Xf.astype(np.float64)),
    ):
        net = _net(cls, random_state=0, **kw).fit(X_, y.astype(np.float64))
        np.testing.assert_array_equal(net.predict_proba(X_), ref)
        assert net.classes_.dtype == np.float64


def test_dataframe_input():
    pd = pytest.importorskip("pandas")  # optional: not a dependency of amrlearn
    X, y = _toy()
    ref = _net(random_state=0).fit(X, y).predict_proba(X)
    net = _net(random_state=0).fit(pd.DataFrame(X), pd.Series(y))
    np.testing.assert_array_equal(net.predict_proba(pd.DataFrame(X)), ref)


@pytest.mark.parametrize("cls", NETS)
def test_bad_inputs_get_clear_errors(cls):
    X, y = _toy()
    with pytest.raises(ValueError, match=r"1-D array.*reshape"):
        _net(cls).fit(X[:, 0], y)
    with pytest.raises(ValueError, match="empty"):
        _net(cls).fit(X[:0], y[:0])
    with pytest.raises(ValueError, match="numeric"):
        _net(cls).fit(X.astype(str).astype(object), y)
    with pytest.raises(ValueError, match="continuous"):
        _net(cls).fit(X, X[:, 0])
    with pytest.raises(ValueError, match="60 samples but y has 59"):
        _net(cls).fit(X, y[:-1])
    with pytest.raises(ValueError, match="sorted and distinct"):
        _net(cls, classes=[1, 0]).fit(X, y)
    net = _net(cls).fit(X, y)
    for bad in (np.nan, np.inf):
        Xb = X.copy()
        Xb[3, 2] = bad
        with pytest.raises(ValueError, match="NaN or infinity"):
            net.predict(Xb)
        with pytest.raises(ValueError, match="NaN or infinity"):
            net.predict_proba(torch.from_numpy(Xb))
    with pytest.raises(ValueError, match="1-D"):
        net.predict(X[0])


def test_adversarial_net_refuses_inputs_outside_the_box():
    X, y = _toy()
    with pytest.raises(ValueError, match=r"outside the attack's box.*attack__clip=None"):
        _net(AdversarialNeuralNetClassifier).fit(X * 255, y)
    with pytest.raises(ValueError, match="outside the attack's box"):
        _net(AdversarialNeuralNetClassifier, attack__clip=(0.0, 0.5)).fit(X, y)
    _net(AdversarialNeuralNetClassifier, attack__clip=None).fit(X * 255, y)


# ---------------------------------------------------------------------------- seeds
@pytest.mark.parametrize("cls", NETS)
def test_random_state_makes_fits_identical(cls):
    X, y = _toy()

    def weights(seed):
        torch.manual_seed(1234 + (seed or 0))  # a different global state before each fit
        net = _net(cls, random_state=seed, max_epochs=2, iterator_train__shuffle=True)
        return [p.detach().clone() for p in net.fit(X, y).module_.parameters()]

    for a, b in zip(weights(0), weights(0)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert any(not torch.equal(a, b) for a, b in zip(weights(0), weights(1)))
    with pytest.raises(InvalidParameterError, match="random_state"):
        _net(cls, random_state=-1).fit(X, y)


# -------------------------------------------------------------------- any module
class TinyResNet(torch.nn.Module):
    """A ResNet-style module: a stem, one residual block, pooling and an ``fc`` head."""

    def __init__(self, n_classes=2):
        super().__init__()
        self.stem = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.block = torch.nn.Sequential(
            torch.nn.Conv2d(4, 4, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(4, 4, 3, padding=1),
        )
        self.fc = torch.nn.Linear(4, n_classes)

    def body(self, x):
        h = torch.relu(self.stem(x))
        h = torch.relu(h + self.block(h))
        return h.mean(dim=(2, 3))

    def forward(self, x):
        return self.fc(self.body(x))


def _images(n=48, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, 1, 6, 6)).astype(np.float32)
    return X, (X[:, 0, :3].mean((1, 2)) > X[:, 0, 3:].mean((1, 2))).astype(np.int64)


def _sequential():
    return torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(36, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)
    )


@pytest.mark.parametrize("feature_layer", [None, "fc"])
def test_resnet_style_module_trains_with_amr_and_the_hook_gives_its_features(feature_layer):
    X, y = _images()
    net = AMRNeuralNetClassifier(
        TinyResNet, feature_layer=feature_layer, max_epochs=2, random_state=0, verbose=0
    ).fit(X, y)
    assert net.feature_layer_ == "fc"
    module = net.module_
    with torch.no_grad():
        phi = module.body(torch.from_numpy(X))
        logits = module.fc(phi)
        by_hand = feature_margin(phi, module.fc.weight, module.fc.bias)
    by_hand = by_hand.numpy().astype(np.float64)
    by_hand = np.where(logits.argmax(1).numpy() == y, by_hand, -by_hand)
    np.testing.assert_allclose(net.feature_margins(X, y), by_hand, rtol=1e-6)
    assert not module.fc._forward_hooks  # the hook lives only during the net's forward
    again = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(again.predict_proba(X), net.predict_proba(X))


def test_sequential_loss_is_objective_15_with_hooked_features():
    X, y = _images()
    net = AMRNeuralNetClassifier(_sequential(), lam=0.3, tau=0.5, beta=0.01, verbose=0)
    net.initialize()
    net.check_data(X, y)  # sets classes_, as fit does
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    y_pred = net.infer(Xt)
    seq = net.module_
    phi = seq[2](seq[1](seq[0](Xt)))
    torch.testing.assert_close(y_pred[1], phi, rtol=0, atol=0)
    logits = seq[3](phi)
    ce = torch.nn.functional.cross_entropy(logits, yt)
    m = feature_margin(phi, seq[3].weight, seq[3].bias, yt)
    expected = (
        ce
        - 0.3 * amr_margin_term(m, logits.argmax(1) == yt, 0.5)
        + 0.01 * orthogonality_penalty(seq)
    )
    torch.testing.assert_close(net.get_loss(y_pred, yt, X=Xt, training=True), expected)


@pytest.mark.parametrize("cls", NETS)
def test_sequential_trains_on_both_nets(cls):
    X, y = _images()
    kw = dict(attack__eps=0.2, attack__steps=2) if cls is AdversarialNeuralNetClassifier else {}
    net = cls(_sequential(), max_epochs=2, verbose=0, **kw).fit(X, y)
    assert net.feature_layer_ == "3"
    assert net.feature_margins(X, y).shape == (len(X),)


class _ScaledLogits(torch.nn.Module):
    """Its last nn.Linear does not produce the logits: they are scaled afterwards."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(36, 2)

    def forward(self, x):
        return 2.0 * self.lin(x.flatten(1))


def test_a_linear_layer_that_does_not_produce_the_logits_is_refused_when_needed():
    X, y = _images()
    with pytest.raises(ValueError, match=r"layer 'lin' is not the module's output.*lam=0"):
        AMRNeuralNetClassifier(_ScaledLogits, max_epochs=1, verbose=0).fit(X, y)
    with pytest.raises(ValueError, match=r"output of its layer '1' is not"):
        AMRNeuralNetClassifier(_sequential(), feature_layer="1", max_epochs=1, verbose=0).fit(X, y)
    std = AMRNeuralNetClassifier(_ScaledLogits, lam=0.0, max_epochs=1, verbose=0).fit(X, y)
    assert std.predict(X).shape == (len(X),)
    with pytest.raises(ValueError, match="no submodule of that name.*'3'"):
        AMRNeuralNetClassifier(_sequential(), feature_layer="fc", verbose=0).initialize()
    with pytest.raises(ValueError, match="is a ReLU"):
        AMRNeuralNetClassifier(_sequential(), feature_layer="2", verbose=0).initialize()


# ---------------------------------------------------------------- skorch extension
def test_parameter_constraints_are_merged_explicitly():
    for cls in NETS:
        assert "data_on_device" in cls._parameter_constraints
        assert "random_state" in cls._parameter_constraints
    assert "lam" in AMRNeuralNetClassifier._parameter_constraints


def test_attack_is_routed_built_once_and_run_in_eval_mode(monkeypatch):
    X, y = _toy()
    modes = []
    original_run = L2PGD.run

    def run(self, fn, x, y, **kw):
        modes.append((id(self), fn.__closure__ is not None, net.module_.training))
        return original_run(self, fn, x, y, **kw)

    monkeypatch.setattr(L2PGD, "run", run)
    net = AdversarialNeuralNetClassifier(
        models.MLP,
        module__in_features=6,
        module__hidden=8,
        module__n_classes=2,
        attack__eps=0.3,
        attack__steps=2,
        batch_size=16,
        max_epochs=2,
        verbose=0,
    )
    net.fit(X, y)
    attack = net.attack_
    assert (attack.eps, attack.steps, attack.step_size, attack.early_stop) == (0.3, 2, 0.01, False)
    assert len(modes) == 8 and {m[0] for m in modes} == {id(attack)}  # built once
    assert not any(m[2] for m in modes)  # eval mode during the attack
    assert net.module_.training is True  # and train mode for the update after it
    net.set_params(attack__eps=0.7)
    assert net.attack_.eps == 0.7
    # an attack instance, with parameters routed onto a clone of it
    inst = L2PGD(eps=1.0, steps=1)
    net = _net(AdversarialNeuralNetClassifier, attack=inst, attack__eps=0.5).initialize()
    assert net.attack_.eps == 0.5 and inst.eps == 1.0


@pytest.mark.parametrize("on_device", [False, True])
def test_user_dataloader_arguments_are_kept(on_device):
    X, y = _toy()
    calls = []

    def collate(batch):
        calls.append(len(batch))
        return torch.utils.data.default_collate(batch)

    net = _net(data_on_device=on_device, batch_size=16, iterator_train__collate_fn=collate)
    net.fit(X, y)
    assert calls == [16, 16, 16, 12]
    assert net.iterator_train is BatchLoader


# ------------------------------------------------------------------ augmentation
def test_random_crop_flip_is_a_window_of_the_padded_image():
    torch.manual_seed(0)
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5) + 1
    out = random_crop_flip(x, padding=2)
    for i in range(2):
        windows = []
        for img in (x[i], x[i].flip(-1)):
            padded = torch.nn.functional.pad(img, (2, 2, 2, 2))
            windows += [padded[:, r : r + 5, c : c + 5] for r in range(5) for c in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)
    many = random_crop_flip(x.repeat(50, 1, 1, 1), padding=2)
    assert len({tuple(m.flatten().tolist()) for m in many}) > 10  # random per image


@pytest.mark.parametrize("on_device", [False, True])
def test_augmentation_reaches_training_batches_only(on_device):
    X, y = _images()
    net = AMRNeuralNetClassifier(
        _sequential(),
        iterator_train__transform=random_crop_flip,
        data_on_device=on_device,
        max_epochs=1,
        verbose=0,
    ).fit(X, y)
    np.testing.assert_array_equal(net.predict_proba(X), net.predict_proba(X))
    dataset = net.get_dataset(X, y)
    (xb, _), *_ = net.get_iterator(dataset, training=True)
    (xv, _), *_ = net.get_iterator(dataset, training=False)
    assert not torch.equal(torch.as_tensor(xb), torch.from_numpy(X[: len(xb)]))
    np.testing.assert_array_equal(np.asarray(xv), X[: len(xv)])


@pytest.mark.parametrize("method", ["AMR", "Adv"])
def test_experiments_augment_the_training_batches_only(method):
    from amrlearn.experiments import table2
    from amrlearn.experiments._recipe import build_net

    config = table2.default_config("quick")
    rng = np.random.default_rng(0)
    data = {
        "X_test": rng.uniform(size=(4, 3, 32, 32)).astype(np.float32),
        "y_test": np.arange(4),
    }
    net, params = build_net(
        "cifar10", "LeNetSmall", method, config, data, "cpu", callbacks=[], max_epochs=1
    )
    assert net.iterator_train__transform is random_crop_flip
    assert net.dataset is not None and "transform" not in str(net.get_params_for("dataset"))
    assert not hasattr(net, "iterator_valid__transform")
    if method == "Adv":
        assert net.attack__eps == params["eps"] == 0.4


def test_readme_neural_snippet_runs():
    import re
    from pathlib import Path

    from amrlearn.datasets import DatasetNotFoundError, load_mnist

    try:
        X, y = load_mnist(subset="test", classes=(0, 1), return_X_y=True)
    except DatasetNotFoundError:
        pytest.skip("MNIST is not in the data home ($AMRLEARN_DATA)")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "nn." in b)
    namespace = {"X": X, "y": y}
    exec(compile(block.replace("print(", "(", 1), "README.md", "exec"), namespace)  # noqa: S102
    net = namespace["net"]
    assert net.feature_layer_ == "2" and net.score(X, y) > 0.95
