"""Train and evaluate one cell of the deep-model experiments (Tables 1, 2 and Figures 2-8).

A *cell* is one (dataset, model, method). :func:`run_cells` walks a list of cells,
trains each with the paper's recipe (Appendix F) scaled by the configuration, evaluates it
(clean accuracy, l2 PGD robust accuracy on the eps grid, Theorem 3 margins, margin paths
over epochs) and saves it in ``results.json`` through :class:`~._common.ResultStore` as
soon as it is done, so that an interrupted run resumes at the next cell.

The methods (objective (15) with its parts switched on and off, and PGD training):

======================  =========  ==========  ===================================
name                    lambda     beta        what it isolates
======================  =========  ==========  ===================================
``Std``                 0          0           standard training
``LCR``                 0          1e-3        Lipschitz constant regularization:
                                               the orthogonality penalty alone
``AMR (beta=0)``        0.1        0           the margin term alone
``AMR``                 0.1        1e-3        the paper's regularizer
``Adv``                 --         --          PGD adversarial training
======================  =========  ==========  ===================================

CIFAR-10 cells whose data are missing are reported as skipped, never replaced by other
data.
"""

import contextlib
import math
import random
import time
import warnings
from pathlib import Path

import numpy as np

from ._common import ResultStore

__all__ = [
    "METHODS",
    "cell_key",
    "load_split",
    "method_params",
    "per_model",
    "run_cells",
    "skip_reason",
]

#: lambda and beta of each method of objective (15); "Adv" is PGD training.
METHODS = {
    "Std": {"lam": 0.0, "beta": 0.0},
    "LCR": {"lam": 0.0, "beta": None},  # None: the configuration's beta
    "AMR (beta=0)": {"lam": None, "beta": 0.0},  # None: the configuration's lambda
    "AMR": {"lam": None, "beta": None},
    "Adv": {"adversarial": True},
}

#: tau per (dataset, model), Appendix F.
TAU = {
    ("mnist", "LR"): 5.0,
    ("mnist", "MLP"): 5.0,
    ("mnist", "CNN"): 10.0,
    ("cifar10", "LR"): 5.0,
    ("cifar10", "MLP"): 10.0,
    ("cifar10", "CNN"): 10.0,
    ("mnist", "LeNet"): 40.0,
    ("mnist", "LeNetSmall"): 40.0,
    ("cifar10", "LeNetSmall"): 40.0,
    ("cifar10", "ConvNet"): 50.0,
}

#: PGD training budget per dataset, Appendix F.
ADV_EPS = {"mnist": 2.0, "cifar10": 0.4}

DATASET_NAMES = {"mnist": "MNIST", "cifar10": "CIFAR-10"}

_FLAT_MODELS = ("LR", "MLP")


def cell_key(dataset, model, method):
    """The name of a cell in ``results.json``: ``"mnist/MLP/AMR"``."""
    return f"{dataset}/{model}/{method}"


def method_params(method, dataset, model, config):
    """The estimator's hyperparameters of ``method`` for this model, from the configuration.

    Examples
    --------
    >>> from amrlearn.experiments._neural_common import method_params
    >>> method_params("LCR", "mnist", "MLP", {"lam": 0.1, "beta": 1e-3})
    {'lam': 0.0, 'beta': 0.001, 'tau': 5.0}
    """
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; choose from {sorted(METHODS)}.")
    spec = METHODS[method]
    if spec.get("adversarial"):
        adv = config.get("adv", {})
        eps = ADV_EPS[dataset]
        steps = adv.get("steps", 40)
        step_size = adv.get("step_size", 0.01)
        if step_size == "auto":  # Madry et al.'s rule: reach the sphere and move along it
            step_size = 2.5 * eps / steps
        return {"eps": eps, "steps": steps, "step_size": step_size}
    lam = config["lam"] if spec["lam"] is None else spec["lam"]
    beta = config["beta"] if spec["beta"] is None else spec["beta"]
    tau = config.get("tau", {}).get(f"{dataset}/{model}", TAU[(dataset, model)])
    return {"lam": float(lam), "beta": float(beta), "tau": float(tau)}


def skip_reason(dataset, data_home):
    """The line printed (and stored) for a cell whose dataset is missing."""
    from ..datasets import get_data_home

    return f"skipped: {DATASET_NAMES[dataset]} not found in {get_data_home(data_home)}"


