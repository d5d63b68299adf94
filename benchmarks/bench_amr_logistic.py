"""Fit time of AMRLogisticRegression vs scikit-learn's LogisticRegression.

Usage: python benchmarks/bench_amr_logistic.py [--problem mnist01|multiclass|sparse]
    [--quick] [--out FILE.json] [--repeats N]

Problems:

* ``mnist01`` (default): MNIST 0 vs 1 against ``LogisticRegression(lbfgs)``; writes
  ``results/bench_amr_logistic_cpu.json``. Target: a time ratio within 1.5.
* ``multiclass``: scikit-learn's digits (X / 16, stratified 70/30 split) and 10-class MNIST
  (``--n-train`` training images, the 10,000 test images) against the multinomial
  ``LogisticRegression(lbfgs)``; accuracy, smallest per-class recall, exact average
  margins, fit times. Writes ``results/bench_amr_logistic_multiclass_cpu.json``.
* ``sparse``: a seeded 100,000 x 50,000 CSR of density 0.001 (binary labels from a random
  hyperplane) against the fastest of the lbfgs, liblinear and saga solvers, with the peak
  memory of each fit (tracemalloc, in a separate untimed fit). Writes
  ``results/bench_amr_logistic_sparse_cpu.json``. Targets: time ratio <= 1.5, memory <= 2.

The estimators are fitted on the same data in the same run, alternately, and the median
of the repeats is reported, with the 1-minute load average before and after.
"""

import os
import platform
import tracemalloc

import numpy as np
import scipy.sparse as sp
import sklearn
from _bench_common import interleaved_fits, make_parser, write_result
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import recall_score

from amrlearn.linear_model import AMRLogisticRegression
from amrlearn.metrics import margin_report

#: Each problem's result name: ``results/<name>_cpu.json``.
OUTPUTS = {
    "mnist01": "bench_amr_logistic",
    "multiclass": "bench_amr_logistic_multiclass",
    "sparse": "bench_amr_logistic_sparse",
}


def _load():
    from amrlearn.datasets import load_mnist_or_digits

    return load_mnist_or_digits(os.environ.get("AMRLEARN_DATA"), classes=(0, 1))


def _environment(load_before):
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "cpus": os.cpu_count(),
        "load_average_1min_before_after": [load_before, os.getloadavg()[0]],
    }


def _peak_memory(make, X, y):
    """Peak traced memory (bytes) of one fit, measured apart from the timed fits."""
    tracemalloc.start()
    make().fit(X, y)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def sparse_problem(n_samples=100_000, n_features=50_000, density=0.001, seed=0):
    """A seeded CSR problem with binary labels from a random hyperplane."""
    rng = np.random.default_rng(seed)
    X = sp.random(n_samples, n_features, density=density, format="csr", random_state=rng)
    score = X @ rng.standard_normal(n_features)
    return X, (score > np.median(score)).astype(np.int64)


def _multiclass_data(n_train):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from amrlearn.datasets import load_mnist

    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X / 16.0, y, test_size=0.3, random_state=0, stratify=y)
    yield "digits/16", Xtr, ytr, Xte, yte
    home = os.environ.get("AMRLEARN_DATA")
    X, y = load_mnist(home, subset="train", return_X_y=True)
    Xte, yte = load_mnist(home, subset="test", return_X_y=True)
    idx = np.random.default_rng(0).choice(len(y), n_train, replace=False)
    yield f"MNIST-10 ({n_train} train)", X[idx], y[idx], Xte, yte


def run_multiclass(repeats, n_train):
    load_before = os.getloadavg()[0]
    models = {
        "AMRLogisticRegression(tau=5, lam=0.1)": AMRLogisticRegression,
        "LogisticRegression(lbfgs, multinomial)": LogisticRegression,
    }
    result = {"problem": "multiclass", "repeats": repeats, "datasets": {}}
    for name, Xtr, ytr, Xte, yte in _multiclass_data(n_train):
        fitted, times = interleaved_fits(models, Xtr, ytr, repeats)
        rows = {}
        for key, est in fitted.items():
            tr, te = margin_report(est, Xtr, ytr), margin_report(est, Xte, yte)
            recall = recall_score(yte, est.predict(Xte), average=None)
            rows[key] = {
                "fit_time_median_s": float(np.median(times[key])),
                "fit_times_s": times[key],
                "test_accuracy": te["accuracy"],
                "train_accuracy": tr["accuracy"],
                "test_min_class_recall": float(recall.min()),
                "test_avg_margin": te["avg_margin"],
                "train_avg_margin": tr["avg_margin"],
                "test_min_margin": te["min_margin"],
            }
        amr, lr = (rows[k] for k in models)
        rows["time_ratio_amr_over_sklearn"] = amr["fit_time_median_s"] / lr["fit_time_median_s"]
        rows["test_accuracy_gap_pp"] = 100 * (amr["test_accuracy"] - lr["test_accuracy"])
        rows["test_avg_margin_ratio"] = amr["test_avg_margin"] / lr["test_avg_margin"]
        rows["n_train"], rows["n_test"] = int(len(ytr)), int(len(yte))
        result["datasets"][name] = rows
        print(f"{name}: {len(ytr)} train / {len(yte)} test")
        for key in models:
            r = rows[key]
            print(
                f"  {key:40s} fit {r['fit_time_median_s']:.2f} s  test acc "
                f"{r['test_accuracy']:.4f}  min recall {r['test_min_class_recall']:.3f}  "
                f"test avg margin {r['test_avg_margin']:.4f}"
            )
        print(
            f"  time ratio {rows['time_ratio_amr_over_sklearn']:.2f}, accuracy gap "
            f"{rows['test_accuracy_gap_pp']:+.2f} pp, avg-margin ratio "
            f"{rows['test_avg_margin_ratio']:.3f}"
        )
    result["environment"] = _environment(load_before)
    return result


