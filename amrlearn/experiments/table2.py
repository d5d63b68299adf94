"""Table 2: AMR against standard and PGD adversarial training, Deep Defense and MMR.

``amrlearn reproduce table2 [--quick|--full]`` trains LeNet (MNIST), ConvNet (CIFAR-10)
and LeNetSmall (both) with Std, Adv (PGD training, Appendix F), AMR and AMR's two
ablations (LCR and "AMR (beta=0)"), and, in the paper's groups, DD (Deep Defense
fine-tuning the Std model: LeNet, ConvNet) and MMR (the maximum margin regularizer:
LeNetSmall), and measures the clean and l2 PGD robust accuracy on the paper's eps grid.
"""

from pathlib import Path

from .._paper import (
    ADV_STEP_SIZE,
    ADV_STEPS,
    APPENDIX_F,
    EPOCHS,
    PGD_STEP_SIZE,
    PGD_STEPS,
    TAU,
    TRAIN_TIME_RATIO,
)
from ._common import ALL_DATA, RUN_DEFAULTS, cell_key
from ._paper import EPS
from ._runner import run_cells
from ._summaries import (
    amr_verdicts,
    claim_block,
    markdown_table,
    ortho_lines,
    plot_robust_panels,
    status_lines,
    verdict_line,
)

__all__ = ["default_config", "plot", "run", "summarize"]

#: (dataset, model) pairs of Table 2.
GROUPS = (
    ("mnist", "LeNet"),
    ("mnist", "LeNetSmall"),
    ("cifar10", "ConvNet"),
    ("cifar10", "LeNetSmall"),
)
METHODS = ("Std", "Adv", "LCR", "AMR (beta=0)", "AMR", "DD", "MMR")
#: The groups of the baselines that the paper runs on some models only.
BASELINE_OF = {
    ("mnist", "LeNet"): "DD",
    ("cifar10", "ConvNet"): "DD",
    ("mnist", "LeNetSmall"): "MMR",
    ("cifar10", "LeNetSmall"): "MMR",
}
#: "Comparable to PGD training": AMR's robust accuracy at the largest eps is at most this
#: many points below Adv's (amrlearn's reading; the paper gives no number).
ADV_TOLERANCE = 5.0


def default_config(mode="quick"):
    """The configuration of ``mode`` (``"quick"`` or ``"full"``).

    Examples
    --------
    >>> from amrlearn.experiments import table2
    >>> cfg = table2.default_config("full")
    >>> cfg["adv"], cfg["tau"]["cifar10/ConvNet"]
    ({'steps': 40, 'step_size': 0.01}, 50.0)
    """
    if mode not in ("quick", "full"):
        raise ValueError(f"mode must be 'quick' or 'full', got {mode!r}.")
    common = {
        "experiment": "table2",
        "mode": mode,
        "groups": [list(g) for g in GROUPS],
        "methods": list(METHODS),
        **APPENDIX_F,
        # The evaluation, robust_accuracy(attack=["pgd", "auto"]): the paper's attack
        # (cross-entropy PGD, recorded alone as robust_pgd), then the strong chain on its
        # survivors (a minimum-norm FMN run once across the grid, APGD-CE, APGD-T), so
        # that gradient masking cannot pass for robustness.
        "pgd_loss": ["pgd", "auto"],
        "tau": {f"{d}/{m}": TAU[d, m] for d, m in GROUPS},
        "eps": {k: list(v) for k, v in EPS.items()},
        # Appendix F: random crop and flip for LeNetSmall on CIFAR-10 only.
        "augment": {"cifar10/LeNetSmall": True},
        "margin": None,
        **RUN_DEFAULTS,
    }
    if mode == "full":
        return {
            **common,
            **ALL_DATA,
            "epochs": EPOCHS,
            "adv": {"steps": ADV_STEPS, "step_size": ADV_STEP_SIZE},
            # DD fine-tunes the Std model, MMR trains from scratch: their authors' settings
            # (amrlearn.experiments._recipe.DD_DEFAULTS and MMR_DEFAULTS).
            "dd": {},
            "mmr": {},
            # The whole MNIST / CIFAR-10 test set.
            "pgd": {
                "steps": PGD_STEPS,
                "step_size": PGD_STEP_SIZE,
                "n_points": 10000,
                "batch_size": 1000,
            },
        }
    # Quick: 10,000 MNIST training images and 6 epochs on batches of 32 (the paper:
    # 60,000 images, 200 epochs, batches of 128) at the paper's learning rate 0.01 (at 0.02
    # "AMR (beta=0)" with tau = 40 diverged on LeNet); PGD training with
    # 7 steps of 2.5 eps / 7 (Madry et al.'s step rule; the paper: 40 steps of 0.01);
    # evaluation with 100 PGD steps of 0.05 (MNIST) / 0.01 (CIFAR-10), 2.5 x the largest
    # eps, on 200 test points. DD fine-tunes the Std model for 1 epoch (the authors: 5)
    # with its penalty on 4 samples of each batch of 32 (theirs: every sample of batches of
    # 100); MMR trains 6 epochs with Adam at 1e-3 (theirs: 100 epochs at 1e-4 on MNIST),
    # its regularizer on 2 samples of each batch of 128 (theirs: all 128).
    return {
        **common,
        "lr": 0.01,
        "batch_size": 32,
        "n_train": 10000,
        "n_test": 1000,
        "epochs": 6,
        "adv": {"steps": 7, "step_size": "auto"},
        "dd": {"epochs": 1, "reg_batch_size": 4},
        "mmr": {"epochs": 6, "lr": 1e-3, "reg_batch_size": 2},
        "pgd": {
            "steps": 100,
            "step_size": {"mnist": 0.05, "cifar10": 0.01},
            "n_points": 200,
            "batch_size": 200,
        },
    }