@contextlib.contextmanager
def seeded(seed, deterministic=True):
    """Seed python, numpy and torch; on the CPU also ask torch for deterministic kernels.

    The previous determinism setting is restored on exit.
    """
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (third-party code may draw from it)
    torch.manual_seed(seed)
    previous = torch.are_deterministic_algorithms_enabled()
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def _subset(n_total, n, rng):
    if n is None or n >= n_total:
        return np.arange(n_total)
    return np.sort(rng.choice(n_total, size=n, replace=False))


def load_split(dataset, config, *, flatten):
    """Training and test arrays of ``dataset``, subsampled with the configuration's seed.

    Returns
    -------
    data : dict
        ``X_train``, ``y_train``, ``X_test``, ``y_test`` (float32 in [0, 1], int64).

    Raises
    ------
    DatasetNotFoundError
        When the data home lacks the dataset.
    """
    from ..datasets import load_cifar10, load_mnist

    loader = {"mnist": load_mnist, "cifar10": load_cifar10}[dataset]
    home = config.get("data_home")
    Xtr, ytr = loader(home, subset="train", return_X_y=True, flatten=flatten)
    Xte, yte = loader(home, subset="test", return_X_y=True, flatten=flatten)
    rng = np.random.RandomState(config["seed"])
    itr = _subset(len(ytr), config.get("n_train"), rng)
    ite = _subset(len(yte), config.get("n_test"), rng)
    return {
        "X_train": np.ascontiguousarray(Xtr[itr], dtype=np.float32),
        "y_train": np.asarray(ytr[itr], dtype=np.int64),
        "X_test": np.ascontiguousarray(Xte[ite], dtype=np.float32),
        "y_test": np.asarray(yte[ite], dtype=np.int64),
    }


def _fixed_points(X, y, n, seed):
    """``n`` points of (X, y) chosen with a fixed seed (the paper's 500-point subsets)."""
    idx = _subset(len(y), n, np.random.RandomState(seed + 1))
    return X[idx], y[idx]


def per_model(value, model):
    """``value[model]`` (else ``value["default"]``) where ``value`` is keyed by model name;
    ``value`` itself otherwise.

    Every training and measuring setting of a configuration (``lr``, ``batch_size``,
    ``epochs``, ``pgd``, ``margin``, ``track``) may be given per model this way: the quick
    modes give the cheap MLP a larger budget than the CNN.

    Examples
    --------
    >>> from amrlearn.experiments._neural_common import per_model
    >>> per_model({"MLP": 40, "default": 10}, "CNN"), per_model(0.05, "CNN")
    (10, 0.05)
    >>> per_model({"steps": 20}, "MLP")
    {'steps': 20}
    """
    if isinstance(value, dict) and (model in value or "default" in value):
        return value.get(model, value.get("default"))
    return value


def _n_epochs(config, model):
    return int(per_model(config["epochs"], model))


def _track_epochs(config, model, max_epochs):
    track = per_model(config.get("track"), model) or {}
    epochs = per_model(track.get("epochs"), model)
    if epochs == "all":
        return list(range(1, max_epochs + 1))
    return sorted({int(e) for e in (epochs or []) if 1 <= int(e) <= max_epochs})


def _bound_params(spec, config, device):
    return {
        "radius": spec.get("radius", 5.0),
        "n_batches": spec.get("n_batches", 50),
        "batch_size": spec.get("batch_size", 1024),
        "random_state": config["seed"],
        "device": device,
        "verbose": 0,
    }


def _module_kwargs(model, dataset):
    from ..neural.models import INPUT_SHAPES

    if model in _FLAT_MODELS:
        return {"in_features": math.prod(INPUT_SHAPES[dataset])}
    return {"dataset": dataset}


