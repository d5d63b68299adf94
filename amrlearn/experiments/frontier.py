"""The cost-robustness frontier: which method buys the most robustness per training second?

``amrlearn reproduce frontier [--quick|--medium|--full]`` trains one MNIST net with every method
of the paper's tables and beyond (Std, LCR, AMR, the margin-distribution regularizers,
FGSM-RS with and without AMR, PGD-AT, DD and MMR) and measures, from one run:

* clean accuracy and ``"auto"`` robust accuracy on the eps grid;
* the mean and median minimum-norm distance to the boundary (the
  :class:`~amrlearn.attacks.MinimumNormEnsemble` of
  :func:`~amrlearn.metrics.robustness_curve`; 0 for a misclassified point), the measure of
  MMA training (Ding et al. 2020);
* ``cost``: training CPU time per epoch relative to Std's, measured in the same run.

The summary draws robustness (mean distance, and robust accuracy at eps 1.5) against
cost, names the Pareto front and says where AMR stands. Quick mode trains LeNetSmall on
10,000 images (a 2-core CPU, minutes); medium mode LeNetSmall on all 60,000 images with
the distances on 1,000 points (76 CPU-core minutes measured, 35 of them MMR's cell: 40
minutes or more with ``--jobs 2``); full mode the CNN of Carlini & Wagner on all 60,000
images (a GPU: about 7 CPU-core hours on a CPU).
"""

from pathlib import Path

from .._paper import APPENDIX_F
from ..plotting._frontier import pareto_front
from ._common import ALL_DATA, RUN_DEFAULTS, ResultStore, cell_key
from ._paper import EPS_GRIDS
from ._runner import run_cells
from ._summaries import markdown_table, status_lines

__all__ = ["MODES", "default_config", "plot", "points", "run", "summarize"]

MODES = ("quick", "medium", "full")
METHODS = (
    "Std",
    "LCR",
    "AMR",
    "soft-min AMR",
    "AMR + spread",
    "input margin",
    "FGSM-RS",
    "AMR + FGSM-RS (adv)",
    "AMR + FGSM-RS (clean)",
    "Adv",
    "DD",
    "MMR",
)
#: The radius of the robust-accuracy axis of the figure.
FRONTIER_EPS = 1.5
#: MMA's table (Ding et al. 2020, MNIST l2, CW-L2 on 1,000 test points): mean distance
#: and clean accuracy.
MMA_ANCHORS = {
    "Std": (1.57, 99.0),
    "PGD-AT at eps 2": (2.32, 98.6),
    "MMA-4.0": (2.67, 98.5),
}
#: The issue's target: a mean distance of PGD-AT's level at this clean accuracy, at most
#: this cost.
TARGET = {"mean_distance": 2.3, "clean": 98.5, "cost": 2.0}


def _all_of_mnist(model, *, lr, epochs):
    """The settings of a scale on all 60,000 images: batches of 128; DD fine-tunes for 1
    epoch with its penalty on 8 of each batch, MMR its epochs with the penalty on 4 of
    128; ``"auto"`` and the distances on 1,000 test points (MMA's protocol)."""
    return {
        "models": [model],
        "lr": lr,
        "batch_size": 128,
        **ALL_DATA,
        "epochs": epochs,
        "dd": {"epochs": 1, "reg_batch_size": 8},
        "mmr": {"epochs": epochs, "lr": 1e-3, "reg_batch_size": 4},
        "pgd": {"steps": 100, "step_size": 0.05, "n_points": 1000, "batch_size": 250},
        "distance": {"n_points": 1000, "steps": 100},
    }


