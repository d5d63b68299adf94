"""Time estimates of the experiments' cells: training, evaluation and margins.

One training step of each model is timed on the device (:func:`_seconds_per_batch`); the
rest is counted in units of that step:

* training: epochs x steps per epoch x the method's cost per step
  (:func:`train_step_factor`: PGD training pays its attack steps, Deep Defense and MMR
  their regularizer on ``reg_batch_size`` samples of each batch);
* evaluation: the gradient evaluations of ``robust_accuracy`` on the evaluation points
  (:func:`eval_gradients`: the paper's PGD and ``"auto"`` at every eps on the samples
  still robust, FMN once);
* margins: Theorem 3's Jacobians, one backward pass per class.

The estimate orders the cells of ``--jobs`` (costliest first) and is printed before a
``--full`` run.
"""

import math
import time
import warnings

from .._paper import FULL_SIZES, INPUT_SHAPES, N_CLASSES
from ._recipe import MMR_DEFAULTS, method_params, module_kwargs, n_epochs, per_model

__all__ = ["announce_full_run", "estimate_seconds", "eval_gradients", "train_step_factor"]

#: The time estimate times each model on one warm-up batch, then on this many batches.
_WARMUP_BATCHES = 1
_TIMED_BATCHES = 5
#: Deep Defense's and MMR's cost per regularized sample, in standard training steps per
#: sample, measured by ``benchmarks/bench_training_cost.py`` on the CPU (LeNet: DD with
#: the regularizer on every sample costs 104x a standard epoch; LeNetSmall: MMR 2299x).
_REG_COST = {"DD": 103.0, "MMR": 2298.0}
#: The fraction of the evaluation points assumed robust at each eps (the attacks stop
#: early on the others).
_ROBUST_FRACTION = 0.5


def train_step_factor(method, params, batch_size):
    """The cost of one training step of ``method`` in standard training steps.

    Parameters
    ----------
    method : str
        A method of the tables (``"Std"``, ``"AMR"``, ``"Adv"``, ``"DD"``, ``"MMR"``, ...).
    params : dict
        Its hyperparameters (:func:`~._recipe.method_params`).
    batch_size : int
        The training batch size.

    Returns
    -------
    factor : float

    Examples
    --------
    >>> from amrlearn.experiments._estimate import train_step_factor
    >>> train_step_factor("Adv", {"steps": 7}, 32), train_step_factor("Std", {}, 32)
    (8.0, 1.0)
    >>> train_step_factor("MMR", {"reg_batch_size": 2}, 32) > 100
    True
    """
    if method == "Adv":
        return 1.0 + params["steps"]  # one forward-backward pass per attack step
    if method in _REG_COST:
        reg = params.get("reg_batch_size") or batch_size
        return 1.0 + _REG_COST[method] * min(reg, batch_size) / batch_size
    return 1.0


def eval_gradients(n_points, n_eps, chain_steps, fmn_steps=100):
    """Gradient evaluations (per sample) of ``robust_accuracy`` on ``n_points`` points.

    ``chain_steps`` is the cost of the fixed-eps attacks on a robust sample at one eps
    (for ``["pgd", "auto"]``: the PGD steps, 50 for APGD-CE and 150 for APGD-T on 3
    targets); the minimum-norm FMN runs once per sample. A fraction
    ``_ROBUST_FRACTION`` of the samples is taken as robust at each eps.

    Examples
    --------
    >>> from amrlearn.experiments._estimate import eval_gradients
    >>> eval_gradients(200, 4, 500)
    220000.0
    """
    return n_points * (n_eps * _ROBUST_FRACTION * chain_steps + fmn_steps)


def _seconds_per_batch(model, dataset, batch_size, device):
    """Seconds of one training step of ``model`` on a random batch (after a warm-up)."""
    import torch

    from ..neural import models

    module = getattr(models, model)(**module_kwargs(model, dataset)).to(device)
    x = torch.rand(batch_size, *INPUT_SHAPES[dataset], device=device)
    y = torch.randint(0, N_CLASSES, (batch_size,), device=device)
    opt = torch.optim.SGD(module.parameters(), lr=0.01)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for i in range(_WARMUP_BATCHES + _TIMED_BATCHES):
        if i == _WARMUP_BATCHES:
            sync()
            t0 = time.perf_counter()
        out = module(x)
        out = out[0] if isinstance(out, tuple) else out
        loss = torch.nn.functional.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    sync()
    return (time.perf_counter() - t0) / _TIMED_BATCHES


