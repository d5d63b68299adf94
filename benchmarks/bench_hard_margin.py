"""HardMarginSVC against libsvm's hard margin, SVC(kernel="linear", C=1e6), over shapes.

Usage::

    python benchmarks/bench_hard_margin.py [--shapes small,many_sv,...] [--quick]
        [--repeats 3] [--solver auto] [--out FILE.json]

Shapes (``--quick`` sizes in brackets; all seeded):

* ``small``: 2,000 x 50 [same] standard normal samples labelled by a random hyperplane
  through the origin: separable, about ``n_features`` support vectors, tiny margin.
* ``many_sv``: the same construction at 20,000 x 300 [5,000 x 300].
* ``wide``: the same construction at 3,000 x 1,000 [1,000 x 1,000]: about 900 [600] support
  vectors, nearly ``n_features``, out of few samples; the closest race with libsvm.
* ``gap``: 18,000 x 250 [6,000 x 250] standard normal samples labelled by a random
  hyperplane, those within 0.5 of it removed: about 250 support vectors, a wide margin
  (libsvm converges quickly here; the problem of issue 21, item 7).
* ``tall``: 50,000 x 20 [16,666 x 20], the construction of ``gap`` with a band of half-width
  0.1: about 20 support vectors. (Labelled through the origin as ``small``, libsvm needs
  over a minute per fit at this size.)
* ``few_sv``: 20,000 x 100 [5,000 x 100], two classes of standard normal samples whose
  means are 12 apart: a handful of support vectors.
* ``sparse``: CSR of density 0.001 with 50,000 features (uniform [0, 1) values), labelled by
  the sign of a random hyperplane thresholded at its median, 5,000 [2,000] rows: nearly every
  sample is a support vector. ``--n-samples`` sets the rows.
* ``mnist01``: MNIST 0-vs-1, 12,665 x 784 [3,000 rows], few support vectors. Needs MNIST in
  the data home (``$AMRLEARN_DATA``); skipped without it.

``--problem NAME`` is ``--shapes NAME``. All shapes run by default (a few minutes in all,
most of it libsvm's fits on ``many_sv``).

Both estimators are fitted in the same run, interleaved, ``--repeats`` times each, in one
thread (``OMP_NUM_THREADS=1`` is set before numpy loads, and BLAS is limited to one thread).
Each fit's wall time and CPU time (``time.process_time``) are recorded and the medians
compared: ``cpu_ratio`` and ``wall_ratio`` are ours / libsvm's. On a shared machine the CPU
time is the steadier of the two. Per shape the script also prints and writes the cosine of
the two weight vectors, both minimum margins on the training data, the support-set sizes,
the working-set rounds and the KKT residuals of our solution. Writes
``results/bench_hard_margin_shapes_cpu.json`` (``_quick`` with ``--quick``).
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from _bench_common import make_parser, write_result  # noqa: E402
from sklearn.svm import SVC  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from amrlearn.metrics import linear_margins  # noqa: E402
from amrlearn.svm import HardMarginSVC  # noqa: E402

SHAPES = ("small", "many_sv", "wide", "gap", "tall", "few_sv", "sparse", "mnist01")


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


def gap_problem(n_samples=18_000, n_features=250, gap=0.5, seed=0):
    """Gaussian data labelled by a random hyperplane, a band of half-width ``gap`` removed."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(n_features)
    w /= np.linalg.norm(w)
    X = rng.standard_normal((2 * n_samples, n_features))
    score = X @ w
    keep = np.flatnonzero(np.abs(score) > gap)[:n_samples]
    return X[keep], (score[keep] > 0).astype(np.int64)


