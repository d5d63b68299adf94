"""AMR and the baselines on skorch: margin (14), penalty, objective (15), sklearn round trips."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

from amrlearn.metrics import margin_report, sample_margins, summarize_margins
from amrlearn.neural import (
    AdversarialNeuralNetClassifier,
    AMRNeuralNetClassifier,
    MarginTracker,
    feature_margin,
    models,
    orthogonality_penalty,
)
from amrlearn.neural._penalties import amr_margin_term


def _toy(n=120, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, d)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 1).astype(np.int64) + (X[:, 2] > 0.7)
    return X, y.astype(np.int64)


def _net(cls=AMRNeuralNetClassifier, **kw):
    params = dict(
        module=models.MLP,
        module__in_features=6,
        module__hidden=16,
        module__n_classes=3,
        max_epochs=2,
        verbose=0,
    )
    params.update(kw)
    return cls(**params)


# ------------------------------------------------------------ feature margin (14)
def test_feature_margin_matches_brute_force_distance_in_2d():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(4, 2, generator=g, dtype=torch.float64)
    b = torch.randn(4, generator=g, dtype=torch.float64)
    phi = torch.randn(6, 2, generator=g, dtype=torch.float64)
    m = feature_margin(phi, W, b)
    # brute force: the smallest radius at which some direction changes the prediction
    radii = torch.linspace(0, 4, 801, dtype=torch.float64)  # steps of 5e-3
    angles = torch.linspace(0, 2 * np.pi, 721, dtype=torch.float64)[:-1]
    dirs = torch.stack([angles.cos(), angles.sin()], 1)
    for i in range(len(phi)):
        c = (phi[i] @ W.T + b).argmax()
        pts = phi[i] + radii[:, None, None] * dirs[None]  # (r, a, 2)
        changed = ((pts @ W.T + b).argmax(-1) != c).any(1)
        brute = radii[changed.nonzero()[0, 0]] if changed.any() else np.inf
        assert abs(float(m[i]) - float(brute)) < 6e-3


def test_feature_margin_signed_and_logit_variant():
    W = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, -1.0]])
    b = torch.tensor([0.0, 0.5, 0.0])
    phi = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    y = torch.tensor([0, 0])
    logits = phi @ W.T + b
    raw = feature_margin(phi, W, b, y, normalize=False)
    expected_raw = torch.stack([min(logits[i, 0] - logits[i, k] for k in (1, 2)) for i in range(2)])
    torch.testing.assert_close(raw, expected_raw)
    norm = feature_margin(phi, W, b, y)
    d = (W[0] - W).norm(dim=1)
    expected = torch.stack(
        [min((logits[i, 0] - logits[i, k]) / d[k] for k in (1, 2)) for i in range(2)]
    )
    torch.testing.assert_close(norm, expected)
    assert norm[0] > 0 > norm[1]  # sample 1 is misclassified with respect to y=0
    # gradients stay finite even with two equal class weights
    Wd = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    feature_margin(phi, Wd, None, torch.tensor([2, 2])).sum().backward()
    assert torch.isfinite(Wd.grad).all()


def test_margin_term_counts_only_correct_samples_over_whole_batch():
    m = torch.tensor([1.0, 9.0, -2.0, 0.5])
    correct = torch.tensor([True, True, False, False])
    assert float(amr_margin_term(m, correct, 5.0)) == pytest.approx((1 + 5) / 4)


# ----------------------------------------------------------- orthogonality penalty
def _hand_penalty(weights):
    total = 0.0
    for w in weights:
        w = w.detach().numpy().reshape(w.shape[0], -1).astype(np.float64)
        total += np.sum((w @ w.T - np.eye(w.shape[0])) ** 2)
    return total


def _conv_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 2),  # (3, 2, 2, 2): flattened to 3 x 8 (wide)
        torch.nn.Flatten(),
        torch.nn.Linear(27, 40),  # tall: W^T W is the smaller Gram matrix
        torch.nn.Linear(40, 5),
    )


def test_penalty_matches_hand_computation_with_conv_flattening():
    net = _conv_net()
    weights = [net[0].weight, net[2].weight, net[3].weight]
    expected = _hand_penalty(weights)
    for gram in ("auto", "output", "input"):
        value = orthogonality_penalty(net, gram=gram).detach()
        assert float(value) == pytest.approx(expected, rel=1e-5)
    # biases are not penalized
    with torch.no_grad():
        for layer in (net[0], net[2], net[3]):
            layer.bias.add_(3.0)
    assert float(orthogonality_penalty(net).detach()) == pytest.approx(expected, rel=1e-5)


def test_penalty_gram_options_have_equal_gradients():
    net = _conv_net()
    grads = {}
    for gram in ("auto", "output", "input"):
        grads[gram] = torch.autograd.grad(
            orthogonality_penalty(net, gram=gram), list(net.parameters()), allow_unused=True
        )
    for a, b in zip(grads["output"], grads["input"]):
        if a is None:
            assert b is None  # biases get no gradient
        else:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    for a, b in zip(grads["output"], grads["auto"]):
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_penalty_counts_a_shared_layer_once():
    layer = torch.nn.Linear(4, 4)
    shared = torch.nn.Sequential(layer, torch.nn.ReLU(), layer)
    with torch.no_grad():
        assert float(orthogonality_penalty(shared)) == pytest.approx(
            float(orthogonality_penalty([layer.weight]))
        )


def test_hutchinson_penalty_is_unbiased():
    torch.manual_seed(0)
    w = torch.randn(60, 40) / 7
    exact = float(orthogonality_penalty([w]))
    g = torch.Generator().manual_seed(0)
    est = float(orthogonality_penalty([w], n_probes=16, generator=g))
    assert est != pytest.approx(exact, rel=1e-6)  # really stochastic
    ests = [float(orthogonality_penalty([w], n_probes=16, generator=g)) for _ in range(50)]
    assert np.mean(ests) == pytest.approx(exact, rel=0.05)
    # wide side probed too (W^T of the same matrix has the same penalty up to out - in)
    ests_t = [float(orthogonality_penalty([w.T], n_probes=16, generator=g)) for _ in range(50)]
    assert np.mean(ests_t) == pytest.approx(exact - 20, rel=0.05)
    # too many probes for a narrow layer: the exact value is used
    assert float(orthogonality_penalty([w], n_probes=20)) == pytest.approx(exact, rel=1e-5)
    with pytest.raises(ValueError, match="n_probes"):
        orthogonality_penalty([w], n_probes=0)


# ----------------------------------------------------------------- objective (15)
def test_get_loss_is_objective_15():
    X, y = _toy()
    net = _net(lam=0.3, tau=0.5, beta=0.01).initialize()
    Xt, yt = torch.from_numpy(X[:32]), torch.from_numpy(y[:32])
    logits, feats = net.module_(Xt)
    loss = net.get_loss((logits, feats), yt, X=Xt, training=True)
    W, b = net.module_.last_linear.weight, net.module_.last_linear.bias
    ce = torch.nn.functional.cross_entropy(logits, yt)
    m = feature_margin(feats, W, b, yt)
    correct = (logits.argmax(1) == yt).float()
    expected = (
        ce - 0.3 * (m.clamp(0, 0.5) * correct).mean() + 0.01 * orthogonality_penalty(net.module_)
    )
    torch.testing.assert_close(loss, expected)
    # the baselines: Std drops both terms, LCR keeps the penalty only
    std = _net(lam=0, beta=0).initialize()
    std.module_.load_state_dict(net.module_.state_dict())
    torch.testing.assert_close(std.get_loss(std.module_(Xt), yt), ce)


def test_predict_and_proba_use_the_logits():
    X, y = _toy()
    net = _net().fit(X, y)
    proba = net.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-5)
    np.testing.assert_array_equal(net.predict(X), proba.argmax(1))
    fm = net.feature_margins(X, y)
    assert fm.dtype == np.float64 and fm.shape == (len(X),)
    np.testing.assert_array_equal(fm > 0, net.predict(X) == y)
    np.testing.assert_allclose(np.abs(fm), net.feature_margins(X))


def test_defaults_follow_appendix_f():
    net = _net()
    assert (net.lam, net.beta, net.tau, net.margin) == (0.1, 1e-3, 5.0, "feature")
    assert net.lr == 0.01 and net.batch_size == 128 and net.train_split is None
    net.initialize()
    opt = net.optimizer_
    assert isinstance(opt, torch.optim.SGD)
    assert opt.defaults["momentum"] == 0.9 and opt.defaults["nesterov"] is True
    assert isinstance(net.criterion_, torch.nn.CrossEntropyLoss)
    # another optimizer does not receive SGD's arguments
    _net(optimizer=torch.optim.Adam).initialize()


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(lam=-1.0), "lam"),
        (dict(tau=-0.1), "tau"),
        (dict(margin="geodesic"), "margin"),
        (dict(gram="both"), "gram"),
        (dict(ortho_probes=0), "ortho_probes"),
        (dict(data_on_device="yes"), "data_on_device"),
    ],
)
def test_invalid_hyperparameters_raise(params, match):
    X, y = _toy()
    with pytest.raises(InvalidParameterError, match=match):
        _net(**params).fit(X, y)


def test_bad_data_raise():
    X, y = _toy()
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _net().fit(Xn, y)
    with pytest.raises(ValueError, match="single class"):
        _net().fit(X, np.zeros(len(X), dtype=np.int64))
    with pytest.raises(ValueError, match="1-dimensional"):
        _net().fit(X, y[:, None])
    with pytest.raises(InvalidParameterError, match="steps"):
        _net(AdversarialNeuralNetClassifier, attack__steps=-1).fit(X, y)


def _conv_logits():
    """Logits from a convolution (no nn.Linear anywhere): 6 features -> 3 logits."""
    return torch.nn.Sequential(
        torch.nn.Unflatten(1, (1, 6)), torch.nn.Conv1d(1, 3, 6), torch.nn.Flatten()
    )


def test_logits_not_from_a_linear_layer_need_lam_zero():
    X, y = _toy()
    net = AMRNeuralNetClassifier(_conv_logits(), max_epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"no torch.nn.Linear.*feature_layer=.*lam=0"):
        net.initialize()
    # standard training and LCR do not use the features: they train
    std = AMRNeuralNetClassifier(_conv_logits(), lam=0.0, max_epochs=1, verbose=0).fit(X, y)
    assert std.feature_layer_ is None and std.predict(X).shape == (len(X),)
    with pytest.raises(ValueError, match="feature_layer="):
        std.feature_margins(X, y)


# ------------------------------------------------------------ data handling
def test_float64_int32_input_and_data_on_device_give_same_fit():
    X, y = _toy()
    fits = []
    for X_, y_, on_dev in [(X, y, False), (X.astype(np.float64), y.astype(np.int32), True)]:
        torch.manual_seed(0)
        net = _net(data_on_device=on_dev, iterator_train__shuffle=False, batch_size=32)
        fits.append(net.fit(X_, y_).predict_proba(X))
    np.testing.assert_allclose(fits[0], fits[1], rtol=1e-5, atol=1e-6)
    # torch tensors as input, with the device iterator and shuffling
    net = _net(data_on_device=True).fit(torch.from_numpy(X), torch.from_numpy(y))
    assert net.predict(torch.from_numpy(X)).shape == (len(X),)


# ------------------------------------------------------- sklearn/skorch round trips
def test_grid_search_over_tau_lam_and_hidden():
    X, y = _toy(n=90)
    grid = GridSearchCV(
        _net(max_epochs=1),
        {"tau": [1.0, 5.0], "lam": [0.0, 0.1], "module__hidden": [4, 8]},
        cv=2,
    )
    grid.fit(X, y)
    assert len(grid.cv_results_["params"]) == 8
    assert grid.best_estimator_.module_.hidden_layer.out_features in (4, 8)


def test_clone_pickle_and_save_params_round_trips(tmp_path):
    X, y = _toy()
    net = _net(lam=0.2, tau=3.0, beta=0.0, margin="logit", data_on_device=True)
    c = clone(net)
    params = c.get_params()
    assert (params["lam"], params["tau"], params["margin"]) == (0.2, 3.0, "logit")
    assert params["optimizer__nesterov"] is True and params["data_on_device"] is True
    net.fit(X, y)
    proba = net.predict_proba(X)
    again = pickle.loads(pickle.dumps(net))
    np.testing.assert_allclose(again.predict_proba(X), proba)
    net.save_params(f_params=tmp_path / "params.pt")
    fresh = clone(net).initialize()
    fresh.load_params(f_params=tmp_path / "params.pt")
    np.testing.assert_allclose(fresh.predict_proba(X), proba, rtol=1e-6)
    adv = clone(_net(AdversarialNeuralNetClassifier, attack__eps=0.4, attack__steps=2))
    assert adv.get_params()["attack__eps"] == 0.4


def test_pipeline_with_scaler():
    X, y = _toy()
    pipe = make_pipeline(StandardScaler(), _net())  # the scaler outputs float64
    assert pipe.fit(X, y).score(X, y) > 0


# ------------------------------------------------------ margin tracking, dispatcher
def test_margin_tracker_records_on_schedule():
    X, y = _toy()
    tracker = MarginTracker(X_test=X[:50], y_test=y[:50], n_points=40)
    net = _net(max_epochs=3, callbacks=[("margins", tracker)]).fit(X, y)
    rows = net.history
    assert "train_avg_margin" in rows[0] and "test_min_margin" in rows[0]
    assert "train_avg_margin" not in rows[1]  # epoch 2 is not in the paper's schedule
    # the value is what the dispatcher reports on the same fixed subset, recomputed on
    # the net as it was at epoch 1 (one epoch of the same seeded fit)
    Xs, ys = tracker.subsets_["train"]
    assert len(Xs) == 40
    one = _net(max_epochs=1, random_state=0, callbacks=[("margins", clone(tracker))])
    one.fit(X, y)
    stats = summarize_margins(sample_margins(one, Xs, ys, kind="feature")["feature"])
    assert one.history[0]["train_min_margin"] == stats["min_margin"]
    assert one.history[0]["train_avg_margin"] == stats["avg_margin"]
    every = MarginTracker(every=1, n_points=None)
    net = _net(max_epochs=2, callbacks=[every]).fit(X, y)
    last = net.history[-1]
    fm = net.feature_margins(X, y)
    assert last["train_avg_margin"] == pytest.approx(np.abs(fm).mean())
    assert last["train_min_margin"] == pytest.approx(fm.min())
    with pytest.raises(ValueError, match="kind"):
        _net(callbacks=[MarginTracker(kind="exact")]).fit(X, y)


def test_sample_margins_feature_kind():
    X, y = _toy()
    net = _net().fit(X, y)
    res = sample_margins(net, X, y, kind="feature")
    assert res["method"] == "feature"
    np.testing.assert_allclose(res["margin"], net.feature_margins(X, y))
    np.testing.assert_array_equal(res["y_pred"], net.predict(X))
    with pytest.raises(ValueError, match="kind"):
        sample_margins(net, X, y, kind="lower")


def test_margin_report_on_net():
    X, y = _toy(n=20)
    net = _net().fit(X, y)
    report = margin_report(net, X, y, upper=False, bound_params={"n_batches": 1, "batch_size": 8})
    assert "avg_feature_margin" in report and "accuracy" in report


# ------------------------------------------------------- adversarial training
def test_adversarial_training_at_eps_zero_is_standard_training():
    X, y = _toy()
    fits = []
    for cls, kw in [
        (AMRNeuralNetClassifier, dict(lam=0.0, beta=0.0)),
        (AdversarialNeuralNetClassifier, dict(attack__eps=0.0, attack__steps=3)),
    ]:
        torch.manual_seed(0)
        fits.append(_net(cls, iterator_train__shuffle=False, **kw).fit(X, y).predict_proba(X))
    np.testing.assert_allclose(fits[0], fits[1], rtol=1e-5, atol=1e-6)


def test_adversarial_training_trains_on_pgd_points(monkeypatch):
    from amrlearn.attacks import L2PGD

    seen = []
    original = L2PGD.run

    def spy(self, fn, x, y, **kw):
        x_adv = original(self, fn, x, y, **kw)
        seen.append(((x_adv - x).flatten(1).norm(dim=1).max().item(), self.steps, self.eps))
        return x_adv

    monkeypatch.setattr(L2PGD, "run", spy)
    X, y = _toy()
    net = _net(
        AdversarialNeuralNetClassifier,
        attack__eps=0.5,
        attack__steps=3,
        attack__step_size=0.2,
        max_epochs=1,
    )
    net.fit(X, y)
    assert len(seen) == 1  # one batch of 120 < 128
    norm, steps, eps = seen[0]
    assert 0 < norm <= 0.5 + 1e-5 and (steps, eps) == (3, 0.5)


# ------------------------------------------------------------- real data: MNIST
def test_amr_raises_average_feature_margin_on_mnist_subset():
    from amrlearn.datasets import DatasetNotFoundError, load_mnist

    try:
        X, y = load_mnist(return_X_y=True)
    except DatasetNotFoundError:
        pytest.skip("MNIST not available (set AMRLEARN_DATA)")
    idx = np.random.default_rng(0).choice(len(X), 600, replace=False)
    X, y = X[idx], y[idx]
    avg = {}
    for name, kw in [("std", dict(lam=0.0, beta=0.0)), ("amr", dict(lam=0.1, beta=1e-3))]:
        torch.manual_seed(0)
        net = AMRNeuralNetClassifier(
            models.MLP,
            module__in_features=784,
            module__hidden=64,
            max_epochs=5,
            data_on_device=True,
            verbose=0,
            **kw,
        ).fit(X, y)
        avg[name] = np.abs(net.feature_margins(X, y)).mean()
    assert avg["amr"] > 1.05 * avg["std"]


# --------------------------------------------------------------------- CUDA
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_end_to_end():
    X, y = _toy()
    for on_dev in (False, True):
        net = _net(device="cuda", data_on_device=on_dev).fit(X, y)
        assert next(net.module_.parameters()).is_cuda
        assert net.predict(X).shape == (len(X),)
        assert net.feature_margins(X, y).shape == (len(X),)
    Xc, yc = torch.from_numpy(X).cuda(), torch.from_numpy(y).cuda()
    net = _net(device="cuda", data_on_device=True).fit(Xc, yc)
    assert net.predict(Xc).shape == (len(X),)
    assert sample_margins(net, X, y, kind="feature")["feature"].shape == (len(X),)
    adv = _net(AdversarialNeuralNetClassifier, device="cuda", attack__eps=0.3, attack__steps=2).fit(
        X, y
    )
    assert adv.predict(X).shape == (len(X),)
    tracked = _net(device="cuda", callbacks=[MarginTracker(X, y, every=1)]).fit(X, y)
    Xs, ys = tracked.callbacks_[-1][1].subsets_["train"]
    stats = summarize_margins(tracked.feature_margins(Xs, ys))
    assert tracked.history[-1, "train_avg_margin"] == pytest.approx(stats["avg_margin"])


def test_margin_tracker_bound_kind_uses_the_dispatcher():
    X, y = _toy(n=60)
    params = {"n_batches": 1, "batch_size": 16, "random_state": 0}
    tracker = MarginTracker(n_points=10, every=1, kind="bound", bound_params=params)
    net = _net(max_epochs=1, callbacks=[tracker]).fit(X, y)
    Xs, ys = tracker.subsets_["train"]
    # a seeded bound on the same weights: the same numbers, exactly
    stats = summarize_margins(sample_margins(net, Xs, ys, bound_params=params)["margin"])
    assert net.history[-1, "train_min_margin"] == stats["min_margin"]
    assert net.history[-1, "train_avg_margin"] == stats["avg_margin"]