def _build_net(dataset, model, method, config, data, device, *, callbacks, n_epochs):
    import torch
    from skorch.callbacks import EpochScoring
    from skorch.dataset import Dataset
    from skorch.helper import predefined_split

    from .. import neural
    from ..neural import models

    params = method_params(method, dataset, model, config)
    module_cls = getattr(models, model)
    module_kwargs = _module_kwargs(model, dataset)
    common = dict(
        module=module_cls,
        max_epochs=n_epochs,
        lr=per_model(config["lr"], model),
        batch_size=per_model(config["batch_size"], model),
        optimizer=torch.optim.SGD,
        optimizer__momentum=config["momentum"],
        optimizer__nesterov=config["nesterov"],
        device=str(device),
        # The paper trains on the whole training set; the test subset is only watched
        # (Figure 5's test error), never used to choose anything.
        train_split=predefined_split(Dataset(torch.as_tensor(data["X_test"]),
                                             torch.as_tensor(data["y_test"]))),
        data_on_device=True,
        callbacks=[("train_acc", EpochScoring("accuracy", on_train=True, name="train_acc",
                                              lower_is_better=False)), *callbacks],
        iterator_train__shuffle=True,
        verbose=0,
    )
    for key, value in module_kwargs.items():
        common[f"module__{key}"] = value
    if config.get("augment", {}).get(f"{dataset}/{model}"):
        # Appendix F's crop and flip, on the training batches only.
        common["iterator_train__transform"] = neural.random_crop_flip
    if method == "Adv":
        attack = {f"attack__{key}": value for key, value in params.items()}
        return neural.AdversarialNeuralNetClassifier(**common, **attack), params
    return neural.AMRNeuralNetClassifier(**common, **params), params


def _epoch_bar(desc, total, verbose):
    from skorch.callbacks import Callback

    from ..utils import progress

    class EpochBar(Callback):
        """One tqdm bar per cell: which cell is training, and how far it is."""

        def initialize(self):
            self.bar_ = progress(total=total, desc=desc, verbose=verbose, leave=False)
            return self

        def on_epoch_end(self, net, **kwargs):
            h = net.history[-1]
            post = {k: f"{h[k]:.3f}" for k in ("train_loss", "train_acc", "valid_acc") if k in h}
            self.bar_.set_postfix(post, refresh=False)
            self.bar_.update(1)

        def on_train_end(self, net, **kwargs):
            self.bar_.close()

    return EpochBar()


def _history(net):
    """Per-epoch curves of a fitted net (Figure 5)."""
    h = net.history
    out = {"epoch": [int(e) for e in h[:, "epoch"]]}
    for key in ("train_loss", "train_acc", "valid_loss", "valid_acc", "dur"):
        try:
            out[key] = [float(v) for v in h[:, key]]
        except KeyError:
            pass
    return out


