"""What the benchmarks share: one argument parser, one timer, one result writer, the data.

Every benchmark ``benchmarks/bench_<name>.py``:

* parses its arguments with :func:`make_parser` (``--quick`` / ``--full``, ``--repeats``,
  ``--device``, ``--out``);
* times with :func:`best_time`: the fastest of ``repeats`` runs, with the device
  synchronized around each, since the machine may be shared;
* writes its numbers with :func:`write_result` to ``results/bench_<name>_<device>.json``
  (``--out`` to write elsewhere), with the software and machine they were measured on.

The PGD and margin-bound benchmarks also share their data (:func:`load_data`) and the MLP
they attack (:func:`train_mlp`).
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def make_parser(doc, *, full=None, repeats=None, device=None):
    """The benchmarks' argument parser; a benchmark adds its own options to it.

    Parameters
    ----------
    doc : str
        The benchmark's docstring; its first line is the description.
    full : str, default=None
        What ``--full`` means for this benchmark; ``None``: there is no ``--full``.
    repeats : int, default=None
        The default of ``--repeats``; ``None``: no such option.
    device : str, default=None
        The default of ``--device``; ``None``: the benchmark runs on the CPU only.
    """
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes (the default)")
    if full is not None:
        size.add_argument("--full", action="store_true", help=full)
    if repeats is not None:
        parser.add_argument(
            "--repeats", type=int, default=repeats, help="timed runs; the fastest is kept"
        )
    if device is not None:
        parser.add_argument("--device", default=device, help="cpu, cuda or auto")
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON file (default: results/<name>_<device>.json)"
    )
    return parser


def resolve_device(name):
    """``torch.device`` of ``name``; ``"auto"`` is CUDA where there is one, else the CPU."""
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def _sync(device):
    if device is not None and str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def best_time(call, *, repeats=1, device=None):
    """Run ``call()`` ``repeats`` times; ``(last result, fastest seconds, all seconds)``.

    ``device``: a CUDA device is synchronized before and after each run, so that the
    time covers the work and not only its launch.
    """
    times = []
    result = None
    for _ in range(max(1, repeats)):
        _sync(device)
        start = time.perf_counter()
        result = call()
        _sync(device)
        times.append(time.perf_counter() - start)
    return result, min(times), times


def result_path(name, device="cpu", out=None):
    """``out``, else ``results/<name>_<device type>.json`` (``device``: a torch device or
    a string such as ``"cpu"``, ``"cuda"`` or ``"all"``)."""
    if out is not None:
        return Path(out)
    kind = getattr(device, "type", None) or str(device).split(":")[0]
    return RESULTS / f"{name}_{kind}.json"


def environment(device="cpu"):
    """The software and machine a result was measured on."""
    env = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.processor() or platform.machine(),
        "platform": platform.platform(),
        "device": str(device),
    }
    for module in ("torch", "sklearn", "amrlearn"):
        if module in sys.modules:
            env[module] = sys.modules[module].__version__
    if env["device"].startswith("cuda"):
        import torch

        env["gpu"] = torch.cuda.get_device_name(0)
    return env


def write_result(out, name, device="cpu", path=None):
    """Write ``out`` as JSON, with the benchmark's name and environment, to
    :func:`result_path`; returns the path."""
    path = result_path(name, device, path)
    record = {"benchmark": name, "environment": environment(device), **out}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def load_data(n_train, n_test):
    """MNIST, or scikit-learn's digits without it: ``(name, Xtr, ytr, Xte, yte)``."""
    from amrlearn.datasets import load_mnist_or_digits

    Xtr, ytr, Xte, yte, name = load_mnist_or_digits()
    return name, Xtr[:n_train], ytr[:n_train].astype(np.int64), Xte[:n_test], yte[:n_test]


def train_mlp(X, y, epochs=5, seed=0):
    """A 256-unit MLP trained with Adam: the model the PGD and bound benchmarks attack."""
    import torch

    torch.manual_seed(seed)
    d = X.shape[1]
    net = torch.nn.Sequential(torch.nn.Linear(d, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    return train_loop(net, torch.optim.Adam(net.parameters(), lr=1e-3), X, y, epochs)


def train_loop(net, opt, X, y, epochs, batch_size=128):
    """Minibatch cross-entropy training of ``net`` (logits, or ``(logits, ...)``) with
    ``opt`` on shuffled batches; returns ``net`` in eval mode."""
    import torch

    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    for _ in range(epochs):
        perm = torch.randperm(len(Xt))
        for s in range(0, len(Xt), batch_size):
            idx = perm[s : s + batch_size]
            out = net(Xt[idx])
            logits = out[0] if isinstance(out, tuple) else out
            opt.zero_grad()
            torch.nn.functional.cross_entropy(logits, yt[idx]).backward()
            opt.step()
    return net.eval()


def interleaved_fits(makers, X, y, repeats):
    """Fit each estimator ``makers[name]()`` ``repeats`` times, in turn, so that all see
    the same load; returns the last fit of each and the lists of wall times."""
    fitted, times = {}, {name: [] for name in makers}
    for _ in range(repeats):
        for name, make in makers.items():
            est = make()
            start = time.perf_counter()
            est.fit(X, y)
            times[name].append(time.perf_counter() - start)
            fitted[name] = est
    return fitted, times


def train_table1_net(model, method, *, cache=None, device="cpu"):
    """A net of the quick Table 1 on MNIST, trained with the table's own recipe
    (:func:`train_quick_net` with ``experiment="table1"``)."""
    return train_quick_net("table1", model, method, cache=cache, device=device)


def train_quick_net(experiment, model, method, *, cache=None, device="cpu"):
    """A net of a quick table on MNIST, trained with the table's own recipe.

    Trains ``(mnist, model, method)`` exactly as ``amrlearn reproduce <experiment> --quick``
    does (its configuration, data subset, seed and :func:`build_net`), without the
    margin tracking. ``cache``: a folder where the trained weights are kept, so that a
    rerun of a benchmark skips the training.

    Parameters
    ----------
    experiment : {"table1", "table2"}
    model, method : str
        A model and a method of that table (``"LeNet"``, ``"Adv"``, ...).

    Returns
    -------
    net : fitted skorch net of the table
    data : dict
        ``X_train``, ``y_train``, ``X_test``, ``y_test`` (images).
    config : dict
        The quick configuration.
    """
    import importlib

    import torch

    from amrlearn.experiments._recipe import build_net, n_epochs
    from amrlearn.experiments._runner import load_split, seeded

    config = importlib.import_module(f"amrlearn.experiments.{experiment}").default_config("quick")
    data = load_split("mnist", config, flatten=False)
    device = torch.device(device)
    with seeded(config["seed"], deterministic=device.type == "cpu"):
        net, _ = build_net(
            "mnist",
            model,
            method,
            config,
            data,
            device,
            callbacks=[],
            max_epochs=n_epochs(config, model, method),
        )
        name = f"{experiment}_quick_mnist_{model}_{method}.pt".replace(" ", "_")
        path = None if cache is None else Path(cache) / name
        if path is not None and path.exists():
            net.set_params(classes=np.unique(data["y_train"]))
            net.initialize()
            net.module_.load_state_dict(torch.load(path, map_location=device))
        else:
            net.fit(data["X_train"], data["y_train"])
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.save(net.module_.state_dict(), path)
    net.module_.eval()
    return net, data, config
