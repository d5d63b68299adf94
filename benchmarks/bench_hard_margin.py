"""HardMarginSVC against libsvm's hard margin, SVC(kernel="linear", C=1e6), on MNIST 0-vs-1.

Usage::

    python benchmarks/bench_hard_margin.py [--quick] [--repeats 5] [--out FILE.json]

Both estimators are timed in the same run, their fits interleaved (best of ``--repeats``).
The script prints and writes the time ratio (ours / libsvm), the cosine of the two weight
vectors, both minimum margins on the training data, the support-set sizes and whether the
sets are equal, and the KKT residuals of our solution. Needs MNIST in the data home
(``$AMRLEARN_DATA``).
"""

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import sklearn
from sklearn.svm import SVC

from amrlearn.datasets import load_mnist
from amrlearn.metrics import linear_margins
from amrlearn.svm import HardMarginSVC

DEFAULT_OUT = Path(__file__).parent / "results" / "hard_margin.json"


def _timed_fits(makers, X, y, repeats):
    """Fit each estimator ``repeats`` times, interleaved so that both see the same load.

    Returns, per estimator, the last fitted instance and the list of wall times.
    """
    fitted, times = {}, {name: [] for name in makers}
    for _ in range(repeats):
        for name, make in makers.items():
            est = make()
            start = time.perf_counter()
            est.fit(X, y)
            times[name].append(time.perf_counter() - start)
            fitted[name] = est
    return fitted, times


def _kkt_residuals(clf, X, y):
    y_pm = np.where(y == clf.classes_[1], 1.0, -1.0)
    w, b = clf.coef_[0], clf.intercept_[0]
    alpha_y = clf.dual_coef_[0]
    functional = y_pm * (X @ w + b)
    return {
        "stationarity_rel": float(
            np.linalg.norm(alpha_y @ clf.support_vectors_ - w) / np.linalg.norm(w)
        ),
        "sum_alpha_y": float(alpha_y.sum()),
        "min_functional_margin": float(functional.min()),
        "max_sv_functional_margin_gap": float(np.abs(functional[clf.support_] - 1).max()),
        "min_alpha": float(np.abs(alpha_y).min()),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 3000-sample subset")
    parser.add_argument("--repeats", type=int, default=5, help="fits per estimator (best kept)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output file")
    args = parser.parse_args(argv)

    X, y = load_mnist(subset="train", classes=(0, 1), return_X_y=True)
    if args.quick:
        idx = np.random.RandomState(0).choice(len(y), 3000, replace=False)
        X, y = X[idx], y[idx]
    X = X.astype(np.float64)  # both estimators work in float64; convert once, untimed
    print(f"MNIST 0-vs-1: {X.shape[0]} x {X.shape[1]}")

    fitted, times = _timed_fits(
        {"ours": HardMarginSVC, "libsvm": lambda: SVC(kernel="linear", C=1e6)},
        X,
        y,
        args.repeats,
    )
    ours, ref = fitted["ours"], fitted["libsvm"]
    t_ours, t_ref = min(times["ours"]), min(times["libsvm"])

    w, w_ref = ours.coef_[0], ref.coef_[0]
    cosine = float(w @ w_ref / (np.linalg.norm(w) * np.linalg.norm(w_ref)))
    sv_ours, sv_ref = set(ours.support_.tolist()), set(ref.support_.tolist())
    result = {
        "n_samples": int(X.shape[0]),
        "n_features": int(X.shape[1]),
        "quick": bool(args.quick),
        "repeats": args.repeats,
        "time_ours_s": t_ours,
        "time_libsvm_s": t_ref,
        "times_ours_s": times["ours"],
        "times_libsvm_s": times["libsvm"],
        "time_ratio_ours_over_libsvm": t_ours / t_ref,
        "cosine": cosine,
        "min_margin_ours": float(linear_margins(ours, X, y).min()),
        "min_margin_libsvm": float(linear_margins(ref, X, y).min()),
        "margin_attr_ours": ours.margin_,
        "n_support_ours": len(sv_ours),
        "n_support_libsvm": len(sv_ref),
        "same_support_set": sv_ours == sv_ref,
        "working_set_rounds": int(ours.n_iter_),
        "libsvm_max_abs_dual": float(np.abs(ref.dual_coef_).max()),
        "kkt_ours": _kkt_residuals(ours, X, y),
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
        },
        "machine": platform.machine(),
    }
    for key in (
        "time_ours_s",
        "time_libsvm_s",
        "time_ratio_ours_over_libsvm",
        "cosine",
        "min_margin_ours",
        "min_margin_libsvm",
        "n_support_ours",
        "n_support_libsvm",
        "same_support_set",
        "working_set_rounds",
    ):
        print(f"{key:>28}: {result[key]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