def train_cell(dataset, model, method, data, config, *, desc="", track=False):
    """Train one cell and measure it. Returns the cell's dict of numbers (JSON-ready).

    Parameters
    ----------
    dataset, model, method : str
    data : dict
        From :func:`load_split`.
    config : dict
        The experiment's configuration (see ``default_config`` of table1, table2, figures).
    desc : str
        The label of the progress bar.
    track : bool
        Record the min/avg margin (and the per-sample margins for histograms) at the
        configuration's tracking epochs.
    """
    from ..attacks import robust_accuracy
    from ..metrics import margin_report
    from ..neural import MarginTracker, orthogonality_penalty
    from ..utils import resolve_device

    device = resolve_device(config["device"])
    verbose = config.get("verbose", 1)
    n_epochs = _n_epochs(config, model)
    callbacks = [("progress", _epoch_bar(desc, n_epochs, verbose))]
    tracked = {}
    if track:
        spec = per_model(config["track"], model)
        epochs = _track_epochs(config, model, n_epochs)
        Xtr_m, ytr_m = _fixed_points(data["X_train"], data["y_train"], spec["n_points"],
                                     config["seed"])
        Xte_m, yte_m = _fixed_points(data["X_test"], data["y_test"], spec["n_points"],
                                     config["seed"])
        tracked = {"train": (Xtr_m, ytr_m), "test": (Xte_m, yte_m)}
        callbacks.append(("margins", MarginTracker(
            X_train=Xtr_m, y_train=ytr_m, X_test=Xte_m, y_test=yte_m, n_samples=None,
            epochs=epochs, kind="bound", bound_params=_bound_params(spec, config, device),
            random_state=config["seed"], keep_margins=True)))

    t0 = time.perf_counter()
    with seeded(config["seed"], deterministic=device.type == "cpu"):
        net, params = _build_net(dataset, model, method, config, data, device,
                                 callbacks=callbacks, n_epochs=n_epochs)
        net.fit(data["X_train"], data["y_train"])
    train_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    result = {"dataset": dataset, "model": model, "method": method, "params": params,
              "n_train": int(len(data["y_train"])), "n_test": int(len(data["y_test"])),
              "epochs": n_epochs}
    with seeded(config["seed"], deterministic=device.type == "cpu"):
        y_pred = net.predict(data["X_test"])
        result["clean"] = 100.0 * float(np.mean(y_pred == data["y_test"]))
        pgd = per_model(config.get("pgd"), model)
        if pgd:
            Xp, yp = _fixed_points(data["X_test"], data["y_test"], pgd["n_points"],
                                   config["seed"])
            step_size = pgd["step_size"]
            if isinstance(step_size, dict):
                step_size = step_size[dataset]
            eps = [float(e) for e in config["eps"][dataset]]
            acc = robust_accuracy(net, Xp, yp, eps=eps, steps=pgd["steps"],
                                  step_size=step_size, batch_size=pgd.get("batch_size", 256),
                                  loss=config.get("pgd_loss", "ce"),
                                  device=device, verbose=verbose, random_state=config["seed"])
            result["eps"] = eps
            result["robust"] = [100.0 * float(a) for a in np.ravel(acc)]
            result["n_pgd_points"] = int(len(yp))
        mspec = per_model(config.get("margin"), model)
        if mspec:
            Xm, ym = _fixed_points(data["X_test"], data["y_test"], mspec["n_points"],
                                   config["seed"])
            rep = margin_report(net, Xm, ym, upper=False,
                                bound_params=_bound_params(mspec, config, device))
            result["margin"] = {k: float(v) for k, v in rep.items()}
            result["avg_margin"] = float(rep["avg_margin"])
            result["n_margin_points"] = int(len(ym))
    result["history"] = _history(net)
    losses = result["history"].get("train_loss", [])
    result["diverged"] = not all(math.isfinite(v) for v in losses)
    # How far the orthogonality penalty got: Lipschitz control (LCR, AMR) only acts once
    # it is small, which short (quick) runs may not reach.
    result["ortho_penalty"] = float(orthogonality_penalty(net.module_).detach().cpu())
    if track:
        result["margin_path"] = _margin_path(net, tracked)
    result["train_seconds"] = train_seconds
    result["eval_seconds"] = time.perf_counter() - t0
    return result


def _margin_path(net, tracked):
    """Per-epoch min/avg margins and per-sample margins, from the tracker's history."""
    path = {}
    for split in tracked:
        rows = [h for h in net.history if f"margin_avg_{split}" in h]
        path[split] = {
            "epoch": [int(h["epoch"]) for h in rows],
            "min": [float(h[f"margin_min_{split}"]) for h in rows],
            "avg": [float(h[f"margin_avg_{split}"]) for h in rows],
            "margins": [h[f"margins_{split}"] for h in rows if f"margins_{split}" in h],
        }
    return path


# ----------------------------------------------------------------------------------------
# The loop over cells: resume, skip what is missing, report finished-ness.


def estimate_seconds(cells, config):
    """A time estimate of ``cells`` from timed training batches of each model on the device.

    Each model is timed on a few random batches of the training batch size; the estimate
    extrapolates to the configuration's epochs, PGD steps and margin samples. It is
    printed before a ``--full`` run starts.
    """
    import torch

    from ..neural import models
    from ..utils import resolve_device

    device = resolve_device(config["device"])
    shapes = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
    n_full = {"mnist": (60000, 10000), "cifar10": (50000, 10000)}
    per_batch = {}
    total = 0.0
    for dataset, model, method in cells:
        bs = per_model(config["batch_size"], model)
        key = (dataset, model)
        if key not in per_batch:
            module = getattr(models, model)(**_module_kwargs(model, dataset)).to(device)
            shape = shapes[dataset]
            x = torch.rand(bs, *shape, device=device)
            y = torch.randint(0, 10, (bs,), device=device)
            opt = torch.optim.SGD(module.parameters(), lr=0.01)
            for i in range(6):  # 1 warm-up + 5 timed
                if i == 1:
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    t0 = time.perf_counter()
                out = module(x)
                out = out[0] if isinstance(out, tuple) else out
                loss = torch.nn.functional.cross_entropy(out, y)
                opt.zero_grad()
                loss.backward()
                opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            per_batch[key] = (time.perf_counter() - t0) / 5
        t = per_batch[key]
        n_train = min(config.get("n_train") or n_full[dataset][0], n_full[dataset][0])
        epochs = _n_epochs(config, model)
        factor = 1 + (method_params(method, dataset, model, config)["steps"]
                      if method == "Adv" else 0)
        total += epochs * math.ceil(n_train / bs) * t * factor
        pgd = per_model(config.get("pgd"), model) or {"steps": 0, "n_points": 0}
        total += len(config["eps"][dataset]) * pgd["steps"] * math.ceil(pgd["n_points"] / bs) * t
        m = per_model(config.get("margin"), model)
        if m:
            total += m["n_points"] * m["n_batches"] * m["batch_size"] / bs * t * 10
    return total


