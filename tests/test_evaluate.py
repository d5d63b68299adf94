"""amrlearn.evaluate and ``amrlearn evaluate``: checkpoints in every format people save,
matched to the model by name, order or shape (or refused), evaluated on tiny data."""

import gzip
import hashlib
import json
import struct
import warnings

import numpy as np
import pytest
import torch
from evaluate_helpers import TinyNet

import amrlearn
from amrlearn.cli import main
from amrlearn.exceptions import EvaluationWarning
from amrlearn.neural import CheckpointError, load_checkpoint, models
from amrlearn.neural._checkpoint import build_model, parse_model_spec

N_IN = 16


def _mlp(hidden=8, seed=0):
    torch.manual_seed(seed)
    return models.MLP(N_IN, hidden=hidden).eval()


def _x(n=6, seed=0):
    return torch.rand(n, N_IN, generator=torch.Generator().manual_seed(seed))


def _logits(module, x):
    with torch.no_grad():
        out = module.eval()(x)
    return out[0] if isinstance(out, tuple) else out


# --------------------------------------------------------------------------- model specs


def test_model_specs_parse_and_build():
    assert parse_model_spec("CNN") == ("zoo", "CNN", {})
    assert parse_model_spec("MLP:hidden=1024") == ("zoo", "MLP", {"hidden": 1024})
    assert parse_model_spec("CNN:dataset=cifar10,dropout=None") == (
        "zoo",
        "CNN",
        {"dataset": "cifar10", "dropout": None},
    )
    assert parse_model_spec("evaluate_helpers:TinyNet:width=4") == (
        "import",
        "evaluate_helpers:TinyNet",
        {"width": 4},
    )
    # The zoo's sizes come from the data's shape where the spec leaves them out.
    assert build_model("MLP:hidden=8", input_shape=(N_IN,)).hidden_layer.in_features == N_IN
    assert build_model("LeNet", input_shape=(3, 32, 32)).input_shape == (3, 32, 32)
    assert build_model("evaluate_helpers:tiny_net:width=5").fc_in.out_features == 5
    for bad, match in [
        ("Resnet", "Unknown model"),
        ("MLP:hidden", "name=value"),
        ("MLP:hidden=8:x=1", "one colon"),
        ("evaluate_helpers:Nope", "no attribute"),
        ("no_such_module_xyz:Net", "Cannot import"),
        ("MLP:depth=3", "Cannot build"),
        ("evaluate_helpers:torch", "not a torch.nn.Module|Cannot build"),
    ]:
        with pytest.raises(CheckpointError, match=match):
            build_model(bad, input_shape=(N_IN,))
    with pytest.raises(CheckpointError, match="MNIST"):
        build_model("CNN", input_shape=(5,))


# --------------------------------------------------------------------------- file formats


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"epoch": 7, "state_dict": sd},
        lambda sd: {"model_state_dict": sd, "optimizer_state_dict": {"lr": 0.1}},
        lambda sd: {"model": sd},
        lambda sd: {f"module.{k}": v for k, v in sd.items()},
        lambda sd: {"state_dict": {f"net.{k}": v for k, v in sd.items()}},
        lambda sd: {f"module.net.{k}": v for k, v in sd.items()},
    ],
    ids=["bare", "state_dict", "model_state_dict", "model", "module.", "net.", "module.net."],
)
def test_state_dict_formats(tmp_path, wrap):
    trained = _mlp(seed=1)
    path = tmp_path / "w.pt"
    torch.save(wrap(trained.state_dict()), path)
    model, info = load_checkpoint("MLP:hidden=8", path, input_shape=(N_IN,), return_info=True)
    torch.testing.assert_close(_logits(model, _x()), _logits(trained, _x()))
    assert not model.training
    assert info["format"] == "state" and info["matched_by"] == "names"
    assert info["file"] == "w.pt"
    assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_whole_pickled_module_needs_trust(tmp_path):
    trained = TinyNet(n_in=N_IN)
    path = tmp_path / "whole.pt"
    torch.save(trained, path)
    with pytest.raises(CheckpointError, match="trust_pickle=True"):
        load_checkpoint(None, path)
    model, info = load_checkpoint(None, path, trust_pickle=True, return_info=True)
    assert type(model) is TinyNet and info["format"] == "module" and info["matched_by"] is None
    torch.testing.assert_close(_logits(model, _x()), _logits(trained, _x()))
    # With a spec, the module's weights go into the spec's model (here by order).
    zoo = load_checkpoint("MLP:hidden=8", path, input_shape=(N_IN,), trust_pickle=True)
    assert isinstance(zoo, models.MLP)
    torch.testing.assert_close(_logits(zoo, _x()), _logits(trained, _x()))


