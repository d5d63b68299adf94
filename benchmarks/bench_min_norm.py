"""Minimum-norm upper bounds against exact margins, the bracket they close, and foolbox's FMN.

Three measurements, each against a peer in the same run:

1. Multiclass linear maps hidden in a custom module (so the library cannot see they are
   affine), x uniform in [0, 1]^d, float32 as users' nets are: ``upper / exact`` per
   sample for DDN (``margin_bounds``' old default, 100 steps, and 1000 steps), FMN,
   DeepFool and ``MinimumNormEnsemble`` (the new default: DeepFool, FMN from
   DeepFool's points, DDN; the closest verified point), against the closed form of
   eq. (7). Target: median <= 1.01 on 10-class maps.
2. The quick Table 1 MLP (``amrlearn.neural.models.MLP``, 1024 hidden units, SGD with
   Nesterov momentum 0.9, lr 0.05, batches of 128, as ``table1.default_config("quick")``;
   trained here on the first 10,000 MNIST training images for ``--epochs`` epochs,
   30 in the quick Table 1): median width ``upper / lower`` of ``margin_bounds``'
   bracket with the quick Table 1 margin budget (r = 5, 64 points per sample, no box),
   before (DDN, 100 steps) and after (the new default, 100 steps).
3. On the same MLP, time per point and median distance of foolbox 3.3.4's
   ``L2FMNAttack`` (100 steps, its defaults otherwise) against amrlearn's FMN (100
   steps) and the new default, in the box [0, 1]; rounds interleaved so that the
   machine's load affects all.

    PYTHONPATH=$PWD:/path/to/foolbox python benchmarks/bench_min_norm.py \
        [--epochs 30] [--n-points 200] [--device cpu|cuda] [--out FILE.json]
"""

import platform
import time

import numpy as np
import torch
from _bench_common import load_data, make_parser, resolve_device, train_loop, write_result

from amrlearn.attacks import DDN, FMN, DeepFool, MinimumNormEnsemble
from amrlearn.metrics import margin_bounds, margins_from_scores

LINEAR_CASES = [(7, 2), (7, 4), (30, 5), (50, 10), (100, 10), (784, 10)]


class _Hidden(torch.nn.Module):
    """A linear map that the library cannot recognize as affine."""

    def __init__(self, lin):
        super().__init__()
        self.lin = lin

    def forward(self, x):
        return self.lin(x) * 1.0


