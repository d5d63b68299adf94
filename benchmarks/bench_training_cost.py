"""Training cost of AMR against standard training and PGD adversarial training.

On the same MNIST subset (8,192 images, batch 128: 64 steps per epoch) and for the MLP
(one hidden layer of 1024, Appendix F), the MNIST CNN, and Table 2's LeNet and
LeNetSmall, one run measures the epoch time of

* Std: ``AMRNeuralNetClassifier(lam=0, beta=0)``, the peer;
* AMR: ``AMRNeuralNetClassifier()``, the defaults (lam=0.1, beta=1e-3,
  ``ortho_every="auto"``: the lazy penalty every 64 steps with weight ``64 * beta`` on the
  MLP, the exact one on the CNN; the value used is in the JSON as ``amr_ortho_every``);
* AMR, exact: the every-step penalty (``ortho_every=1``);
* AMR, probes: ``ortho_every=1, ortho_probes=8`` (Hutchinson estimate every step);
* the two halves of AMR alone: the margin term (``beta=0``) and LCR (``lam=0``, default
  lazy penalty), and LCR with the exact penalty;
* PGD-AT: ``AdversarialNeuralNetClassifier()`` with the paper's training attack
  (Appendix F, MNIST: l2 PGD, eps=2.0, 40 steps of 0.01, random start);
* with ``--compile``, also Std and AMR with the module compiled by ``torch.compile``
  (skorch's ``compile=True``); the compilation happens in the untimed warm-up.

Every net keeps the data on the device (``data_on_device=True``), so that the data
loader is not what is timed. Each net is built once and warmed up on a few batches
(untimed); then the configurations are interleaved: every round runs one epoch
(``partial_fit``) of each in turn, so that a change of machine load hits all of them,
and each keeps the median of its epochs. Two clocks are read per epoch: the wall clock
(skorch's ``dur``) and this process's CPU time (``cpu_dur``). On a shared machine the
CPU time of a single-threaded run (``--threads 1``) is the robust one: other processes
do not enter it. PGD-AT, DD and MMR, tens to hundreds of times slower, run one epoch on
the first ``n_pgd`` images only, and their epoch time is scaled to the full subset (a
step's cost does not depend on the number of steps).

Usage: ``python benchmarks/bench_training_cost.py [--quick] [--device cpu|cuda|all]
[--models mlp,cnn,lenet,lenetsmall] [--rounds R] [--threads T] [--compile]
[--batch-size B] [--out FILE.json]``. Needs
MNIST in the data home (``$AMRLEARN_DATA``).
"""

import os
import platform
import statistics
import time

import numpy as np
import torch
from _bench_common import make_parser, write_result
from skorch.callbacks import Callback

from amrlearn.datasets import load_mnist
from amrlearn.neural import (
    AdversarialNeuralNetClassifier,
    AMRNeuralNetClassifier,
    DeepDefenseNeuralNetClassifier,
    MMRNeuralNetClassifier,
    models,
)

MODELS = {
    "mlp": (models.MLP, dict(module__in_features=784, module__hidden=1024), "MLP(784, 1024)"),
    "cnn": (models.CNN, dict(module__dataset="mnist"), "CNN('mnist')"),
    "lenet": (models.LeNet, dict(module__dataset="mnist"), "LeNet('mnist')"),
    "lenetsmall": (models.LeNetSmall, dict(module__dataset="mnist"), "LeNetSmall('mnist')"),
}
PGD_TRAIN = dict(
    attack__eps=2.0, attack__steps=40, attack__step_size=0.01, attack__random_start=True
)


def configs(model, compiled=False):
    out = {
        "std": (AMRNeuralNetClassifier, dict(lam=0.0, beta=0.0)),
        "amr": (AMRNeuralNetClassifier, dict()),
        "amr_exact": (AMRNeuralNetClassifier, dict(ortho_every=1)),
        "amr_probes8": (AMRNeuralNetClassifier, dict(ortho_every=1, ortho_probes=8)),
        "margin_term_only": (AMRNeuralNetClassifier, dict(beta=0.0)),
        "lcr": (AMRNeuralNetClassifier, dict(lam=0.0)),
        "lcr_exact": (AMRNeuralNetClassifier, dict(lam=0.0, ortho_every=1)),
    }
    if model != "mlp":  # every conv net layer is narrow: probes are the exact penalty there
        del out["amr_probes8"]
    if compiled:
        out["std_compiled"] = (AMRNeuralNetClassifier, dict(lam=0.0, beta=0.0, compile=True))
        out["amr_compiled"] = (AMRNeuralNetClassifier, dict(compile=True))
    return out


