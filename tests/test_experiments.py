"""The Table 1 / Table 2 / Figures experiments, end to end on micro configurations.

Real MNIST (a small subset) for the MNIST cells; CIFAR-10 as a tiny synthetic set written
in the real ``cifar-10-batches-py`` pickle format into a test data home, with its
checksums injected the way the loader's own tests do.
"""

import hashlib
import json
import math
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from amrlearn.datasets import DatasetNotFoundError, load_mnist
from amrlearn.experiments import _runner, figures, table1, table2
from amrlearn.experiments._paper import TABLE1, TABLE2, paper_row

MNIST_HOME = os.environ.get("AMRLEARN_DATA")


def _mnist_home(tmp_path):
    """A data home that holds MNIST (linked from $AMRLEARN_DATA) and no CIFAR-10."""
    try:
        load_mnist(MNIST_HOME, subset="test", return_X_y=True)
    except DatasetNotFoundError:
        pytest.skip("MNIST is not in $AMRLEARN_DATA")
    from amrlearn.datasets import get_data_home

    home = tmp_path / "home"
    home.mkdir()
    (home / "mnist").symlink_to(get_data_home(MNIST_HOME) / "mnist")
    return home


def _micro(config, home, **extra):
    config.update(
        n_train=80,
        n_test=40,
        data_home=str(home),
        verbose=0,
        seed=0,
        device="cpu",
        epochs=2,
        lr=0.05,
    )
    if config.get("pgd"):
        config["pgd"] = {"steps": 2, "step_size": 0.1, "n_points": 20, "batch_size": 20}
    if config.get("margin"):
        config["margin"] = {"n_points": 10, "radius": 5.0, "n_batches": 1, "batch_size": 4}
    config["track"] = {
        "epochs": [1, 2],
        "n_points": 10,
        "radius": 5.0,
        "n_batches": 1,
        "batch_size": 4,
    }
    if "adv" in config:
        config["adv"] = {"steps": 2, "step_size": "auto"}
    config.update(extra)
    return config


def test_paper_numbers_are_the_papers():
    assert TABLE1["mnist"]["CNN"]["AMR"] == {
        "clean": 99.25,
        "robust": [97.90, 97.60, 97.51, 97.33],
        "avg_margin": 1.40,
    }
    assert TABLE1["cifar10"]["MLP"]["Std"]["avg_margin"] == 0.17
    assert TABLE2["cifar10"]["ConvNet"]["Adv"]["robust"] == [68.79, 61.79, 54.35, 47.00]
    assert TABLE2["mnist"]["LeNetSmall"]["MMR"]["clean"] == 97.43
    assert paper_row("table2", "mnist", "LeNet", "LCR") is None
    with pytest.raises(ValueError, match="table1"):
        paper_row("table3", "mnist", "MLP", "Std")


