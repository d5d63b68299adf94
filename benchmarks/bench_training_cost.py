"""Training cost of AMR against standard training and PGD adversarial training.

On the same MNIST subset and the same MLP (one hidden layer of 1024, Appendix F), one
run measures the epoch time of

* Std: ``AMRNeuralNetClassifier(lam=0, beta=0)``, the peer;
* AMR: ``AMRNeuralNetClassifier()`` (lam=0.1, tau=5, beta=1e-3, exact penalty);
* AMR, probes: the same with ``ortho_probes=8`` (Hutchinson estimate of the penalty);
* the two halves of AMR alone: the margin term (``beta=0``) and LCR (``lam=0``);
* PGD-AT: ``AdversarialNeuralNetClassifier()`` (l2 PGD, 40 steps of 0.01, eps=2.0);

and prints AMR / Std (the paper: "roughly the same"; target <= 1.15) and PGD-AT / AMR.
Every net keeps the data on the device (``data_on_device=True``), so that the data
loader is not what is timed. The first epoch of each fit is a warm-up and is dropped
(PGD-AT, forty times slower, times its single epoch); configurations are run in
interleaved rounds and each keeps its best round.

Usage: ``python benchmarks/bench_training_cost.py [--quick] [--device cpu|cuda|all]
[--out FILE.json]``. Needs MNIST in the data home (``$AMRLEARN_DATA``).
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


def configs():
    return {
        "std": (AMRNeuralNetClassifier, dict(lam=0.0, beta=0.0)),
        "amr": (AMRNeuralNetClassifier, dict()),
        "amr_probes8": (AMRNeuralNetClassifier, dict(ortho_probes=8)),
        "margin_term_only": (AMRNeuralNetClassifier, dict(beta=0.0)),
        "lcr": (AMRNeuralNetClassifier, dict(lam=0.0)),
        "pgd_at": (AdversarialNeuralNetClassifier, dict(eps=2.0, steps=40, step_size=0.01)),
    }


def epoch_time(cls, params, X, y, device, epochs, warmup=True):
    """Median epoch duration of one fit (skorch's EpochTimer), without the warm-up epoch."""
    torch.manual_seed(0)
    net = cls(
        models.MLP,
        module__in_features=X.shape[1],
        module__hidden=1024,
        max_epochs=epochs + int(warmup),
        device=device,
        data_on_device=True,
        verbose=0,
        **params,
    )
    net.fit(X, y)
    if device == "cuda":
        torch.cuda.synchronize()
    return statistics.median(net.history[int(warmup) :, "dur"])


def bench_device(device, X, y, *, epochs, pgd_epochs, rounds):
    times = {name: [] for name in configs()}
    for _ in range(rounds):
        for name, (cls, params) in configs().items():
            if name == "pgd_at":
                t = epoch_time(cls, params, X, y, device, pgd_epochs, warmup=False)
            else:
                t = epoch_time(cls, params, X, y, device, epochs)
            times[name].append(t)
    best = {name: min(ts) for name, ts in times.items()}
    ratios = {
        "amr_over_std": best["amr"] / best["std"],
        "amr_probes8_over_std": best["amr_probes8"] / best["std"],
        "margin_term_only_over_std": best["margin_term_only"] / best["std"],
        "lcr_over_std": best["lcr"] / best["std"],
        "pgd_at_over_amr": best["pgd_at"] / best["amr"],
        "pgd_at_over_std": best["pgd_at"] / best["std"],
    }
    return {"epoch_seconds": best, "all_rounds": times, "ratios": ratios}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller subset, fewer epochs")
    parser.add_argument("--device", default="all", choices=["cpu", "cuda", "all"])
    parser.add_argument("--n-samples", type=int, default=None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    n = args.n_samples or (1024 if args.quick else 2048)
    epochs, pgd_epochs, rounds = (2, 1, 1) if args.quick else (3, 1, 2)
    X, y = load_mnist(return_X_y=True)
    idx = np.random.default_rng(0).choice(len(X), n, replace=False)
    X, y = X[idx], y[idx]

    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        if args.device == "cuda":
            raise SystemExit("CUDA is not available here.")
        devices.remove("cuda")

    result = {
        "benchmark": "training_cost",
        "model": "MLP(784, hidden=1024)",
        "data": f"MNIST train subset, n={n}, batch_size=128",
        "epochs_timed": {"std/amr/lcr": epochs, "pgd_at": pgd_epochs, "rounds": rounds},
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "loadavg_before": os.getloadavg(),
        "devices": {},
    }
    for device in devices:
        t0 = time.perf_counter()
        res = bench_device(device, X, y, epochs=epochs, pgd_epochs=pgd_epochs, rounds=rounds)
        res["wall_seconds"] = time.perf_counter() - t0
        if device == "cuda":
            res["gpu"] = torch.cuda.get_device_name()
        result["devices"][device] = res
        r = res["ratios"]
        print(
            f"[{device}] epoch s: "
            + ", ".join(f"{k}={v:.3f}" for k, v in res["epoch_seconds"].items())
        )
        print(
            f"[{device}] AMR/Std = {r['amr_over_std']:.2f} (target <= 1.15), "
            f"AMR(probes=8)/Std = {r['amr_probes8_over_std']:.2f}, "
            f"margin term only/Std = {r['margin_term_only_over_std']:.2f}, "
            f"LCR/Std = {r['lcr_over_std']:.2f}, PGD-AT/AMR = {r['pgd_at_over_amr']:.1f}"
        )
    result["loadavg_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