def slow_configs(model):
    """The trainers timed on the first ``n_pgd`` images only: PGD-AT, and DD or MMR."""
    out = {"pgd_at": (AdversarialNeuralNetClassifier, PGD_TRAIN)}
    if model == "lenet":
        out["dd"] = (DeepDefenseNeuralNetClassifier, dict())
    if model == "lenetsmall":
        out["mmr"] = (MMRNeuralNetClassifier, dict(optimizer=torch.optim.Adam, lr=1e-4))
    return out


class CPUTimer(Callback):
    """Records this process's CPU time of each epoch as ``cpu_dur``."""

    def on_epoch_begin(self, net, **kwargs):
        self.start_ = time.process_time()

    def on_epoch_end(self, net, **kwargs):
        net.history.record("cpu_dur", time.process_time() - self.start_)


def make_net(model, cls, params, device, batch_size=128):
    module, module_params, _ = MODELS[model]
    torch.manual_seed(0)
    return cls(
        module,
        **module_params,
        batch_size=batch_size,
        max_epochs=1,
        device=device,
        data_on_device=True,
        callbacks=[CPUTimer()],
        verbose=0,
        **params,
    ).initialize()


def timed_epoch(net, X, y, device):
    net.partial_fit(X, y)
    if device == "cuda":
        torch.cuda.synchronize()
    return net.history[-1, "dur"], net.history[-1, "cpu_dur"]


def _ratios(med):
    out = {
        "amr_over_std": med["amr"] / med["std"],
        "amr_exact_over_std": med["amr_exact"] / med["std"],
        "margin_term_only_over_std": med["margin_term_only"] / med["std"],
        "lcr_over_std": med["lcr"] / med["std"],
        "lcr_exact_over_std": med["lcr_exact"] / med["std"],
        "pgd_at_over_amr": med["pgd_at"] / med["amr"],
        "pgd_at_over_std": med["pgd_at"] / med["std"],
    }
    if "amr_probes8" in med:
        out["amr_probes8_over_std"] = med["amr_probes8"] / med["std"]
    if "amr_compiled" in med:
        out["amr_compiled_over_std_compiled"] = med["amr_compiled"] / med["std_compiled"]
        out["std_compiled_over_std"] = med["std_compiled"] / med["std"]
        out["amr_compiled_over_amr"] = med["amr_compiled"] / med["amr"]
    for name in ("dd", "mmr"):
        if name in med:
            out[f"{name}_over_std"] = med[name] / med["std"]
            out[f"{name}_over_amr"] = med[name] / med["amr"]
    return out


def _two_per_class(y):
    return np.concatenate([np.flatnonzero(y == c)[:2] for c in np.unique(y)])


def bench(model, device, X, y, *, rounds, n_pgd, n_warmup, compiled=False, batch_size=128):
    nets = {
        name: make_net(model, cls, p, device, batch_size)
        for name, (cls, p) in configs(model, compiled).items()
    }
    for net in nets.values():  # warm-up, untimed
        net.partial_fit(X[:n_warmup], y[:n_warmup])
    wall = {name: [] for name in nets}
    cpu = {name: [] for name in nets}
    for _ in range(rounds):
        for name, net in nets.items():
            w, c = timed_epoch(net, X, y, device)
            wall[name].append(w)
            cpu[name].append(c)
    med_wall = {name: statistics.median(ts) for name, ts in wall.items()}
    med_cpu = {name: statistics.median(ts) for name, ts in cpu.items()}

    for name, (cls, params) in slow_configs(model).items():
        net = make_net(model, cls, params, device, batch_size)
        # Warm-up: one step (DD, MMR: a small one, two images per class).
        warm = np.arange(128) if name == "pgd_at" else _two_per_class(y)
        net.partial_fit(X[warm], y[warm])
        w, c = timed_epoch(net, X[:n_pgd], y[:n_pgd], device)
        wall[f"{name}_subset"], cpu[f"{name}_subset"] = [w], [c]
        med_wall[name] = w * len(X) / n_pgd
        med_cpu[name] = c * len(X) / n_pgd
    # Each round's epochs ran back to back, under the same load: the ratio of a round's
    # AMR and Std epochs, over the rounds, shows how much of a ratio is noise.
    rounds_ratio = {
        clock: sorted(a / s for a, s in zip(times["amr"], times["std"]))
        for clock, times in (("cpu", cpu), ("wall", wall))
    }
    return {
        "model": MODELS[model][2],
        "amr_ortho_every": nets["amr"].ortho_every_,
        "amr_over_std_by_round": rounds_ratio,
        "epoch_cpu_seconds_median": med_cpu,
        "epoch_wall_seconds_median": med_wall,
        "epoch_cpu_seconds_all": cpu,
        "epoch_wall_seconds_all": wall,
        "pgd_at_images": n_pgd,
        "ratios_cpu_time": _ratios(med_cpu),
        "ratios_wall_time": _ratios(med_wall),
    }