def few_sv_problem(n_samples=20_000, n_features=100, distance=12.0, seed=0):
    """Two Gaussian classes whose means are ``distance`` apart: few support vectors."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n_samples) % 2).astype(np.int64)
    direction = rng.standard_normal(n_features)
    direction *= distance / 2 / np.linalg.norm(direction)
    X = (
        rng.standard_normal((n_samples, n_features))
        + np.where(y == 1, 1.0, -1.0)[:, None] * direction
    )
    if np.any((X @ direction > 0) != (y == 1)):  # not expected at this distance
        raise RuntimeError("few_sv_problem: the classes overlap; increase distance")
    return X, y


def sparse_problem(n_samples=5_000, n_features=50_000, density=0.001, seed=0):
    """A sparse CSR problem, separable by construction (seeded)."""
    rng = np.random.default_rng(seed)
    X = sp.random(n_samples, n_features, density=density, format="csr", random_state=rng)
    score = X @ rng.standard_normal(n_features)
    return X, (score > np.median(score)).astype(np.int64)


def load_shape(shape, quick, n_samples=None):
    """``(X, y, description)`` of a shape, or ``None`` where its data are missing."""
    if shape in ("small", "many_sv", "wide"):
        n, d = {
            "small": (2000, 50),
            "many_sv": (5000 if quick else 20_000, 300),
            "wide": (1000 if quick else 3000, 1000),
        }[shape]
        X, y = many_sv_problem(n_samples or n, d)
        return X, y, f"normal, separable through 0: {X.shape[0]} x {X.shape[1]}"
    if shape in ("gap", "tall"):
        n, d, gap = {"gap": (18_000, 250, 0.5), "tall": (50_000, 20, 0.1)}[shape]
        X, y = gap_problem(n_samples or (n // 3 if quick else n), d, gap)
        return X, y, f"normal, band of half-width {gap} removed: {X.shape[0]} x {X.shape[1]}"
    if shape == "few_sv":
        X, y = few_sv_problem(n_samples or (5000 if quick else 20_000))
        return X, y, f"two normal classes, means 12 apart: {X.shape[0]} x {X.shape[1]}"
    if shape == "sparse":
        X, y = sparse_problem(n_samples or (2000 if quick else 5000))
        return X, y, f"sparse CSR, density 0.001: {X.shape[0]} x {X.shape[1]}"
    from amrlearn.datasets import load_mnist

    try:
        X, y = load_mnist(subset="train", classes=(0, 1), return_X_y=True)
    except FileNotFoundError as exc:
        print(f"mnist01 skipped: {exc}")
        return None
    if quick:
        idx = np.random.RandomState(0).choice(len(y), 3000, replace=False)
        X, y = X[idx], y[idx]
    # both estimators work in float64; convert once, untimed
    return X.astype(np.float64), y, f"MNIST 0-vs-1: {X.shape[0]} x {X.shape[1]}"


def timed_fits(makers, X, y, repeats):
    """Fit each ``makers[name]()`` ``repeats`` times, interleaved; the last fits and, per
    name, the lists of wall and CPU seconds."""
    fitted, wall, cpu = {}, {n: [] for n in makers}, {n: [] for n in makers}
    for _ in range(repeats):
        for name, make in makers.items():
            est = make()
            start, start_cpu = time.perf_counter(), time.process_time()
            est.fit(X, y)
            cpu[name].append(time.process_time() - start_cpu)
            wall[name].append(time.perf_counter() - start)
            fitted[name] = est
    return fitted, wall, cpu


def run_shape(shape, X, y, description, repeats, solver, reference_tol=None):
    fitted, wall, cpu = timed_fits(
        {
            "ours": lambda: HardMarginSVC(solver=solver),
            "libsvm": lambda: SVC(kernel="linear", C=1e6),
        },
        X,
        y,
        repeats,
    )
    ours, ref = fitted["ours"], fitted["libsvm"]
    w = ours.coef_[0]
    w_ref = np.asarray(ref.coef_.todense() if sp.issparse(ref.coef_) else ref.coef_)[0]
    margin, margin_ref = linear_margins(ours, X, y).min(), linear_margins(ref, X, y).min()
    cosine = float(w @ w_ref / (np.linalg.norm(w) * np.linalg.norm(w_ref)))
    med = {
        k: {n: statistics.median(v) for n, v in t.items()}
        for k, t in (("wall", wall), ("cpu", cpu))
    }
    record = {
        "shape": shape,
        "data": description,
        "n_samples": int(X.shape[0]),
        "n_features": int(X.shape[1]),
        "sparse": bool(sp.issparse(X)),
        "cpu_ours_s": med["cpu"]["ours"],
        "cpu_libsvm_s": med["cpu"]["libsvm"],
        "cpu_ratio": med["cpu"]["ours"] / med["cpu"]["libsvm"],
        "wall_ours_s": med["wall"]["ours"],
        "wall_libsvm_s": med["wall"]["libsvm"],
        "wall_ratio": med["wall"]["ours"] / med["wall"]["libsvm"],
        "cpu_times_ours_s": cpu["ours"],
        "cpu_times_libsvm_s": cpu["libsvm"],
        "wall_times_ours_s": wall["ours"],
        "wall_times_libsvm_s": wall["libsvm"],
        "cosine": cosine,
        "min_margin_ours": float(margin),
        "min_margin_libsvm": float(margin_ref),
        "margin_rel_diff": float((margin - margin_ref) / margin),
        "n_support_ours": int(len(ours.support_)),
        "n_support_libsvm": int(len(ref.support_)),
        "same_support_set": set(ours.support_.tolist()) == set(ref.support_.tolist()),
        "working_set_rounds": int(ours.n_iter_),
        "libsvm_max_abs_dual": float(
            np.abs(ref.dual_coef_.data if sp.issparse(ref.dual_coef_) else ref.dual_coef_).max()
        ),
        "kkt_ours": _kkt_residuals(ours, X, y),
    }
    if reference_tol is not None:
        # libsvm's direction is only as exact as its tol (1e-3 by default): a tighter,
        # untimed fit tells our error from libsvm's.
        tight = SVC(kernel="linear", C=1e6, tol=reference_tol).fit(X, y)
        w_tight = np.asarray(tight.coef_.todense() if sp.issparse(tight.coef_) else tight.coef_)[0]
        record["reference_tol"] = reference_tol
        record["cosine_tight_reference"] = float(
            w @ w_tight / (np.linalg.norm(w) * np.linalg.norm(w_tight))
        )
        record["min_margin_tight_reference"] = float(linear_margins(tight, X, y).min())
    return record


def record_working_sets(X, y):
    """The QPs that ``HardMarginSVC()`` solves, in order: ``(X_work, y_work, {"support":
    guessed support, "gram": kept kernel matrix})``."""
    import amrlearn.svm._hard_margin as hm

    recorded, original = [], hm._solve_hard_margin_qp

    def record(X_work, y_work, **kwargs):
        guesses = {key: kwargs.get(key) for key in ("support", "gram")}
        recorded.append((X_work, y_work, guesses))
        return original(X_work, y_work, **kwargs)

    hm._solve_hard_margin_qp = record
    try:
        HardMarginSVC().fit(X, y)
    finally:
        hm._solve_hard_margin_qp = original
    return recorded


def _dual_via_cvxpy(X, y):
    """The dual QP ``max 1'a - 1/2 a'Ka, a >= 0, y'a = 0`` in cvxpy with Clarabel."""
    import cvxpy as cp

    Z = X * y[:, None]
    a = cp.Variable(len(y))
    K = cp.psd_wrap(Z @ Z.T)
    cp.Problem(cp.Minimize(0.5 * cp.quad_form(a, K) - cp.sum(a)), [a >= 0, y @ a == 0]).solve(
        solver="CLARABEL"
    )
    alpha = np.maximum(a.value, 0.0)
    w = Z.T @ alpha
    sv = alpha > 1e-4 * alpha.max()
    return w, float(np.mean(y[sv] - X[sv] @ w)), alpha


