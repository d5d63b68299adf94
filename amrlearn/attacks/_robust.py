"""Robust accuracy over a grid of eps (section 5): the paper's attack, or the strongest
evaluation the library has, in one call.

An evaluation is a chain of attacks. A sample is robust at ``eps`` only if it survives
every attack of the chain; each attack only sees the survivors of those before it, and the
survivors of the previous (smaller) radius. A fixed-epsilon attack runs at every eps; a
minimum-norm attack runs once, and the distance it finds for a sample breaks that sample
at every eps at least as large. The accuracy after each prefix of the chain is kept, so
the first attack's accuracy (the paper's cross-entropy PGD in ``["pgd", "auto"]``) comes
out of the same call, never above the chain's per sample.
"""

import re
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import clone
from sklearn.utils import check_random_state

from ..utils import progress
from ..utils._alarms import warn
from ..utils._inputs import torch_generator
from ._apgd import APGD
from ._base import EPS_RTOL, FixedEpsilonAttack, MinimizationAttack, _session, _slices
from ._fmn import FMN
from ._minnorm import MinimumNormEnsemble
from ._pgd import L2PGD

__all__ = ["AUTO_ATTACKS", "MASKING_GAP", "RobustAccuracyResult", "robust_accuracy"]

#: The chain of ``attack="auto"`` (the study behind it: docs/user_guide/evaluation.rst).
AUTO_ATTACKS = ("fmn", "apgd-ce/50", "apgd-t3/50")
#: The gradient-masking alarm: later attacks of a chain break more than this fraction
#: of the samples that the first one left robust at some eps.
MASKING_GAP = 0.05
#: AutoAttack's budget of its APGD runs (iterations per target, targets of APGD-T).
_APGD_STEPS, _APGD_TARGETS = 100, 9
#: The budget of the minimum-norm FMN run of ``"fmn"`` (once across the grid).
_FMN_STEPS = 100


def _named(name, pgd, clip):
    """The attack behind a name of :func:`robust_accuracy`'s ``attack``."""
    common = {k: pgd[k] for k in ("batch_size", "device", "verbose", "random_state")}
    if name in ("pgd", "pgd-ce", "pgd-margin"):
        loss = "margin" if name == "pgd-margin" else "ce"
        return L2PGD(eps=0.0, loss=loss, early_stop=True, clip=clip, **pgd)
    if name == "fmn":
        return FMN(steps=_FMN_STEPS, clip=clip, **common)
    if name == "min-norm":
        return MinimumNormEnsemble(clip=clip, **common)
    base, slash, steps = name.partition("/")
    if slash and not (steps.isdigit() and int(steps) > 0 and base.startswith("apgd-")):
        base, slash = name, ""  # not an APGD name with a budget: unknown
    apgd = {"eps": 0.0, "steps": int(steps) if slash else _APGD_STEPS, "clip": clip, **common}
    if base == "apgd-ce":
        return APGD(loss="ce", **apgd)
    if base == "apgd-dlr":
        return APGD(loss="dlr", **apgd)
    targeted = re.fullmatch(r"apgd-t(\d*)", base)
    if targeted and targeted.group(1) != "0":
        return APGD(loss="dlr", n_targets=int(targeted.group(1) or _APGD_TARGETS), **apgd)
    raise ValueError(
        f"Unknown attack {name!r}: give 'pgd', 'auto', 'pgd-margin', 'fmn', 'min-norm', "
        "'apgd-ce', 'apgd-dlr', 'apgd-t' (or 'apgd-tK' for K targets; any APGD name with "
        "'/S' for S iterations), an Attack or a list of them."
    )


_ATTACK_TYPES = (FixedEpsilonAttack, MinimizationAttack)


def _is_auto(item):
    return isinstance(item, str) and item == "auto"


