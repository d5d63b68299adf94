"""The report of :func:`~amrlearn.evaluation.evaluate`: numbers, Markdown, files."""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["EvaluationReport"]

_CURVE_FILE = "robustness_curve.png"


def duration(seconds):
    """``seconds`` for a person: ``"42 s"``, ``"3.5 min"``, ``"2.1 h"``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


@dataclass
class EvaluationReport:
    """What :func:`evaluate` measured. Accuracies are fractions in [0, 1].

    Attributes
    ----------
    n_points : int
        The points evaluated.
    clean : float
        Clean accuracy.
    eps : ndarray of shape (n_eps,)
    attacks : list of str
        The chain that ran, in order (``["pgd", "fmn", "apgd-ce/50", "apgd-t3/50"]`` for the
        default ``["pgd", "auto"]``).
    robust : ndarray of shape (n_eps,)
        Robust accuracy under the whole chain: the strong number.
    robust_by_attack : dict of str to ndarray of shape (n_eps,)
        The accuracy after each attack of the chain; ``robust_by_attack["pgd"]`` is the
        paper's number (cross-entropy l2 PGD).
    masking : list of float
        The eps where the attacks after the first break more than 5 % of the points that
        the first left robust: the first attack's number is not to be trusted there.
    alarms : list of str
        The :class:`~amrlearn.exceptions.EvaluationWarning` messages raised on the way.
    curve : RobustnessCurve or None
        Robust accuracy against eps from the minimum-norm ensemble, with the Theorem 3
        estimate below it (:func:`amrlearn.metrics.robustness_curve`).
    avg_margin_lower, avg_margin_upper : float or None
        The bracket of the average margin (mean ``|m|``) that the curve's per-sample ends
        give, as :func:`~amrlearn.metrics.margin_report` reports it.
    seconds, estimated_seconds : float
        Wall time taken, and the estimate printed before the start.
    settings : dict
        The budgets used.
    source : dict
        What was evaluated: the model, the weights' file and sha256, the data (set by
        :func:`evaluate_checkpoint`).
    environment : dict
        Versions and machine facts, as the experiments record them.
    """

    n_points: int
    clean: float
    eps: np.ndarray
    attacks: list
    robust: np.ndarray
    robust_by_attack: dict = field(repr=False)
    masking: list = field(default_factory=list)
    alarms: list = field(default_factory=list, repr=False)
    curve: object = field(default=None, repr=False)
    avg_margin_lower: float = None
    avg_margin_upper: float = None
    seconds: float = 0.0
    estimated_seconds: float = None
    settings: dict = field(default_factory=dict, repr=False)
    source: dict = field(default_factory=dict, repr=False)
    environment: dict = field(default_factory=dict, repr=False)

    @property
    def robust_pgd(self):
        """The paper's number: the accuracy after the chain's PGD (``None`` without one)."""
        return self.robust_by_attack.get("pgd")

    def to_dict(self):
        """Everything as JSON-ready types (what ``results.json`` holds)."""
        from ..experiments._common import to_jsonable

        out = {
            "source": self.source,
            "n_points": self.n_points,
            "clean": self.clean,
            "eps": self.eps,
            "attacks": self.attacks,
            "robust": self.robust,
            "robust_pgd": self.robust_pgd,
            "robust_by_attack": self.robust_by_attack,
            "masking": self.masking,
            "alarms": self.alarms,
            "avg_margin_lower": self.avg_margin_lower,
            "avg_margin_upper": self.avg_margin_upper,
            "seconds": self.seconds,
            "estimated_seconds": self.estimated_seconds,
            "settings": self.settings,
            "environment": self.environment,
        }
        if self.curve is not None:
            c = self.curve
            out["curve"] = {
                "eps": c.eps,
                "accuracy": c.accuracy,
                "accuracy_lower": c.accuracy_lower,
                "at_eps": {"accuracy": c.accuracy_at(self.eps)},
                "lower": c.lower,
                "upper": c.upper,
            }
            out["curve"]["at_eps"]["accuracy_lower"] = c.accuracy_lower_at(self.eps)
        return to_jsonable(out)

    def summary(self):
        """The report as Markdown (what ``summary.md`` holds)."""
        src = self.source
        pct = "{:.2f}".format
        title = src.get("model", "model")
        if src.get("weights"):
            title += f", weights {src['weights']} (sha256 {src.get('sha256', '?')[:12]})"
        lines = [f"## amrlearn evaluate: {title}", ""]
        if src.get("dropped"):
            lines += [f"Left out of the checkpoint: {', '.join(src['dropped'])}.", ""]
        if src.get("data"):
            lines += [f"Data: {src['data']}, {self.n_points} points.", ""]
        lines += [f"Clean accuracy: {pct(100 * self.clean)} %", ""]
        first, rest = self.attacks[0], ", ".join(self.attacks[1:])
        head = ["eps", f"{first} (the paper's attack)" if first == "pgd" else first]
        if rest:
            head.append(f"all attacks ({first}, {rest})")
        if self.curve is not None:
            head += ["curve: minimum-norm ensemble", "curve: Theorem 3 estimate"]
            at, low = self.curve.accuracy_at(self.eps), self.curve.accuracy_lower_at(self.eps)
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        first_acc = self.robust_by_attack[first]
        for i, e in enumerate(self.eps):
            row = [f"{e:g}", pct(100 * first_acc[i])]
            if rest:
                row.append(pct(100 * self.robust[i]))
            if self.curve is not None:
                row += [pct(100 * at[i]), pct(100 * low[i])]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
        if not rest:
            lines.append("Gradient masking: not checked (one attack; add 'auto').")
        elif self.masking:
            lines.append(
                f"**Gradient-masking alarm** at eps = {', '.join(f'{e:g}' for e in self.masking)}:"
                f" the attacks after {first} break more than 5 % of the points it left "
                f"robust; {first}'s robust accuracy overstates robustness there."
            )
        else:
            gap = float(np.max(first_acc - self.robust))
            lines.append(
                f"Gradient masking: no sign of it ({rest} break at most "
                f"{100 * gap:.1f} points more than {first}; the alarm rings above 5)."
            )
        if self.avg_margin_lower is not None:
            lines += [
                "",
                f"Average margin (mean |m|): between {self.avg_margin_lower:.3f} (Theorem 3 "
                f"estimate, tightened) and {self.avg_margin_upper:.3f} (minimum-norm ensemble).",
            ]
        lines += ["", *(f"- alarm: {a}" for a in self.alarms)]
        if self.alarms:
            lines.append("")
        took = f"Took {duration(self.seconds)}"
        if self.estimated_seconds is not None:
            took += f" (estimated {duration(self.estimated_seconds)})"
        s = self.settings
        curve = (
            "no curve"
            if s.get("curve_steps") is None
            else f"curve: {s.get('curve_steps')} steps of FMN and DDN"
        )
        lines.append(
            f"{took}. PGD: {s.get('steps')} steps of {s.get('step_size')}; {curve}; "
            f"device {s.get('device')}."
        )
        return "\n".join(lines)

    def save(self, out):
        """Write ``results.json``, ``summary.md`` and (with a curve)
        ``robustness_curve.png`` into the folder ``out``; returns their paths."""
        import json

        out = Path(out)
        if out.exists() and not out.is_dir():
            raise NotADirectoryError(f"the output folder {out} is a file.")
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "results.json", out / "summary.md"]
        paths[0].write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        paths[1].write_text(self.summary() + "\n")
        if self.curve is not None:
            import matplotlib.pyplot as plt

            from ..plotting import plot_robustness_curve

            first = self.attacks[0]
            label = f"{first} (the paper's attack)" if first == "pgd" else first
            marks = {label: (self.eps, self.robust_by_attack[first])}
            if len(self.attacks) > 1:
                marks["all attacks"] = (self.eps, self.robust)
            ax = plot_robustness_curve(self.curve, pgd=marks)
            ax.set_title(self.source.get("model", ""), fontsize="small")
            ax.figure.tight_layout()
            ax.figure.savefig(out / _CURVE_FILE, dpi=120)
            plt.close(ax.figure)
            paths.append(out / _CURVE_FILE)
        return paths
