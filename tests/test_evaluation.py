"""Tests of the robustness evaluation: the "auto" chain, APGD, robustness curves, the
evaluation alarms (EvaluationWarning) and the tables' two robust-accuracy numbers."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from amrlearn.attacks import APGD, AUTO_ATTACKS, DDN, FMN, L2PGD, robust_accuracy
from amrlearn.exceptions import EvaluationWarning
from amrlearn.metrics import (
    linear_margins,
    lipschitz_margin_bound,
    margin_bounds,
    margin_report,
    robustness_curve,
)


def _saturated():
    """A 2-class linear net with logit gaps of hundreds: the float32 cross-entropy has an
    exactly zero gradient (masking); every point is within 0.3 of the boundary x0 = 0.5."""
    net = torch.nn.Linear(2, 2)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1000.0, 0.0], [-1000.0, 0.0]]))
        net.bias.copy_(torch.tensor([-500.0, 500.0]))
    X = np.array([[0.8, 0.5], [0.7, 0.2], [0.2, 0.4], [0.3, 0.9]], dtype=np.float32)
    return net, X, np.array([0, 0, 1, 1])


@pytest.fixture
def quiet():
    """Turn every EvaluationWarning into an error for the block."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", EvaluationWarning)
        yield


PGD_KW = dict(steps=20, step_size=0.05, random_state=0)


# --------------------------------------------------------------------- "auto" and the chain


def test_auto_gives_pgd_and_auto_in_one_call_with_auto_below_pgd_per_sample(mlp, digits):
    X, y = digits[0][:100], digits[1][:100]
    grid = [0.0, 0.3, 0.6, 1.0]
    res = robust_accuracy(
        mlp, X, y, eps=grid, attack=["pgd", "auto"], return_details=True, **PGD_KW
    )
    assert res.attacks == ["pgd", "fmn", "apgd-ce/50", "apgd-t3/50"]
    pgd = res.robust_by_attack["pgd"]
    assert not np.any(res.robust & ~pgd), "a sample robust under auto must be under pgd"
    # Robust at a radius implies robust at every smaller one.
    assert not np.any(res.robust[:, 1:] & ~res.robust[:, :-1])
    np.testing.assert_array_equal(res.accuracy, res.robust.mean(axis=0))
    assert res.accuracy[0] == res.clean
    # The chain's first attack is the paper's: the same numbers as attack="pgd" alone.
    alone = robust_accuracy(mlp, X, y, eps=grid, attack="pgd", **PGD_KW)
    np.testing.assert_array_equal(res.accuracy_by_attack["pgd"], alone)
    # The default return value is the chain's accuracy.
    np.testing.assert_array_equal(
        robust_accuracy(mlp, X, y, eps=grid, attack=["pgd", "auto"], **PGD_KW), res.accuracy
    )
    # "auto" alone is the strong chain, without the paper's attack.
    auto = robust_accuracy(mlp, X, y, eps=grid, attack="auto", return_details=True, **PGD_KW)
    assert auto.attacks == list(AUTO_ATTACKS) == ["fmn", "apgd-ce/50", "apgd-t3/50"]


def test_min_norm_stage_runs_once_and_breaks_at_every_eps_above_its_distance(
    mlp, digits, monkeypatch
):
    X, y = digits[0][:60], digits[1][:60]
    grid = [0.0, 0.2, 0.4, 0.8, 1.6]
    calls = []
    run = FMN.run

    def counting(self, fn, x, y, **kw):
        calls.append(x.shape[0])
        return run(self, fn, x, y, **kw)

    monkeypatch.setattr(FMN, "run", counting)
    res = robust_accuracy(mlp, X, y, eps=grid, attack="fmn", return_details=True, batch_size=64)
    assert len(calls) == 1, "the minimum-norm attack runs once across the grid"
    monkeypatch.setattr(FMN, "run", run)
    # Its accuracy at each eps is that of its distances: the same FMN alone.
    _, dist = FMN(steps=100, random_state=0)(mlp, X, y)
    np.testing.assert_array_equal(res.accuracy, [(dist > e).mean() for e in grid])
    # In a chain it only sees the survivors of the attacks before it, and never makes a
    # sample robust again.
    chain = robust_accuracy(
        mlp, X, y, eps=grid, attack=["pgd", "fmn"], return_details=True, **PGD_KW
    )
    assert not np.any(chain.robust & ~chain.robust_by_attack["pgd"])
    assert not np.any(chain.robust[:, 1:] & ~chain.robust[:, :-1])