def main(argv=None):
    parser = make_parser(__doc__)  # --quick: a smaller subset, fewer rounds
    parser.add_argument("--device", default="all", choices=["cpu", "cuda", "all"])
    parser.add_argument("--models", default="mlp,cnn,lenet,lenetsmall")
    parser.add_argument("--n-samples", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--compile", action="store_true", help="also Std and AMR under torch.compile"
    )
    args = parser.parse_args(argv)

    n = args.n_samples or (1024 if args.quick else 8192)
    rounds = args.rounds or (1 if args.quick else 3)
    n_pgd = min(n, 128 if args.quick else 512)
    n_warmup = min(n, 128 if args.quick else 512)
    if args.threads:
        torch.set_num_threads(args.threads)
    X, y = load_mnist(return_X_y=True)
    idx = np.random.default_rng(0).choice(len(X), n, replace=False)
    X, y = X[idx], y[idx].astype(np.int64)

    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        if args.device == "cuda":
            raise SystemExit("CUDA is not available here.")
        devices.remove("cuda")

    defaults = AMRNeuralNetClassifier(models.MLP).get_params()
    result = {
        "data": f"MNIST train subset, n={n}, batch_size={args.batch_size} "
        f"({-(-n // args.batch_size)} steps per epoch)",
        "amr_defaults": {
            k: defaults[k] for k in ("lam", "tau", "beta", "margin", "ortho_every", "ortho_probes")
        },
        "pgd_at_attack": PGD_TRAIN,
        "rounds": rounds,
        "warmup_images": n_warmup,
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "loadavg_before": os.getloadavg(),
        "devices": {},
    }
    for device in devices:
        result["devices"][device] = {}
        for model in args.models.split(","):
            t0 = time.perf_counter()
            res = bench(
                model,
                device,
                X,
                y,
                rounds=rounds,
                n_pgd=n_pgd,
                n_warmup=n_warmup,
                compiled=args.compile,
                batch_size=args.batch_size,
            )
            res["wall_seconds"] = time.perf_counter() - t0
            if device == "cuda":
                res["gpu"] = torch.cuda.get_device_name()
            result["devices"][device][model] = res
            for clock in ("cpu", "wall"):
                r = res[f"ratios_{clock}_time"]
                med = res[f"epoch_{clock}_seconds_median"]
                print(
                    f"[{device} {model}, {clock}] epoch s: "
                    + ", ".join(f"{k}={v:.3f}" for k, v in med.items())
                )
                print(
                    f"[{device} {model}, {clock}] AMR/Std = {r['amr_over_std']:.3f} "
                    f"(target <= 1.15), AMR exact/Std = {r['amr_exact_over_std']:.2f}, "
                    f"margin term only/Std = {r['margin_term_only_over_std']:.3f}, "
                    f"LCR/Std = {r['lcr_over_std']:.3f}, "
                    f"PGD-AT/AMR = {r['pgd_at_over_amr']:.1f} (target >= 20); AMR/Std by round "
                    + ", ".join(f"{v:.3f}" for v in res["amr_over_std_by_round"][clock])
                    + "".join(
                        f", {name.upper()}/Std = {r[f'{name}_over_std']:.1f}"
                        for name in ("dd", "mmr")
                        if f"{name}_over_std" in r
                    )
                )
                if "amr_compiled_over_std_compiled" in r:
                    print(
                        f"[{device} {model}, {clock}] compiled: AMR/Std = "
                        f"{r['amr_compiled_over_std_compiled']:.3f}, Std compiled/eager = "
                        f"{r['std_compiled_over_std']:.3f}, AMR compiled/eager = "
                        f"{r['amr_compiled_over_amr']:.3f}"
                    )
    result["loadavg_after"] = os.getloadavg()
    write_result(result, "bench_training_cost", args.device, args.out)
    return result


if __name__ == "__main__":
    main()