def default_config(mode="quick"):
    """The configuration of ``mode`` (``"quick"``, ``"medium"`` or ``"full"``).

    ``"quick"``: LeNetSmall (MMR's net, the smallest ReLU net every method here trains)
    on 10,000 images for 6 epochs on batches of 32, Table 2's quick settings, 200
    evaluation points.
    ``"medium"``: LeNetSmall on all 60,000 images for 15 epochs on batches of 128, the
    distances and ``"auto"`` on 1,000 test points (MMA's protocol). ``"full"``: the CNN of
    Carlini & Wagner on all 60,000 images for 8 epochs, where MMR is left out (its
    distances to the linear regions need a net without max pooling); for a GPU.

    Examples
    --------
    >>> from amrlearn.experiments import frontier
    >>> cfg = frontier.default_config("medium")
    >>> cfg["models"], cfg["distance"]["n_points"], cfg["n_train"], cfg["epochs"]
    (['LeNetSmall'], 1000, None, 15)
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}.")
    common = {
        "experiment": "frontier",
        "mode": mode,
        "datasets": ["mnist"],
        "methods": list(METHODS),
        **APPENDIX_F,
        "pgd_loss": ["pgd", "auto"],
        "eps": {"mnist": list(EPS_GRIDS["mnist"])},
        "margin": None,
        "adv": {"steps": 7, "step_size": "auto"},
        **RUN_DEFAULTS,
    }
    if mode == "full":
        return {**common, **_all_of_mnist("CNN", lr=0.02, epochs=8)}
    if mode == "medium":
        # Quick's learning rate scaled with the batch (0.01 at 32).
        return {**common, **_all_of_mnist("LeNetSmall", lr=0.04, epochs=15)}
    return {
        **common,
        "models": ["LeNetSmall"],
        "lr": 0.01,
        "batch_size": 32,
        "n_train": 10000,
        "n_test": 1000,
        "epochs": 6,
        "dd": {"epochs": 1, "reg_batch_size": 4},
        "mmr": {"epochs": 6, "lr": 1e-3, "reg_batch_size": 2},
        "pgd": {"steps": 100, "step_size": 0.05, "n_points": 200, "batch_size": 200},
        "distance": {"n_points": 200, "steps": 50},
    }


#: Methods a model cannot train, and why (their cells are left out and the summary says so).
UNSUPPORTED = {
    "CNN": {
        "MMR": "MMR's exact distances to the linear regions need a net without max pooling "
        "(the C&W CNN has two); the quick and medium runs' LeNetSmall has its MMR row",
    },
}


def _cells(config):
    return [
        (d, m, meth)
        for d in config["datasets"]
        for m in config["models"]
        for meth in config["methods"]
        if meth not in UNSUPPORTED.get(m, {})
    ]


def run(config, out_dir):
    """Train and measure every cell; writes ``out_dir/results.json`` cell by cell, then
    each cell's ``cost`` relative to the Std cell of its model."""
    results = run_cells("frontier", _cells(config), config, Path(out_dir))
    changed = False
    for d, m, meth in _cells(config):
        cell = results["cells"].get(cell_key(d, m, meth))
        std = results["cells"].get(cell_key(d, m, "Std"))
        if cell is not None and std is not None:
            cell["cost"] = _cost(cell, std)
            changed = True
    if changed:
        store = ResultStore(Path(out_dir) / "results.json", config)
        store.data = results
        store.save()
    return results


def _cost(cell, std):
    """Training CPU time per epoch relative to Std's (Deep Defense, whose epochs are Std's
    pretraining and then its fine-tuning: its whole training relative to Std's)."""
    if cell["method"] == "DD":
        return cell["train_cpu_seconds"] / max(std["train_cpu_seconds"], 1e-9)
    return _epoch_cpu(cell) / max(_epoch_cpu(std), 1e-9)


def _epoch_cpu(cell):
    """The median CPU seconds of a training epoch (``history.cpu``; the first epoch, which
    pays one-off set-up, left out where there are others), else the mean over the run.
    """
    import statistics

    cpu = cell.get("history", {}).get("cpu")
    if not cpu:
        return cell["train_cpu_seconds"] / max(cell["epochs"], 1)
    return statistics.median(cpu[1:] or cpu)


def points(results):
    """One dict per finished cell: method, clean, robust at :data:`FRONTIER_EPS`, mean
    and median distance, and cost (training CPU per epoch relative to Std's)."""
    cfg = results["config"]
    out = []
    for d in cfg["datasets"]:
        for m in cfg["models"]:
            std = results["cells"].get(cell_key(d, m, "Std"))
            for meth in cfg["methods"]:
                cell = results["cells"].get(cell_key(d, m, meth))
                if cell is None or std is None:
                    continue
                eps = cell.get("eps", [])
                at = eps.index(FRONTIER_EPS) if FRONTIER_EPS in eps else None
                out.append(
                    {
                        "dataset": d,
                        "model": m,
                        "method": meth,
                        "clean": cell["clean"],
                        "robust": None if at is None else cell["robust"][at],
                        "mean_distance": cell.get("mean_distance"),
                        "median_distance": cell.get("median_distance"),
                        "cost": cell["cost"] if "cost" in cell else _cost(cell, std),
                    }
                )
    return out