def test_auto_is_sound_and_near_exact_on_a_linear_model(digits):
    # Exact margins: "auto" never breaks a sample whose margin exceeds eps, and its
    # minimum-norm stage finds the boundary of an affine model, so it is close to exact.
    X, y = digits[0][:300], digits[1][:300]
    clf = LogisticRegression(max_iter=500).fit(X, y)
    grid = [0.0, 0.1, 0.2, 0.4]
    exact = linear_margins(clf, X, y)
    res = robust_accuracy(clf, X, y, eps=grid, attack="auto", clip=None, return_details=True)
    for i, e in enumerate(grid):
        assert not np.any(~res.robust[:, i] & (exact > e * (1 + 1e-4)))
    np.testing.assert_allclose(res.accuracy, [(exact > e).mean() for e in grid], atol=0.01)


def test_targeted_apgd_names():
    from amrlearn.attacks._robust import _named

    pgd = dict(batch_size=8, device=None, verbose=0, random_state=0)
    assert _named("apgd-t", pgd, None).n_targets == 9
    assert _named("apgd-t3", pgd, None).n_targets == 3
    assert _named("apgd-t3/50", pgd, None).get_params()["steps"] == 50
    assert _named("apgd-ce", pgd, None).get_params()["steps"] == 100
    for bad in ("apgd-ce/0", "apgd-ce/x", "pgd/5"):
        with pytest.raises(ValueError, match="Unknown attack"):
            _named(bad, pgd, None)
    with pytest.raises(ValueError, match="Unknown attack"):
        _named("apgd-t0", pgd, None)


def test_attack_instances_lists_and_the_older_loss_spelling(mlp, digits):
    X, y = digits[0][:100], digits[1][:100]
    grid = [0.3, 0.6]
    named = robust_accuracy(mlp, X, y, eps=grid, attack="pgd", **PGD_KW)
    inst = L2PGD(eps=0.0, steps=20, step_size=0.05, random_state=0)
    np.testing.assert_array_equal(
        robust_accuracy(mlp, X, y, eps=grid, attack=inst, random_state=0), named
    )
    legacy = robust_accuracy(mlp, X, y, eps=grid, loss=("ce", "margin"), **PGD_KW)
    chain = robust_accuracy(mlp, X, y, eps=grid, attack=["pgd", "pgd-margin"], **PGD_KW)
    np.testing.assert_array_equal(legacy, chain)
    res = robust_accuracy(
        mlp, X, y, eps=grid, attack=["pgd", APGD(eps=0.0, steps=10)], return_details=True, **PGD_KW
    )
    assert res.attacks == ["pgd", "APGD"]
    with pytest.raises(ValueError, match="either attack or loss"):
        robust_accuracy(mlp, X, y, eps=grid, attack="auto", loss="ce")
    with pytest.raises(ValueError, match="Unknown attack"):
        robust_accuracy(mlp, X, y, eps=grid, attack="fgsm")
    with pytest.raises(TypeError):
        robust_accuracy(mlp, X, y, eps=grid, attack=[3])


# ----------------------------------------------------------------------------------- APGD


@pytest.mark.parametrize("loss,n_targets", [("ce", 0), ("dlr", 0), ("dlr", 3)])
def test_apgd_stays_in_ball_and_box_and_breaks_samples(cnn, digits, loss, n_targets):
    X, y = digits[0][:100].reshape(-1, 1, 8, 8), digits[1][:100]
    attack = APGD(eps=0.8, steps=20, loss=loss, n_targets=n_targets, random_state=0)
    X_adv = attack(cnn, X, y)
    norms = np.linalg.norm((X_adv - X).reshape(len(X), -1), axis=1)
    assert norms.max() <= 0.8 * (1 + 1e-6) and X_adv.min() >= 0 and X_adv.max() <= 1
    with torch.no_grad():
        wrong = cnn(torch.from_numpy(X_adv)).argmax(1).numpy() != y
        clean_wrong = cnn(torch.from_numpy(X)).argmax(1).numpy() != y
    assert wrong.sum() > clean_wrong.sum()
    acc = robust_accuracy(cnn, X, y, eps=[0.0, 0.8], attack=attack, random_state=0)
    assert acc[0] == 1 - clean_wrong.mean() and acc[1] < acc[0]


def test_apgd_dlr_is_not_masked_by_a_saturated_softmax():
    net, X, y = _saturated()
    kw = dict(steps=30, random_start=False, random_state=0)
    assert robust_accuracy(net, X, y, eps=[0.5], attack=APGD(eps=0.0, loss="ce", **kw))[0] == 1
    assert robust_accuracy(net, X, y, eps=[0.5], attack=APGD(eps=0.0, loss="dlr", **kw))[0] == 0