def test_torchscript(tmp_path):
    torch.manual_seed(0)
    trained = models.LeNetSmall().eval()
    x = torch.rand(3, 1, 28, 28)
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.trace(trained, x), str(path))
    model, info = load_checkpoint(None, path, return_info=True)
    assert info["format"] == "torchscript"
    torch.testing.assert_close(_logits(model, x), _logits(trained, x))
    zoo, info = load_checkpoint("LeNetSmall", path, return_info=True)
    assert isinstance(zoo, models.LeNetSmall) and info["matched_by"] == "names"
    torch.testing.assert_close(_logits(zoo, x), _logits(trained, x))


def test_import_path_spec(tmp_path):
    trained = TinyNet(n_in=N_IN, width=4)
    path = tmp_path / "tiny.pt"
    torch.save(trained.state_dict(), path)
    for spec in ("evaluate_helpers:TinyNet:width=4", "evaluate_helpers:tiny_net:width=4"):
        model = load_checkpoint(spec, path)
        torch.testing.assert_close(_logits(model, _x()), _logits(trained, _x()))
    # A module instance or a callable works from Python.
    model = load_checkpoint(TinyNet(width=4), path)
    torch.testing.assert_close(_logits(model, _x()), _logits(trained, _x()))


# --------------------------------------------------------------------------- matching


def test_other_names_match_by_order_then_by_shape(tmp_path):
    trained = TinyNet(
        n_in=N_IN, width=8
    )  # fc_in / fc_out, where the zoo says hidden_layer / last_linear
    path = tmp_path / "tiny.pt"
    torch.save(trained.state_dict(), path)
    model, info = load_checkpoint("MLP:hidden=8", path, input_shape=(N_IN,), return_info=True)
    assert info["matched_by"] == "order"
    torch.testing.assert_close(_logits(model, _x()), _logits(trained, _x()))
    # Out of order, but each shape occurs once: the pairing is still unique.
    torch.save(dict(reversed(trained.state_dict().items())), path)
    model, info = load_checkpoint("MLP:hidden=8", path, input_shape=(N_IN,), return_info=True)
    assert info["matched_by"] == "shape"
    torch.testing.assert_close(_logits(model, _x()), _logits(trained, _x()))


#: The authors' MNIST CNN (watml/rob-margin, model.py) names its layers so; the zoo's CNN
#: holds the same tensors in the same order under other names.
_THEIR_CNN_NAMES = [
    f"{layer}.{kind}"
    for layer in ("conv1", "conv2", "conv3", "conv4", "fc1", "fc2", "fc3")
    for kind in ("weight", "bias")
]


@pytest.mark.parametrize("inverse_key", ["net.inverse", "inverse"])
def test_the_papers_checkpoint_format_loads_dropping_inverse(tmp_path, inverse_key):
    # As the authors' trainModel.py saves it (a dict holding model_state_dict, beside the
    # epoch and the optimizer), with the `net.` prefix and the `inverse` entry that their
    # testModel.py's loader strips and drops.
    torch.manual_seed(0)
    trained = models.CNN().eval()
    tensors = list(trained.state_dict().values())
    state = {f"net.{name}": t for name, t in zip(_THEIR_CNN_NAMES, tensors, strict=True)}
    state[inverse_key] = torch.eye(10)
    path = tmp_path / "MNISTCNN_00200.tar"
    torch.save({"epochs": 200, "model_state_dict": state, "optmizer_state_dict": {}}, path)
    with pytest.warns(UserWarning, match=rf"dropped 1 entry.*'{inverse_key}' \(10, 10\)"):
        model, info = load_checkpoint("CNN", path, return_info=True)
    assert info["matched_by"] == "order" and info["dropped"] == [inverse_key]
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(_logits(model, x), _logits(trained, x))
    # A surplus tensor of a kind the model has (a weight) is not dropped: refused, named.
    state[inverse_key.replace("inverse", "fc4.weight")] = state.pop(inverse_key)
    torch.save({"model_state_dict": state}, path)
    surplus = r"tensor 14 '(net\.)?fc4\.weight' \(10, 10\) has no counterpart"
    with pytest.raises(CheckpointError, match=surplus):
        load_checkpoint("CNN", path)