def test_table1_plumbing_resume_and_summary(tmp_path, monkeypatch):
    home = _mnist_home(tmp_path)
    cfg = _micro(
        table1.default_config("quick"),
        home,
        models=["MLP"],
        methods=["Std", "LCR", "AMR"],
        epochs={"MLP": 2, "default": 1},
        batch_size={"MLP": 16, "CNN": 32},
    )
    out = tmp_path / "out"
    res = table1.run(cfg, out)

    saved = json.loads((out / "results.json").read_text())
    assert saved["config"]["seed"] == 0 and saved["environment"]["device"] == "cpu"
    assert "torch" in saved["environment"]
    assert set(saved["cells"]) == {"mnist/MLP/Std", "mnist/MLP/LCR", "mnist/MLP/AMR"}
    std = saved["cells"]["mnist/MLP/Std"]
    assert std["params"] == {"lam": 0.0, "beta": 0.0, "tau": 5.0}
    assert saved["cells"]["mnist/MLP/LCR"]["params"]["beta"] == 1e-3
    # The schedule "auto" picked is recorded: the MLP-1024's penalty costs many steps.
    assert saved["cells"]["mnist/MLP/AMR"]["ortho_every"] == 64
    assert 0 <= std["clean"] <= 100 and len(std["robust"]) == 4
    assert all(a >= b for a, b in zip(std["robust"], std["robust"][1:]))  # shrinking with eps
    assert std["robust"][0] <= std["clean"] + 100 / 20  # one point of 20 may differ
    assert std["avg_margin"] >= 0 and len(std["history"]["train_loss"]) == 2
    assert std["margin_path"]["train"]["epoch"] == [1, 2]
    assert len(std["margin_path"]["test"]["margins"][0]) == 10
    assert "margin_path" not in saved["cells"]["mnist/MLP/AMR"]  # only Std is tracked
    assert std["ortho_penalty"] > 0 and std["diverged"] is False
    # The penalty's curve, one value per epoch, ending at the final penalty; the paper's
    # attack (cross-entropy PGD) alone next to the strong evaluation, never above it.
    lcr = saved["cells"]["mnist/MLP/LCR"]
    assert len(lcr["history"]["ortho_penalty"]) == 2
    assert lcr["history"]["ortho_penalty"][-1] == pytest.approx(lcr["ortho_penalty"], rel=1e-4)
    assert len(std["robust_pgd"]) == 4
    # One chain gives both: the strong evaluation is never above the paper's attack.
    assert all(s <= p for s, p in zip(std["robust"], std["robust_pgd"]))
    # Verified robust accuracy from the certified margins, never above what an attack
    # leaves robust.
    assert len(std["certified"]) == 4
    assert all(0 <= c <= r for c, r in zip(std["certified"], std["robust"]))
    # Per-model settings reach the net: 80 images in batches of 16 (the MLP's) are 5 steps.
    assert std["history"]["epoch"] == [1, 2]

    # CIFAR-10 is absent from this data home: skipped, named, never faked.
    reason = "skipped: CIFAR-10 not found in data_home"
    assert str(home) not in json.dumps(saved), "no machine path in the results file"
    assert saved["skipped"]["cifar10/MLP/Std"] == reason
    assert not any(k.startswith("cifar10") for k in saved["cells"])
    assert saved["finished"] and not saved["complete"] and saved["pending"] == []

    text = table1.summarize(res)
    assert "98.24" in text and "1.41" in text  # the paper's numbers, side by side
    assert reason in text
    for claim in ("Claim 1", "Claim 2", "Claim 3", "ablations"):
        line = next(ln for ln in text.splitlines() if claim in ln)
        assert re.search(r": (holds|does not hold) \(\d+ of \d+ cells\)", line), line
    assert "mnist/MLP: AMR avg margin" in text
    assert "its curve, epoch: value" in text and "  - LCR: 1: " in text
    paths = table1.plot(res, out)
    assert paths and all(Path(p).stat().st_size > 0 for p in paths)
    assert {Path(p).name for p in paths} == {"table1_robust_accuracy.png", "ortho_penalty.png"}

    # Resume: a rerun trains nothing; a lost cell is the only one retrained.
    calls = []
    real = _runner.train_cell

    def counting(*args, **kwargs):
        calls.append(args[:3])
        return real(*args, **kwargs)

    monkeypatch.setattr(_runner, "train_cell", counting)
    again = table1.run(dict(cfg, verbose=1), out)  # verbosity does not change the config
    assert calls == []
    assert again["cells"] == saved["cells"]
    saved["cells"].pop("mnist/MLP/AMR")
    (out / "results.json").write_text(json.dumps(saved))
    resumed = table1.run(cfg, out)
    assert calls == [("mnist", "MLP", "AMR")]
    assert resumed["cells"]["mnist/MLP/Std"] == std

    # Another configuration never overwrites these results.
    with pytest.raises(ValueError, match="another configuration"):
        table1.run(dict(cfg, seed=1), out)


def test_a_grown_grid_keeps_the_cells_it_has(tmp_path):
    """A model added with its own settings resumes; a change a stored cell reads does not."""
    from amrlearn.experiments._common import ResultStore

    path = tmp_path / "results.json"
    old = {"models": ["MLP"], "methods": ["Std"], "epochs": 100, "gloro": {"lip": "power"}}
    ResultStore(path, old).put("mnist/MLP/Std", {"clean": 0.9})
    grown = {
        "models": ["MLP", "LeNetSmall"],
        "methods": ["Std", "GloRo"],
        "epochs": {"MLP": 100, "LeNetSmall": 50},
        "gloro": {"lip": {"default": "power", "LeNetSmall": "bound"}},
    }
    store = ResultStore(path, grown)
    assert store.get("mnist/MLP/Std") == {"clean": 0.9}
    store.put("mnist/LeNetSmall/Std", {"clean": 0.8})
    assert json.loads(path.read_text())["config"]["epochs"] == {"MLP": 100, "LeNetSmall": 50}
    changed = [
        dict(grown, epochs={"MLP": 90, "LeNetSmall": 50}),  # what MLP's cells read
        dict(grown, gloro={"lip": "bound"}),
        dict(grown, models=["LeNetSmall"]),  # a grid that shrinks
        dict(grown, seed=1),
    ]
    for config in changed:
        with pytest.raises(ValueError, match="another configuration"):
            ResultStore(path, config)
    # a file without cells of a model is compared whole
    empty = tmp_path / "empty.json"
    ResultStore(empty, old).put("figure1", {"clean": 0.9})
    with pytest.raises(ValueError, match="another configuration"):
        ResultStore(empty, grown)