def plot(results, out_dir):
    """Robustness against training cost: mean distance and robust accuracy at eps 1.5,
    every method a point, the Pareto front drawn."""
    from ..plotting import plot_frontier

    pts = points(results)
    if not pts:
        return []
    fig = plot_frontier(pts, keys=("mean_distance", "robust"), eps=FRONTIER_EPS)
    path = Path(out_dir) / "frontier.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return [path]


def _fmt(v, spec=".2f"):
    return "–" if v is None else format(v, spec)


def summarize(results):
    """The frontier table, the front at each cost, AMR's place, and the target."""
    cfg = results["config"]
    pts = points(results)
    out = [
        f"## The cost-robustness frontier ({cfg['mode']} mode, seed {cfg['seed']}, "
        f"device {cfg['device']})",
        "",
        markdown_table(results, None, _cells(cfg), avg_margin=False),
        "",
        f"| method | clean | robust at eps {FRONTIER_EPS:g} | mean distance | median "
        "distance | cost (x Std, CPU per epoch) |",
        "|---|---|---|---|---|---|",
    ]
    for p in pts:
        out.append(
            f"| {p['method']} | {p['clean']:.2f} | {_fmt(p['robust'])} | "
            f"{_fmt(p['mean_distance'], '.3f')} | {_fmt(p['median_distance'], '.3f')} | "
            f"{p['cost']:.2f} |"
        )
    out += [
        "",
        "MMA's table (Ding et al. 2020, CW-L2, 1,000 MNIST points): "
        + "; ".join(f"{k} {d:.2f} at {c:.1f} % clean" for k, (d, c) in MMA_ANCHORS.items()),
        "",
    ]
    for key, label in (
        ("mean_distance", "mean distance"),
        ("robust", f"robust accuracy at eps {FRONTIER_EPS:g}"),
    ):
        front = pareto_front(pts, key)
        if front:
            out.append(
                f"- Front by {label}: "
                + ", then ".join(
                    f"{p['method']} (cost {p['cost']:.2f}, {_fmt(p[key])})" for p in front
                )
            )
    out += _amr_verdict(pts) + _target_verdict(pts)
    for m in cfg["models"]:
        for meth, why in UNSUPPORTED.get(m, {}).items():
            if meth in cfg["methods"]:
                out.append(f"- {m} / {meth}: not run: {why}.")
    out += ["", *status_lines(results)]
    return "\n".join(out)


def _amr_verdict(pts):
    amr = next((p for p in pts if p["method"] == "AMR"), None)
    if amr is None or amr["mean_distance"] is None:
        return []
    better = [
        q
        for q in pts
        if q is not amr
        and q["cost"] <= amr["cost"] * 1.05
        and q["mean_distance"] is not None
        and q["mean_distance"] > amr["mean_distance"]
        and q["clean"] >= amr["clean"] - 0.5
    ]
    if better:
        names = ", ".join(f"{q['method']} ({q['mean_distance']:.3f})" for q in better)
        return [
            f"- AMR is dominated: at no more cost and equal clean accuracy (within 0.5 "
            f"points), {names} reach a larger mean distance than AMR's "
            f"{amr['mean_distance']:.3f}."
        ]
    return [f"- AMR is on the front by mean distance at its cost ({amr['cost']:.2f}x Std)."]


def _target_verdict(pts):
    hits = [
        p
        for p in pts
        if p["mean_distance"] is not None
        and p["mean_distance"] >= TARGET["mean_distance"]
        and p["clean"] >= TARGET["clean"]
        and p["cost"] <= TARGET["cost"]
    ]
    text = (
        f"mean distance >= {TARGET['mean_distance']} at clean >= {TARGET['clean']} % and cost "
        f"<= {TARGET['cost']}x Std"
    )
    if hits:
        return [f"- Target ({text}) met by " + ", ".join(p["method"] for p in hits) + "."]
    return [f"- Target ({text}): not met by any method in this run."]
