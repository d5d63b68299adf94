"""amrlearn ``robust_accuracy(attack="auto")`` against torchattacks' AutoAttack (L2, standard).

The nets are those of the quick tables on MNIST, trained exactly as ``amrlearn reproduce
table1 --quick`` and ``table2 --quick`` train them: by default the Table 1 MLP and CNN
(Std and AMR), Table 2's PGD-trained LeNet (``Adv``, the hardest case for a cheap chain)
and LeNetSmall trained with MMR. The points are the tables' fixed test points (500 by
default), the radii the paper's grid. AutoAttack (torchattacks 3.5.1, ``norm="L2"``,
``version="standard"``: APGD-CE, APGD-T, FAB-T, Square, each on the survivors of the ones
before) runs on the same net and the same points, in the same process, one eps after the
other.

Per net and eps: each side's robust accuracy, the samples that each side alone breaks,
and what each attack of amrlearn's chain breaks (the chain's own study). Per net: each
side's time, wall and CPU (one torch thread: CPU time is what a shared machine does not
inflate). Targets: ``auto <= AutoAttack + 0.5 pp`` at every eps, and ``auto``'s time at
most 0.2x AutoAttack's on every net.

``--chains`` compares other chains on the same points (``"old"`` is the chain of
amrlearn 0.1's ``"auto"``: cross-entropy PGD, logit-margin PGD, APGD-T with 9 targets).
``--cache DIR`` keeps the trained weights and AutoAttack's per-sample results, so that a
rerun measures amrlearn's side alone against the same reference. ``--merge A.json B.json``
gathers runs made apart (each net is compared with AutoAttack within its own run) into
one file, with a ``runs`` list saying which points each run used.

    PYTHONPATH=/path/to/torchattacks python benchmarks/bench_autoattack.py \\
        [--n-points 500] [--nets table1:MLP:Std,table2:LeNet:Adv] [--eps ...] \\
        [--chains auto,old] [--cache DIR] [--threads 1] [--out FILE]
"""

import functools
import json
import time
from pathlib import Path

import numpy as np
import torch
from _bench_common import make_parser, train_quick_net, write_result

from amrlearn.attacks import APGD, robust_accuracy
from amrlearn.experiments._paper import EPS
from amrlearn.experiments._recipe import per_model
from amrlearn.experiments._runner import _fixed_points

NETS = (
    "table1:MLP:Std",
    "table1:MLP:AMR",
    "table1:CNN:Std",
    "table1:CNN:AMR",
    "table2:LeNet:Adv",
    "table2:LeNetSmall:MMR",
)
#: amrlearn 0.1's "auto", for the before/after comparison.
OLD_AUTO = ["pgd", "pgd-margin", "apgd-t"]


class _Logits(torch.nn.Module):
    """The net's logits alone (amrlearn's modules also return their features)."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        out = self.module(x)
        return out[0] if isinstance(out, tuple) else out


def _timed(call):
    wall, cpu = time.perf_counter(), time.process_time()
    out = call()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _autoattack(torchattacks, logits, X, y, eps, cache):
    """AutoAttack's robust samples at ``eps`` and its wall and CPU seconds (cached)."""
    if cache is not None and cache.exists():
        rec = json.loads(cache.read_text())
        return np.array(rec["robust"], dtype=bool), rec["wall_s"], rec["cpu_s"]
    aa = torchattacks.AutoAttack(
        logits, norm="L2", eps=eps, version="standard", n_classes=10, seed=0
    )
    X_adv, wall, cpu = _timed(lambda: aa(X, y))
    with torch.no_grad():
        robust = (logits(X_adv).argmax(1) == y).numpy()
    assert float((X_adv.detach() - X).flatten(1).norm(dim=1).max()) <= eps * (1 + 1e-5)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"robust": robust.tolist(), "wall_s": wall, "cpu_s": cpu}))
    return robust, wall, cpu