def run_sparse(repeats, n_samples):
    X, y = sparse_problem(n_samples)
    load_before = os.getloadavg()[0]
    models = {
        "AMRLogisticRegression(tau=5, lam=0.1)": AMRLogisticRegression,
        "LogisticRegression(lbfgs)": LogisticRegression,
        "LogisticRegression(liblinear)": lambda: LogisticRegression(solver="liblinear"),
        "LogisticRegression(saga)": lambda: LogisticRegression(solver="saga"),
    }
    fitted, times = interleaved_fits(models, X, y, repeats)
    rows = {}
    for key, est in fitted.items():
        rows[key] = {
            "fit_time_median_s": float(np.median(times[key])),
            "fit_times_s": times[key],
            "peak_memory_mb": _peak_memory(models[key], X, y) / 1e6,
            "train_accuracy": float(est.score(X, y)),
        }
    amr_key = next(iter(models))
    fastest = min((k for k in models if k != amr_key), key=lambda k: rows[k]["fit_time_median_s"])
    amr, ref = rows[amr_key], rows[fastest]
    result = {
        "problem": "sparse",
        "data": f"CSR {X.shape[0]} x {X.shape[1]}, density 0.001, nnz {X.nnz}",
        "repeats": repeats,
        "models": rows,
        "fastest_sklearn": fastest,
        "time_ratio_amr_over_fastest_sklearn": amr["fit_time_median_s"] / ref["fit_time_median_s"],
        "memory_ratio_amr_over_fastest_sklearn": amr["peak_memory_mb"] / ref["peak_memory_mb"],
        "environment": _environment(load_before),
    }
    print(result["data"])
    for key, r in rows.items():
        print(
            f"  {key:40s} fit {r['fit_time_median_s']:.2f} s  peak {r['peak_memory_mb']:.1f} MB"
            f"  train acc {r['train_accuracy']:.4f}"
        )
    print(
        f"  vs {fastest}: time ratio {result['time_ratio_amr_over_fastest_sklearn']:.2f} "
        f"(target <= 1.5), memory ratio {result['memory_ratio_amr_over_fastest_sklearn']:.2f} "
        "(target <= 2)"
    )
    return result


def run_mnist01(repeats):
    Xtr, ytr, Xte, yte, name = _load()
    models = {
        "AMRLogisticRegression(tau=5, lam=0.1)": lambda: AMRLogisticRegression(tau=5.0, lam=0.1),
        "LogisticRegression(lbfgs)": lambda: LogisticRegression(solver="lbfgs"),
    }
    load_before = os.getloadavg()
    fitted, times = interleaved_fits(models, Xtr, ytr, repeats)
    result = {
        "data": name,
        "n_train": int(len(ytr)),
        "n_test": int(len(yte)),
        "n_features": int(Xtr.shape[1]),
        "dtype": str(Xtr.dtype),
        "repeats": repeats,
        "models": {},
    }
    for key, est in fitted.items():
        tr, te = margin_report(est, Xtr, ytr), margin_report(est, Xte, yte)
        result["models"][key] = {
            "fit_time_median_s": float(np.median(times[key])),
            "fit_times_s": times[key],
            "train_accuracy": tr["accuracy"],
            "test_accuracy": te["accuracy"],
            "train_avg_margin": tr["avg_margin"],
            "test_avg_margin": te["avg_margin"],
            "train_min_margin": tr["min_margin"],
            "test_min_margin": te["min_margin"],
        }
    load_after = os.getloadavg()
    amr, lr = (result["models"][k] for k in models)
    result["time_ratio_amr_over_sklearn"] = amr["fit_time_median_s"] / lr["fit_time_median_s"]
    result["avg_margin_ratio_test"] = amr["test_avg_margin"] / lr["test_avg_margin"]
    result["environment"] = _environment(load_before[0])

    print(
        f"data: {name}, {len(ytr)} train / {len(yte)} test, {repeats} interleaved repeats "
        f"(median); 1-min load average {load_before[0]:.1f} before, {load_after[0]:.1f} "
        f"after, on {os.cpu_count()} CPUs"
    )
    for key, r in result["models"].items():
        print(
            f"{key:40s} fit {r['fit_time_median_s']:.3f} s  test acc {r['test_accuracy']:.4f}"
            f"  test avg margin {r['test_avg_margin']:.3f}  train avg margin "
            f"{r['train_avg_margin']:.3f}"
        )
    print(f"time ratio AMR / sklearn: {result['time_ratio_amr_over_sklearn']:.2f} (target <= 1.5)")
    print(f"test average-margin ratio AMR / sklearn: {result['avg_margin_ratio_test']:.2f}")
    return result


def main(argv=None):
    # --quick: 3 repeats instead of 7 (unless --repeats is given)
    parser = make_parser(__doc__, repeats=0)
    parser.add_argument("--problem", choices=sorted(OUTPUTS), default="mnist01")
    parser.add_argument("--n-train", type=int, default=20_000, help="MNIST-10 training images")
    parser.add_argument("--n-samples", type=int, default=100_000, help="rows of the sparse problem")
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 7)
    if args.problem == "multiclass":
        result = run_multiclass(repeats, args.n_train)
    elif args.problem == "sparse":
        result = run_sparse(repeats, args.n_samples)
    else:
        result = run_mnist01(repeats)
    write_result(result, OUTPUTS[args.problem], "cpu", args.out)
    return result


if __name__ == "__main__":
    main()