def _in_group(d, m, method):
    """DD and MMR run in their paper's groups only."""
    return method not in BASELINE_OF.values() or BASELINE_OF.get((d, m)) == method


def _cells(config):
    return [
        (d, m, meth)
        for d, m in config["groups"]
        for meth in config["methods"]
        if _in_group(d, m, meth)
    ]


def _rows(config):
    """The paper's order: Std, then the group's baseline (DD or MMR), then the others."""
    rows = []
    for d, m in config["groups"]:
        extra = BASELINE_OF.get((d, m))
        methods = [meth for meth in config["methods"] if meth != extra]
        for meth in methods:
            if _in_group(d, m, meth):
                rows.append((d, m, meth))
            if meth == "Std" and extra in config["methods"]:
                rows.append((d, m, extra))
    return rows


def run(config, out_dir):
    """Train and measure every cell; writes ``out_dir/results.json`` cell by cell."""
    return run_cells("table2", _cells(config), config, Path(out_dir))


def plot(results, out_dir):
    """Robust accuracy against eps per model, ours (solid) and the paper's (dashed)."""
    cfg = results["config"]
    return plot_robust_panels(results, "table2", [tuple(g) for g in cfg["groups"]], out_dir)


def _train_costs(*cells):
    """``(seconds of each cell, kind)``: the cells' training CPU times, or their wall
    times where one of them predates the CPU time."""
    key, kind = "train_cpu_seconds", "CPU"
    if not all(key in c for c in cells):
        key, kind = "train_seconds", "wall"
    return [c[key] for c in cells], kind


def _time_verdicts(results, groups):
    """AMR's training cost against Std's (and Adv's), in CPU time: the wall time of a
    cell depends on what else the machine runs meanwhile (``--jobs``, other users)."""
    lines = []
    for d, m in groups:
        get = results["cells"].get
        std, amr, adv = (get(cell_key(d, m, meth)) for meth in ("Std", "AMR", "Adv"))
        if std is None or amr is None:
            continue
        (t_std, t_amr), kind = _train_costs(std, amr)
        r = t_amr / max(t_std, 1e-9)
        text = (
            f"{d}/{m}: training {kind} time AMR {t_amr:.1f} s vs Std {t_std:.1f} s = "
            f"{r:.2f}x (claim: roughly the same, <= {TRAIN_TIME_RATIO}x)"
        )
        if adv is not None:
            (t_std, t_adv), _ = _train_costs(std, adv)
            text += f"; Adv {t_adv:.1f} s = {t_adv / max(t_std, 1e-9):.1f}x"
        lines.append(verdict_line(r <= TRAIN_TIME_RATIO, text))
    return lines