def _chain(name):
    """A chain of ``--chains``: ``"old"``, or names joined by ``+``; ``name/S`` runs an APGD
    attack of that name with ``S`` iterations (for the study of the chain's budget)."""
    if name == "old":
        return OLD_AUTO
    chain = []
    for item in name.split("+"):
        base, _, steps = item.partition("/")
        if steps:
            targets = base.removeprefix("apgd-t")
            loss = "ce" if base == "apgd-ce" else "dlr"
            n_targets = int(targets or 9) if base.startswith("apgd-t") else 0
            item = APGD(eps=0.0, steps=int(steps), loss=loss, n_targets=n_targets)
        chain.append(item)
    return chain


def _net(torchattacks, spec, args):
    experiment, model, method = spec.split(":")
    net, data, config = train_quick_net(experiment, model, method, cache=args.cache)
    Xp, yp = _fixed_points(data["X_test"], data["y_test"], args.n_points, config["seed"])
    X, y = torch.from_numpy(Xp), torch.from_numpy(yp)
    eps = list(args.eps)
    # The PGD stages of a chain (the old "auto") use the table's own PGD budget.
    pgd = per_model(config["pgd"], model)
    kw = dict(
        steps=pgd["steps"],
        step_size=pgd["step_size"]["mnist"],
        batch_size=500,
        random_state=config["seed"],
    )
    logits = _Logits(net.module_).eval()
    with torch.no_grad():
        correct = (logits(X).argmax(1) == y).numpy()
    aa = []
    for e in eps:
        path = None
        if args.cache is not None:
            path = (
                Path(args.cache) / f"autoattack_{spec.replace(':', '_')}_{args.n_points}_{e:g}.json"
            )
        aa.append(_autoattack(torchattacks, logits, X, y, e, path))
    aa_robust = np.stack([r for r, _, _ in aa], axis=1)
    aa_wall, aa_cpu = sum(w for _, w, _ in aa), sum(c for _, _, c in aa)
    cell = {
        "net": spec,
        "n_points": len(yp),
        "autoattack": {
            "robust": aa_robust.mean(axis=0).tolist(),
            "wall_s": aa_wall,
            "cpu_s": aa_cpu,
            "wall_s_per_eps": [w for _, w, _ in aa],
        },
        "chains": {},
    }
    for name in args.chains.split(","):
        chain = _chain(name)
        call = functools.partial(
            robust_accuracy, net, X, y, eps=eps, attack=chain, return_details=True, **kw
        )
        res, wall, cpu = _timed(call)
        per_eps = []
        for i, e in enumerate(eps):
            ours, theirs = res.robust[:, i], aa_robust[:, i]
            prev, breaks = correct, {}
            for attack, alive in res.robust_by_attack.items():
                breaks[attack] = int(np.sum(prev & ~alive[:, i]))
                prev = alive[:, i]
            per_eps.append(
                {
                    "eps": e,
                    "amrlearn": float(ours.mean()),
                    "autoattack": float(theirs.mean()),
                    "amrlearn_minus_autoattack_pp": 100 * float(ours.mean() - theirs.mean()),
                    "broken_by_autoattack_only": int(np.sum(ours & ~theirs)),
                    "broken_by_amrlearn_only": int(np.sum(~ours & theirs)),
                    "broken_by_each_attack": breaks,
                }
            )
        out = {
            "attacks": res.attacks,
            "clean": res.clean,
            "per_eps": per_eps,
            "wall_s": wall,
            "cpu_s": cpu,
            "cpu_ratio": cpu / aa_cpu,
            "wall_ratio": wall / aa_wall,
            "meets_accuracy_target": all(r["amrlearn_minus_autoattack_pp"] <= 0.5 for r in per_eps),
            "meets_time_target": cpu <= 0.2 * aa_cpu,
        }
        cell["chains"][name] = out
        print(
            f"  {name}: cpu {cpu:.1f}s vs AutoAttack {aa_cpu:.1f}s -> {out['cpu_ratio']:.3f} "
            f"(wall {wall:.1f}s vs {aa_wall:.1f}s)",
            flush=True,
        )
        for r in per_eps:
            print(
                f"    eps={r['eps']:g}: {r['amrlearn']:.3f} vs AutoAttack {r['autoattack']:.3f} "
                f"| AA only {r['broken_by_autoattack_only']}, amrlearn only "
                f"{r['broken_by_amrlearn_only']} | {r['broken_by_each_attack']}",
                flush=True,
            )
    return cell


