"""Figures 2, 3, 5, 6, 7 and 8: margins over epochs, AMR vs Std, histograms, training curves.

``amrlearn reproduce figures [--quick|--full]`` trains LR, MLP and CNN on MNIST and
CIFAR-10 with Std, AMR and AMR's two ablations (LCR = lambda 0 with AMR's beta, and
"AMR (beta=0)"), recording Theorem 3's min and average margin on fixed training and test
points at the tracking epochs of Appendix F, and draws:

* ``fig2_6_tradeoff_<dataset>.png``: min and average margin of standard training over
  epochs (Figure 2 is CIFAR-10, Figure 6 MNIST);
* ``fig3_avg_margin_<dataset>.png``: the average margin of every method over epochs;
* ``fig5_training_curves.png``: training loss, training and test error of standard training;
* ``fig7_8_histograms_<dataset>_<model>.png``: margin histograms at the tracked epochs
  (Figure 7 is MNIST, Figure 8 CIFAR-10).
"""

from pathlib import Path

from .._paper import (
    APPENDIX_F,
    BOUND_BUDGET,
    EPOCHS,
    LR_EPOCHS,
    MARGIN_RATIO,
    N_POINTS,
    TRACK_EPOCHS,
)
from ._common import ALL_DATA, DATASET_NAMES, RUN_DEFAULTS, cell_key, check_datasets
from ._runner import grid_cells, run_cells
from ._summaries import claim_block, status_lines, tradeoff_verdicts, verdict_line

__all__ = ["default_config", "plot", "run", "summarize"]

#: The paper's datasets, run by default; Fashion-MNIST (not in the paper) when asked for.
DATASETS = ("mnist", "cifar10")
EXTRA_DATASETS = ("fashion-mnist",)
MODELS = ("LR", "MLP", "CNN")
METHODS = ("Std", "LCR", "AMR (beta=0)", "AMR")
#: Section 5.3: AMR's average margin over Std's, "2~3 times" for LR and MLP, "1.5~2" for CNN.
PAPER_RATIO = {"LR": (2.0, 3.0), "MLP": (2.0, 3.0), "CNN": (1.5, 2.0)}
#: Theorem 3's radius r = 5: quick mode keeps it and samples fewer points in the ball.
RADIUS = BOUND_BUDGET["radius"]


def default_config(mode="quick", datasets=None):
    """The configuration of ``mode`` (``"quick"`` or ``"full"``).

    ``datasets`` replaces the default MNIST and CIFAR-10 with any of ``"mnist"``,
    ``"fashion-mnist"`` (not in the paper; MNIST's settings) and ``"cifar10"``.

    Examples
    --------
    >>> from amrlearn.experiments import figures
    >>> cfg = figures.default_config("full")
    >>> cfg["epochs"]["LR"], cfg["track"]["epochs"]["default"][-1]
    (1000, 200)
    """
    if mode not in ("quick", "full"):
        raise ValueError(f"mode must be 'quick' or 'full', got {mode!r}.")
    keys = DATASETS
    if datasets is not None:
        keys = check_datasets(datasets, DATASETS + EXTRA_DATASETS, f"figures in {mode} mode")
    common = {
        "experiment": "figures",
        "mode": mode,
        "datasets": list(keys),
        "models": list(MODELS),
        "methods": list(METHODS),
        **APPENDIX_F,
        "pgd": None,
        "margin": None,
        **RUN_DEFAULTS,
    }
    if mode == "full":
        return {
            **common,
            **ALL_DATA,
            "epochs": {"LR": LR_EPOCHS, "MLP": EPOCHS, "CNN": EPOCHS},
            # Appendix F: every epoch for LR (whose bound is exact with one sample);
            # these epochs for the others; 500 points, r = 5, 50 x 1024 samples.
            "track": {
                "epochs": {"LR": "all", "default": list(TRACK_EPOCHS)},
                "n_points": N_POINTS,
                **BOUND_BUDGET,
            },
        }
    # Quick: the training settings of table1's quick mode (10,000 images; LR and MLP 30
    # epochs on batches of 128 at learning rate 0.05, the CNN 8 epochs on batches of 32
    # at 0.02); margins on 200 (LR, MLP) / 100 (CNN) fixed points with 32 / 16 samples
    # in the r = 5 ball (LR: exact, one sample), at log-spaced epochs.
    flat = {
        "epochs": [1, 2, 5, 10, 20, 30],
        "n_points": 200,
        "radius": RADIUS,
        "n_batches": 1,
        "batch_size": 32,
    }
    return {
        **common,
        "lr": {"LR": 0.05, "MLP": 0.05, "CNN": 0.02},
        "batch_size": {"LR": 128, "MLP": 128, "CNN": 32},
        "n_train": 10000,
        "n_test": 1000,
        "epochs": {"LR": 30, "MLP": 30, "CNN": 8},
        "track": {
            "LR": flat,
            "MLP": flat,
            "CNN": {
                "epochs": [1, 2, 4, 8],
                "n_points": 100,
                "radius": RADIUS,
                "n_batches": 1,
                "batch_size": 16,
            },
        },
    }


