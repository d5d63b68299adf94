"""Issue 21, items 2, 5 and 6: module modes, the feature layer, errors and persistence."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone

from amrlearn.attacks import DDN, L2PGD, DeepFool, robust_accuracy
from amrlearn.metrics import margin_bounds, margin_report
from amrlearn.neural import AdversarialNeuralNetClassifier, AMRNeuralNetClassifier, models
from amrlearn.neural._features import eval_mode as neural_eval_mode
from amrlearn.utils import as_logit_fn


def _data(n=16, d=4, seed=0):
    X = np.random.default_rng(seed).uniform(size=(n, d)).astype(np.float32)
    return X, (X[:, 0] > 0.5).astype(np.int64)


def _frozen_bn_net():
    """A root in train mode with a batch norm frozen in eval mode (fine-tuning)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 3)
    )
    net.train()
    net[1].eval()
    return net


# ----------------------------------------------------------- item 2: every mode back
def test_one_eval_mode_helper_restores_every_submodule():
    from amrlearn.utils._torch import eval_mode

    assert neural_eval_mode is eval_mode
    net = _frozen_bn_net()
    with as_logit_fn(net).eval_mode():
        assert not any(m.training for m in net.modules())
    assert net.training and not net[1].training and net[0].training


@pytest.mark.parametrize(
    "run",
    [
        lambda net, X, y: robust_accuracy(net, X, y, eps=[0.1], steps=2),
        lambda net, X, y: L2PGD(eps=0.1, steps=2)(net, X, y),
        lambda net, X, y: DeepFool(max_iter=2, refine_steps=0)(net, X, y),
        lambda net, X, y: margin_bounds(net, X, y, n_batches=1, batch_size=8, attack_steps=2),
    ],
    ids=["robust_accuracy", "L2PGD", "DeepFool", "margin_bounds"],
)
def test_attacks_and_bounds_leave_a_frozen_batch_norm_frozen(run):
    net = _frozen_bn_net()
    X, _ = _data()
    run(net, X, np.zeros(len(X), dtype=np.int64))
    assert net.training and not net[1].training


# ---------------------------------------------- item 5: logits == layer(features)
class _TwoHeads(torch.nn.Module):
    """Returns (fc(h), h) but registers a second head of the same shape last."""

    def __init__(self, scale=1.0):
        super().__init__()
        self.body = torch.nn.Linear(4, 8)
        self.fc = torch.nn.Linear(8, 2)
        self.aux = torch.nn.Linear(8, 2)
        self.scale = scale

    def forward(self, x):
        h = torch.relu(self.body(x))
        return self.scale * self.fc(h), h


def test_feature_layer_that_does_not_produce_the_logits_is_refused():
    X, y = _data()
    net = AMRNeuralNetClassifier(_TwoHeads, max_epochs=1, verbose=0, random_state=0)
    with pytest.raises(ValueError, match="feature_layer"):
        net.fit(X, y)  # the shape alone picks 'aux'
    net = AMRNeuralNetClassifier(
        _TwoHeads, feature_layer="fc", max_epochs=1, verbose=0, random_state=0
    )
    assert net.fit(X, y).feature_margins(X, y).shape == (len(X),)


def test_feature_layer_checked_in_feature_margins_too():
    X, y = _data()
    net = AMRNeuralNetClassifier(_TwoHeads, lam=0.0, max_epochs=1, verbose=0).fit(X, y)
    with pytest.raises(ValueError, match="feature_layer"):
        net.feature_margins(X, y)
    scaled = AMRNeuralNetClassifier(
        _TwoHeads, module__scale=2.0, feature_layer="fc", max_epochs=1, verbose=0
    )
    with pytest.raises(ValueError, match="feature_layer='fc'"):
        scaled.fit(X, y)


# ------------------------------------------------------------- item 6: the errors
def test_adversarial_net_names_module_n_classes():
    X, _ = _data()
    net = AdversarialNeuralNetClassifier(
        models.LR, module__in_features=4, module__n_classes=2, max_epochs=1, verbose=0,
        attack__steps=1,
    )  # fmt: skip
    with pytest.raises(ValueError, match="module__n_classes=3"):
        net.fit(X, np.arange(len(X)) % 3)


@pytest.mark.parametrize("attack", [L2PGD(eps=0.1, steps=2), DeepFool(max_iter=2), DDN(steps=2)])
def test_attacks_refuse_labels_beyond_the_outputs(attack):
    X, _ = _data()
    with pytest.raises(ValueError, match=r"labels \[2\].*2 outputs"):
        attack(torch.nn.Linear(4, 2), X, np.full(len(X), 2))