class _Logits(torch.nn.Module):
    """The MLP's logits alone, for foolbox (the MLP returns ``(logits, features)``)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)[0]


def _stats(ratio):
    return {
        "min": float(np.min(ratio)),
        "median": float(np.median(ratio)),
        "max": float(np.max(ratio)),
        "within_1pct": float(np.mean(np.abs(ratio - 1) <= 0.01)),
    }


def linear_part(n_points, device):
    attacks = {
        "DDN (old default, 100 steps)": DDN(steps=100, clip=None, random_state=0),
        "DDN (1000 steps)": DDN(steps=1000, clip=None, random_state=0),
        "FMN (100 steps)": FMN(steps=100, clip=None, random_state=0),
        "DeepFool": DeepFool(clip=None),
        "MinimumNormEnsemble (new default)": MinimumNormEnsemble(clip=None, random_state=0),
    }
    out = []
    for d, k in LINEAR_CASES:
        torch.manual_seed(0)
        lin = torch.nn.Linear(d, k)
        X = torch.rand(n_points, d).numpy()
        W, b = lin.weight.detach().double().numpy(), lin.bias.detach().double().numpy()
        exact, pred = margins_from_scores(X.astype(np.float64) @ W.T + b, W)
        net = _Hidden(lin).to(device).eval()
        row = {"d": d, "classes": k}
        for name, attack in attacks.items():
            t = time.perf_counter()
            _, dist = attack.set_params(device=device)(net, X, pred)
            row[name] = {**_stats(dist / exact), "seconds": time.perf_counter() - t}
        new = row["MinimumNormEnsemble (new default)"]
        print(
            f"d={d:>4} K={k:>2}  upper/exact median: DDN {row[next(iter(attacks))]['median']:.4f}"
            f" -> new {new['median']:.6f} (max {new['max']:.6f}, "
            f"{100 * new['within_1pct']:.0f}% within 1%)"
        )
        out.append(row)
    return out


def train_quick_mlp(X, y, epochs, seed=0):
    """The quick Table 1 MLP, trained as there (SGD, Nesterov 0.9, lr 0.05, batch 128)."""
    from amrlearn.neural.models import MLP

    torch.manual_seed(seed)
    net = MLP(X.shape[1], hidden=1024)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    return train_loop(net, opt, X, y, epochs)


def bracket_part(net, X, y, device):
    budget = {"radius": 5.0, "n_batches": 1, "batch_size": 64, "random_state": 0}
    res = {}
    for name, attack in (
        ("before (DDN, 100 steps)", DDN(steps=100, clip=None, random_state=0, device=device)),
        ("after (MinimumNormEnsemble, 100 steps)", None),
    ):
        # Not timed: the timing part below interleaves its rounds, this does not.
        b = margin_bounds(net, X, y, attack=attack, device=device, **budget)
        lo, up = np.abs(b["lower"]), np.abs(b["upper"])
        res[name] = {
            "median_width_upper_over_lower": float(np.median(up / lo)),
            "median_upper": float(np.median(up)),
            "median_lower": float(np.median(lo)),
            "upper": up.tolist(),
            "lower": lo.tolist(),
        }
        print(
            f"quick MLP bracket {name}: median upper/lower "
            f"{res[name]['median_width_upper_over_lower']:.3f}, median upper "
            f"{res[name]['median_upper']:.4f}, median lower {res[name]['median_lower']:.4f}"
        )
    before, after = (np.array(res[k]["upper"]) for k in res)
    res["upper_after_over_before"] = _stats(after / before)
    return res


def timing_part(net, X, device, rounds):
    import foolbox as fb

    logits = _Logits(net).to(device).eval()
    with torch.no_grad():
        pred = logits(torch.from_numpy(X).to(device)).argmax(1)
    fmodel = fb.PyTorchModel(logits, bounds=(0, 1), device=device)
    fb_fmn = fb.attacks.L2FMNAttack(steps=100)
    x_t = torch.from_numpy(X).to(device)

    def foolbox_fmn():
        raw, _, ok = fb_fmn(fmodel, x_t, fb.criteria.Misclassification(pred), epsilons=None)
        d = (raw - x_t).flatten(1).norm(dim=1).double()
        return torch.where(ok, d, float("inf")).cpu().numpy()

    ours = {
        "amrlearn FMN (100 steps)": FMN(steps=100, clip=(0, 1), random_state=0, device=device),
        "amrlearn MinimumNormEnsemble (100 steps)": MinimumNormEnsemble(
            clip=(0, 1), random_state=0, device=device
        ),
    }
    methods = {"foolbox L2FMNAttack (100 steps)": foolbox_fmn}
    for name, attack in ours.items():
        methods[name] = lambda a=attack: a(logits, X, pred.cpu().numpy())[1]
    times = {k: [] for k in methods}
    dists = {}
    for _ in range(rounds):
        for name, f in methods.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            dists[name] = f()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append((time.perf_counter() - t) / len(X))
    peer = "foolbox L2FMNAttack (100 steps)"
    res = {}
    for name in methods:
        d = dists[name]
        res[name] = {
            "s_per_point_median": float(np.median(times[name])),
            "s_per_point_rounds": times[name],
            "median_distance": float(np.median(d)),
            "found": float(np.mean(np.isfinite(d))),
            "distance_over_foolbox_median": float(np.median(d / dists[peer])),
        }
        print(
            f"{name}: {res[name]['s_per_point_median'] * 1e3:.2f} ms/point "
            f"(foolbox / this: x{np.median(times[peer]) / np.median(times[name]):.2f}), "
            f"median distance {res[name]['median_distance']:.4f}, found {res[name]['found']:.3f}"
        )
    return res


def main(argv=None):
    parser = make_parser(__doc__, device="auto")
    parser.add_argument("--epochs", type=int, default=30, help="MLP epochs (quick Table 1: 30)")
    parser.add_argument("--n-points", type=int, default=200, help="test points attacked")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    args = parser.parse_args(argv)
    import foolbox as fb

    device = resolve_device(args.device)
    linear = linear_part(args.n_points, device)

    data, Xtr, ytr, Xte, yte = load_data(10000, args.n_points)
    t = time.perf_counter()
    net = train_quick_mlp(Xtr, ytr, args.epochs).to(device)
    t_train = time.perf_counter() - t
    with torch.no_grad():
        acc = float(
            (net(torch.from_numpy(Xte).to(device))[0].argmax(1).cpu().numpy() == yte).mean()
        )
    print(f"{data}: quick MLP, {args.epochs} epochs in {t_train:.0f}s, test accuracy {acc:.3f}")
    bracket = bracket_part(net, Xte, yte, device)
    timing = timing_part(net, Xte, device, args.rounds)
    out = {
        "peer": f"foolbox=={fb.__version__}",
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "machine": platform.processor() or platform.machine(),
        "n_points": args.n_points,
        "linear": linear,
        "mlp": {
            "data": data,
            "n_train": len(Xtr),
            "epochs": args.epochs,
            "train_seconds": t_train,
            "test_accuracy": acc,
            "bracket_budget": "radius 5, n_batches 1, batch_size 64, clip None, attack_steps 100",
            "bracket": bracket,
            "timing": timing,
        },
    }
    write_result(out, "bench_min_norm", device, args.out)
    return out


if __name__ == "__main__":
    main()
