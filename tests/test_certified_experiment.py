"""The certified experiment: its scales, a tiny end-to-end run, and its summary's anchors."""

import numpy as np
import pytest

from amrlearn.experiments import EXPERIMENTS, _runner, certified, experiment_modes
from amrlearn.experiments._recipe import plan_cell


def test_the_scales_of_the_certified_experiment():
    assert "certified" in EXPERIMENTS
    assert experiment_modes("certified") == ("quick", "medium", "full")
    quick, medium, full = (certified.default_config(m) for m in certified.MODES)
    for cfg in (quick, medium, full):
        assert cfg["methods"] == ["Std", "LCR", "AMR", "certified AMR", "GloRo"]
        assert cfg["eps"] == {"mnist": [0.5, 1.0, 1.58, 2.0]}
        assert cfg["pgd_loss"] == "auto" and cfg["margin"]["radius"] == 5.0
    assert quick["gloro"]["eps"] == {"mnist": 1.58}
    # Medium: all of MNIST, longer than quick, the timing on 1,000 points, and the conv
    # net with its own certified training; full adds the CNN.
    assert quick["n_train"] == 10000 and medium["n_train"] is None
    assert medium["epochs"]["MLP"] > quick["epochs"] and medium["pgd"]["n_points"] == 1000
    assert medium["models"] == ["MLP", "LeNetSmall"]
    assert full["models"] == ["MLP", "LeNetSmall", "CNN"] and full["pgd"]["n_points"] == 10000
    for cfg in (medium, full):
        assert cfg["gloro"]["default"] == quick["gloro"]
        assert cfg["certified"]["default"] == quick["certified"]
    # Each model reads its own block: the MLP quick mode's, the conv nets the proven
    # bound and Adam, as GloRo's authors train.
    mlp, conv = (plan_cell("mnist", m, "GloRo", medium) for m in ("MLP", "LeNetSmall"))
    assert (mlp.optimizer, mlp.params["lipschitz"]) == ("SGD", "power")
    assert (conv.optimizer, conv.lr, conv.params["lipschitz"]) == ("Adam", 1e-3, "bound")
    assert conv.momentum is None and conv.params["eps"] == 1.58
    cert = plan_cell("mnist", "LeNetSmall", "certified AMR", medium)
    assert cert.optimizer == "Adam" and cert.params["lam"] == 3.0 and cert.params["tau"] == 3.0
    assert plan_cell("mnist", "MLP", "certified AMR", medium).params["lam"] == 0.3
    assert plan_cell("mnist", "LeNetSmall", "AMR", medium).optimizer == "SGD"
    with pytest.raises(ValueError, match="mode must be one of quick, medium, full"):
        certified.default_config("huge")


def _cell(method, vra, clean=90.0):
    return {
        "clean": clean,
        "eps": [0.5, 1.0, 1.58, 2.0],
        "certified": [80.0, 60.0, vra, 10.0],
        "robust": [85.0, 70.0, 50.0, 30.0],
        "margin": {"avg_certified_margin": 0.5},
        "avg_margin": 2.0,
        "n_margin_points": 200,
        "n_pgd_points": 1000,
        "n_train": 60000,
        "epochs": 60,
        "train_cpu_seconds": 600.0,
        "certify_cpu_seconds": 0.5,
        "attack_cpu_seconds": 100.0,
        "torch_threads": 1,
    }


def _results(vra):
    cfg = certified.default_config("medium")
    cells = {f"mnist/MLP/{m}": _cell(m, 5.0) for m in ("Std", "LCR", "AMR")}
    cells["mnist/MLP/certified AMR"] = _cell("certified AMR", vra - 1.0)
    cells["mnist/MLP/GloRo"] = _cell("GloRo", vra)
    return {"config": cfg, "cells": cells, "finished": True, "complete": True}


def test_the_summary_reports_against_the_anchors():
    text = certified.summarize(_results(41.0))
    # The best certified-trained cell at 1.58 against every anchor, with the difference.
    assert "Best VRA at eps = 1.58: **41.00 %** (MLP/GloRo" in text
    for anchor, diff in (("GloRo", "-21.80"), ("BCP", "-7.20"), ("CAP", "-2.95")):
        assert f"| {anchor} (" in text and f"| {diff} |" in text
    assert "| LMT (Tsuzuku et al. 2018) | 40.55 | +0.45 |" in text
    assert "randomized smoothing" in text and "61.70" in text
    assert "- holds: target: beat LMT's 40.55 % VRA at 1.58" in text
    assert "- does not hold: stretch: GloRo's 62.8 %" in text
    # The budget is named: images, epochs, CPU minutes.
    assert "60,000 images, 60 epochs" in text and "10.0 CPU-min" in text
    # Std, LCR and AMR: how much of Theorem 3's average margin is certified (0.5 of 2.0).
    assert "- MLP/Std: certified 0.500 of Theorem 3's 2.000 (25 %)" in text
    assert "MLP/GloRo: certified" not in text
    assert 'certifying 1,000 points 0.50 CPU-s vs "auto" at 4 radii 100.0 CPU-s (200x)' in text
    assert "| MLP | GloRo | 90.00 | 80.00 / 85.00 | 60.00 / 70.00 | 41.00 / 50.00 |" in text
    below = certified.summarize(_results(40.55))
    assert "- does not hold: target: beat LMT's 40.55 %" in below
    # The budget names each cell's own optimizer: the MLP's SGD, the conv net's Adam.
    assert "batches of 128, SGD lr 0.05" in text
    conv = _results(41.0)
    conv["cells"]["mnist/LeNetSmall/GloRo"] = _cell("GloRo", 45.0)
    assert "(LeNetSmall/GloRo; 60,000 images, 60 epochs, batches of 128, Adam lr 0.001" in (
        certified.summarize(conv)
    )


def _tiny_mnist(dataset, config, *, flatten):
    """Twelve MNIST-shaped images per split: a class per mean brightness."""
    rng = np.random.default_rng(0)
    y = np.arange(12) % 10
    X = np.clip(y[:, None, None, None] / 10 + rng.uniform(0, 0.1, (12, 1, 28, 28)), 0, 1)
    X, y = X.astype(np.float32), y.astype(np.int64)
    return {"X_train": X, "y_train": y, "X_test": X.copy(), "y_test": y.copy()}


def test_a_tiny_certified_run_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setattr(_runner, "load_split", _tiny_mnist)
    cfg = certified.default_config("quick")
    cfg.update(
        methods=["Std", "certified AMR", "GloRo"],
        epochs=2,
        verbose=0,
        pgd={"steps": 2, "step_size": 0.1, "n_points": 4, "batch_size": 4},
        margin={"n_points": 3, "radius": 5.0, "n_batches": 1, "batch_size": 2},
    )
    res = certified.run(cfg, tmp_path)
    assert res["complete"] and len(res["cells"]) == 3
    for key, cell in res["cells"].items():
        # VRA beside the attack's robust accuracy, at every eps; never above it.
        assert len(cell["certified"]) == len(cell["robust"]) == 4, key
        assert all(c <= r for c, r in zip(cell["certified"], cell["robust"])), key
        assert cell["certify_cpu_seconds"] >= 0 and cell["attack_cpu_seconds"] > 0
        assert "avg_certified_margin" in cell["margin"]
    assert res["cells"]["mnist/MLP/GloRo"]["params"]["eps"] == 1.58
    assert res["cells"]["mnist/MLP/certified AMR"]["params"]["margin"] == "certified"
    text = certified.summarize(res)
    assert "| MLP | certified AMR |" in text and "LMT" in text
    assert certified.plot(res, tmp_path)[0].name == "certified_band.png"
