"""Fit time of AMRLogisticRegression vs scikit-learn's LogisticRegression(lbfgs), MNIST 0 vs 1.

Usage: python benchmarks/bench_amr_logistic.py [--quick] [--out FILE.json] [--repeats N]

Both estimators are fitted on the same float32 data in the same run, alternately, and the
median of the repeats is reported. Also reported: the average and minimum margins (exact,
through ``margin_report``) and the accuracies on train and test. Target: a time ratio
within 1.5.
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression

from amrlearn.linear_model import AMRLogisticRegression
from amrlearn.metrics import margin_report


def _load():
    from amrlearn.datasets import load_mnist_or_digits

    return load_mnist_or_digits(os.environ.get("AMRLEARN_DATA"), classes=(0, 1))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats instead of 7")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--out", default="benchmarks/results/bench_amr_logistic.json")
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 7)

    Xtr, ytr, Xte, yte, name = _load()
    models = {
        "AMRLogisticRegression(tau=5, lam=0.1)": lambda: AMRLogisticRegression(tau=5.0, lam=0.1),
        "LogisticRegression(lbfgs)": lambda: LogisticRegression(solver="lbfgs"),
    }
    times = {k: [] for k in models}
    fitted = {}
    load_before = os.getloadavg()
    for _ in range(repeats):
        for key, make in models.items():
            est = make()
            t0 = time.perf_counter()
            est.fit(Xtr, ytr)
            times[key].append(time.perf_counter() - t0)
            fitted[key] = est
    result = {"data": name, "n_train": int(len(ytr)), "n_test": int(len(yte)),
              "n_features": int(Xtr.shape[1]), "dtype": str(Xtr.dtype), "repeats": repeats,
              "models": {}}
    for key, est in fitted.items():
        tr, te = margin_report(est, Xtr, ytr), margin_report(est, Xte, yte)
        result["models"][key] = {
            "fit_time_median_s": float(np.median(times[key])),
            "fit_times_s": times[key],
            "train_accuracy": tr["accuracy"], "test_accuracy": te["accuracy"],
            "train_avg_margin": tr["avg_margin"], "test_avg_margin": te["avg_margin"],
            "train_min_margin": tr["min_margin"], "test_min_margin": te["min_margin"],
        }
    load_after = os.getloadavg()
    amr, lr = (result["models"][k] for k in models)
    result["time_ratio_amr_over_sklearn"] = amr["fit_time_median_s"] / lr["fit_time_median_s"]
    result["avg_margin_ratio_test"] = amr["test_avg_margin"] / lr["test_avg_margin"]
    result["environment"] = {"python": platform.python_version(), "numpy": np.__version__,
                             "scikit-learn": sklearn.__version__, "cpus": os.cpu_count(),
                             "load_average_1min_before_after": [load_before[0], load_after[0]]}

    print(f"data: {name}, {len(ytr)} train / {len(yte)} test, {repeats} interleaved repeats "
          f"(median); 1-min load average {load_before[0]:.1f} before, {load_after[0]:.1f} "
          f"after, on {os.cpu_count()} CPUs")
    for key, r in result["models"].items():
        print(f"{key:40s} fit {r['fit_time_median_s']:.3f} s  test acc {r['test_accuracy']:.4f}"
              f"  test avg margin {r['test_avg_margin']:.3f}  train avg margin "
              f"{r['train_avg_margin']:.3f}")
    print(f"time ratio AMR / sklearn: {result['time_ratio_amr_over_sklearn']:.2f} (target <= 1.5)")
    print(f"test average-margin ratio AMR / sklearn: {result['avg_margin_ratio_test']:.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"written: {out}")
    return result


if __name__ == "__main__":
    main()