def _chain(attack, loss, pgd, clip):
    """``[(name, attack), ...]``: the chain that ``attack`` (and the legacy ``loss``) ask for."""
    if loss is not None:
        if not (isinstance(attack, str) and attack == "pgd"):
            raise ValueError("Give either attack or loss, not both (loss is the older spelling).")
        losses = [loss] if isinstance(loss, str) else list(loss)
        if not losses:
            raise ValueError("loss must name at least one loss.")
        attack = ["pgd" if name == "ce" else f"pgd-{name}" for name in losses]
    items = [attack] if isinstance(attack, (str, _ATTACK_TYPES)) else list(attack)
    items = [a for item in items for a in (AUTO_ATTACKS if _is_auto(item) else [item])]
    chain = []
    for item in items:
        if isinstance(item, _ATTACK_TYPES):
            name = type(item).__name__
            chain.append((name, clone(item)))
        elif isinstance(item, str):
            chain.append((item, _named(item, pgd, clip)))
        else:
            raise TypeError(
                f"attack must be a name, a FixedEpsilonAttack or a MinimizationAttack, got "
                f"{item!r}."
            )
    if not chain:
        raise ValueError("attack must name at least one attack.")
    names = [name for name, _ in chain]
    for i, name in enumerate(names):  # unique keys for the per-attack breakdown
        if names.count(name) > 1:
            names[i] = f"{name}#{names[:i].count(name) + 1}"
    for _, a in chain:
        a._validate_params()
    return list(zip(names, [a for _, a in chain]))


@dataclass
class RobustAccuracyResult:
    """Robust accuracy after each attack of a chain, per eps and per sample.

    What :func:`robust_accuracy` returns with ``return_details=True``.

    Attributes
    ----------
    eps : ndarray of shape (n_eps,)
        The radii, in the order given.
    accuracy : ndarray of shape (n_eps,)
        Accuracy under the whole chain: what ``robust_accuracy`` returns by default.
    robust : ndarray of bool of shape (n_samples, n_eps)
        Which samples survive every attack at each eps.
    attacks : list of str
        The chain's attacks, in order (``["fmn", "apgd-ce/50", "apgd-t3/50"]`` for
        ``"auto"``).
    robust_by_attack : dict of str to ndarray of bool of shape (n_samples, n_eps)
        Per attack, the samples that survive it and every attack before it. The first
        attack's entry is its accuracy alone (the paper's cross-entropy PGD for
        ``["pgd", "auto"]``); each entry is a subset of the one before.
    clean : float
        Clean accuracy.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from amrlearn.attacks import robust_accuracy
    >>> torch.manual_seed(0)
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> X = np.random.default_rng(0).uniform(size=(20, 4)).astype(np.float32)
    >>> y = net(torch.from_numpy(X)).argmax(1).numpy()
    >>> res = robust_accuracy(net, X, y, eps=[0.1, 0.5], attack=["pgd", "auto"], steps=20,
    ...                       step_size=0.05, random_state=0, return_details=True)
    >>> res.attacks
    ['pgd', 'fmn', 'apgd-ce/50', 'apgd-t3/50']
    >>> bool(np.all(res.accuracy <= res.accuracy_by_attack["pgd"]))
    True
    """

    eps: np.ndarray
    accuracy: np.ndarray
    robust: np.ndarray
    attacks: list
    robust_by_attack: dict = field(repr=False)
    clean: float = 1.0

    @property
    def accuracy_by_attack(self):
        """dict of str to ndarray of shape (n_eps,): the accuracy after each attack."""
        return {name: r.mean(axis=0) for name, r in self.robust_by_attack.items()}


def _check_masking(res):
    """The gradient-masking alarm: name each eps where later attacks of the chain break
    more than ``MASKING_GAP`` of the samples that the first one left robust."""
    first = res.accuracy_by_attack[res.attacks[0]]
    gap = first - res.accuracy
    bad = [
        f"eps={e:g} ({100 * a:.1f}% -> {100 * b:.1f}%)"
        for e, a, b, g in zip(res.eps, first, res.accuracy, gap)
        if g > MASKING_GAP + 1e-9
    ]
    if bad:
        warn(
            f"{res.attacks[0]} and the rest of the chain ({', '.join(res.attacks[1:])}) "
            f"disagree by more than {100 * MASKING_GAP:g} points at {', '.join(bad)}: the "
            f"sign of a masked gradient of {res.attacks[0]}'s loss (or of too short an "
            f"attack); {res.attacks[0]}'s robust accuracy overstates robustness there.",
            stacklevel=4,
        )


