"""``evaluate``: the measurements, and the time estimate printed before them."""

import time
import warnings

import numpy as np

from .._paper import PGD_STEP_SIZE, PGD_STEPS
from ._report import EvaluationReport, duration

__all__ = ["estimate_seconds", "evaluate"]

#: The chain of ``evaluate``: the paper's attack, then the strong evaluation.
DEFAULT_ATTACK = ("pgd", "auto")
#: Gradient evaluations per robust sample and eps of each attack name (``"auto"``: APGD-CE
#: and targeted APGD on 3 classes, 100 iterations each; FMN runs once, counted apart).
_ATTACK_COST = {"auto": 400, "apgd-ce": 100, "apgd-dlr": 100, "apgd-t": 900}
#: The minimum-norm ensemble's cost per sample, in gradients: DeepFool's iterations (one
#: gradient per class each; most samples stop within this many) and the refinements.
_DEEPFOOL_ITERS, _REFINE = 10, 60


def _log(verbose, text):
    if verbose:
        print(f"[evaluate] {text}", flush=True)


def _chain_cost(attack, steps, restarts=1):
    """Gradients per robust sample and eps of the fixed-eps attacks of a chain, and
    whether it holds a minimum-norm run (FMN, once)."""
    import re

    names = [attack] if isinstance(attack, str) else list(attack)
    per_eps, once = 0, any(n in ("auto", "fmn", "min-norm") for n in names if isinstance(n, str))
    for name in names:
        if not isinstance(name, str):
            per_eps += steps  # an attack instance: as long as PGD, a guess
        elif name.startswith("pgd"):
            per_eps += steps * restarts
        elif re.fullmatch(r"apgd-t\d+", name):
            per_eps += 100 * int(name[6:])
        else:
            per_eps += _ATTACK_COST.get(name, 0)
    return per_eps, once


def estimate_seconds(
    model,
    X,
    y,
    *,
    n_eps=4,
    attack=DEFAULT_ATTACK,
    steps=PGD_STEPS,
    curve=True,
    curve_steps=100,
    bound_params=None,
    batch_size=256,
    device=None,
):
    """A time estimate of :func:`evaluate`, from one timed forward-backward pass.

    One batch of ``X`` is pushed through the model and the cross-entropy's gradient with
    respect to the input is taken (after a warm-up pass); the evaluation is then counted
    in such passes: every attack step at every eps on the half of the points assumed
    robust there, FMN once, the minimum-norm ensemble and the Theorem 3 estimate's
    Jacobians (one pass per class at each sampled point).

    Returns
    -------
    seconds : float
        The estimate for all of ``X``.
    per_sample : float
        Seconds of one forward-backward pass, per sample.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from amrlearn.evaluation import estimate_seconds
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> X = np.random.default_rng(0).uniform(size=(10, 4)).astype(np.float32)
    >>> seconds, per_sample = estimate_seconds(net, X, np.zeros(10, int), steps=20)
    >>> seconds > 0 and per_sample > 0
    True
    """
    import torch

    from ..experiments._estimate import eval_gradients
    from ..metrics._bounds import CHEAP_BOUND_PARAMS
    from ..utils import as_logit_fn
    from ..utils._inputs import as_input_tensor

    fn = as_logit_fn(model, device)
    xb = as_input_tensor(X, fn.dtype)[:batch_size]
    yb = fn.targets(np.asarray(y)[: len(xb)], xb).to(fn.device)
    xb = xb.to(fn.device)
    with fn.eval_mode():
        for _ in range(2):  # a warm-up pass, then the timed one
            t0 = time.perf_counter()
            x = xb.clone().requires_grad_(True)
            logits = fn(x)
            n_classes = logits.shape[1]
            torch.nn.functional.cross_entropy(logits, yb).backward()
            if fn.device.type == "cuda":
                torch.cuda.synchronize()
    per_sample = (time.perf_counter() - t0) / len(xb)
    per_eps, once = _chain_cost(attack, steps)
    grads = eval_gradients(len(X), n_eps, per_eps, fmn_steps=100 if once else 0)
    if curve:
        budget = {**CHEAP_BOUND_PARAMS, **(bound_params or {})}
        ensemble = _DEEPFOOL_ITERS * n_classes + 2 * curve_steps + _REFINE
        theorem3 = budget["n_batches"] * budget["batch_size"] * n_classes
        grads += len(X) * (ensemble + theorem3)
    return grads * per_sample, per_sample


def _masking(res):
    """The eps where the chain after the first attack breaks more than ``MASKING_GAP``."""
    from ..attacks._robust import MASKING_GAP

    first = res.accuracy_by_attack[res.attacks[0]]
    return [float(e) for e, a, b in zip(res.eps, first, res.accuracy) if a - b > MASKING_GAP + 1e-9]


def _subset(n_total, n_points, random_state):
    if n_points is None or n_points >= n_total:
        return np.arange(n_total)
    rng = np.random.RandomState(random_state)
    return np.sort(rng.choice(n_total, size=n_points, replace=False))