def estimate_seconds(cells, config):
    """A time estimate of ``cells`` from timed training batches of each model on the device.

    Each model is timed on a few random batches of the training batch size; the estimate
    extrapolates to the configuration's epochs and methods (:func:`train_step_factor`),
    its evaluation (:func:`eval_gradients`) and its margin samples.
    """
    return sum(_cell_seconds(cells, config).values())


def _chain_steps(config, pgd):
    """Gradient evaluations of the configuration's attack chain on a robust sample."""
    chain = config.get("pgd_loss", ["pgd", "auto"])
    chain = [chain] if isinstance(chain, str) else list(chain)
    cost = {"pgd": pgd["steps"], "ce": pgd["steps"], "pgd-margin": pgd["steps"]}
    cost.update(margin=pgd["steps"], auto=200, **{"apgd-ce": 100, "apgd-t": 900})
    return sum(cost.get(name, 100) for name in chain)


def _cell_seconds(cells, config):
    """The time estimate of each cell (see :func:`estimate_seconds`), by cell."""
    from ..utils import resolve_device

    device = resolve_device(config["device"])
    per_batch = {}
    seconds = {}
    for dataset, model, method in cells:
        bs = per_model(config["batch_size"], model)
        if (dataset, model) not in per_batch:
            per_batch[dataset, model] = _seconds_per_batch(model, dataset, bs, device)
        t = per_batch[dataset, model]
        full_train = FULL_SIZES[dataset][0]
        n_train = min(config.get("n_train") or full_train, full_train)
        params = method_params(method, dataset, model, config)
        bs_train, t_train = bs, t
        if method == "MMR":  # its own batch size; a step's time scales with the batch
            bs_train = {**MMR_DEFAULTS, **config.get("mmr", {})}["batch_size"]
            t_train = t * bs_train / bs
        step = t_train * train_step_factor(method, params, bs_train)
        steps = math.ceil(n_train / bs_train)
        epochs = n_epochs(config, model, method)
        if method == "DD":  # the Std epochs, then the fine-tuning with the regularizer
            pre = params["pretrain_epochs"]
            total = steps * (pre * t + (epochs - pre) * step)
        else:
            total = epochs * steps * step
        pgd = per_model(config.get("pgd"), model)
        if pgd:
            n_eps = len(config.get("eps", {}).get(dataset, ()))
            grads = eval_gradients(pgd["n_points"], n_eps, _chain_steps(config, pgd))
            total += grads / bs * t
        m = per_model(config.get("margin"), model)
        if m:
            # Theorem 3 needs the gradient of every logit difference: a Jacobian with one
            # backward pass per class at each sampled point.
            total += m["n_points"] * m["n_batches"] * m["batch_size"] / bs * t * N_CLASSES
        seconds[dataset, model, method] = total
    return seconds


def announce_full_run(name, todo, skipped, config, device):
    """Print the cells of a ``--full`` run and their time estimate (a warning on the CPU)."""
    if device.type != "cuda":
        warnings.warn(
            "--full follows the paper's protocol (200 epochs, PGD with 1000 steps) and is "
            "meant for a GPU; on the CPU it takes weeks. Use --device cuda, or --quick.",
            UserWarning,
            stacklevel=3,
        )
    est = estimate_seconds(todo, config)
    cells = "cell" if len(todo) == 1 else "cells"
    why = "; ".join(sorted({r.removeprefix("skipped: ") for r in skipped.values()}))
    also = f" ({len(skipped)} skipped: {why})" if skipped else ""
    print(
        f"[{name}] {len(todo)} {cells} to run on {device}{also}; estimated time "
        f"{est / 3600:.1f} h (extrapolated from timed training batches: training, the "
        "evaluation and the margins).",
        flush=True,
    )