def main(argv=None):
    parser = make_parser(__doc__)
    parser.add_argument("--n-points", type=int, default=500, help="test points per net")
    parser.add_argument(
        "--nets", default=",".join(NETS), help="experiment:model:method of the quick tables"
    )
    parser.add_argument("--eps", type=float, nargs="+", default=list(EPS["mnist"]))
    parser.add_argument(
        "--chains",
        default="auto",
        help="comma-separated chains of amrlearn's side: 'auto', 'old' (0.1's auto), or "
        "attack names joined by '+'",
    )
    parser.add_argument(
        "--cache", default=None, help="folder that keeps the weights and AutoAttack's results"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: on a shared machine, more threads than free cores make "
        "both attacks many times slower, by spinning)",
    )
    parser.add_argument(
        "--merge", nargs="+", default=None, help="result files of earlier runs to gather"
    )
    args = parser.parse_args(argv)
    if args.merge:
        return _merge(args.merge, args.out)
    import torchattacks

    torch.set_num_threads(args.threads)
    cells = []
    for spec in args.nets.split(","):
        print(spec, flush=True)
        cells.append(_net(torchattacks, spec, args))
        out = _summary(torchattacks, args, cells)  # written after every net
        write_result(out, "bench_autoattack", "cpu", args.out)
    for name, t in out["total"].items():
        print(f"total {name}: cpu ratio {t['cpu_ratio']:.3f}, wall ratio {t['wall_ratio']:.3f}")
    return out


def _totals(cells):
    """Per chain: the nets that ran it, summed CPU times, their ratio, and the targets."""
    total = {}
    for name in sorted({k for c in cells for k in c["chains"]}):
        cs = [c for c in cells if name in c["chains"]]
        cpu = sum(c["chains"][name]["cpu_s"] for c in cs)
        aa = sum(c["autoattack"]["cpu_s"] for c in cs)
        wall = sum(c["chains"][name]["wall_s"] for c in cs)
        aa_wall = sum(c["autoattack"]["wall_s"] for c in cs)
        total[name] = {
            "nets": [c["net"] for c in cs],
            "cpu_s": cpu,
            "autoattack_cpu_s": aa,
            "cpu_ratio": cpu / aa,
            "wall_ratio": wall / aa_wall,
            "all_nets_meet_accuracy_target": all(
                c["chains"][name]["meets_accuracy_target"] for c in cs
            ),
            "all_nets_meet_time_target": all(c["chains"][name]["meets_time_target"] for c in cs),
        }
    return total


def _summary(torchattacks, args, cells):
    total = _totals(cells)
    return {
        "peer": f"torchattacks=={torchattacks.__version__}",
        "peer_attack": "AutoAttack(norm='L2', version='standard')",
        "n_points": args.n_points,
        "eps": args.eps,
        "timing": f"one run each, in the same process, {args.threads} torch thread(s); "
        "CPU seconds (process time) and wall seconds",
        "cells": cells,
        "total": total,
    }


def _merge(files, out):
    """Gather the nets of several result files into one, with the totals recomputed."""
    records = [json.loads(Path(f).read_text()) for f in files]
    cells = [c for r in records for c in r["cells"]]
    total = _totals(cells)
    out_record = {
        "peer": records[0]["peer"],
        "peer_attack": records[0]["peer_attack"],
        "runs": [
            {"n_points": r["n_points"], "eps": r["eps"], "nets": [c["net"] for c in r["cells"]]}
            for r in records
        ],
        "timing": records[0]["timing"],
        "cells": cells,
        "total": total,
    }
    write_result(out_record, "bench_autoattack", "cpu", out)
    for name, t in total.items():
        print(f"total {name}: cpu ratio {t['cpu_ratio']:.3f} over {len(t['nets'])} nets")
    return out_record


if __name__ == "__main__":
    main()