def evaluate(
    model,
    X,
    y,
    *,
    eps=(0.5, 1.0, 1.5, 2.0),
    attack=DEFAULT_ATTACK,
    steps=PGD_STEPS,
    step_size=PGD_STEP_SIZE,
    n_points=None,
    curve=True,
    curve_steps=100,
    bound_params=None,
    clip=(0.0, 1.0),
    batch_size=256,
    device=None,
    random_state=0,
    verbose=0,
    source=None,
):
    """Clean accuracy, robust accuracy (the paper's PGD and ``"auto"``) with the masking
    alarm, and the robustness curve with its bracket, of a trained model.

    Parameters
    ----------
    model : torch.nn.Module, skorch net, fitted linear estimator or Pipeline
        See :func:`amrlearn.utils.as_logit_fn`; a checkpoint file loads with
        :func:`amrlearn.neural.load_checkpoint` (or use :func:`evaluate_checkpoint`).
    X : array-like of shape (n_samples, ...)
        Inputs in the box ``clip``, in the shape the model takes.
    y : array-like of shape (n_samples,)
    eps : sequence of float, default=(0.5, 1.0, 1.5, 2.0)
        The l2 radii (the paper's MNIST grid; CIFAR-10's is 0.1, 0.2, 0.3, 0.4).
    attack : str or list, default=("pgd", "auto")
        The chain of :func:`amrlearn.attacks.robust_accuracy`: the paper's PGD, then the
        strong evaluation on its survivors; both numbers come from one run.
    steps, step_size : int, float, default=1000, 0.01
        The PGD budget (the paper's).
    n_points : int, default=None
        Evaluate a random subset of this many points (seeded by ``random_state``);
        ``None``: all.
    curve : bool, default=True
        Also compute the robustness curve and the average-margin bracket.
    curve_steps : int, default=100
        Steps of the minimum-norm ensemble's FMN and DDN.
    bound_params : dict, default=None
        Theorem 3's budget for the curve's lower end (``radius``, ``n_batches``,
        ``batch_size``); ``None``: r = 5 with 128 samples per point.
    clip, batch_size, device, random_state, verbose
        As for :func:`amrlearn.attacks.robust_accuracy`. ``verbose > 0`` prints the time
        estimate and the stages and shows progress bars.
    source : dict, default=None
        What is evaluated (model, weights, data), copied into the report.

    Returns
    -------
    report : EvaluationReport
        ``report.save(folder)`` writes ``results.json``, ``summary.md`` and the curve's
        PNG; ``report.summary()`` is the Markdown.

    Warns
    -----
    EvaluationWarning
        The alarms of the attacks and bounds, also listed in ``report.alarms``.

    See Also
    --------
    evaluate_checkpoint : The same from a checkpoint file and a named test set.

    Examples
    --------
    >>> import numpy as np, torch
    >>> import amrlearn
    >>> torch.manual_seed(0)
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    >>> X = np.random.default_rng(0).uniform(size=(20, 4)).astype(np.float32)
    >>> y = net(torch.from_numpy(X)).argmax(1).numpy()
    >>> report = amrlearn.evaluate(net, X, y, eps=[0.05, 0.2], steps=20, step_size=0.02,
    ...                            curve_steps=20, bound_params={"batch_size": 16})
    >>> report.clean, report.attacks
    (1.0, ['pgd', 'fmn', 'apgd-ce/50', 'apgd-t3/50'])
    >>> bool(np.all(report.robust <= report.robust_pgd))
    True
    """
    from ..attacks import robust_accuracy
    from ..exceptions import EvaluationWarning
    from ..experiments._common import environment
    from ..metrics import robustness_curve
    from ..utils import resolve_device

    idx = _subset(len(y), n_points, random_state)
    X, y = np.asarray(X)[idx], np.asarray(y)[idx]
    eps = [float(e) for e in np.atleast_1d(eps)]
    chain = [attack] if isinstance(attack, str) else list(attack)
    dev = str(resolve_device(device)) if isinstance(device, (str, type(None))) else str(device)
    estimate, _ = estimate_seconds(
        model,
        X,
        y,
        n_eps=len(eps),
        attack=chain,
        steps=steps,
        curve=curve,
        curve_steps=curve_steps,
        bound_params=bound_params,
        batch_size=batch_size,
        device=device,
    )
    _log(verbose, f"{len(y)} points, eps {', '.join(f'{e:g}' for e in eps)}; estimated "
         f"time {duration(estimate)} on {dev} (from a timed forward-backward pass)")  # fmt: skip
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EvaluationWarning)
        _log(verbose, f"robust accuracy: {' then '.join(map(str, chain))}")
        res = robust_accuracy(
            model,
            X,
            y,
            eps=eps,
            attack=chain,
            steps=steps,
            step_size=step_size,
            clip=clip,
            batch_size=batch_size,
            device=device,
            verbose=verbose,
            random_state=random_state,
            return_details=True,
        )
        rc = None
        if curve:
            _log(verbose, "robustness curve: minimum-norm ensemble and Theorem 3 estimate")
            rc = robustness_curve(
                model,
                X,
                y,
                attack_steps=curve_steps,
                clip=clip,
                bound_params=bound_params,
                random_state=random_state,
                device=device,
                verbose=verbose,
            )
    alarms = []
    for w in caught:
        if issubclass(w.category, EvaluationWarning):
            alarms.append(str(w.message))
            warnings.warn(str(w.message), EvaluationWarning, stacklevel=2)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    report = EvaluationReport(
        n_points=int(len(y)),
        clean=float(res.clean),
        eps=np.asarray(eps),
        attacks=list(res.attacks),
        robust=np.asarray(res.accuracy),
        robust_by_attack={k: np.asarray(v) for k, v in res.accuracy_by_attack.items()},
        masking=_masking(res) if len(res.attacks) > 1 else [],
        alarms=alarms,
        curve=rc,
        seconds=time.perf_counter() - t0,
        estimated_seconds=float(estimate),
        settings={
            "steps": steps,
            "step_size": step_size,
            "attack": [str(a) for a in chain],
            "curve_steps": curve_steps if curve else None,
            "bound_params": bound_params,
            "clip": clip,
            "random_state": random_state,
            "device": dev,
        },
        source=dict(source or {}),
        environment=environment(dev),
    )
    if rc is not None:
        ends = np.abs(np.stack([rc.lower, rc.upper]))
        report.avg_margin_lower = float(ends.min(axis=0).mean())
        report.avg_margin_upper = float(ends.max(axis=0).mean())
    return report
