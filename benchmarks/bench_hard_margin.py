"""HardMarginSVC against libsvm's hard margin, SVC(kernel="linear", C=1e6).

Usage::

    python benchmarks/bench_hard_margin.py [--problem mnist01|many_sv|sparse] [--quick]
        [--repeats 5] [--out FILE.json]

Problems:

* ``mnist01`` (default): MNIST 0-vs-1, 12,665 x 784, few support vectors. Needs MNIST in
  the data home (``$AMRLEARN_DATA``). Writes ``results/bench_hard_margin_cpu.json``.
* ``many_sv``: 20,000 x 300 standard normal samples labelled by a random hyperplane through
  the origin (seeded): separable, with about 300 (= n_features) support vectors. Writes
  ``results/bench_hard_margin_many_sv_cpu.json``. Target: time ratio <= 1.0, cosine >= 0.9999.
* ``sparse``: CSR of density 0.001 with 50,000 features (uniform [0, 1) values, seeded),
  labelled by the sign of a random hyperplane, thresholded at its median: separable by
  construction. ``--n-samples`` sets the rows (100,000 in the issue; libsvm's time grows
  quickly with it). Writes ``results/bench_hard_margin_sparse_cpu.json``.

Both estimators are timed in the same run, their fits interleaved (best of ``--repeats``).
The script prints and writes the time ratio (ours / libsvm), the cosine of the two weight
vectors, both minimum margins on the training data, the support-set sizes and whether the
sets are equal, and the KKT residuals of our solution.
"""

import os
import platform

import numpy as np
import scipy.sparse as sp
import sklearn
from _bench_common import interleaved_fits, make_parser, write_result
from sklearn.svm import SVC

from amrlearn.datasets import load_mnist
from amrlearn.metrics import linear_margins
from amrlearn.svm import HardMarginSVC

#: Each problem's result name: ``results/<name>_cpu.json``.
OUTPUTS = {
    "mnist01": "bench_hard_margin",
    "many_sv": "bench_hard_margin_many_sv",
    "sparse": "bench_hard_margin_sparse",
}


def _kkt_residuals(clf, X, y):
    y_pm = np.where(y == clf.classes_[1], 1.0, -1.0)
    w, b = clf.coef_[0], clf.intercept_[0]
    alpha_y = clf.dual_coef_[0]
    functional = y_pm * (X @ w + b)
    combination = np.asarray(clf.support_vectors_.T @ alpha_y).ravel()
    return {
        "stationarity_rel": float(np.linalg.norm(combination - w) / np.linalg.norm(w)),
        "sum_alpha_y": float(alpha_y.sum()),
        "min_functional_margin": float(functional.min()),
        "max_sv_functional_margin_gap": float(np.abs(functional[clf.support_] - 1).max()),
        "min_alpha": float(np.abs(alpha_y).min()),
    }


def many_sv_problem(n_samples=20_000, n_features=300, seed=0):
    """Separable Gaussian data with about ``n_features`` support vectors (seeded)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features))
    return X, (X @ rng.standard_normal(n_features) > 0).astype(np.int64)


def sparse_problem(n_samples=100_000, n_features=50_000, density=0.001, seed=0):
    """A sparse CSR problem, separable by construction (seeded)."""
    rng = np.random.default_rng(seed)
    X = sp.random(n_samples, n_features, density=density, format="csr", random_state=rng)
    score = X @ rng.standard_normal(n_features)
    return X, (score > np.median(score)).astype(np.int64)


def _load(problem, quick, n_samples):
    if problem == "many_sv":
        X, y = many_sv_problem(n_samples or (5000 if quick else 20_000))
        return X, y, f"many_sv (normal, separable through 0): {X.shape[0]} x {X.shape[1]}"
    if problem == "sparse":
        X, y = sparse_problem(n_samples or (10_000 if quick else 100_000))
        return X, y, f"sparse CSR, density 0.001: {X.shape[0]} x {X.shape[1]}"
    X, y = load_mnist(subset="train", classes=(0, 1), return_X_y=True)
    if quick:
        idx = np.random.RandomState(0).choice(len(y), 3000, replace=False)
        X, y = X[idx], y[idx]
    # both estimators work in float64; convert once, untimed
    return X.astype(np.float64), y, f"MNIST 0-vs-1: {X.shape[0]} x {X.shape[1]}"


def main(argv=None):
    parser = make_parser(__doc__, repeats=5)  # --quick: a smaller problem
    parser.add_argument("--problem", choices=sorted(OUTPUTS), default="mnist01")
    parser.add_argument("--n-samples", type=int, default=None, help="rows (many_sv, sparse)")
    args = parser.parse_args(argv)

    X, y, description = _load(args.problem, args.quick, args.n_samples)
    print(description)
    load_before = os.getloadavg()[0]
    fitted, times = interleaved_fits(
        {"ours": HardMarginSVC, "libsvm": lambda: SVC(kernel="linear", C=1e6)},
        X,
        y,
        args.repeats,
    )
    ours, ref = fitted["ours"], fitted["libsvm"]
    t_ours, t_ref = min(times["ours"]), min(times["libsvm"])

    w, w_ref = (
        ours.coef_[0],
        np.asarray(ref.coef_.todense() if sp.issparse(ref.coef_) else ref.coef_)[0],
    )
    cosine = float(w @ w_ref / (np.linalg.norm(w) * np.linalg.norm(w_ref)))
    sv_ours, sv_ref = set(ours.support_.tolist()), set(ref.support_.tolist())
    result = {
        "problem": args.problem,
        "data": description,
        "n_samples": int(X.shape[0]),
        "n_features": int(X.shape[1]),
        "sparse": bool(sp.issparse(X)),
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
        "libsvm_max_abs_dual": float(
            np.abs(ref.dual_coef_.data if sp.issparse(ref.dual_coef_) else ref.dual_coef_).max()
        ),
        "kkt_ours": _kkt_residuals(ours, X, y),
        "load_average_1min_before_after": [load_before, os.getloadavg()[0]],
        "cpus": os.cpu_count(),
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
    write_result(result, OUTPUTS[args.problem], "cpu", args.out)
    return result


if __name__ == "__main__":
    main()
