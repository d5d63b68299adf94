"""The runner of the deep-model experiments (Tables 1, 2 and Figures 2-8): cells, data, seeds.

A *cell* is one (dataset, model, method). :func:`run_cells` walks a list of cells,
resolves each one's plan once (:func:`~._recipe.plan_cell`), trains it, measures it
(clean accuracy, l2 PGD robust accuracy on the eps grid, Theorem 3 margins, margin paths
over epochs) and saves it in ``results.json`` through :class:`~._common.ResultStore` as
soon as it is done, so that an interrupted run resumes at the next cell.

CIFAR-10 cells whose data are missing are reported as skipped, never replaced by other
data.
"""

import contextlib
import itertools
import math
import random
import time
from dataclasses import replace

import numpy as np

from ._callbacks import cpu_recorder, epoch_bar, history, penalty_recorder
from ._common import DATASET_NAMES, ResultStore, cell_key
from ._estimate import announce_full_run, estimate_seconds, plan_seconds
from ._recipe import bound_params, make_net, plan_cell

__all__ = [
    "DATASET_NAMES",
    "cell_key",
    "estimate_seconds",
    "grid_cells",
    "load_split",
    "run_cells",
    "seeded",
    "skip_reason",
    "train_cell",
]


def grid_cells(config):
    """Every (dataset, model, method) of the configuration's ``datasets``, ``models`` and
    ``methods``, in that order."""
    return list(itertools.product(config["datasets"], config["models"], config["methods"]))


def skip_reason(dataset, data_home):
    """The line printed (and stored) for a cell whose dataset is missing.

    It names the data home's setting, not its path: results files record no path of the
    machine that made them.
    """
    where = "data_home" if data_home is not None else "the data home ($AMRLEARN_DATA)"
    return f"skipped: {DATASET_NAMES[dataset]} not found in {where}"


@contextlib.contextmanager
def seeded(seed, deterministic=True):
    """Seed python, numpy and torch; on the CPU also ask torch for deterministic kernels.

    The previous determinism setting is restored on exit.
    """
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (third-party code may draw from it)
    torch.manual_seed(seed)
    previous = torch.are_deterministic_algorithms_enabled()
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def _subset(n_total, n, rng):
    if n is None or n >= n_total:
        return np.arange(n_total)
    return np.sort(rng.choice(n_total, size=n, replace=False))


def load_split(dataset, config, *, flatten):
    """Training and test arrays of ``dataset``, subsampled with the configuration's seed.

    Returns
    -------
    data : dict
        ``X_train``, ``y_train``, ``X_test``, ``y_test`` (float32 in [0, 1], int64).

    Raises
    ------
    DatasetNotFoundError
        When the data home lacks the dataset.
    """
    from ..datasets import load_cifar10, load_fashion_mnist, load_mnist

    loader = {"mnist": load_mnist, "fashion-mnist": load_fashion_mnist, "cifar10": load_cifar10}
    loader = loader[dataset]
    home = config.get("data_home")
    Xtr, ytr = loader(home, subset="train", return_X_y=True, flatten=flatten)
    Xte, yte = loader(home, subset="test", return_X_y=True, flatten=flatten)
    rng = np.random.RandomState(config["seed"])
    itr = _subset(len(ytr), config.get("n_train"), rng)
    ite = _subset(len(yte), config.get("n_test"), rng)
    return {
        "X_train": np.ascontiguousarray(Xtr[itr], dtype=np.float32),
        "y_train": np.asarray(ytr[itr], dtype=np.int64),
        "X_test": np.ascontiguousarray(Xte[ite], dtype=np.float32),
        "y_test": np.asarray(yte[ite], dtype=np.int64),
    }


def _fixed_points(X, y, n, seed):
    """``n`` points of (X, y) chosen with a fixed seed (the paper's 500-point subsets)."""
    idx = _subset(len(y), n, np.random.RandomState(seed + 1))
    return X[idx], y[idx]


def _tracker(plan, data, device):
    """The MarginTracker of a tracked cell, and its fixed points per split."""
    from ..neural import MarginTracker

    if not plan.track:
        raise ValueError(f"{plan.key} is tracked, but the configuration has no 'track'.")
    n, seed = plan.track["n_points"], plan.seed
    tracked = {
        "train": _fixed_points(data["X_train"], data["y_train"], n, seed),
        "test": _fixed_points(data["X_test"], data["y_test"], n, seed),
    }
    (Xtr, ytr), (Xte, yte) = tracked["train"], tracked["test"]
    tracker = MarginTracker(
        X_train=Xtr,
        y_train=ytr,
        X_test=Xte,
        y_test=yte,
        n_points=None,
        epochs=list(plan.track_epochs),
        kind="bound",
        bound_params=bound_params(plan.track, seed, device),
        random_state=seed,
        keep_margins=True,
    )
    return tracker, tracked