def test_net_with_fewer_outputs_than_classes_refused_by_attacks():
    X, y = _data()
    net = _lr(classes=[0, 1, 2]).initialize()
    with pytest.raises(ValueError, match="2 outputs"):
        L2PGD(eps=0.1, steps=1)(net, X, np.full(len(X), 2))
    with pytest.raises(ValueError, match="module__n_classes=3"):
        net.predict(X)


def test_robust_accuracy_densifies_sparse_input():
    X, y = _data()
    lin = torch.nn.Linear(4, 2)
    kw = dict(eps=[0.0, 0.2], steps=5, random_state=0)
    dense = robust_accuracy(lin, X, y, **kw)
    np.testing.assert_array_equal(robust_accuracy(lin, sp.csr_matrix(X), y, **kw), dense)
    with pytest.raises(ValueError, match="numeric"):
        robust_accuracy(lin, np.array([["a"] * 4] * 3, dtype=object), [0, 1, 0])


def test_bare_module_refuses_labels_that_are_not_output_indices():
    X, _ = _data()
    lin = torch.nn.Linear(4, 2)
    strings = np.array(["a", "b"] * 8)
    with pytest.raises(ValueError, match="integer labels"):
        margin_bounds(lin, X, strings, lower=False)
    with pytest.raises(ValueError, match="integer labels"):
        margin_report(lin, X, strings)
    with pytest.raises(ValueError, match="2 outputs"):
        margin_bounds(lin, X, np.full(len(X), 5), lower=False)
    # integer labels keep their meaning: the sign follows label == argmax
    y = lin(torch.from_numpy(X)).argmax(1).numpy()
    res = margin_bounds(lin, X, y, lower=False)
    assert np.all(res["upper"] >= 0) and np.array_equal(res["y_pred"], y)


# ------------------------------------------------------- item 6: the round trip
def _lr(**kw):
    return AMRNeuralNetClassifier(
        models.LR, module__in_features=4, module__n_classes=2, max_epochs=2, verbose=0,
        random_state=0, **kw,
    )  # fmt: skip


def test_save_params_round_trip_keeps_the_labels(tmp_path):
    X, y = _data()
    y37 = np.where(y == 1, 7, 3)
    net = _lr().fit(X, y37)
    net.save_params(f_params=tmp_path / "p.pt")
    expected = net.predict(X)
    assert set(expected) <= {3, 7}
    # The documented round trip without the classes: an error, never the codes 0 and 1.
    fresh = _lr().initialize()
    fresh.load_params(f_params=tmp_path / "p.pt")
    np.testing.assert_allclose(fresh.predict_proba(X), net.predict_proba(X))
    with pytest.raises(ValueError, match=r"classes=\[\.\.\.\]"):
        fresh.predict(X)
    with pytest.raises(ValueError, match="classes"):
        margin_bounds(fresh, X, lower=False, upper=False)
    # With skorch's classes= (from the fitted net's classes_): the same predictions.
    fresh = clone(net).set_params(classes=net.classes_).initialize()
    fresh.load_params(f_params=tmp_path / "p.pt")
    np.testing.assert_array_equal(fresh.predict(X), expected)
    res = margin_bounds(fresh, X, y37, lower=False, upper=False)
    np.testing.assert_array_equal(res["y_pred"], expected)


def test_classes_must_be_sorted_and_distinct():
    with pytest.raises(ValueError, match="sorted"):
        _lr(classes=[7, 3]).initialize()


def test_fit_on_a_dataset_of_codes_still_predicts_codes():
    from skorch.dataset import Dataset

    class Codes(torch.utils.data.Dataset):  # no .y: the classes cannot be inferred
        def __init__(self, X, y):
            self.X, self.y_ = torch.from_numpy(X), torch.from_numpy(y)

        def __len__(self):
            return len(self.X)

        def __getitem__(self, i):
            return self.X[i], self.y_[i]

    X, y = _data()
    net = _lr().fit(Codes(X, y), None)
    assert set(net.predict(X)) <= {0, 1}
    assert set(_lr().fit(Dataset(X, y), None).predict(X)) <= {0, 1}


def test_robust_accuracy_refuses_labels_beyond_the_outputs():
    X, _ = _data()
    with pytest.raises(ValueError, match=r"labels \[2\].*2 outputs"):
        robust_accuracy(torch.nn.Linear(4, 2), X, np.full(len(X), 2), eps=[0.1], steps=2)
