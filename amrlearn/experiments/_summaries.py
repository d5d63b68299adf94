"""The summaries of the experiments: Markdown tables, verdicts, run status, robust panels.

Every experiment (figure1, table1, table2, figures) and the demo print their numbers
through these, so a table and a verdict read the same everywhere.
"""

from pathlib import Path

import numpy as np

from .._paper import MARGIN_RATIO
from ._common import DATASET_NAMES, cell_key
from ._paper import EPS_GRIDS, paper_row

__all__ = [
    "amr_verdicts",
    "claim_block",
    "markdown_table",
    "ortho_lines",
    "plot_penalty_curves",
    "plot_robust_panels",
    "simple_table",
    "status_lines",
    "tradeoff_verdicts",
    "verdict_line",
]


def _row(values):
    return "| " + " | ".join(str(v) for v in values) + " |"


def simple_table(head, rows, *, digits=4):
    """A Markdown table: a header, then rows of a label followed by numbers.

    Parameters
    ----------
    head : list of str
    rows : list of (str, float, ...)
    digits : int, default=4
        Decimals of the numbers.

    Returns
    -------
    lines : list of str

    Examples
    --------
    >>> from amrlearn.experiments._summaries import simple_table
    >>> print("\\n".join(simple_table(["model", "min"], [("SVM", 1.0)], digits=2)))
    | model | min |
    |---|---|
    | SVM | 1.00 |
    """
    lines = [_row(head), "|" + "---|" * len(head)]
    for label, *values in rows:
        lines.append(_row([label, *(f"{v:.{digits}f}" for v in values)]))
    return lines


def verdict_line(ok, text):
    """``- holds: text`` or ``- does not hold: text``: one line of a claim's verdict."""
    return f"- {'holds' if ok else 'does not hold'}: {text}"


def _fmt(value, ref, digits):
    if value is None:
        return "—"
    if ref is None:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ({ref:.{digits}f}, {value - ref:+.{digits}f})"


def _fmt_robust(auto, pgd, ref, digits=2):
    """A robust-accuracy cell: ``auto / pgd (paper, auto - paper)``; ``auto (...)`` alone
    where the paper's attack was not recorded apart (older results).

    Examples
    --------
    >>> from amrlearn.experiments._summaries import _fmt_robust
    >>> _fmt_robust(40.0, 87.5, 87.52)
    '40.00 / 87.50 (87.52, -47.52)'
    >>> _fmt_robust(40.0, None, None)
    '40.00'
    """
    text = _fmt(auto, ref, digits)
    if pgd is None:
        return text
    head, sep, tail = text.partition(" (")
    return f"{head} / {pgd:.{digits}f}" + (f" ({tail}" if sep else "")


def markdown_table(results, table, rows, *, avg_margin=True, not_implemented=()):
    """Our numbers side by side with the paper's: each cell reads ``ours (paper, ours-paper)``.

    A robust-accuracy cell reads ``auto / pgd (paper, auto - paper)``: the strong
    evaluation (``robust``, which the verdicts use), then the paper's attack alone
    (``robust_pgd``, cross-entropy PGD), then the paper's number and the difference of
    the strong one from it. Cells of older results without ``robust_pgd`` show the
    first number alone.

    Parameters
    ----------
    results : dict
        What :func:`~._runner.run_cells` returned.
    table : {"table1", "table2"} or None
        Which of the paper's tables to compare with; ``None``: none (our numbers alone).
    rows : list of (dataset, model, method)
        In display order.
    avg_margin : bool
        Add Table 1's last column.
    not_implemented : tuple of str
        Methods whose rows say "not yet implemented".
    """
    lines = []
    for dataset in dict.fromkeys(r[0] for r in rows):
        eps = EPS_GRIDS[dataset]
        head = ["dataset", "model", "method", "clean"] + [f"eps={e:g}" for e in eps]
        if avg_margin:
            head.append("avg margin")
        legend = (
            "ours (paper, ours − paper); robust accuracy: auto / pgd (paper, auto − paper)"
            if table
            else "robust accuracy: auto / pgd"
        )
        lines += [
            "",
            f"**{DATASET_NAMES[dataset]}** (accuracies in %; each cell: {legend}, "
            "auto = the strong evaluation, pgd = the paper's attack, cross-entropy PGD)",
            "",
            _row(head),
            "|" + "---|" * len(head),
        ]
        for ds, model, method in rows:
            if ds != dataset:
                continue
            key = cell_key(ds, model, method)
            ref = paper_row(table, ds, model, method) if table else None
            prefix = [DATASET_NAMES[ds], model, method]
            if method in not_implemented:
                values = [f"not yet implemented (paper {ref['clean']:.2f})"]
                values += [f"— ({r:.2f})" for r in ref["robust"]]
                if avg_margin:
                    values.append("—")
                lines.append(_row(prefix + values))
                continue
            cell = results["cells"].get(key)
            if cell is None:
                why = results.get("skipped", {}).get(key, "pending (not run yet)")
                n = len(head) - 3
                lines.append(_row(prefix + [why] + [""] * (n - 1)))
                continue
            values = [_fmt(cell["clean"], ref and ref["clean"], 2)]
            if cell.get("diverged"):
                values[0] = "diverged (training loss not finite): " + values[0]
            pgd = cell.get("robust_pgd") or [None] * len(cell["robust"])
            values += [
                _fmt_robust(v, p, ref and ref["robust"][i])
                for i, (v, p) in enumerate(zip(cell["robust"], pgd))
            ]
            if avg_margin:
                values.append(_fmt(cell.get("avg_margin"), ref and ref.get("avg_margin"), 2))
            lines.append(_row(prefix + values))
    return "\n".join(lines).strip("\n")


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
            mins, avgs = p["min_margin"], p["avg_margin"]
            peak = int(np.argmax(avgs))
            up = mins[-1] > mins[0]
            down = avgs[-1] < avgs[peak] and peak < len(avgs) - 1
            lines.append(
                verdict_line(
                    up and down,
                    f"{key} ({split}): min margin {mins[0]:.3f} (epoch {e0}) -> "
                    f"{mins[-1]:.3f} (epoch {e1}) ({'rises' if up else 'does not rise'}); "
                    f"avg margin {avgs[0]:.3f} (epoch {e0}), peak {avgs[peak]:.3f} "
                    f"(epoch {p['epoch'][peak]}) -> {avgs[-1]:.3f} (epoch {e1}) "
                    f"({'falls from its peak' if down else 'does not fall'})",
                )
            )
    return lines