def _margin_path(net, splits):
    """Per-epoch min/avg margins and per-sample margins, from the tracker's history."""
    path = {}
    for split in splits:
        rows = [h for h in net.history if f"{split}_avg_margin" in h]
        path[split] = {
            "epoch": [int(h["epoch"]) for h in rows],
            "min_margin": [float(h[f"{split}_min_margin"]) for h in rows],
            "avg_margin": [float(h[f"{split}_avg_margin"]) for h in rows],
            "margins": [h[f"{split}_margins"] for h in rows if f"{split}_margins" in h],
        }
    return path


def _verified_accuracy(net, X, y, eps, device):
    """Verified robust accuracy (percent) at each eps from the certified margins, or
    None where the net cannot be certified."""
    from ..metrics import certified_margins
    from ..metrics._chain import NotCertifiableError

    try:
        cert = certified_margins(net, X, y, device=device)
    except NotCertifiableError:
        return None
    return [100.0 * float(np.mean(cert > e)) for e in eps]


def _distances(net, plan, X, y, device):
    """MMA's measure: the mean and median distance to the boundary over test points, from
    the minimum-norm ensemble (0 for a misclassified point)."""
    from ..metrics import robustness_curve

    Xd, yd = _fixed_points(X, y, plan.distance["n_points"], plan.seed)
    curve = robustness_curve(
        net,
        Xd,
        yd,
        lower=False,
        certified=False,
        attack_steps=plan.distance.get("steps", 100),
        random_state=plan.seed,
        device=device,
        verbose=plan.verbose,
    )
    dist = np.maximum(curve.upper, 0.0)
    found = np.isfinite(dist)  # the ensemble found no adversarial point: left out, counted
    return {
        "mean_distance": float(np.mean(dist[found])) if found.any() else None,
        "median_distance": float(np.median(dist[found])) if found.any() else None,
        "n_distance_points": int(len(yd)),
        "n_distance_unbroken": int((~found).sum()),
    }


def _measure(net, plan, data, device):
    """Clean and l2 PGD robust accuracy, and Theorem 3's margins, of a fitted net."""
    from ..attacks import robust_accuracy
    from ..metrics import margin_report

    X, y = data["X_test"], data["y_test"]
    result = {"clean": 100.0 * float(np.mean(net.predict(X) == y))}
    pgd = plan.pgd
    if pgd:
        Xp, yp = _fixed_points(X, y, pgd.n_points, plan.seed)
        eps = list(pgd.eps)
        # ``robust``: the strong evaluation (the configuration's ``pgd_loss`` chain, the
        # paper's PGD then "auto"), which the verdicts use; ``robust_pgd``: the chain's
        # first attack alone (the paper's cross-entropy PGD), which gradient masking can
        # fool. One call gives both, so robust <= robust_pgd per sample.
        c0 = time.process_time()
        res = robust_accuracy(
            net,
            Xp,
            yp,
            eps=eps,
            attack=pgd.attack,
            steps=pgd.steps,
            step_size=pgd.step_size,
            batch_size=pgd.batch_size,
            device=device,
            verbose=plan.verbose,
            random_state=plan.seed,
            return_details=True,
        )
        attack_cpu = time.process_time() - c0
        first = res.attacks[0]
        c0 = time.process_time()
        certified = _verified_accuracy(net, Xp, yp, eps, device)
        result.update(
            eps=eps,
            robust=[100.0 * float(a) for a in res.accuracy],
            robust_pgd=[100.0 * float(a) for a in res.accuracy_by_attack[first]],
            certified=certified,
            n_pgd_points=int(len(yp)),
            # CPU seconds of the attacks and of the certificate on the same points.
            attack_cpu_seconds=attack_cpu,
            certify_cpu_seconds=time.process_time() - c0,
        )
    if plan.distance:
        result.update(_distances(net, plan, X, y, device))
    if plan.margin:
        Xm, ym = _fixed_points(X, y, plan.margin["n_points"], plan.seed)
        budget = bound_params(plan.margin, plan.seed, device)
        rep = margin_report(net, Xm, ym, upper=False, bound_params=budget)
        result.update(
            margin={k: float(v) for k, v in rep.items()},
            avg_margin=float(rep["avg_margin"]),
            n_margin_points=int(len(ym)),
        )
    return result