class _ReusedProblem:
    """The primal QP compiled once, with parameters padded to the largest working set:
    rows ``Z = 0, y = 0, rhs = -1`` are the padding (``0 >= -1`` holds)."""

    def __init__(self, m_max, d, solver, options):
        import cvxpy as cp

        self.Z, self.y = cp.Parameter((m_max, d)), cp.Parameter(m_max)
        self.rhs = cp.Parameter(m_max)
        self.w, self.b = cp.Variable(d), cp.Variable()
        self.constraint = self.Z @ self.w + self.y * self.b >= self.rhs
        self.problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(self.w)), [self.constraint])
        self.m_max, self.solver, self.options = m_max, solver, options

    def __call__(self, X, y):
        m = len(y)
        pad = self.m_max - m
        self.Z.value = np.vstack([X * y[:, None], np.zeros((pad, X.shape[1]))])
        self.y.value = np.concatenate([y, np.zeros(pad)])
        self.rhs.value = np.concatenate([np.ones(m), -np.ones(pad)])
        self.problem.solve(solver=self.solver, **self.options)
        alpha = np.asarray(self.constraint.dual_value)[:m]
        return np.asarray(self.w.value), float(self.b.value), alpha


_OSQP_TIGHT = {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iter": 200_000, "polish": True}


def run_levers(shape, X, y, repeats):
    """CPU seconds of each way of solving the recorded working-set QPs of ``shape``."""
    import amrlearn.svm._hard_margin as hm
    from amrlearn.svm._ipm import solve_hard_margin_ipm

    if sp.issparse(X):
        raise SystemExit("--levers takes a dense shape")
    qps = record_working_sets(X, y)
    m_max = max(len(q[1]) for q in qps)

    variants = {
        "cvxpy Clarabel, primal, compiled each round (before)": lambda Xw, yw, _: (
            hm._solve_hard_margin_qp(Xw, yw, solver="CLARABEL")
        ),
        "cvxpy Clarabel, primal, cp.Parameter reuse": _ReusedProblem(
            m_max, X.shape[1], "CLARABEL", {}
        ),
        "cvxpy OSQP 1e-9 + polish, compiled each round": lambda Xw, yw, _: hm._solve_hard_margin_qp(
            Xw, yw, solver="OSQP", solver_options=_OSQP_TIGHT
        ),
        "cvxpy OSQP 1e-9 + polish, cp.Parameter reuse + warm start": _ReusedProblem(
            m_max, X.shape[1], "OSQP", {**_OSQP_TIGHT, "warm_start": True}
        ),
        "cvxpy Clarabel, dual (psd_wrap(K))": lambda Xw, yw, _: _dual_via_cvxpy(Xw, yw),
        "built-in interior point alone": lambda Xw, yw, _: solve_hard_margin_ipm(Xw, yw),
        "auto: active set from the guess, else interior point + polish (after)": (
            lambda Xw, yw, guesses: hm._solve_hard_margin_qp(Xw, yw, solver="auto", **guesses)
        ),
    }
    # The reference: Clarabel at tolerances of 1e-12 (its defaults are 1e-8).
    tight = {"tol_gap_rel": 1e-12, "tol_gap_abs": 1e-12, "tol_feas": 1e-12}
    reference = [
        hm._solve_hard_margin_qp(Xw, yw, solver="CLARABEL", solver_options=tight)[0]
        for Xw, yw, _ in qps
    ]
    rows = []
    for name, solve in variants.items():
        if isinstance(solve, _ReusedProblem):
            call = solve
            solve = lambda Xw, yw, _, call=call: call(Xw, yw)  # noqa: E731
        times, error = [], 0.0
        for _ in range(repeats):
            start = time.process_time()
            found = [solve(*qp) for qp in qps]
            times.append(time.process_time() - start)
        for (w, _, _), w_ref in zip(found, reference):
            error = max(error, np.linalg.norm(w - w_ref) / np.linalg.norm(w_ref))
        rows.append(
            {
                "variant": name,
                "cpu_s": statistics.median(times),
                "cpu_times_s": times,
                "max_rel_w_error_vs_tight_clarabel": float(error),
            }
        )
        print(f"{rows[-1]['cpu_s']:9.3f} s  w error {error:8.1e}  {name}", flush=True)
    return {
        "shape": shape,
        "n_samples": int(X.shape[0]),
        "n_features": int(X.shape[1]),
        "n_qps": len(qps),
        "working_set_sizes": [len(q[1]) for q in qps],
        "variants": rows,
    }


#: Printed columns: record key, header, format specification (with the width).
PRINTED = (
    ("shape", "shape", ">8"),
    ("n_samples", "n", ">6"),
    ("n_features", "d", ">6"),
    ("cpu_ours_s", "cpu_ours", ">9.3f"),
    ("cpu_libsvm_s", "cpu_libsvm", ">10.3f"),
    ("cpu_ratio", "cpu_ratio", ">9.3f"),
    ("wall_ours_s", "wall_ours", ">9.3f"),
    ("wall_libsvm_s", "wall_libsvm", ">11.3f"),
    ("wall_ratio", "wall_ratio", ">10.3f"),
    ("cosine", "cosine", ">10.8f"),
    ("margin_rel_diff", "margin_diff", ">11.2e"),
    ("n_support_ours", "n_sv", ">5"),
    ("n_support_libsvm", "n_sv_lib", ">8"),
    ("working_set_rounds", "rounds", ">6"),
)


def main(argv=None):
    parser = make_parser(__doc__, repeats=3)  # --quick: smaller problems
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated shapes")
    parser.add_argument("--problem", choices=SHAPES, default=None, help="one shape")
    parser.add_argument("--solver", default="auto", help="HardMarginSVC's solver")
    parser.add_argument("--n-samples", type=int, default=None, help="rows of every shape")
    parser.add_argument(
        "--levers",
        choices=SHAPES,
        default=None,
        help="instead: time the ways of solving the working-set QPs of this (dense) shape",
    )
    parser.add_argument(
        "--reference-tol",
        type=float,
        default=None,
        help="also fit libsvm with this tol (untimed) and report the cosine with it",
    )
    args = parser.parse_args(argv)
    shapes = [args.problem] if args.problem else args.shapes.split(",")
    unknown = sorted(set(shapes) - set(SHAPES))
    if unknown:
        parser.error(f"unknown shapes {unknown}; choose from {list(SHAPES)}")

    load_before = os.getloadavg()[0]
    if args.levers:
        loaded = load_shape(args.levers, args.quick, args.n_samples)
        with threadpool_limits(1):
            result = run_levers(args.levers, loaded[0], loaded[1], args.repeats)
        result.update(quick=bool(args.quick), repeats=args.repeats)
        result["load_average_1min_before_after"] = [load_before, os.getloadavg()[0]]
        name = "bench_hard_margin_levers" + ("_quick" if args.quick else "")
        write_result(result, name, "cpu", args.out)
        return result
    records = []
    print(" ".join(format(head, spec.split(".")[0]) for _, head, spec in PRINTED))
    with threadpool_limits(1):
        for shape in shapes:
            loaded = load_shape(shape, args.quick, args.n_samples)
            if loaded is None:
                continue
            record = run_shape(shape, *loaded, args.repeats, args.solver, args.reference_tol)
            records.append(record)
            print(" ".join(format(record[key], spec) for key, _, spec in PRINTED), flush=True)
    result = {
        "quick": bool(args.quick),
        "repeats": args.repeats,
        "statistic": "median of the repeats; cpu: time.process_time, one thread",
        "solver": args.solver,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cpus": os.cpu_count(),
        "load_average_1min_before_after": [load_before, os.getloadavg()[0]],
        "shapes": records,
    }
    name = "bench_hard_margin_shapes" + ("_quick" if args.quick else "")
    write_result(result, name, "cpu", args.out)
    return result


if __name__ == "__main__":
    main()