def run(config, out_dir):
    """Train every cell with margin tracking; writes ``out_dir/results.json`` cell by cell."""
    return run_cells("figures", grid_cells(config), config, Path(out_dir), track=lambda cell: True)


def _title(dataset, model):
    return f"{DATASET_NAMES[dataset]}-{model}"


def plot(results, out_dir):
    """Draw Figures 2/6, 3, 5 and 7/8 from the results; returns the PNG paths."""
    import matplotlib.pyplot as plt

    from ..plotting import plot_margin_histograms, plot_margin_paths, plot_training_curves_grid

    cfg = results["config"]
    out_dir = Path(out_dir)
    cells = results["cells"]
    paths = []

    def save(fig, name):
        path = out_dir / name
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)

    curves = {}
    for dataset in cfg["datasets"]:
        tradeoff_min, tradeoff_avg, compare = {}, {}, {}
        for model in cfg["models"]:
            std = cells.get(cell_key(dataset, model, "Std"))
            if std is not None:
                p = std["margin_path"]
                title = _title(dataset, model)
                tradeoff_min[f"{title}: min margin"] = {
                    "epochs": p["train"]["epoch"],
                    "series": {f"{s}": p[s]["min_margin"] for s in p},
                }
                tradeoff_avg[f"{title}: avg margin"] = {
                    "epochs": p["train"]["epoch"],
                    "series": {f"{s}": p[s]["avg_margin"] for s in p},
                }
                h = std["history"]
                curves[title] = {
                    "epochs": h["epoch"],
                    "train_loss": h.get("train_loss"),
                    "train_error": [1 - a for a in h["train_acc"]] if "train_acc" in h else None,
                    "test_error": [1 - a for a in h["valid_acc"]] if "valid_acc" in h else None,
                }
                # Figures 7 and 8: histograms at the tracked epochs, train and test rows.
                sets, titles = [], []
                for split in p:
                    for e, m in zip(p[split]["epoch"], p[split]["margins"]):
                        sets.append(m)
                        titles.append(f"{split}, epoch {e}")
                if sets:
                    fig = plot_margin_histograms(
                        sets, titles, bins=30, ncols=len(p["train"]["epoch"])
                    )
                    fig.suptitle(f"{title}, standard training")
                    fig.tight_layout()
                    save(fig, f"fig7_8_histograms_{dataset}_{model}.png")
            series = {}
            for method in cfg["methods"]:
                cell = cells.get(cell_key(dataset, model, method))
                if cell is not None:
                    series[method] = cell["margin_path"]["test"]["avg_margin"]
                    epochs = cell["margin_path"]["test"]["epoch"]
            if series:
                compare[_title(dataset, model)] = {"epochs": epochs, "series": series}
        if tradeoff_min:
            panels = {**tradeoff_min, **tradeoff_avg}
            fig = plot_margin_paths(
                panels,
                ncols=len(tradeoff_min),
                suptitle="Standard training: min and average margin",
            )
            save(fig, f"fig2_6_tradeoff_{dataset}.png")
        if compare:
            fig = plot_margin_paths(
                compare,
                ylabel="average margin (test)",
                suptitle="Average margin: AMR, its ablations and Std",
            )
            save(fig, f"fig3_avg_margin_{dataset}.png")
    if curves:
        save(plot_training_curves_grid(curves), "fig5_training_curves.png")
    return paths