def _store_config(config):
    # Verbosity does not change numbers: leave it out so that a rerun with another
    # verbosity resumes.
    return {k: v for k, v in config.items() if k != "verbose"}


def run_cells(name, cells, config, out_dir, *, track=lambda cell: False):
    """Train and measure every cell not yet in ``out_dir/results.json``.

    Parameters
    ----------
    name : str
        The experiment's name (progress bar label).
    cells : list of (dataset, model, method)
    config : dict
    out_dir : Path
    track : callable, default=lambda cell: False
        Which cells record margin paths over epochs.

    Returns
    -------
    results : dict
        ``config``, ``environment``, ``cells`` (key -> numbers), ``skipped`` (key ->
        reason), ``pending`` (keys still to run), ``finished`` (bool: every cell that
        can run here is done) and ``complete`` (bool: every cell is done, none skipped).
    """
    from ..datasets import DatasetNotFoundError
    from ..utils import progress, resolve_device

    verbose = config.get("verbose", 1)
    device = resolve_device(config["device"])
    store = ResultStore(out_dir / "results.json", _store_config(config))
    todo = [c for c in cells if cell_key(*c) not in store]
    if config.get("mode") == "full" and todo:
        if device.type != "cuda":
            warnings.warn(
                "--full follows the paper's protocol (200 epochs, PGD with 1000 steps) and is "
                "meant for a GPU; on the CPU it takes days. Use --device cuda, or --quick.",
                UserWarning, stacklevel=2,
            )
        est = estimate_seconds(todo, config)
        print(f"[{name}] {len(todo)} cells to run on {device}; estimated time "
              f"{est / 3600:.1f} h (extrapolated from timed training batches).", flush=True)

    data_cache = {}
    skipped = {}
    bar = progress(cells, verbose=verbose, desc=name, leave=True)
    for cell in bar:
        key = cell_key(*cell)
        if key in store:
            continue
        dataset, model, method = cell
        # Images for every model: LR and MLP flatten them themselves.
        dkey = dataset
        if dkey not in data_cache:
            try:
                data_cache[dkey] = load_split(dataset, config, flatten=False)
            except DatasetNotFoundError:
                data_cache[dkey] = None
        if data_cache[dkey] is None:
            skipped[key] = skip_reason(dataset, config.get("data_home"))
            continue
        bar.set_postfix_str(key)
        store.put(key, train_cell(dataset, model, method, data_cache[dkey], config, desc=key,
                                  track=track(cell)))
    pending = [cell_key(*c) for c in cells if cell_key(*c) not in store and
               cell_key(*c) not in skipped]
    store.data["skipped"] = skipped
    store.data["pending"] = pending
    store.data["finished"] = not pending
    store.data["complete"] = not pending and not skipped
    store.data["cell_order"] = [cell_key(*c) for c in cells]
    store.save()
    return store.data


# ----------------------------------------------------------------------------------------
# Tables and verdicts shared by table1, table2 and figures.


def _fmt(value, ref, digits):
    if value is None:
        return "—"
    if ref is None:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ({ref:.{digits}f}, {value - ref:+.{digits}f})"


