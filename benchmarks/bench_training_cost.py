"""Training cost of AMR against standard training and PGD adversarial training.

On the same MNIST subset (8,192 images, batch 128: 64 steps per epoch) and for the MLP
(one hidden layer of 1024, Appendix F) and the MNIST CNN, one run measures the epoch
time of

* Std: ``AMRNeuralNetClassifier(lam=0, beta=0)``, the peer;
* AMR: ``AMRNeuralNetClassifier()``, the defaults (lam=0.1, beta=1e-3, lazy penalty
  every ``ortho_every=64`` steps with weight ``64 * beta``);
* AMR, exact: the every-step penalty (``ortho_every=1``);
* AMR, probes: ``ortho_every=1, ortho_probes=8`` (Hutchinson estimate every step);
* the two halves of AMR alone: the margin term (``beta=0``) and LCR (``lam=0``, default
  lazy penalty), and LCR with the exact penalty;
* PGD-AT: ``AdversarialNeuralNetClassifier()`` with the paper's training attack
  (Appendix F, MNIST: l2 PGD, eps=2.0, 40 steps of 0.01, random start).

Every net keeps the data on the device (``data_on_device=True``), so that the data
loader is not what is timed. The configurations are interleaved: each net is built
once, then every round runs one epoch (``partial_fit``) of each in turn, so that a
change of machine load hits all of them; the first epoch of each is a warm-up and is
dropped, and each keeps the median of its other epochs (skorch's ``dur``). PGD-AT,
tens of times slower, runs on the first ``n_pgd`` images only, and its epoch time is
scaled to the full subset (the cost per step does not depend on the number of steps).

Usage: ``python benchmarks/bench_training_cost.py [--quick] [--device cpu|cuda|all]
[--models mlp,cnn] [--out FILE.json]``. Needs MNIST in the data home
(``$AMRLEARN_DATA``).
"""

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from amrlearn.datasets import load_mnist
from amrlearn.neural import AdversarialNeuralNetClassifier, AMRNeuralNetClassifier, models

DEFAULT_OUT = Path(__file__).parent / "results" / "training_cost.json"

MODELS = {
    "mlp": (models.MLP, dict(module__in_features=784, module__hidden=1024), "MLP(784, 1024)"),
    "cnn": (models.CNN, dict(module__dataset="mnist"), "CNN('mnist')"),
}
PGD_TRAIN = dict(eps=2.0, steps=40, step_size=0.01, random_start=True)


def configs(model):
    out = {
        "std": (AMRNeuralNetClassifier, dict(lam=0.0, beta=0.0)),
        "amr": (AMRNeuralNetClassifier, dict()),
        "amr_exact": (AMRNeuralNetClassifier, dict(ortho_every=1)),
        "amr_probes8": (AMRNeuralNetClassifier, dict(ortho_every=1, ortho_probes=8)),
        "margin_term_only": (AMRNeuralNetClassifier, dict(beta=0.0)),
        "lcr": (AMRNeuralNetClassifier, dict(lam=0.0)),
        "lcr_exact": (AMRNeuralNetClassifier, dict(lam=0.0, ortho_every=1)),
    }
    if model == "cnn":  # every CNN layer is narrow: probes are the exact penalty there
        del out["amr_probes8"]
    return out


def make_net(model, cls, params, device):
    module, module_params, _ = MODELS[model]
    torch.manual_seed(0)
    return cls(
        module,
        **module_params,
        max_epochs=1,
        device=device,
        data_on_device=True,
        verbose=0,
        **params,
    ).initialize()


def timed_epoch(net, X, y, device):
    net.partial_fit(X, y)
    if device == "cuda":
        torch.cuda.synchronize()
    return net.history[-1, "dur"]


def bench(model, device, X, y, *, rounds, n_pgd):
    nets = {name: make_net(model, cls, p, device) for name, (cls, p) in configs(model).items()}
    times = {name: [] for name in nets}
    for _ in range(rounds + 1):  # + the warm-up round
        for name, net in nets.items():
            times[name].append(timed_epoch(net, X, y, device))
    med = {name: statistics.median(ts[1:]) for name, ts in times.items()}

    pgd = make_net(model, AdversarialNeuralNetClassifier, PGD_TRAIN, device)
    scale = len(X) / n_pgd
    pgd_times = [timed_epoch(pgd, X[:n_pgd], y[:n_pgd], device) for _ in range(2)]
    times["pgd_at_subset"] = pgd_times
    med["pgd_at"] = min(pgd_times) * scale

    ratios = {
        "amr_over_std": med["amr"] / med["std"],
        "amr_exact_over_std": med["amr_exact"] / med["std"],
        "margin_term_only_over_std": med["margin_term_only"] / med["std"],
        "lcr_over_std": med["lcr"] / med["std"],
        "lcr_exact_over_std": med["lcr_exact"] / med["std"],
        "pgd_at_over_amr": med["pgd_at"] / med["amr"],
        "pgd_at_over_std": med["pgd_at"] / med["std"],
    }
    if "amr_probes8" in med:
        ratios["amr_probes8_over_std"] = med["amr_probes8"] / med["std"]
    return {
        "model": MODELS[model][2],
        "epoch_seconds_median": med,
        "epoch_seconds_all": times,
        "pgd_at_images": n_pgd,
        "ratios": ratios,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller subset, fewer rounds")
    parser.add_argument("--device", default="all", choices=["cpu", "cuda", "all"])
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--n-samples", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    n = args.n_samples or (1024 if args.quick else 8192)
    rounds = args.rounds or (2 if args.quick else 5)
    n_pgd = min(n, 256 if args.quick else 1024)
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
        "benchmark": "training_cost",
        "data": f"MNIST train subset, n={n}, batch_size=128 ({-(-n // 128)} steps per epoch)",
        "amr_defaults": {
            k: defaults[k] for k in ("lam", "tau", "beta", "margin", "ortho_every", "ortho_probes")
        },
        "pgd_at_attack": PGD_TRAIN,
        "rounds": rounds,
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
            res = bench(model, device, X, y, rounds=rounds, n_pgd=n_pgd)
            res["wall_seconds"] = time.perf_counter() - t0
            if device == "cuda":
                res["gpu"] = torch.cuda.get_device_name()
            result["devices"][device][model] = res
            r = res["ratios"]
            print(
                f"[{device} {model}] epoch s: "
                + ", ".join(f"{k}={v:.3f}" for k, v in res["epoch_seconds_median"].items())
            )
            print(
                f"[{device} {model}] AMR/Std = {r['amr_over_std']:.3f} (target <= 1.15), "
                f"AMR exact/Std = {r['amr_exact_over_std']:.2f}, "
                f"margin term only/Std = {r['margin_term_only_over_std']:.3f}, "
                f"LCR/Std = {r['lcr_over_std']:.3f}, "
                f"PGD-AT/AMR = {r['pgd_at_over_amr']:.1f} (target >= 20)"
            )
    result["loadavg_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