def robust_accuracy(
    model,
    X,
    y,
    eps=(0.5, 1.0, 1.5, 2.0),
    *,
    attack="pgd",
    steps=1000,
    step_size=0.01,
    random_start=True,
    clip=(0.0, 1.0),
    restarts=1,
    loss=None,
    return_details=False,
    batch_size=256,
    device=None,
    verbose=0,
    random_state=None,
):
    """Accuracy under attack for each radius of a grid: the paper's robustness measure.

    ``attack`` chooses the evaluation: ``"pgd"``, the paper's (l2 PGD on the
    cross-entropy), ``"auto"``, the strongest the library has at a fraction of
    AutoAttack's cost (a minimum-norm FMN run once across the grid, then APGD on the
    cross-entropy and targeted APGD on the DLR loss at the 3 likeliest wrong classes, 50
    iterations each, each on the survivors of the ones before), or ``["pgd", "auto"]``, the paper's
    number and the strong one from one call. A sample is robust only if it survives
    every attack of the chain.

    Work is shared across the grid. The radii are processed in increasing order; a
    sample misclassified at ``x`` is never attacked, and a sample broken at a radius is
    counted as broken at every larger radius without being attacked again (its
    adversarial point lies in every larger ball). A minimum-norm attack of the chain
    runs once, on its candidates at the smallest positive eps; its verified distance
    breaks a sample at every eps it does not exceed. Each attack of a chain sees only
    the survivors of the attacks before it. ``eps=0`` gives the clean accuracy.

    Parameters
    ----------
    model : torch.nn.Module, skorch net, fitted linear estimator or Pipeline
        See :func:`amrlearn.utils.as_logit_fn`. A Pipeline of affine scalers is attacked
        in its raw input space (``eps`` and ``clip`` in the units of ``X``); one with any
        other preprocessing is refused.
    X : array-like or tensor of shape (n_samples, ...)
        Inputs, inside the box ``clip``.
    y : array-like of shape (n_samples,)
        True labels.
    eps : float or sequence of float, default=(0.5, 1.0, 1.5, 2.0)
        Radii (the paper's MNIST grid by default; {0.1, 0.2, 0.3, 0.4} on CIFAR10).
    attack : str, FixedEpsilonAttack or list of them, default="pgd"
        The chain of attacks:

        - ``"pgd"``: :class:`L2PGD` on the cross-entropy, the paper's attack;
        - ``"auto"``: ``["fmn", "apgd-ce/50", "apgd-t3/50"]`` (:data:`AUTO_ATTACKS`),
          the strong evaluation: FMN once across the grid, then APGD-CE and APGD-T on 3
          targets with 50 iterations each; at most AutoAttack's robust accuracy plus
          half a point on every net and eps of ``benchmarks/bench_autoattack.py``, at
          about a tenth of its time (the study is in the user guide's evaluation
          page). FMN's logit
          margin and APGD-T's DLR loss keep a gradient where the softmax saturates (see
          :func:`attack_loss`); ``"auto"`` may stand inside a list, as in
          ``["pgd", "auto"]``;
        - ``"pgd-margin"``: :class:`L2PGD` on the logit margin;
        - ``"apgd-ce"``, ``"apgd-dlr"``, ``"apgd-t"``: :class:`APGD` with 100 iterations
          on the cross-entropy, on the DLR loss, and targeted on the DLR loss at the 9
          most likely wrong classes (AutoAttack's APGD-T); ``"apgd-tK"`` aims at the
          ``K`` most likely ones, and any APGD name with ``"/S"`` runs ``S``
          iterations (``"apgd-t3/50"``);
        - ``"fmn"``: :class:`FMN` with 100 steps, and ``"min-norm"``: the
          :class:`MinimumNormEnsemble`, each run once across the grid;
        - a :class:`FixedEpsilonAttack` instance, run with its own hyperparameters at
          each ``eps``, or a :class:`MinimizationAttack` instance, run once (their
          randomness comes from ``random_state`` here);
        - a list of the above, run in order.
    steps, step_size, random_start, clip, restarts, batch_size, device, verbose, random_state
        As for :class:`L2PGD`, for the PGD attacks named in ``attack``; ``clip``,
        ``batch_size``, ``device``, ``verbose`` and ``random_state`` also for the APGD
        ones.
    loss : {"ce", "margin"}, sequence of them, or None, default=None
        The older spelling of a PGD chain: ``loss=("ce", "margin")`` is
        ``attack=["pgd", "pgd-margin"]``. Only with ``attack="pgd"``.
    return_details : bool, default=False
        Return a :class:`RobustAccuracyResult` (per-sample robustness and the accuracy
        after each attack of the chain) instead of the accuracies alone.

    Returns
    -------
    accuracies : ndarray of shape (n_eps,)
        ``accuracies[i]`` is the robust accuracy at ``eps[i]``, in the order given.
    details : RobustAccuracyResult
        Instead, with ``return_details=True``. For ``["pgd", "auto"]``,
        ``details.accuracy_by_attack["pgd"]`` is the paper's number and
        ``details.accuracy`` the strong one, from one run of the cross-entropy PGD.

    Warns
    -----
    EvaluationWarning
        When the attacks after the first break more than 5 % of the samples (5
        points of accuracy) at some eps, naming it: the first attack's loss is masked
        there. Also when the model's output is random in eval mode.

    See Also
    --------
    L2PGD, APGD, FMN : The attacks.
    amrlearn.metrics.robustness_curve : Robust accuracy as a function of eps from one
        minimum-norm attack.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from amrlearn.attacks import robust_accuracy
    >>> torch.manual_seed(0)
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> X = np.random.default_rng(0).uniform(size=(20, 4)).astype(np.float32)
    >>> y = net(torch.from_numpy(X)).argmax(1).numpy()
    >>> acc = robust_accuracy(net, X, y, eps=[0.0, 0.1, 0.5], steps=20, step_size=0.05,
    ...                       random_state=0)
    >>> acc.tolist()[0], bool(np.all(np.diff(acc) <= 0))
    (1.0, True)
    >>> res = robust_accuracy(net, X, y, eps=[0.0, 0.1, 0.5], attack=["pgd", "auto"],
    ...                       steps=20, step_size=0.05, random_state=0, return_details=True)
    >>> res.attacks
    ['pgd', 'fmn', 'apgd-ce/50', 'apgd-t3/50']
    >>> bool(np.all(res.accuracy <= acc))
    True
    """
    import torch

    eps_arr = np.atleast_1d(np.asarray(eps, dtype=np.float64))
    if eps_arr.ndim != 1 or eps_arr.size == 0 or not np.all(np.isfinite(eps_arr) & (eps_arr >= 0)):
        raise ValueError(f"eps must be a non-empty sequence of finite radii >= 0, got {eps!r}.")
    pgd = dict(
        steps=steps,
        step_size=step_size,
        random_start=random_start,
        restarts=restarts,
        batch_size=batch_size,
        device=device,
        verbose=verbose,
        random_state=random_state,
    )
    chain = _chain(attack, loss, pgd, clip)
    with _session(model, X, y, device, clip, "robust_accuracy") as (fn, X_t, y_t):
        # One random stream per attack, the first one's as the attack alone would draw
        # it: the chain's first accuracy is then the very number of that attack alone.
        rng = check_random_state(random_state)
        generators = [torch_generator(rng, fn.device) for _ in chain]
        n = X_t.shape[0]
        correct = torch.zeros(n, dtype=torch.bool)
        with torch.no_grad():
            for sel, xb, yb in _slices(fn, X_t, y_t, batch_size):
                correct[sel] = (fn(xb).argmax(1) == yb).cpu()
        alive = [correct.clone() for _ in chain]  # survivors of each prefix of the chain
        robust = {name: np.zeros((n, eps_arr.size), dtype=bool) for name, _ in chain}
        # A minimum-norm attack runs once, at the first positive eps, on its candidates
        # then; they only shrink as eps grows, so its distances serve every later eps.
        distances = [None] * len(chain)
        for i in progress(
            np.argsort(eps_arr, kind="stable"), verbose=verbose, desc="robust_accuracy"
        ):
            e = float(eps_arr[i])
            for k, (name, a) in enumerate(chain):
                cand = alive[k] & alive[k - 1] if k else alive[k]
                batches = _slices(fn, X_t, y_t, a.batch_size, torch.nonzero(cand).flatten())
                if e > 0 and isinstance(a, MinimizationAttack):
                    if distances[k] is None:
                        distances[k] = torch.full((n,), float("inf"), dtype=torch.float64)
                        for sel, xb, yb in batches:
                            _, d = a.run(fn, xb, yb, generator=generators[k])
                            distances[k][sel] = d.detach().double().cpu()
                    cand &= ~(distances[k] <= e * (1 + EPS_RTOL))
                elif e > 0:
                    at_e = clone(a).set_params(eps=e)
                    for sel, xb, yb in batches:
                        cand[sel[at_e.broken(fn, xb, yb, generator=generators[k]).cpu()]] = False
                alive[k] = cand
                robust[name][:, i] = cand.numpy()
    names = [name for name, _ in chain]
    final = robust[names[-1]]
    res = RobustAccuracyResult(
        eps=eps_arr,
        accuracy=final.mean(axis=0),
        robust=final,
        attacks=names,
        robust_by_attack=robust,
        clean=float(correct.float().mean()),
    )
    if len(chain) > 1:
        _check_masking(res)
    return res if return_details else res.accuracy