def train_cell(dataset, model, method, data, config, *, desc="", track=False, plan=None):
    """Train one cell and measure it. Returns the cell's dict of numbers (JSON-ready).

    Parameters
    ----------
    dataset, model, method : str
    data : dict
        From :func:`load_split`.
    config : dict
        The experiment's configuration (see ``default_config`` of table1, table2, figures).
    desc : str
        The label of the progress bar.
    track : bool
        Record the min/avg margin (and the per-sample margins for histograms) at the
        configuration's tracking epochs.
    plan : CellPlan, default=None
        The cell's plan, when already resolved; ``None``: ``plan_cell(dataset, model,
        method, config)``.
    """
    import torch

    from ..neural import orthogonality_penalty
    from ..utils import resolve_device

    if plan is None:
        plan = plan_cell(dataset, model, method, config)
    elif plan.cell != (dataset, model, method):
        raise ValueError(
            f"the plan of {plan.key} was given for {cell_key(dataset, model, method)}."
        )
    device = resolve_device(plan.device)
    deterministic = device.type == "cpu"
    callbacks = [
        ("epoch_cpu", cpu_recorder()),
        ("progress", epoch_bar(desc, plan.epochs, plan.verbose)),
        ("ortho_penalty", penalty_recorder()),
    ]
    if track:
        tracker, tracked = _tracker(plan, data, device)
        callbacks.append(("margins", tracker))

    t0, c0 = time.perf_counter(), time.process_time()
    # ``init_seed`` (default: ``seed``) seeds the training alone, the initialization and
    # the batch order; the data subsets and the evaluation stay ``seed``'s, so that two
    # runs differing only in it measure the run-to-run spread of training.
    with seeded(plan.init_seed, deterministic=deterministic):
        net = make_net(plan, data, device, callbacks=callbacks)
        net.fit(data["X_train"], data["y_train"])
    train_seconds = time.perf_counter() - t0
    # CPU time (of this process, all its threads): what a shared machine's other work
    # does not inflate, so the cost ratios between methods are read from it.
    train_cpu_seconds = time.process_time() - c0

    t0, c0 = time.perf_counter(), time.process_time()
    result = {
        "dataset": dataset,
        "model": model,
        "method": method,
        "params": dict(plan.params),
        "n_train": int(len(data["y_train"])),
        "n_test": int(len(data["y_test"])),
        "epochs": plan.epochs,
    }
    with seeded(plan.seed, deterministic=deterministic):
        result.update(_measure(net, plan, data, device))
    result["history"] = history(net)
    if getattr(net, "ortho_every_", None) is not None:
        # The orthogonality penalty's schedule in use ("auto" picks it at the first step).
        result["ortho_every"] = int(net.ortho_every_)
    losses = result["history"].get("train_loss", [])
    result["diverged"] = not all(math.isfinite(v) for v in losses)
    # How far the orthogonality penalty got: Lipschitz control (LCR, AMR) only acts once
    # it is small, which short (quick) runs may not reach.
    result["ortho_penalty"] = float(orthogonality_penalty(net.module_).detach().cpu())
    if track:
        result["margin_path"] = _margin_path(net, tracked)
    result["train_seconds"] = train_seconds
    result["train_cpu_seconds"] = train_cpu_seconds
    result["eval_seconds"] = time.perf_counter() - t0
    result["eval_cpu_seconds"] = time.process_time() - c0
    # The seconds depend on it, and on the CPU the sums' order (so the last digits) too.
    result["torch_threads"] = torch.get_num_threads()
    return result


