"""amrlearn ``L2PGD`` / ``robust_accuracy`` against torchattacks ``PGDL2`` (pinned 3.5.1).

Same model (an MLP trained here on MNIST), same test points, same eps, steps and step
size. torchattacks' random start draws the radius as ``eps * U`` (not uniform in the
ball), so both run with ``random_start=False``: the attacks are then the same
deterministic iteration (normalized gradient step, projection on the ball, clip to
[0, 1]). Two differences remain, both documented in amrlearn: amrlearn counts a sample
as broken if any iterate misclassifies it (torchattacks looks at the last one), and by
default stops attacking a broken sample (``early_stop=True``); ``early_stop=False``
is timed too, as the same-work comparison.

    python benchmarks/bench_pgd.py [--quick] [--device cpu|cuda] [--out FILE.json]
"""

import numpy as np
import torch
from _bench_common import best_time, load_data, make_parser, resolve_device, train_mlp, write_result

from amrlearn.attacks import L2PGD, robust_accuracy


def _acc(net, X, y):
    with torch.no_grad():
        return float((net(X).argmax(1) == y).float().mean())


def main(argv=None):
    parser = make_parser(__doc__, full="the paper's 1000 steps of 0.01", repeats=3, device="auto")
    args = parser.parse_args(argv)
    import torchattacks

    device = resolve_device(args.device)

    def timed(call):
        result, seconds, _ = best_time(call, repeats=args.repeats, device=device)
        return result, seconds

    if args.full:
        n_test, steps, step_size, eps_grid = 1000, 1000, 0.01, [0.5, 1.0, 1.5, 2.0]
    else:
        n_test, steps, step_size, eps_grid = 500, 100, 0.02, [0.5, 1.0, 1.5]
    data, Xtr, ytr, Xte, yte = load_data(6000, n_test)
    # torchattacks' PGDL2 reshapes norms with view(-1, 1, 1, 1): it only takes images.
    # amrlearn is shape-agnostic, so both get images and the MLP flattens them.
    side = int(round(np.sqrt(Xte.shape[1])))
    net = torch.nn.Sequential(torch.nn.Flatten(), train_mlp(Xtr, ytr)).eval().to(device)
    X = torch.from_numpy(Xte.reshape(-1, 1, side, side)).to(device)
    y = torch.from_numpy(yte).to(device)
    clean = _acc(net, X, y)
    print(f"{data}: MLP, {len(X)} test points, clean accuracy {clean:.4f}, device {device}")

    rows = []
    for eps in eps_grid:
        ta = torchattacks.PGDL2(net, eps=eps, alpha=step_size, steps=steps, random_start=False)
        X_ta, t_ta = timed(lambda ta=ta: ta(X, y))
        acc_ta = _acc(net, X_ta, y)
        res = {"eps": eps, "torchattacks_s": t_ta, "torchattacks_acc": acc_ta}
        for early in (True, False):
            attack = L2PGD(
                eps,
                steps=steps,
                step_size=step_size,
                random_start=False,
                early_stop=early,
                batch_size=len(X),
            )
            X_am, t_am = timed(lambda a=attack: a(net, X, y))
            key = "amrlearn" if early else "amrlearn_no_early_stop"
            res[f"{key}_s"] = t_am
            res[f"{key}_acc"] = _acc(net, X_am, y)
            res[f"{key}_speedup"] = t_ta / t_am
            res[f"{key}_max_norm"] = float((X_am - X).flatten(1).norm(dim=1).max())
        res["acc_diff_pp"] = 100 * abs(res["amrlearn_acc"] - acc_ta)
        res["agree_within_0.5pp"] = res["acc_diff_pp"] <= 0.5
        rows.append(res)
        print(
            f"eps={eps}: torchattacks {t_ta:.2f}s acc {acc_ta:.4f} | amrlearn "
            f"{res['amrlearn_s']:.2f}s "
            f"acc {res['amrlearn_acc']:.4f} (x{res['amrlearn_speedup']:.2f}) | no early stop "
            f"{res['amrlearn_no_early_stop_s']:.2f}s acc {res['amrlearn_no_early_stop_acc']:.4f} "
            f"(x{res['amrlearn_no_early_stop_speedup']:.2f}) | diff {res['acc_diff_pp']:.2f} pp"
        )

    # The whole grid: robust_accuracy shares work across eps; torchattacks runs each eps.
    grid_acc, t_grid = timed(
        lambda: robust_accuracy(
            net,
            X,
            y,
            eps=eps_grid,
            steps=steps,
            step_size=step_size,
            random_start=False,
            batch_size=len(X),
        )
    )
    t_ta_grid = sum(r["torchattacks_s"] for r in rows)
    print(
        f"grid {eps_grid}: robust_accuracy {t_grid:.2f}s {np.round(grid_acc, 4).tolist()} vs "
        f"torchattacks {t_ta_grid:.2f}s {[round(r['torchattacks_acc'], 4) for r in rows]} "
        f"-> speedup x{t_ta_grid / t_grid:.2f}"
    )
    out = {
        "peer": f"torchattacks=={torchattacks.__version__}",
        "data": data,
        "n_points": len(X),
        "steps": steps,
        "step_size": step_size,
        "random_start": False,
        "timing": f"fastest of {args.repeats} runs",
        "clean_accuracy": clean,
        "per_eps": rows,
        "grid": {
            "eps": eps_grid,
            "amrlearn_robust_accuracy": grid_acc.tolist(),
            "amrlearn_s": t_grid,
            "torchattacks_s": t_ta_grid,
            "speedup": t_ta_grid / t_grid,
        },
    }
    write_result(out, "bench_pgd", device, args.out)
    return out


if __name__ == "__main__":
    main()