# --------------------------------------------------------------------------------- alarms


def test_gradient_masking_alarm_names_the_eps():
    net, X, y = _saturated()
    kw = dict(steps=50, step_size=0.05, random_start=False, random_state=0)
    with pytest.warns(EvaluationWarning, match=r"eps=0\.5 \(100\.0% -> 0\.0%\)"):
        acc = robust_accuracy(net, X, y, eps=[0.05, 0.5], attack=["pgd", "auto"], **kw)
    assert acc.tolist() == [1.0, 0.0]


def test_gradient_masking_alarm_quiet_where_attacks_agree(quiet, digits):
    X, y = digits
    clf = LogisticRegression(max_iter=500).fit(X, y)
    robust_accuracy(clf, X[:100], y[:100], eps=[0.2, 0.5], attack="auto", clip=None, **PGD_KW)


def test_training_mode_alarm_on_tensor_level_attacks(bn_mlp, digits):
    X, y = torch.from_numpy(digits[0][:20]), torch.from_numpy(digits[1][:20])
    bn_mlp.train()
    for attack in (L2PGD(eps=0.3, steps=2), APGD(eps=0.3, steps=2)):
        with pytest.warns(EvaluationWarning, match="BatchNorm1d, Dropout in training mode"):
            attack.run(bn_mlp, X, y)


def test_training_mode_alarm_quiet_in_eval_mode_and_through_call(quiet, bn_mlp, digits):
    X, y = digits[0][:20], digits[1][:20]
    bn_mlp.train()
    L2PGD(eps=0.3, steps=2)(bn_mlp, X, y)  # __call__ switches to eval mode itself
    robust_accuracy(bn_mlp, X, y, eps=[0.3], attack=["pgd", "pgd-margin"], steps=2)
    assert bn_mlp.training
    bn_mlp.eval()
    try:
        L2PGD(eps=0.3, steps=2).run(bn_mlp, torch.from_numpy(X), torch.from_numpy(y))
    finally:
        bn_mlp.train()