def run_cells(name, cells, config, out_dir, *, track=lambda cell: False):
    """Train and measure every cell not yet in ``out_dir/results.json``.

    Parameters
    ----------
    name : str
        The experiment's name (progress bar label).
    cells : list of (dataset, model, method)
    config : dict
        ``config["n_jobs"]`` (default 1), when larger than 1, runs that many cells at once,
        each in its own process with ``torch.get_num_threads() // n_jobs`` torch threads
        (at least 1), the costliest first; every cell is seeded on its own, so only the
        order of the CPU's sums (the threads) can change a number. Neither ``n_jobs`` nor
        ``verbose`` is part of the stored configuration: a run resumes under other values.
    out_dir : Path
    track : callable, default=lambda cell: False
        Which cells record margin paths over epochs.

    Returns
    -------
    results : dict
        ``config``, ``environment``, ``cells`` (key -> numbers), ``skipped`` (key ->
        reason), ``pending`` (keys still to run), ``finished`` (bool: every cell that
        can run here is done) and ``complete`` (bool: every cell is done, none skipped).

    Raises
    ------
    DatasetNotFoundError
        When no cell is done and none can run: the data home lacks every dataset.
    """
    from ..datasets import DatasetNotFoundError
    from ..utils import progress, resolve_device

    n_jobs = config.get("n_jobs", 1)
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive integer, got {n_jobs!r}.")
    device = resolve_device(config["device"])
    store = ResultStore(out_dir / "results.json", config)
    todo = [c for c in cells if cell_key(*c) not in store]
    plans = {cell: plan_cell(*cell, config) for cell in todo}  # each cell's, resolved once

    data_cache = {}
    skipped = {}
    runnable = []
    for cell in todo:
        dataset = cell[0]
        if dataset not in data_cache:
            try:  # images for every model: LR and MLP flatten them themselves
                data_cache[dataset] = load_split(dataset, config, flatten=False)
            except DatasetNotFoundError:
                data_cache[dataset] = None
        if data_cache[dataset] is None:
            skipped[cell_key(*cell)] = skip_reason(dataset, config.get("data_home"))
        else:
            runnable.append(cell)
    if config.get("mode") == "full" and runnable:
        announce_full_run(name, [plans[c] for c in runnable], skipped, device)

    verbose = config.get("verbose", 1)
    if n_jobs == 1:
        bar = progress(runnable, verbose=verbose, desc=name, leave=True)
        for cell in bar:
            key = cell_key(*cell)
            bar.set_postfix_str(key)
            data = data_cache[cell[0]]
            result = train_cell(*cell, data, config, desc=key, track=track(cell), plan=plans[cell])
            store.put(key, result)
    else:
        data_cache.clear()  # each worker loads its own copy
        runnable = [plans[c] for c in runnable]
        _run_parallel(name, runnable, config, store, track, n_jobs, verbose)
    keys = [cell_key(*c) for c in cells]
    if skipped and not any(k in store for k in keys):
        from ..datasets import get_data_home

        missing = "; ".join(sorted({why.removeprefix("skipped: ") for why in skipped.values()}))
        raise DatasetNotFoundError(
            f"none of the {len(keys)} cells can run: {missing} "
            f"({get_data_home(config.get('data_home'))}). Point data_home (or "
            "$AMRLEARN_DATA) at a folder that holds the data."
        )
    pending = [k for k in keys if k not in store and k not in skipped]
    store.data.update(
        skipped=skipped, pending=pending, finished=not pending, complete=not pending and not skipped
    )
    store.save()
    return store.data


#: A worker process's data, by dataset (loaded once per worker).
_WORKER_DATA = {}


def _init_worker(threads):
    import torch

    torch.set_num_threads(threads)


def _worker_cell(plan, config, track):
    """Train and measure the cell of ``plan`` in a worker process of :func:`_run_parallel`."""
    if plan.dataset not in _WORKER_DATA:
        _WORKER_DATA[plan.dataset] = load_split(plan.dataset, config, flatten=False)
    data = _WORKER_DATA[plan.dataset]
    return train_cell(*plan.cell, data, config, desc=plan.key, track=track, plan=plan)


def _run_parallel(name, plans, config, store, track, n_jobs, verbose):
    """Run the cells of ``plans`` in ``n_jobs`` processes, the costliest first (by
    :func:`~._estimate.plan_seconds`), storing each as it finishes."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    import torch

    from ..utils import progress

    if not plans:
        return
    cost = plan_seconds(plans)
    # One bar for the run: the workers' would interleave.
    plans = [replace(p, verbose=0) for p in sorted(plans, key=lambda p: -cost[p.cell])]
    threads = max(1, torch.get_num_threads() // n_jobs)
    quiet = {**config, "verbose": 0}
    bar = progress(total=len(plans), verbose=verbose, desc=f"{name} ({n_jobs} jobs)", leave=True)
    # "spawn": a forked child would inherit the parent's torch thread pool and locks.
    pool = ProcessPoolExecutor(
        max_workers=min(n_jobs, len(plans)),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(threads,),
    )
    try:
        futures = {pool.submit(_worker_cell, p, quiet, bool(track(p.cell))): p for p in plans}
        for future in as_completed(futures):
            key = futures[future].key
            store.put(key, future.result())
            bar.update(1)
            bar.set_postfix_str(key)
    except BaseException:
        # Ctrl-C or a failed cell: the finished cells are stored, the rest not started.
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        bar.close()
    pool.shutdown()