def test_refusals_name_the_first_mismatch(tmp_path):
    path = tmp_path / "w.pt"
    # Other names, other shapes: the first pair in order is named, with both shapes.
    torch.save(TinyNet(n_in=N_IN, width=9).state_dict(), path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint("MLP:hidden=8", path, input_shape=(N_IN,))
    message = str(info.value)
    assert "tensor 0" in message and "'hidden_layer.weight'" in message
    assert "(8, 16)" in message and "'fc_in.weight' (9, 16)" in message
    # The same names with another shape: that name.
    torch.save(_mlp(hidden=9).state_dict(), path)
    with pytest.raises(CheckpointError, match=r"'hidden_layer.weight' has shape \(9, 16\)"):
        load_checkpoint("MLP:hidden=8", path, input_shape=(N_IN,))
    # A tensor missing.
    state = TinyNet(n_in=N_IN).state_dict()
    state.pop("fc_out.bias")
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="tensor 3 'last_linear.bias'.*no counterpart"):
        load_checkpoint("MLP:hidden=8", path, input_shape=(N_IN,))
    # Out of order with repeated shapes: ambiguous, refused.
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))
    sd = net.state_dict()
    order = ["0.weight", "1.weight", "0.bias", "1.bias"]
    torch.save({f"layer{k}": sd[k] for k in order}, path)
    with pytest.raises(CheckpointError, match="tensor 1"):
        load_checkpoint(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)), path)


def test_files_that_are_not_checkpoints(tmp_path):
    path = tmp_path / "w.pt"
    torch.save(_mlp().state_dict(), path)
    with pytest.raises(CheckpointError, match="model spec"):
        load_checkpoint(None, path)
    torch.save({"epoch": 3, "weights": [1, 2]}, path)
    with pytest.raises(CheckpointError, match="'epoch'"):
        load_checkpoint("MLP:hidden=8", path, input_shape=(N_IN,))
    path.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        load_checkpoint("MLP:hidden=8", path, input_shape=(N_IN,))
    with pytest.raises(FileNotFoundError):
        load_checkpoint("MLP", tmp_path / "missing.pt")


# --------------------------------------------------------------------------- evaluate


def _data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, N_IN)).astype(np.float32)
    return X, rng.integers(0, 10, n)


CHEAP = dict(steps=5, step_size=0.1, curve_steps=5, bound_params={"batch_size": 4})


def test_evaluate_reports_both_numbers_the_curve_and_writes_three_files(tmp_path):
    model = _mlp()
    X, _ = _data()
    y = _logits(model, torch.from_numpy(X)).argmax(1).numpy()
    y[:4] = (y[:4] + 1) % 10  # four wrong: clean accuracy 20 / 24
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EvaluationWarning)  # 5 PGD steps may ring it
        report = amrlearn.evaluate(model, X, y, eps=[0.05, 0.5], n_points=20, **CHEAP)
    assert report.n_points == 20 and report.attacks == ["pgd", "fmn", "apgd-ce/50", "apgd-t3/50"]
    full = amrlearn.evaluate(model, X, y, eps=[0.0], attack="pgd", curve=False, steps=2)
    assert full.clean == pytest.approx(20 / 24) and full.robust[0] == pytest.approx(full.clean)
    assert full.curve is None and full.robust_pgd is not None and full.masking == []
    assert "no curve" in full.summary() and "None steps" not in full.summary()
    assert np.all(report.robust <= report.robust_pgd)
    assert report.avg_margin_lower <= report.avg_margin_upper
    assert report.estimated_seconds > 0 and report.seconds > 0
    paths = report.save(tmp_path / "out")
    assert sorted(p.name for p in paths) == ["results.json", "robustness_curve.png", "summary.md"]
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["robust_pgd"] == pytest.approx(report.robust_pgd.tolist())
    assert len(saved["curve"]["upper"]) == 20 and saved["attacks"][0] == "pgd"
    text = (tmp_path / "out" / "summary.md").read_text()
    assert "Clean accuracy" in text and "(the paper's attack)" in text and "Average margin" in text


