"""amrlearn ``robust_accuracy(attack="auto")`` against torchattacks' AutoAttack (L2, standard).

The models are the quick Table 1 MNIST MLP and CNN, trained with Std and AMR exactly as
``amrlearn reproduce table1 --quick`` trains them; the points are the table's fixed test
points (500 by default), the radii the paper's grid, and amrlearn's PGD budget the
table's (MLP 200 x 0.05, CNN 100 x 0.05). AutoAttack (torchattacks 3.5.1, ``norm="L2"``,
``version="standard"``: APGD-CE, APGD-T, FAB-T, Square) runs on the same net, the same
points, in the same process, one eps after the other.

Per cell: amrlearn's ``"auto"`` and ``"pgd"`` accuracies and time (one call gives both),
AutoAttack's accuracy and time, the samples that each one alone breaks, and (what decided
APGD-T's place in ``"auto"``) the accuracy and time of the chain without it, cross-entropy
PGD then logit-margin PGD. Targets: ``auto <= AutoAttack + 0.5 pp`` in every cell,
and amrlearn's time at most half of AutoAttack's.

    PYTHONPATH=/path/to/torchattacks python benchmarks/bench_autoattack.py \
        [--n-points 500] [--models MLP,CNN] [--methods Std,AMR] [--eps ...] [--cache DIR] \
        [--threads 1] [--out FILE]
"""

import time

import numpy as np
import torch
from _bench_common import make_parser, train_table1_net, write_result

from amrlearn.attacks import robust_accuracy
from amrlearn.experiments._paper import EPS
from amrlearn.experiments._recipe import per_model
from amrlearn.experiments._runner import _fixed_points


class _Logits(torch.nn.Module):
    """The net's logits alone (amrlearn's modules also return their features)."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        out = self.module(x)
        return out[0] if isinstance(out, tuple) else out


def _autoattack(torchattacks, logits, X, y, eps):
    """AutoAttack's robust samples at ``eps``, its time, and its largest perturbation."""
    aa = torchattacks.AutoAttack(
        logits, norm="L2", eps=eps, version="standard", n_classes=10, seed=0
    )
    start = time.perf_counter()
    X_adv = aa(X, y)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        robust = (logits(X_adv).argmax(1) == y).numpy()
    return robust, seconds, float((X_adv.detach() - X).flatten(1).norm(dim=1).max())