def amr_verdicts(results, groups, *, ratio=MARGIN_RATIO):
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
            lines["ratio"].append(
                verdict_line(
                    r >= ratio,
                    f"{name}: AMR avg margin {amr['avg_margin']:.3f} vs Std "
                    f"{std['avg_margin']:.3f} = {r:.2f}x (claim: >= {ratio}x)",
                )
            )
        e = std["eps"][-1]
        lines["robust"].append(
            verdict_line(
                amr["robust"][-1] > std["robust"][-1],
                f"{name}: robust accuracy at eps={e:g}: AMR {amr['robust'][-1]:.2f}% vs Std "
                f"{std['robust'][-1]:.2f}%",
            )
        )
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
            gain = f"{name}: AMR's own gain " + "; ".join(parts)
            lines["ablation"].append(verdict_line(ok, gain))
    return lines


def ortho_lines(results, groups, methods, *, note=""):
    """The orthogonality penalty each cell ended with, per (dataset, model), under a
    heading that ends with ``note``; no lines where no cell has been run.

    Not a verdict: it tells how far the Lipschitz control of LCR and AMR (beta > 0) got
    in the run, which is where a short run differs most from the paper's 200 epochs.
    """
    lines = []
    for dataset, model in groups:
        parts, curves = [], []
        for method in methods:
            cell = results["cells"].get(cell_key(dataset, model, method))
            if cell is not None and "ortho_penalty" in cell:
                parts.append(f"{method} {cell['ortho_penalty']:.1f}")
                curve = _curve_text(cell.get("history", {}))
                if curve:
                    curves.append(f"  - {method}: {curve}")
        if parts:
            lines.append(f"- {dataset}/{model}: " + ", ".join(parts))
            if curves:
                lines += ["  - its curve, epoch: value", *curves]
    if not lines:
        return []
    head = (
        "Orthogonality penalty sum_l ||W_l W_l^T - I||_F^2 at the end of training "
        f"(beta > 0 for LCR and AMR){note}:"
    )
    return ["", head, *lines]


def _curve_text(history, n=6):
    """The recorded penalty at about ``n`` epochs spread over training, as text."""
    values = history.get("ortho_penalty")
    if not values:
        return ""
    epochs = history.get("epoch") or list(range(1, len(values) + 1))
    picks = sorted({int(round(i)) for i in np.linspace(0, len(values) - 1, n)})
    return ", ".join(f"{epochs[i]}: {values[i]:.1f}" for i in picks)


def plot_penalty_curves(results, groups, out_dir):
    """The orthogonality penalty after each epoch, one panel per (dataset, model) group.

    Returns
    -------
    paths : list of Path
        ``ortho_penalty.png`` in ``out_dir``, or nothing when no cell recorded the curve.
    """
    import matplotlib.pyplot as plt

    cfg = results["config"]
    panels = []
    for dataset, model in groups:
        curves = {}
        for method in cfg["methods"]:
            cell = results["cells"].get(cell_key(dataset, model, method))
            hist = (cell or {}).get("history", {})
            if hist.get("ortho_penalty"):
                curves[method] = (hist["epoch"], hist["ortho_penalty"])
        if curves:
            panels.append((f"{dataset.upper()}-{model}", curves))
    if not panels:
        return []
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.5), squeeze=False)
    for ax, (title, curves) in zip(axes[0], panels):
        for method, (epochs, values) in curves.items():
            ax.plot(epochs, values, marker=".", label=method)
        ax.set(title=title, xlabel="epoch", ylabel=r"$\sum_l \|W_l W_l^T - I\|_F^2$")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(out_dir) / "ortho_penalty.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]


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
    state = (
        "complete"
        if results.get("complete")
        else "finished (except skipped cells)"
        if results.get("finished")
        else "partial"
    )
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
    import matplotlib.pyplot as plt

    from ..plotting import plot_robust_accuracy

    cfg = results["config"]
    panels = {}
    for dataset, model in groups:
        series, paper = {}, {}
        for method in cfg["methods"]:
            cell = results["cells"].get(cell_key(dataset, model, method))
            if cell is None:
                continue
            series[method] = [cell["clean"], *cell["robust"]]
            ref = paper_row(table, dataset, model, method)
            if ref is not None:
                paper[method] = [ref["clean"], *ref["robust"]]
        if series:
            panels[f"{dataset.upper()}-{model}"] = {
                "eps": [0.0, *cfg["eps"][dataset]],
                "series": series,
                "paper": paper,
            }
    if not panels:
        return []
    fig = plot_robust_accuracy(panels)
    path = Path(out_dir) / f"{table}_robust_accuracy.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]