class _Saturated(torch.nn.Module):
    """Logits scaled so far that the softmax saturates: the cross-entropy's gradient is
    zero in float32 and PGD finds nothing, while the margin-based attacks do."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return 1e4 * self.net(x)[0]


def test_evaluate_rings_the_masking_alarm():
    model = _Saturated(_mlp())
    X, _ = _data(16)
    y = _logits(model, torch.from_numpy(X)).argmax(1).numpy()
    with pytest.warns(EvaluationWarning, match="pgd"):
        report = amrlearn.evaluate(model, X, y, eps=[2.0], curve=False, steps=5, step_size=0.5)
    assert report.robust_pgd[0] > report.robust[0] + 0.05
    assert report.masking == [2.0] and any("pgd" in a for a in report.alarms)
    assert "Gradient-masking alarm" in report.summary()


# --------------------------------------------------------------------------- the command


def _npz(tmp_path, n=12):
    X, y = _data(n)
    path = tmp_path / "tiny.npz"
    np.savez(path, X=X, y=y)
    return path


def _cli(*args, verbose="0"):
    return main(
        [
            "evaluate",
            *args,
            "--n-points",
            "8",
            "--eps",
            "0.1",
            "0.5",
            "--steps",
            "3",
            "--step-size",
            "0.1",
            "--curve-steps",
            "3",
            "--bound-samples",
            "4",
            "--verbose",
            verbose,
        ]
    )


def test_cli_evaluate_end_to_end(tmp_path, capsys):
    weights = tmp_path / "mlp.pt"
    state = {f"module.{k}": v for k, v in _mlp().state_dict().items()}
    torch.save({"state_dict": {**state, "module.inverse": torch.eye(3)}}, weights)
    out = tmp_path / "out"
    args = ["--model", "MLP:hidden=8", "--weights", str(weights), "--data", str(_npz(tmp_path))]
    with pytest.warns(UserWarning, match="dropped 1 entry"):
        assert _cli(*args, "--out", str(out), verbose="1") == 0
    printed, err = capsys.readouterr()
    assert "estimated time" in printed and "Clean accuracy" in printed
    assert "EvaluationWarning" not in err  # alarms go into the summary
    assert sorted(p.name for p in out.iterdir()) == [
        "results.json",
        "robustness_curve.png",
        "summary.md",
    ]
    saved = json.loads((out / "results.json").read_text())
    assert saved["n_points"] == 8 and saved["eps"] == [0.1, 0.5]
    assert saved["source"]["weights"] == "mlp.pt" and str(tmp_path) not in json.dumps(saved)
    assert saved["source"]["matched_by"] == "names" and saved["settings"]["steps"] == 3
    assert saved["source"]["dropped"] == ["module.inverse"]
    assert "Left out of the checkpoint: module.inverse." in (out / "summary.md").read_text()
    assert saved["environment"]["device"] == "cpu"


def test_cli_evaluate_whole_module_and_errors(tmp_path, capsys):
    weights = tmp_path / "whole.pt"
    torch.save(TinyNet(n_in=N_IN), weights)
    data = ["--data", str(_npz(tmp_path))]
    out = ["--out", str(tmp_path / "out")]
    assert _cli("--weights", str(weights), *data, *out) == 1
    err = capsys.readouterr().err
    assert err.startswith("amrlearn: error:") and "--trust-pickle" in err
    assert len(err.strip().splitlines()) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EvaluationWarning)
        assert _cli("--weights", str(weights), "--trust-pickle", *data, *out) == 0
    assert "TinyNet" not in capsys.readouterr().err
    assert _cli("--model", "MLP", "--weights", str(tmp_path / "none.pt"), *data, *out) == 1
    assert "none.pt" in capsys.readouterr().err
    assert _cli("--model", "Resnet", "--weights", str(weights), *data, *out) == 1
    assert "Unknown model" in capsys.readouterr().err
    assert _cli("--model", "MLP", "--weights", str(weights), "--data", "svhn", *out) == 1
    assert "svhn" in capsys.readouterr().err


def test_cli_evaluate_fashion_mnist(tmp_path, monkeypatch, capsys):
    """``--data fashion-mnist`` reads the Fashion-MNIST test set (tiny files here)."""
    from amrlearn.datasets import _fashion_mnist

    folder = tmp_path / "home" / "fashion-mnist"
    folder.mkdir(parents=True)
    table = {}
    rng = np.random.default_rng(0)
    for name, array in (
        ("t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (10, 28, 28), dtype=np.uint8)),
        ("t10k-labels-idx1-ubyte.gz", (np.arange(10) % 10).astype(np.uint8)),
    ):
        raw = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
        raw += array.tobytes()
        (folder / name).write_bytes(gzip.compress(raw))
        table[name] = hashlib.sha256(raw).hexdigest()
    monkeypatch.setattr(_fashion_mnist, "_SHA256", table)
    monkeypatch.setattr(_fashion_mnist, "_SYSTEM_FOLDERS", ())
    weights = tmp_path / "lenet.pt"
    torch.manual_seed(0)
    torch.save(models.LeNetSmall("fashion-mnist").state_dict(), weights)
    args = ["--model", "LeNetSmall", "--weights", str(weights), "--data", "fashion-mnist"]
    home = ["--data-home", str(tmp_path / "home"), "--out", str(tmp_path / "out")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EvaluationWarning)
        assert _cli(*args, *home) == 0
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["source"]["data"].startswith("Fashion-MNIST test set")
    assert "Fashion-MNIST" in capsys.readouterr().out