def markdown_table(results, table, rows, *, avg_margin=True, not_implemented=()):
    """Our numbers side by side with the paper's: each cell reads ``ours (paper, ours-paper)``.

    Parameters
    ----------
    results : dict
        What :func:`run_cells` returned.
    table : {"table1", "table2"}
        Which of the paper's tables to compare with.
    rows : list of (dataset, model, method)
        In display order.
    avg_margin : bool
        Add Table 1's last column.
    not_implemented : tuple of str
        Methods whose rows say "not yet implemented".
    """
    from ._paper import EPS, paper_row

    lines = []
    for dataset in dict.fromkeys(r[0] for r in rows):
        eps = EPS[dataset]
        head = ["dataset", "model", "method", "clean"] + [f"eps={e:g}" for e in eps]
        if avg_margin:
            head.append("avg margin")
        lines += ["", f"**{DATASET_NAMES[dataset]}** (accuracies in %; each cell: ours "
                      "(paper, ours − paper))", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for ds, model, method in rows:
            if ds != dataset:
                continue
            key = cell_key(ds, model, method)
            ref = paper_row(table, ds, model, method)
            prefix = [DATASET_NAMES[ds], model, method]
            if method in not_implemented:
                values = [f"not yet implemented (paper {ref['clean']:.2f})"]
                values += [f"— ({r:.2f})" for r in ref["robust"]]
                if avg_margin:
                    values.append("—")
                lines.append("| " + " | ".join(prefix + values) + " |")
                continue
            cell = results["cells"].get(key)
            if cell is None:
                why = results.get("skipped", {}).get(key, "pending (not run yet)")
                n = len(head) - 3
                lines.append("| " + " | ".join(prefix + [why] + [""] * (n - 1)) + " |")
                continue
            values = [_fmt(cell["clean"], ref and ref["clean"], 2)]
            if cell.get("diverged"):
                values[0] = "diverged (training loss not finite): " + values[0]
            values += [_fmt(v, ref and ref["robust"][i], 2) for i, v in enumerate(cell["robust"])]
            if avg_margin:
                values.append(_fmt(cell.get("avg_margin"), ref and ref.get("avg_margin"), 2))
            lines.append("| " + " | ".join(prefix + values) + " |")
    return "\n".join(lines).strip("\n")


def _verdict(ok, text):
    return f"- {'holds' if ok else 'does not hold'}: {text}"


def tradeoff_verdicts(results, keys):
    """Claim 1: during standard training the minimum margin rises and the average margin
    falls.

    The rule, on each tracked split: the minimum margin at the last tracked epoch exceeds
    the one at the first, and the average margin at the last tracked epoch is below its
    peak over the tracked epochs. The peak, rather than the first epoch, because the
    paper's own account (section 3) is that the average margin "decreases drastically
    after a few epochs at the very beginning, and then keeps decreasing"; the line prints
    both, so a reader can apply the stricter first-vs-last reading too.
    """
    lines = []
    for key in keys:
        cell = results["cells"].get(key)
        if cell is None or "margin_path" not in cell:
            continue
        for split, p in cell["margin_path"].items():
            if len(p["epoch"]) < 2:
                continue
            e0, e1 = p["epoch"][0], p["epoch"][-1]
            peak = int(np.argmax(p["avg"]))
            up = p["min"][-1] > p["min"][0]
            down = p["avg"][-1] < p["avg"][peak] and peak < len(p["avg"]) - 1
            lines.append(_verdict(
                up and down,
                f"{key} ({split}): min margin {p['min'][0]:.3f} (epoch {e0}) -> "
                f"{p['min'][-1]:.3f} (epoch {e1}) ({'rises' if up else 'does not rise'}); "
                f"avg margin {p['avg'][0]:.3f} (epoch {e0}), peak {p['avg'][peak]:.3f} "
                f"(epoch {p['epoch'][peak]}) -> {p['avg'][-1]:.3f} (epoch {e1}) "
                f"({'falls from its peak' if down else 'does not fall'})",
            ))
    return lines


def amr_verdicts(results, groups, *, ratio=1.5):
    """Claims 2 and 3 per (dataset, model), and what AMR adds over its two ablations.

    Parameters
    ----------
    groups : list of (dataset, model)
    ratio : float
        AMR's average margin must be at least ``ratio`` times Std's.
    """
    lines = {"ratio": [], "robust": [], "ablation": []}
    cells = results["cells"]
    for dataset, model in groups:
        def get(method, dataset=dataset, model=model):
            return cells.get(cell_key(dataset, model, method))

        std, amr, lcr, amr0 = get("Std"), get("AMR"), get("LCR"), get("AMR (beta=0)")
        name = f"{dataset}/{model}"
        if std is None or amr is None:
            continue
        if "avg_margin" in std and "avg_margin" in amr:
            r = amr["avg_margin"] / max(std["avg_margin"], 1e-12)
            lines["ratio"].append(_verdict(
                r >= ratio, f"{name}: AMR avg margin {amr['avg_margin']:.3f} vs Std "
                f"{std['avg_margin']:.3f} = {r:.2f}x (claim: >= {ratio}x)"))
        e = std["eps"][-1]
        lines["robust"].append(_verdict(
            amr["robust"][-1] > std["robust"][-1],
            f"{name}: robust accuracy at eps={e:g}: AMR {amr['robust'][-1]:.2f}% vs Std "
            f"{std['robust'][-1]:.2f}%"))
        parts = []
        ok = True
        for label, abl in (("LCR (lam=0, same beta)", lcr), ("AMR (beta=0)", amr0)):
            if abl is None:
                continue
            dr = amr["robust"][-1] - abl["robust"][-1]
            ok = ok and dr > 0
            text = f"over {label}: robust acc at eps={e:g} {dr:+.2f} points"
            if "avg_margin" in amr and "avg_margin" in abl:
                dm = amr["avg_margin"] - abl["avg_margin"]
                ok = ok and dm > 0
                text = f"over {label}: avg margin {dm:+.3f}, " + text.split(": ", 1)[1]
            parts.append(text)
        if parts:
            lines["ablation"].append(_verdict(ok, f"{name}: AMR's own gain " + "; ".join(parts)))
    return lines


def ortho_lines(results, groups, methods):
    """The orthogonality penalty each cell ended with, per (dataset, model).

    Not a verdict: it tells how far the Lipschitz control of LCR and AMR (beta > 0) got
    in the run, which is where a short run differs most from the paper's 200 epochs.
    """
    lines = []
    for dataset, model in groups:
        parts = []
        for method in methods:
            cell = results["cells"].get(cell_key(dataset, model, method))
            if cell is not None and "ortho_penalty" in cell:
                parts.append(f"{method} {cell['ortho_penalty']:.1f}")
        if parts:
            lines.append(f"- {dataset}/{model}: " + ", ".join(parts))
    return lines


def claim_block(title, lines):
    """A claim's overall verdict (it holds when every measured cell holds) and its cells."""
    if not lines:
        return [f"**{title}**: not measured (no finished cells)."]
    n_ok = sum(line.startswith("- holds") for line in lines)
    overall = "holds" if n_ok == len(lines) else "does not hold"
    return [f"**{title}**: {overall} ({n_ok} of {len(lines)} cells)", *lines]


def status_lines(results):
    """Skipped and pending cells, and whether the run is finished."""
    out = []
    for key, why in results.get("skipped", {}).items():
        out.append(f"- {key}: {why}")
    if results.get("pending"):
        out.append(f"- pending (run again to resume): {', '.join(results['pending'])}")
    state = ("complete" if results.get("complete") else
             "finished (except skipped cells)" if results.get("finished") else "partial")
    return [f"Run status: **{state}**", *out]


def plot_robust_panels(results, table, groups, out_dir):
    """Robust accuracy against eps per (dataset, model) group, ours and the paper's.

    Parameters
    ----------
    results : dict
        What ``run`` of table1 or table2 returned.
    table : {"table1", "table2"}
        Which of the paper's tables the dashed reference lines come from.
    groups : list of (dataset, model)
        One panel each, where any of its cells has been run.
    out_dir : Path
        Where ``<table>_robust_accuracy.png`` is written.

    Returns
    -------
    paths : list of Path
        The written figure, or nothing when no cell has been run.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..plotting import plot_robust_accuracy
    from ._paper import paper_row

    cfg = results["config"]
    panels = {}
    for dataset, model in groups:
        series, paper = {}, {}
        for method in cfg["methods"]:
            cell = results["cells"].get(f"{dataset}/{model}/{method}")
            if cell is None:
                continue
            series[method] = [cell["clean"], *cell["robust"]]
            ref = paper_row(table, dataset, model, method)
            if ref is not None:
                paper[method] = [ref["clean"], *ref["robust"]]
        if series:
            panels[f"{dataset.upper()}-{model}"] = {
                "eps": [0.0, *cfg["eps"][dataset]], "series": series, "paper": paper}
    if not panels:
        return []
    fig = plot_robust_accuracy(panels)
    path = Path(out_dir) / f"{table}_robust_accuracy.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]