def summarize(results):
    """Final margins per cell, AMR/Std ratios next to the paper's, and the verdict lines."""
    cfg = results["config"]
    cells = results["cells"]
    out = [
        f"## Figures 2, 3, 5-8 ({cfg['mode']} mode, seed {cfg['seed']}, device {cfg['device']})",
        "",
        "Last tracked epoch, Theorem 3 margins on the fixed test points; the ratio is the "
        "method's average margin over Std's (paper, section 5.3: 2-3x for LR and MLP, "
        "1.5-2x for CNN, for AMR).",
        "",
        "| dataset | model | method | epoch | test accuracy | min margin | avg margin | "
        "ratio to Std | paper ratio (AMR) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    ratio_lines, ablation_lines = [], []
    for dataset in cfg["datasets"]:
        for model in cfg["models"]:
            std = cells.get(cell_key(dataset, model, "Std"))
            for method in cfg["methods"]:
                key = cell_key(dataset, model, method)
                cell = cells.get(key)
                if cell is None:
                    why = results.get("skipped", {}).get(key, "pending (not run yet)")
                    out.append(
                        f"| {DATASET_NAMES[dataset]} | {model} | {method} | {why} | | | | | |"
                    )
                    continue
                p = cell["margin_path"]["test"]
                last_min, last_avg = p["min_margin"][-1], p["avg_margin"][-1]
                ratio = (
                    last_avg / std["margin_path"]["test"]["avg_margin"][-1]
                    if std is not None
                    else None
                )
                lo, hi = PAPER_RATIO[model]
                out.append(
                    f"| {DATASET_NAMES[dataset]} | {model} | {method} | {p['epoch'][-1]} | "
                    f"{cell['clean']:.2f} | {last_min:.3f} | {last_avg:.3f} | "
                    + (f"{ratio:.2f}x" if ratio is not None else "—")
                    + f" | {f'{lo:g}-{hi:g}x' if method == 'AMR' else ''} |"
                )
            amr = cells.get(cell_key(dataset, model, "AMR"))
            if std is None or amr is None:
                continue
            a = amr["margin_path"]["test"]["avg_margin"][-1]
            s = std["margin_path"]["test"]["avg_margin"][-1]
            ratio_lines.append(
                verdict_line(
                    a >= MARGIN_RATIO * s,
                    f"{dataset}/{model}: AMR {a:.3f} vs Std {s:.3f} = "
                    f"{a / max(s, 1e-12):.2f}x (claim: >= {MARGIN_RATIO}x)",
                )
            )
            parts, ok = [], True
            for abl in ("LCR", "AMR (beta=0)"):
                c = cells.get(cell_key(dataset, model, abl))
                if c is not None:
                    d = a - c["margin_path"]["test"]["avg_margin"][-1]
                    ok = ok and d > 0
                    parts.append(f"over {abl} {d:+.3f}")
            if parts:
                ablation_lines.append(
                    verdict_line(ok, f"{dataset}/{model}: AMR's avg margin " + ", ".join(parts))
                )
    std_keys = [cell_key(d, m, "Std") for d in cfg["datasets"] for m in cfg["models"]]
    out += ["", "### Verdicts", ""]
    out += claim_block(
        "Figures 2 and 6: during standard training the minimum margin rises "
        "while the average margin falls",
        tradeoff_verdicts(results, std_keys),
    )
    out.append("")
    out += claim_block(
        f"Figure 3: AMR's average margin is at least {MARGIN_RATIO}x Std's", ratio_lines
    )
    out.append("")
    out += claim_block(
        "What AMR adds over its ablations (LCR; AMR (beta=0)): a higher average margin than both",
        ablation_lines,
    )
    out += ["", *status_lines(results)]
    return "\n".join(out)