def test_same_seed_same_numbers(tmp_path):
    home = _mnist_home(tmp_path)
    cfg = _micro(table1.default_config("quick"), home)
    data = _runner.load_split("mnist", cfg, flatten=False)
    a = _runner.train_cell("mnist", "MLP", "AMR", data, cfg)
    b = _runner.train_cell("mnist", "MLP", "AMR", data, cfg)
    for key in ("clean", "robust", "avg_margin"):
        assert a[key] == b[key]
    assert a["history"]["train_loss"] == b["history"]["train_loss"]


def test_parallel_cells_match_sequential(tmp_path, monkeypatch):
    # n_jobs=2 runs the cells in two spawned processes on one torch thread each: the same
    # numbers as one process on one thread, and a run resumes under another n_jobs.
    import torch

    home = _mnist_home(tmp_path)
    cfg = _micro(table1.default_config("quick"), home, models=["MLP"], methods=["Std", "AMR"])
    par = table1.run(dict(cfg, n_jobs=2), tmp_path / "par")
    assert "n_jobs" not in par["config"] and par["finished"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        seq = table1.run(cfg, tmp_path / "seq")
    finally:
        torch.set_num_threads(threads)
    assert set(par["cells"]) == set(seq["cells"]) == {"mnist/MLP/Std", "mnist/MLP/AMR"}
    for key, cell in seq["cells"].items():
        assert par["cells"][key]["torch_threads"] == cell["torch_threads"] == 1
        for field in ("clean", "robust", "robust_pgd", "avg_margin", "margin_path"):
            assert par["cells"][key].get(field) == cell.get(field), (key, field)
        untimed = [
            {k: v for k, v in c["history"].items() if k not in ("dur", "cpu")}
            for c in (cell, par["cells"][key])
        ]
        assert untimed[0] == untimed[1], key

    monkeypatch.setattr(_runner, "train_cell", lambda *a, **k: pytest.fail("retrained"))
    assert table1.run(dict(cfg, n_jobs=3), tmp_path / "par")["cells"] == par["cells"]
    with pytest.raises(ValueError, match="n_jobs must be a positive integer"):
        table1.run(dict(cfg, n_jobs=0), tmp_path / "other")


def _md5(raw):
    return hashlib.md5(raw).hexdigest()


def _synthetic_cifar(home, monkeypatch, n_per_batch=24, seed=0):
    """Write a learnable tiny CIFAR-10 in the real pickle format, and trust its digests."""
    from amrlearn.datasets import _cifar10

    rng = np.random.default_rng(seed)
    folder = home / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    table = {}
    for name in (
        "data_batch_1",
        "data_batch_2",
        "data_batch_3",
        "data_batch_4",
        "data_batch_5",
        "test_batch",
    ):
        labels = rng.integers(0, 10, size=n_per_batch)
        # Each class has its own mean colour, so the models can learn something.
        base = (labels[:, None] * 25).repeat(3072, axis=1)
        data = np.clip(base + rng.integers(-20, 20, size=base.shape), 0, 255).astype(np.uint8)
        raw = pickle.dumps(
            {b"batch_label": name.encode(), b"labels": labels.tolist(), b"data": data}, protocol=2
        )
        (folder / name).write_bytes(raw)
        table[name] = ("md5", _md5(raw))
    monkeypatch.setattr(_cifar10, "_CHECKSUMS", {**_cifar10._CHECKSUMS, **table})


def test_table2_runs_dd_and_mmr_in_their_groups(tmp_path, monkeypatch):
    home = tmp_path / "home"
    _synthetic_cifar(home, monkeypatch)
    cfg = _micro(
        table2.default_config("quick"),
        home,
        groups=[["cifar10", "ConvNet"], ["cifar10", "LeNetSmall"]],
        methods=["Std", "DD", "MMR", "AMR"],
        epochs=1,
        n_train=32,
        mmr={"epochs": 2, "reg_batch_size": 1, "lr": 1e-3},
        dd={"epochs": 1, "reg_batch_size": 1},
    )
    res = table2.run(cfg, tmp_path / "t2")
    assert set(res["cells"]) == {
        f"cifar10/{m}/{meth}"
        for m, meths in (("ConvNet", ("Std", "DD", "AMR")), ("LeNetSmall", ("Std", "MMR", "AMR")))
        for meth in meths
    }
    dd, mmr = res["cells"]["cifar10/ConvNet/DD"], res["cells"]["cifar10/LeNetSmall/MMR"]
    # DD: the Std epoch, then one fine-tuning epoch; MMR: its own epochs, CIFAR-10 values.
    assert dd["epochs"] == 2 and dd["params"]["pretrain_epochs"] == 1
    assert dd["params"]["lam"] == 15.0 and len(dd["robust"]) == 4
    assert mmr["epochs"] == 2 and mmr["params"]["gamma_B"] == 0.2 and mmr["params"]["lam"] == 1.5
    text = table2.summarize(res)
    assert "not yet implemented" not in text
    rows = [line.split(" | ")[1:3] for line in text.splitlines() if line.startswith("| CIFAR")]
    assert rows == [
        ["ConvNet", "Std"], ["ConvNet", "DD"], ["ConvNet", "AMR"],
        ["LeNetSmall", "Std"], ["LeNetSmall", "MMR"], ["LeNetSmall", "AMR"],
    ]  # fmt: skip
    assert "% vs DD " in text and "% vs MMR " in text
    assert "training CPU time AMR" in text and " vs DD " in text


def test_cifar_pipeline_on_synthetic_batches(tmp_path, monkeypatch):
    home = tmp_path / "home"
    _synthetic_cifar(home, monkeypatch)

    cfg = _micro(
        table1.default_config("quick"),
        home,
        datasets=["cifar10"],
        models=["MLP"],
        methods=["Std", "AMR"],
    )
    res = table1.run(cfg, tmp_path / "t1")
    cell = res["cells"]["cifar10/MLP/AMR"]
    assert cell["params"]["tau"] == 10.0 and cell["eps"] == [0.1, 0.2, 0.3, 0.4]
    assert cell["n_train"] == 80 and res["complete"]
    text = table1.summarize(res)
    assert "CIFAR-10" in text and "54.04" in text and "skipped" not in text

    # Table 2: PGD training and LeNetSmall's crop-and-flip augmentation on CIFAR-10.
    cfg2 = _micro(
        table2.default_config("quick"),
        home,
        groups=[["cifar10", "LeNetSmall"]],
        methods=["Std", "Adv"],
        epochs=1,
    )
    res2 = table2.run(cfg2, tmp_path / "t2")
    assert set(res2["cells"]) == {"cifar10/LeNetSmall/Std", "cifar10/LeNetSmall/Adv"}
    assert res2["cells"]["cifar10/LeNetSmall/Adv"]["params"]["eps"] == 0.4
    text2 = table2.summarize(res2)
    assert "not yet implemented" not in text2 and "| MMR |" not in text2  # not asked for
    assert table2.plot(res2, tmp_path / "t2")

    # Figures: margin paths and histograms of the LR on CIFAR-10.
    cfg3 = _micro(
        figures.default_config("quick"),
        home,
        datasets=["cifar10"],
        models=["LR"],
        methods=["Std", "AMR"],
    )
    res3 = figures.run(cfg3, tmp_path / "f")
    names = {Path(p).name for p in figures.plot(res3, tmp_path / "f")}
    assert {
        "fig2_6_tradeoff_cifar10.png",
        "fig3_avg_margin_cifar10.png",
        "fig5_training_curves.png",
        "fig7_8_histograms_cifar10_LR.png",
    } <= names
    assert "Figure 3" in figures.summarize(res3)


def test_quick_configs_keep_the_method_and_a_long_enough_attack():
    """Quick mode scales budgets, never the method: lambda, beta and tau stay the paper's,
    and every PGD evaluation can walk at least twice the largest eps."""
    from amrlearn.experiments._recipe import method_params, per_model

    for exp, models in (
        (table1, ("MLP", "CNN")),
        (table2, ("LeNet", "LeNetSmall")),
        (figures, ("LR", "MLP", "CNN")),
    ):
        cfg = exp.default_config("quick")
        assert (cfg["lam"], cfg["beta"]) == (0.1, 1e-3)
        for model in models:
            assert per_model(cfg["epochs"], model) >= 1
            assert per_model(cfg["batch_size"], model) in (32, 128)
            pgd = per_model(cfg["pgd"], model)
            if pgd is None:
                continue
            for dataset, eps in cfg["eps"].items():
                step = pgd["step_size"]
                step = step[dataset] if isinstance(step, dict) else step
                assert pgd["steps"] * step >= 2 * max(eps)
    assert method_params("AMR", "mnist", "CNN", table1.default_config("quick"))["tau"] == 10.0
    assert method_params("AMR", "mnist", "MLP", table1.default_config("quick"))["tau"] == 5.0


def test_init_seed_changes_the_training_alone(tmp_path):
    """``init_seed`` reseeds the initialization and batch order, never the data or the
    evaluation points: the run-to-run spread of training, measured on the same points."""
    home = _mnist_home(tmp_path)
    data = None
    runs = {}
    for init_seed in (None, 0, 1):
        cfg = _micro(table1.default_config("quick"), home, models=["MLP"], pgd=None, margin=None)
        if init_seed is not None:
            cfg["init_seed"] = init_seed
        data = data or _runner.load_split("mnist", cfg, flatten=False)
        runs[init_seed] = _runner.train_cell("mnist", "MLP", "Std", data, cfg)
    assert runs[None]["history"]["train_loss"] == runs[0]["history"]["train_loss"]
    assert runs[None]["history"]["train_loss"] != runs[1]["history"]["train_loss"]
    assert runs[1]["n_test"] == runs[None]["n_test"]


def test_table1_medium_config_is_full_mnist_with_a_strong_evaluation():
    """--medium: all 60,000 MNIST images, the paper's batches of 128 and lambda, beta,
    tau, and the strong evaluation on at least 1,000 test points (issue 11)."""
    from amrlearn.experiments import experiment_modes
    from amrlearn.experiments._recipe import method_params, per_model

    cfg = table1.default_config("medium")
    assert cfg["mode"] == "medium" and cfg["datasets"] == ["mnist"]
    assert cfg["n_train"] is None and cfg["batch_size"] == 128
    assert cfg["pgd_loss"] == ["pgd", "auto"]
    for model in ("MLP", "CNN"):
        assert per_model(cfg["pgd"], model)["n_points"] >= 1000
        quick = table1.default_config("quick")

        def steps(c, n_train, model=model):
            return per_model(c["epochs"], model) * n_train // per_model(c["batch_size"], model)

        assert steps(cfg, 60000) > 2 * steps(quick, quick["n_train"])  # more training
        assert method_params("AMR", "mnist", model, cfg) == method_params(
            "AMR", "mnist", model, table1.default_config("full")
        )
    assert experiment_modes("table1") == ("quick", "medium", "full")
    assert experiment_modes("table2") == ("quick", "full")


def test_full_configs_follow_appendix_f():
    cfg = table1.default_config("full")
    assert (cfg["lr"], cfg["momentum"], cfg["nesterov"], cfg["batch_size"]) == (
        0.01,
        0.9,
        True,
        128,
    )
    assert cfg["pgd"]["steps"] == 1000 and cfg["pgd"]["step_size"] == 0.01
    assert (cfg["lam"], cfg["beta"]) == (0.1, 1e-3)
    assert cfg["margin"] == {"n_points": 500, "radius": 5.0, "n_batches": 50, "batch_size": 1024}
    assert figures.default_config("full")["epochs"]["LR"] == 1000
    assert table2.default_config("full")["adv"] == {"steps": 40, "step_size": 0.01}
    with pytest.raises(ValueError, match="mode"):
        table1.default_config("huge")
    with pytest.raises(ValueError, match="mode"):
        table2.default_config("medium")


def _is_crop_flip_of(aug, img, pad=4):
    """Whether ``aug`` is ``img`` (or its mirror image) shifted within a zero padding."""
    h, w = img.shape[-2:]
    for candidate in (img, img[..., ::-1]):
        padded = np.pad(candidate, ((0, 0), (pad, pad), (pad, pad)))
        for dy in range(2 * pad + 1):
            for dx in range(2 * pad + 1):
                if np.array_equal(padded[:, dy : dy + h, dx : dx + w], aug):
                    return True
    return False


def test_crop_flip_augments_the_training_batches_only():
    """Appendix F's crop and flip (CIFAR-10 LeNetSmall in Table 2), as the experiment's
    recipe builds the net: the training iterator augments every batch; predictions and
    the watched test set see the images as they are."""
    import torch

    from amrlearn.experiments import _recipe

    cfg = table2.default_config("quick")
    rng = np.random.default_rng(0)
    X = rng.random((16, 3, 32, 32), dtype=np.float32)
    y = np.arange(16) % 10
    data = {"X_test": X, "y_test": y}
    device = torch.device("cpu")
    torch.manual_seed(0)
    net, _ = _recipe.build_net(
        "cifar10", "LeNetSmall", "Std", cfg, data, device, callbacks=[], max_epochs=1
    )
    net.set_params(iterator_train__shuffle=False, batch_size=16, classes=np.arange(10))
    net.initialize()
    dataset = net.get_dataset(X, y)

    Xb, yb = next(iter(net.get_iterator(dataset, training=True)))
    Xb = np.asarray(Xb)
    assert Xb.shape == X.shape and np.array_equal(np.asarray(yb), y)
    # Each image stays unchanged with probability 1/2 * 1/81.
    assert sum(not np.array_equal(a, b) for a, b in zip(Xb, X)) >= 12
    assert all(_is_crop_flip_of(a, b) for a, b in zip(Xb, X))

    Xv, _ = next(iter(net.get_iterator(dataset, training=False)))
    np.testing.assert_array_equal(np.asarray(Xv), X)
    first, second = net.predict_proba(X), net.predict_proba(X)
    np.testing.assert_array_equal(first, second)
    with torch.no_grad():
        logits = net.module_(torch.as_tensor(X))[0]
    np.testing.assert_allclose(first, torch.softmax(logits, 1).numpy(), rtol=1e-5, atol=1e-6)

    # Without augmentation in the configuration (MNIST), the training batches are the data.
    Xm = rng.random((16, 1, 28, 28), dtype=np.float32)
    plain, _ = _recipe.build_net(
        "mnist",
        "LeNetSmall",
        "Std",
        cfg,
        {"X_test": Xm, "y_test": y},
        device,
        callbacks=[],
        max_epochs=1,
    )
    plain.set_params(iterator_train__shuffle=False, batch_size=16, classes=np.arange(10))
    plain.initialize()
    Xp, _ = next(iter(plain.get_iterator(plain.get_dataset(Xm, y), training=True)))
    np.testing.assert_array_equal(Xp.cpu().numpy(), Xm)


def test_appendix_f_numbers_have_one_home():
    """The tracker, the bounds, the models and the experiments read Appendix F's numbers
    from amrlearn._paper instead of writing them again."""
    from amrlearn import _paper
    from amrlearn.experiments import _recipe
    from amrlearn.metrics._bounds import PAPER_BOUND_PARAMS
    from amrlearn.neural import MarginTracker, models

    assert MarginTracker().epochs is _paper.TRACK_EPOCHS
    assert PAPER_BOUND_PARAMS == _paper.BOUND_BUDGET
    assert models.INPUT_SHAPES is _paper.INPUT_SHAPES
    assert table2.default_config("full")["tau"] == {
        f"{d}/{m}": _paper.TAU[d, m] for d, m in table2.GROUPS
    }
    full = figures.default_config("full")["track"]
    assert full["epochs"]["default"] == list(_paper.TRACK_EPOCHS)
    assert {k: full[k] for k in _paper.BOUND_BUDGET} == _paper.BOUND_BUDGET
    assert (
        _recipe.method_params("Adv", "cifar10", "ConvNet", {})["eps"] == _paper.ADV_EPS["cifar10"]
    )


def _plans(cells, config):
    from amrlearn.experiments._recipe import plan_cell

    return [plan_cell(*cell, config) for cell in cells]


def test_time_estimate_counts_methods_and_the_evaluation(monkeypatch):
    from amrlearn.experiments import _estimate, table2

    monkeypatch.setattr(_estimate, "_seconds_per_batch", lambda *a: 1.0)
    config = table2.default_config("quick")
    cells = [("mnist", "LeNet", m) for m in ("Std", "AMR", "Adv", "DD")]
    cells += [("mnist", "LeNetSmall", m) for m in ("Std", "MMR")]
    train = _estimate.plan_seconds(_plans(cells, {**config, "pgd": None}))
    std, adv, dd = (train["mnist", "LeNet", m] for m in ("Std", "Adv", "DD"))
    assert train["mnist", "LeNet", "AMR"] == std
    # PGD training pays its attack steps; DD's fine-tuning and MMR their regularizer.
    assert adv == pytest.approx(8 * std)  # 7 steps of PGD, then the update
    assert (
        dd > std and train["mnist", "LeNetSmall", "MMR"] > 2 * train["mnist", "LeNetSmall", "Std"]
    )
    # The evaluation is counted on top.
    full = _estimate.plan_seconds(_plans(cells, config))
    assert all(full[c] > train[c] for c in cells)


def test_dd_and_mmr_are_priced_by_their_own_cost_in_jobs_order_and_full_estimate(
    monkeypatch, capsys
):
    """Deep Defense and MMR cost more per step than standard training: --jobs starts them
    first, and the --full estimate counts them."""
    import concurrent.futures

    import torch

    from amrlearn.experiments import _estimate, _runner, table2

    timed = []

    def one_second(model, dataset, batch_size, device):
        timed.append((model, batch_size))
        return 1.0

    monkeypatch.setattr(_estimate, "_seconds_per_batch", one_second)
    cfg = {**table2.default_config("full"), "epochs": 10, "pgd": None}
    cells = [("mnist", "LeNet", meth) for meth in ("Std", "DD")]
    cells += [("mnist", "LeNetSmall", meth) for meth in ("Std", "MMR")]
    plans = _plans(cells, cfg)
    std, dd, std_small, mmr = plans
    # Each plan prices a step by its method's record.
    assert std.step_cost == std_small.step_cost == 1.0
    assert dd.step_cost > 10 and mmr.step_cost > 100
    seconds = _estimate.plan_seconds(plans)
    assert ("LeNetSmall", 128) in timed  # MMR's own batches are timed, not the config's
    assert seconds[dd.cell] > 2 * seconds[std.cell]
    assert seconds[mmr.cell] > 2 * seconds[std_small.cell]
    # DD's pretraining epochs cost what Std's do; only its fine-tuning pays the penalty.
    steps = math.ceil(60000 / dd.batch_size)
    costly = dd.epochs - dd.plain_epochs
    assert seconds[dd.cell] == pytest.approx(steps * (dd.plain_epochs + costly * dd.step_cost))

    # --jobs: the costliest cells start first.
    order = []

    class Pool:
        def __init__(self, *args, **kwargs):
            pass

        def submit(self, fn, plan, *args):
            order.append(plan.method)
            raise KeyboardInterrupt  # only the order of the first submission matters

        def shutdown(self, **kwargs):
            pass

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", Pool)
    with pytest.raises(KeyboardInterrupt):
        _runner._run_parallel("t", plans, cfg, None, lambda cell: False, 2, 0)
    assert order == ["MMR"]

    # --full: the announced estimate is the sum over the plans.
    with pytest.warns(UserWarning, match="meant for a GPU"):
        _estimate.announce_full_run("t", plans, {}, torch.device("cpu"))
    hours = sum(seconds.values()) / 3600
    assert f"estimated time {hours:.1f} h" in capsys.readouterr().out


def test_every_method_of_the_tables_has_a_record_and_a_plan():
    """One record per method: every method of every table resolves to a plan, with its
    estimator, its epochs and its cost; an unknown name is refused by name."""
    from amrlearn import neural
    from amrlearn.experiments._methods import METHODS, get_method
    from amrlearn.experiments._recipe import plan_cell

    cfg1, cfg2 = table1.default_config("quick"), table2.default_config("quick")
    for method in (*table1.METHODS, *table2.METHODS, *figures.METHODS):
        record = get_method(method)
        assert record is METHODS[method] and hasattr(neural, record.estimator)
    for d, m, meth in table2._cells(cfg2):
        plan = plan_cell(d, m, meth, cfg2)
        assert plan.cell == (d, m, meth) and plan.epochs >= 1 and plan.step_cost >= 1.0
    for d, m, meth in _runner.grid_cells(cfg1):
        assert plan_cell(d, m, meth, cfg1).params["tau"] > 0
    # The records are the one home of the special cases the runner once tested by name.
    dd = plan_cell("mnist", "LeNet", "DD", cfg2)
    assert (dd.epochs, dd.plain_epochs) == (7, 6) and dd.params["pretrain_epochs"] == 6
    mmr = plan_cell("mnist", "LeNetSmall", "MMR", cfg2)
    assert (mmr.optimizer, mmr.lr, mmr.batch_size, mmr.momentum) == ("Adam", 1e-3, 128, None)
    assert plan_cell("cifar10", "LeNetSmall", "Std", cfg2).augment
    assert not plan_cell("cifar10", "LeNetSmall", "MMR", cfg2).augment
    adv = plan_cell("mnist", "LeNet", "Adv", cfg2)
    assert adv.step_cost == 1 + adv.params["steps"] == 8
    with pytest.raises(ValueError, match=r"Unknown method 'TRADES'; choose from \['AMR'"):
        plan_cell("mnist", "LeNet", "TRADES", cfg2)
    with pytest.raises(ValueError, match="Unknown method 'Adversarial'"):
        table2.run({**cfg2, "methods": ["Std", "Adversarial"]}, Path("/nonexistent/never"))


def test_a_cell_plan_is_resolved_once_and_frozen(tmp_path, monkeypatch):
    """The plan is frozen (attributes and dicts), pickles for the --jobs workers, and
    run_cells resolves each cell's plan once, before any training."""
    import dataclasses

    from amrlearn.experiments import _recipe

    cfg = table2.default_config("quick")
    plan = _recipe.plan_cell("mnist", "LeNet", "DD", cfg)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.epochs = 3
    with pytest.raises(TypeError, match="read-only"):
        plan.params["lam"] = 0.0
    with pytest.raises(TypeError, match="read-only"):
        plan.settings.update(epochs=9)
    again = pickle.loads(pickle.dumps(plan))
    assert again == plan and isinstance(again.params, dict)
    # The configuration is read when the plan is made, not later.
    cfg["dd"]["epochs"] = 50
    assert plan.epochs == 7 and _recipe.plan_cell("mnist", "LeNet", "DD", cfg).epochs == 56

    resolved, trained = [], []
    real = _recipe.plan_cell

    def counting(*args):
        resolved.append(args[:3])
        return real(*args)

    def fake_train(dataset, model, method, data, config, *, desc, track, plan):
        trained.append(plan)
        return {"clean": 1.0}

    monkeypatch.setattr(_runner, "plan_cell", counting)
    monkeypatch.setattr(_runner, "load_split", lambda *a, **k: {})
    monkeypatch.setattr(_runner, "train_cell", fake_train)
    cfg = {**table2.default_config("quick"), "groups": [["mnist", "LeNet"]], "verbose": 0}
    res = table2.run(cfg, tmp_path)
    cells = table2._cells(cfg)
    assert resolved == cells and [p.cell for p in trained] == cells and res["finished"]


# --- Fashion-MNIST: a dataset of table1 and figures when asked for -------------------------


def test_default_configs_do_not_change_and_fashion_mnist_is_asked_for():
    """The default configurations stay the paper's datasets (results files of earlier runs
    still resume); ``datasets=`` adds Fashion-MNIST with MNIST's grid and step size."""
    from amrlearn.experiments._recipe import method_params, per_model

    for mode in ("quick", "medium", "full"):
        assert "fashion" not in json.dumps(table1.default_config(mode))
    assert table1.default_config("quick")["eps"] == {
        "mnist": [0.5, 1.0, 1.5, 2.0],
        "cifar10": [0.1, 0.2, 0.3, 0.4],
    }
    for mode in ("quick", "medium"):
        cfg = table1.default_config(mode, datasets=["fashion-mnist"])
        mnist = table1.default_config(mode)
        assert cfg["datasets"] == ["fashion-mnist"]
        assert cfg["eps"] == {"fashion-mnist": mnist["eps"]["mnist"]}
        for model in ("MLP", "CNN"):
            pgd, ref = per_model(cfg["pgd"], model), per_model(mnist["pgd"], model)
            assert pgd["step_size"] == {"fashion-mnist": ref["step_size"]["mnist"]}
            assert method_params("AMR", "fashion-mnist", model, cfg) == method_params(
                "AMR", "mnist", model, mnist
            )
    both = table1.default_config("medium", datasets=["mnist", "fashion-mnist"])
    assert both["datasets"] == ["mnist", "fashion-mnist"] and set(both["eps"]) == {
        "mnist",
        "fashion-mnist",
    }
    assert figures.default_config("quick", datasets=["fashion-mnist"])["datasets"] == [
        "fashion-mnist"
    ]
    assert "fashion" not in json.dumps(figures.default_config("quick"))
    with pytest.raises(ValueError, match="svhn"):
        table1.default_config("quick", datasets=["svhn"])
    with pytest.raises(ValueError, match="medium"):
        table1.default_config("medium", datasets=["cifar10"])
    with pytest.raises(ValueError, match="at least one"):
        figures.default_config("quick", datasets=[])


def _tiny_fashion_home(tmp_path, monkeypatch, n_train=60, n_test=30):
    """A data home with tiny Fashion-MNIST files (checksums injected), and no system copy."""
    import gzip
    import struct

    from amrlearn.datasets import _fashion_mnist

    folder = tmp_path / "home" / "fashion-mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    table = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        # Class-dependent images, so that a net learns something in two epochs.
        images = rng.integers(0, 60, (n, 28, 28), dtype=np.uint8)
        images[np.arange(n), labels * 2, :] = 250
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
            raw = header + array.tobytes()
            name = f"{prefix}-{kind}-ubyte.gz"
            (folder / name).write_bytes(gzip.compress(raw))
            table[name] = hashlib.sha256(raw).hexdigest()
    monkeypatch.setattr(_fashion_mnist, "_SHA256", table)
    monkeypatch.setattr(_fashion_mnist, "_SYSTEM_FOLDERS", (tmp_path / "no-system",))
    return tmp_path / "home"


def test_table1_and_figures_run_on_fashion_mnist(tmp_path, monkeypatch):
    home = _tiny_fashion_home(tmp_path, monkeypatch)
    cfg = _micro(
        table1.default_config("quick", datasets=["fashion-mnist"]),
        home,
        models=["MLP"],
        methods=["Std"],
        n_train=60,
        n_test=30,
    )
    res = table1.run(cfg, tmp_path / "t1")
    cell = res["cells"]["fashion-mnist/MLP/Std"]
    assert cell["n_train"] == 60 and len(cell["robust"]) == 4 and cell["params"]["tau"] == 5.0
    assert res["finished"] and res["complete"]
    text = table1.summarize(res)
    assert "**Fashion-MNIST**" in text and "| Fashion-MNIST | MLP | Std |" in text
    assert table1.plot(res, tmp_path / "t1")

    cfg = _micro(
        figures.default_config("quick", datasets=["fashion-mnist"]),
        home,
        models=["LR"],
        methods=["Std"],
        n_train=60,
        n_test=30,
    )
    res = figures.run(cfg, tmp_path / "f")
    names = {Path(p).name for p in figures.plot(res, tmp_path / "f")}
    assert "fig2_6_tradeoff_fashion-mnist.png" in names
    assert "Fashion-MNIST" in figures.summarize(res)
