"""Time estimates of the experiments' cells: training, evaluation and margins.

One training step of each model is timed on the device at the batch size of its cells
(:func:`_seconds_per_batch`); the rest of a cell's plan (:class:`~._recipe.CellPlan`) is
counted in units of that step:

* training: epochs x steps per epoch x the method's cost per step (its record's
  ``step_cost`` in :mod:`._methods`: PGD training pays its attack steps, Deep Defense and
  MMR their regularizer on ``reg_batch_size`` samples of each batch), Deep Defense's
  pretraining epochs at the cost of standard training;
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
from ._methods import get_method
from ._recipe import module_kwargs, plan_cell

__all__ = [
    "announce_full_run",
    "estimate_seconds",
    "eval_gradients",
    "plan_seconds",
    "train_step_factor",
]

#: The time estimate times each model on one warm-up batch, then on this many batches.
_WARMUP_BATCHES = 1
_TIMED_BATCHES = 5
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
        The ``step_cost`` of the method's record (:mod:`._methods`).

    Examples
    --------
    >>> from amrlearn.experiments._estimate import train_step_factor
    >>> train_step_factor("Adv", {"steps": 7}, 32), train_step_factor("Std", {}, 32)
    (8.0, 1.0)
    >>> train_step_factor("MMR", {"reg_batch_size": 2}, 128) > 10
    True
    """
    return float(get_method(method).step_cost(params, batch_size))


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

    Each model is timed on a few random batches of its cells' training batch size; the
    estimate extrapolates to each cell's plan (:func:`plan_seconds`): its epochs and
    method, its evaluation (:func:`eval_gradients`) and its margin samples.
    """
    return sum(plan_seconds([plan_cell(*cell, config) for cell in cells]).values())


def _chain_steps(pgd):
    """Gradient evaluations of an evaluation plan's attack chain on a robust sample."""
    cost = {"pgd": pgd.steps, "pgd-margin": pgd.steps, "auto": 200, "apgd-ce": 100, "apgd-t": 900}
    return sum(cost.get(name, 100) for name in pgd.chain)


def plan_seconds(plans):
    """The time estimate of each cell's plan (see :func:`estimate_seconds`).

    Parameters
    ----------
    plans : list of CellPlan

    Returns
    -------
    seconds : dict
        ``(dataset, model, method) -> seconds``.
    """
    from ..utils import resolve_device

    per_batch = {}
    seconds = {}
    for plan in plans:
        device = resolve_device(plan.device)
        timing = (plan.model, plan.dataset, plan.batch_size, device)
        if timing not in per_batch:
            per_batch[timing] = _seconds_per_batch(*timing)
        step = per_batch[timing]  # a standard training step at the cell's batch size
        per_sample = step / plan.batch_size  # one forward-backward pass of one sample
        full_train = FULL_SIZES[plan.dataset][0]
        n_train = min(plan.n_train or full_train, full_train)
        steps = math.ceil(n_train / plan.batch_size)
        # Pretraining epochs (Deep Defense's) at the cost of standard training.
        costly = plan.epochs - plan.plain_epochs
        total = steps * step * (plan.plain_epochs + costly * plan.step_cost)
        if plan.pgd:
            n = plan.pgd.n_points
            total += eval_gradients(n, len(plan.pgd.eps), _chain_steps(plan.pgd)) * per_sample
        if plan.margin:
            # Theorem 3 needs the gradient of every logit difference: a Jacobian with one
            # backward pass per class at each sampled point.
            m = plan.margin
            total += m["n_points"] * m["n_batches"] * m["batch_size"] * per_sample * N_CLASSES
        seconds[plan.cell] = total
    return seconds


def announce_full_run(name, plans, skipped, device):
    """Print the cells of a ``--full`` run and their time estimate (a warning on the CPU)."""
    if device.type != "cuda":
        warnings.warn(
            "--full follows the paper's protocol (200 epochs, PGD with 1000 steps) and is "
            "meant for a GPU; on the CPU it takes weeks. Use --device cuda, or --quick.",
            UserWarning,
            stacklevel=3,
        )
    est = sum(plan_seconds(plans).values())
    cells = "cell" if len(plans) == 1 else "cells"
    why = "; ".join(sorted({r.removeprefix("skipped: ") for r in skipped.values()}))
    also = f" ({len(skipped)} skipped: {why})" if skipped else ""
    print(
        f"[{name}] {len(plans)} {cells} to run on {device}{also}; estimated time "
        f"{est / 3600:.1f} h (extrapolated from timed training batches: training, the "
        "evaluation and the margins).",
        flush=True,
    )