def _adv_verdicts(results, groups):
    lines = []
    for d, m in groups:
        get = results["cells"].get
        amr, adv = get(cell_key(d, m, "AMR")), get(cell_key(d, m, "Adv"))
        if amr is None or adv is None:
            continue
        e = amr["eps"][-1]
        ok = amr["robust"][-1] >= adv["robust"][-1] - ADV_TOLERANCE
        lines.append(
            verdict_line(
                ok,
                f"{d}/{m}: robust accuracy at eps={e:g}: AMR "
                f"{amr['robust'][-1]:.2f}% vs Adv {adv['robust'][-1]:.2f}% "
                f"(claim: comparable or better, within {ADV_TOLERANCE:g} "
                "points)",
            )
        )
    return lines


def _baseline_verdicts(results, groups):
    """AMR against DD and MMR at the largest eps, and against DD's training time.

    The paper: on MNIST AMR has "overall better robust accuracy" (than DD), on CIFAR-10 it
    is "comparable" to DD (within ``ADV_TOLERANCE`` points), it "consistently
    outperforms MMR", and it is "more efficient than ... deep defense"."""
    robust, cost = [], []
    for d, m in groups:
        base = BASELINE_OF.get((d, m))
        get = results["cells"].get
        amr, other = get(cell_key(d, m, "AMR")), get(cell_key(d, m, base)) if base else None
        if amr is None or other is None:
            continue
        slack = ADV_TOLERANCE if (base == "DD" and d == "cifar10") else 0.0
        ok = amr["robust"][-1] >= other["robust"][-1] - slack
        claim = "comparable" if slack else "better"
        robust.append(
            verdict_line(
                ok,
                f"{d}/{m}: robust accuracy at eps={amr['eps'][-1]:g}: AMR "
                f"{amr['robust'][-1]:.2f}% vs {base} {other['robust'][-1]:.2f}% "
                f"(claim: {claim}" + (f", within {slack:g} points)" if slack else ")"),
            )
        )
        if base == "DD":
            (t_amr, t_dd), kind = _train_costs(amr, other)
            cost.append(
                verdict_line(
                    t_amr < t_dd,
                    f"{d}/{m}: training {kind} time AMR {t_amr:.1f} s vs DD {t_dd:.1f} s "
                    "(Std epochs plus the fine-tuning)",
                )
            )
    return robust, cost


def summarize(results):
    """The Markdown table next to the paper's, then one verdict line per claim."""
    cfg = results["config"]
    groups = [tuple(g) for g in cfg["groups"]]
    v = amr_verdicts(results, groups)
    out = [
        f"## Table 2 ({cfg['mode']} mode, seed {cfg['seed']}, device {cfg['device']})",
        "",
        markdown_table(results, "table2", _rows(cfg), avg_margin=False),
        "",
        "### Verdicts",
        "",
    ]
    out += claim_block("AMR's robust accuracy beats Std's at the largest eps", v["robust"])
    out.append("")
    out += claim_block(
        "AMR is comparable to PGD adversarial training at the largest eps",
        _adv_verdicts(results, groups),
    )
    out.append("")
    baseline_robust, baseline_cost = _baseline_verdicts(results, groups)
    out += claim_block(
        "AMR beats DD on MNIST, is comparable to DD on CIFAR-10, and beats MMR on both, "
        "in robust accuracy at the largest eps",
        baseline_robust,
    )
    out.append("")
    out += claim_block(
        "AMR trains in roughly the time of standard training", _time_verdicts(results, groups)
    )
    out.append("")
    out += claim_block("AMR trains faster than DD", baseline_cost)
    out.append("")
    out += claim_block(
        "What AMR adds over its ablations (LCR; AMR (beta=0)): higher robust "
        "accuracy at the largest eps than both",
        v["ablation"],
    )
    out += ortho_lines(results, groups, cfg["methods"])
    out += ["", *status_lines(results)]
    return "\n".join(out)