class _Noisy(torch.nn.Module):
    """A layer that eval mode does not switch off: functional dropout, always on."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(64, 10)

    def forward(self, x):
        return self.lin(torch.nn.functional.dropout(x, 0.5, training=True))


def test_random_output_alarm_in_attacks_and_bounds(digits, mlp):
    X, y = digits[0][:10], digits[1][:10]
    torch.manual_seed(0)
    noisy = _Noisy()
    with pytest.warns(EvaluationWarning, match="changes between two passes"):
        robust_accuracy(noisy, X, y, eps=[0.1], steps=2)
    with pytest.warns(EvaluationWarning, match="changes between two passes"):
        margin_bounds(noisy, X, lower=False, attack=DDN(steps=2))
    # torch.func refuses random operations: the alarm comes first, then the error.
    with pytest.warns(EvaluationWarning, match="changes"), pytest.raises(RuntimeError):
        lipschitz_margin_bound(noisy, X, n_batches=1, batch_size=4)
    # A model without a random layer stays quiet.
    with warnings.catch_warnings():
        warnings.simplefilter("error", EvaluationWarning)
        robust_accuracy(mlp, X, y, eps=[0.1], steps=2)
        margin_bounds(mlp, X, lower=False, attack_steps=2)
        lipschitz_margin_bound(mlp, X, n_batches=1, batch_size=4)


def test_out_of_box_inputs_alarm_in_bounds_error_in_attacks(mlp, digits):
    X = digits[0][:10] * 2.0  # values up to 2, outside [0, 1]
    with pytest.warns(EvaluationWarning, match="outside the box"):
        lipschitz_margin_bound(mlp, X, n_batches=1, batch_size=4, clip=(0.0, 1.0))
    with pytest.raises(ValueError, match="outside the box"):  # an attack would clip: refused
        robust_accuracy(mlp, X, digits[1][:10], eps=[0.1], steps=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", EvaluationWarning)
        lipschitz_margin_bound(mlp, digits[0][:10], n_batches=1, batch_size=4, clip=(0.0, 1.0))
        lipschitz_margin_bound(mlp, X, n_batches=1, batch_size=4)  # no box, no alarm


def _steep_net():
    """1-D: ``f1 - f0 = 0.045 + 0.01 relu(x) - 100 relu(0.49 - x)``. At x = 0.5 the gap is
    0.05 and the gradient 0.01 (a Lipschitz estimate from x alone says 5), but the
    boundary lies at x = 0.4895, 0.0105 away."""
    net = torch.nn.Sequential(torch.nn.Linear(1, 2), torch.nn.ReLU(), torch.nn.Linear(2, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[-1.0], [1.0]]))
        net[0].bias.copy_(torch.tensor([0.49, 0.0]))
        net[2].weight.copy_(torch.tensor([[0.0, 0.0], [-100.0, 0.01]]))
        net[2].bias.copy_(torch.tensor([0.0, 0.045]))
    return net, np.array([[0.5]], dtype=np.float32)


def test_broken_lower_bound_alarm():
    net, X = _steep_net()
    with pytest.warns(EvaluationWarning, match="exceeds the distance to an adversarial point"):
        res = margin_bounds(net, X, radius=1.0, n_batches=1, batch_size=1, attack_steps=20)
    assert res["lipschitz"][0] == pytest.approx(1.0)  # the estimate: the radius
    assert res["upper"][0] == pytest.approx(0.0105, abs=1e-3)  # the boundary found
    assert res["lower"][0] <= res["upper"][0]


def test_broken_lower_bound_alarm_quiet_with_enough_samples(quiet):
    net, X = _steep_net()
    res = margin_bounds(net, X, radius=1.0, n_batches=1, batch_size=512, attack_steps=20)
    assert res["lipschitz"][0] <= res["upper"][0]


# ------------------------------------------------------------------------ robustness curve


def test_robustness_curve_matches_pgd_at_grid_points_and_brackets(mlp, digits):
    X, y = digits[0][:100], digits[1][:100]
    grid = [0.0, 0.25, 0.5, 0.75, 1.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EvaluationWarning)  # the cheap bound may fall short
        curve = robustness_curve(mlp, X, y, eps=grid, attack_steps=50)
    auto = robust_accuracy(mlp, X, y, eps=grid, attack="auto", steps=50, step_size=0.05)
    # Two attacks, each an upper bound on the true robust accuracy: the minimum-norm
    # ensemble (100 steps, three attacks) is at least as strong as 50-step PGD, up to a
    # sample or two, and the two agree within 10 points at every grid point.
    assert np.all(curve.accuracy <= auto + 0.03)
    np.testing.assert_allclose(curve.accuracy, auto, atol=0.1)
    assert curve.accuracy[0] == auto[0]  # the clean accuracy
    assert np.all(curve.lower <= curve.upper) and np.all(curve.accuracy_lower <= curve.accuracy)
    np.testing.assert_array_equal(curve.accuracy_at(grid), curve.accuracy)
    assert np.all(np.diff(curve.accuracy) <= 0)


def test_robustness_curve_is_exact_for_a_linear_model(digits):
    X, y = digits[0][:300], digits[1][:300]
    clf = LogisticRegression(max_iter=500).fit(X, y)
    grid = [0.0, 0.1, 0.2, 0.4]
    curve = robustness_curve(clf, X, y, eps=grid, clip=None)
    np.testing.assert_allclose(curve.lower, curve.upper)
    exact = linear_margins(clf, X, y)
    np.testing.assert_allclose(curve.accuracy, [(exact > e).mean() for e in grid])
    # The exact curve is the true robust accuracy: no attack finds fewer robust samples,
    # and the strong evaluation comes close to it.
    auto = robust_accuracy(clf, X, y, eps=grid, attack="auto", clip=None, steps=50, step_size=0.02)
    assert np.all(curve.accuracy <= auto + 1e-12)
    np.testing.assert_allclose(curve.accuracy, auto, atol=0.02)


def test_margin_report_median_upper_bound(mlp, digits):
    X, y = digits[0][:50], digits[1][:50]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EvaluationWarning)
        rep = margin_report(mlp, X, y, bound_params={"n_batches": 1, "batch_size": 16})
    assert rep["median_margin_lower"] <= rep["median_margin_upper"]
    assert rep["median_margin_lower"] <= rep["median_margin"] + 1e-9


# ----------------------------------------------------------------------------- the tables


def test_table_cells_show_auto_and_pgd_and_older_results_still_render():
    from amrlearn.experiments._summaries import markdown_table

    cell = {"clean": 98.0, "robust": [90.0, 60.0, 30.0, 10.0], "eps": [0.5, 1, 1.5, 2]}
    new = {**cell, "robust_pgd": [91.0, 70.0, 50.0, 40.0]}
    for results, expect in (
        ({"cells": {"mnist/MLP/Std": new}}, "10.00 / 40.00 ("),
        ({"cells": {"mnist/MLP/Std": cell}}, "| 10.00 ("),
    ):
        table = markdown_table(results, "table1", [("mnist", "MLP", "Std")], avg_margin=False)
        assert expect in table
    assert "auto / pgd" in table