def _cell(torchattacks, model, method, args):
    net, data, config = train_table1_net(model, method, cache=args.cache)
    pgd = per_model(config["pgd"], model)
    kw = dict(
        steps=pgd["steps"],
        step_size=pgd["step_size"]["mnist"],
        batch_size=pgd["batch_size"],
        random_state=config["seed"],
    )
    Xp, yp = _fixed_points(data["X_test"], data["y_test"], args.n_points, config["seed"])
    X, y = torch.from_numpy(Xp), torch.from_numpy(yp)
    eps = list(args.eps)
    # The strong evaluation, and (for its cost and what APGD-T adds) the chain without it.
    start = time.perf_counter()
    two = robust_accuracy(
        net, X, y, eps=eps, attack=["pgd", "pgd-margin"], return_details=True, **kw
    )
    t_two = time.perf_counter() - start
    start = time.perf_counter()
    auto = robust_accuracy(net, X, y, eps=eps, attack="auto", return_details=True, **kw)
    t_auto = time.perf_counter() - start
    logits = _Logits(net.module_).eval()
    rows = []
    for i, e in enumerate(eps):
        aa_robust, t_aa, aa_norm = _autoattack(torchattacks, logits, X, y, e)
        ours, ours_two = auto.robust[:, i], two.robust[:, i]
        row = {
            "eps": e,
            "amrlearn_pgd": float(auto.robust_by_attack["pgd"][:, i].mean()),
            "amrlearn_pgd_margin": float(ours_two.mean()),
            "amrlearn_auto": float(ours.mean()),
            "autoattack": float(aa_robust.mean()),
            "autoattack_s": t_aa,
            "autoattack_max_norm": aa_norm,
            "broken_by_autoattack_only": int(np.sum(ours & ~aa_robust)),
            "broken_by_amrlearn_only": int(np.sum(~ours & aa_robust)),
            "broken_by_autoattack_not_pgd_margin": int(np.sum(ours_two & ~aa_robust)),
            "broken_by_apgd_t_after_pgd_margin": int(np.sum(ours_two & ~ours)),
        }
        row["auto_minus_autoattack_pp"] = 100 * (row["amrlearn_auto"] - row["autoattack"])
        row["meets_accuracy_target"] = row["auto_minus_autoattack_pp"] <= 0.5
        rows.append(row)
        print(
            f"  eps={e:g}: auto {row['amrlearn_auto']:.3f} (pgd {row['amrlearn_pgd']:.3f}, "
            f"pgd+margin {row['amrlearn_pgd_margin']:.3f}) | AutoAttack "
            f"{row['autoattack']:.3f} in {t_aa:.1f}s | AA only {row['broken_by_autoattack_only']}, "
            f"amrlearn only {row['broken_by_amrlearn_only']}",
            flush=True,
        )
    t_aa = sum(r["autoattack_s"] for r in rows)
    cell = {
        "model": model,
        "method": method,
        "n_points": len(yp),
        "clean": auto.clean,
        "pgd": kw,
        "auto_attacks": auto.attacks,
        "per_eps": rows,
        "amrlearn_pgd_margin_s": t_two,
        "amrlearn_auto_s": t_auto,
        "autoattack_s": t_aa,
        "time_ratio": t_auto / t_aa,
        "meets_time_target": t_auto <= 0.5 * t_aa,
    }
    print(
        f"  time: auto {t_auto:.1f}s (pgd+margin {t_two:.1f}s) vs AutoAttack {t_aa:.1f}s "
        f"-> ratio {cell['time_ratio']:.3f}",
        flush=True,
    )
    return cell


def main(argv=None):
    parser = make_parser(__doc__)
    parser.add_argument("--n-points", type=int, default=500, help="test points per model")
    parser.add_argument("--models", default="MLP,CNN")
    parser.add_argument("--methods", default="Std,AMR")
    parser.add_argument("--eps", type=float, nargs="+", default=list(EPS["mnist"]))
    parser.add_argument("--cache", default=None, help="folder that keeps the trained weights")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: on a shared machine, more threads than free cores make "
        "both attacks many times slower, by spinning)",
    )
    args = parser.parse_args(argv)
    import torchattacks

    torch.set_num_threads(args.threads)

    cells = []
    for model in args.models.split(","):
        for method in args.methods.split(","):
            print(f"mnist/{model}/{method}", flush=True)
            cells.append(_cell(torchattacks, model, method, args))
            out = _summary(torchattacks, args, cells)  # written after every cell
            write_result(out, "bench_autoattack", "cpu", args.out)
    t = out["total"]
    print(
        f"total: auto {t['amrlearn_auto_s']:.1f}s vs AutoAttack {t['autoattack_s']:.1f}s "
        f"-> ratio {t['time_ratio']:.3f}"
    )
    return out


def _summary(torchattacks, args, cells):
    t_auto = sum(c["amrlearn_auto_s"] for c in cells)
    t_aa = sum(c["autoattack_s"] for c in cells)
    return {
        "peer": f"torchattacks=={torchattacks.__version__}",
        "peer_attack": "AutoAttack(norm='L2', version='standard')",
        "n_points": args.n_points,
        "eps": args.eps,
        "timing": f"one run each, in the same process, {args.threads} torch thread(s)",
        "cells": cells,
        "all_cells_meet_accuracy_target": all(
            r["meets_accuracy_target"] for c in cells for r in c["per_eps"]
        ),
        "total": {"amrlearn_auto_s": t_auto, "autoattack_s": t_aa, "time_ratio": t_auto / t_aa},
    }


if __name__ == "__main__":
    main()
