"""Robustness curves: robust accuracy as a function of eps from one minimum-norm run.

A sample is robust at ``eps`` exactly when its signed margin exceeds ``eps``. The signed
margin lies in the interval of :func:`~amrlearn.metrics.margin_bounds`: the Theorem 3
estimate (tightened by the attack's points) and the distance of the closest adversarial
point that the minimum-norm ensemble found. So one run of each gives two curves around
the true robust accuracy at every eps at once (the upper one holds as far as the attack
is optimal, the lower one only as far as the sampled Lipschitz constant does): the
"security evaluation curve", without one PGD run per radius.

Where the net is certifiable (:func:`~amrlearn.metrics.certified_margins`), the certified
margins give a third curve, certified (verified) robust accuracy: a proven lower bound on
the true one. The attack's curve and it then form a band that holds the truth.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["RobustnessCurve", "robustness_curve"]


def _accuracy_above(margins, eps):
    """``mean(margins > e)`` for each ``e`` of ``eps``."""
    m = np.sort(np.asarray(margins, dtype=np.float64))
    return 1.0 - np.searchsorted(m, np.asarray(eps, dtype=np.float64), side="right") / m.size


@dataclass
class RobustnessCurve:
    """Per-sample margin brackets and the robust accuracy curves they give.

    What :func:`robustness_curve` returns.

    Attributes
    ----------
    eps : ndarray of shape (n_eps,)
        The radii of the curves.
    accuracy : ndarray of shape (n_eps,)
        Robust accuracy from the attack's points: ``mean(upper > eps)``. The attack's
        distance bounds the margin from above, so this bounds the true robust accuracy
        from above, like PGD's.
    accuracy_lower : ndarray of shape (n_eps,)
        ``mean(lower > eps)``, from the Theorem 3 estimate (tightened by the attack's
        points); all zeros without it. An estimate, not a guaranteed lower bound.
    lower, upper : ndarray of shape (n_samples,)
        The bracket of each sample's signed margin (see
        :func:`~amrlearn.metrics.margin_bounds`): ``[Theorem 3 estimate, minimum-norm
        ensemble]`` for a correct sample, negative for a misclassified one.
    certified : ndarray of shape (n_samples,) or None, default=None
        Each sample's signed certified margin
        (:func:`~amrlearn.metrics.certified_margins`), ``None`` where the model is not
        certifiable.
    accuracy_certified : ndarray of shape (n_eps,) or None, default=None
        Certified robust accuracy, ``mean(certified > eps)`` (strict: the certified
        ball is open): a proven lower bound on the true robust accuracy, so
        ``accuracy_certified <= accuracy``. ``None`` with ``certified``.

    Examples
    --------
    >>> import numpy as np
    >>> from amrlearn.metrics import RobustnessCurve
    >>> c = RobustnessCurve(eps=np.array([0.0, 1.0]), accuracy=np.array([1.0, 0.5]),
    ...                     accuracy_lower=np.array([1.0, 0.0]),
    ...                     lower=np.array([0.5, 0.8]), upper=np.array([0.9, 1.5]))
    >>> c.accuracy_at([0.5, 1.0, 2.0]).tolist()
    [1.0, 0.5, 0.0]
    """

    eps: np.ndarray
    accuracy: np.ndarray
    accuracy_lower: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    certified: np.ndarray | None = None
    accuracy_certified: np.ndarray | None = None

    def accuracy_at(self, eps):
        """The attack's robust accuracy at any radii (an exact step function of eps)."""
        return _accuracy_above(self.upper, np.atleast_1d(eps))

    def accuracy_lower_at(self, eps):
        """The Theorem 3 estimate's robust accuracy at any radii."""
        return _accuracy_above(self.lower, np.atleast_1d(eps))

    def accuracy_certified_at(self, eps):
        """Certified robust accuracy at any radii (``None`` without certified margins)."""
        if self.certified is None:
            return None
        return _accuracy_above(self.certified, np.atleast_1d(eps))


def robustness_curve(
    model,
    X,
    y,
    eps=None,
    *,
    lower=True,
    certified=True,
    attack=None,
    attack_steps=100,
    clip=(0.0, 1.0),
    bound_params=None,
    random_state=0,
    device=None,
    verbose=0,
):
    """Robust accuracy as a function of eps, and each sample's margin bracket, from one
    minimum-norm run (and one Theorem 3 estimate).

    Parameters
    ----------
    model : torch.nn.Module, skorch net, fitted linear estimator or Pipeline
        See :func:`amrlearn.utils.as_logit_fn`.
    X : array-like or tensor of shape (n_samples, ...)
        Inputs, inside the box ``clip``.
    y : array-like of shape (n_samples,)
        True labels.
    eps : sequence of float or None, default=None
        Radii at which the curves are tabulated; ``None``: 101 radii from 0 to the
        largest finite distance of the ensemble. Any other radius is one call of
        :meth:`RobustnessCurve.accuracy_at` away.
    lower : bool, default=True
        Also compute the Theorem 3 estimate (``accuracy_lower``).
    certified : bool, default=True
        Also compute the certified margins and certified robust accuracy
        (``certified``, ``accuracy_certified``), where the model is certifiable (else
        both stay ``None``).
    attack : MinimizationAttack, default=None
        The attack of the upper end; ``None``:
        :class:`~amrlearn.attacks.MinimumNormEnsemble` (DeepFool, FMN, DDN; the closest
        verified point per sample) with ``attack_steps`` steps.
    attack_steps : int, default=100
        Steps of the default ensemble's FMN and DDN.
    clip : tuple of (float, float) or None, default=(0.0, 1.0)
        The data box of the attack and of the points Theorem 3 samples.
    bound_params : dict, default=None
        Theorem 3's budget (``radius``, ``n_batches``, ``batch_size``); ``None``: the
        cheap one of :func:`margin_report` (r = 5, 128 points per sample).
    random_state, device, verbose
        As for :func:`~amrlearn.metrics.margin_bounds`.

    Returns
    -------
    curve : RobustnessCurve

    Warns
    -----
    EvaluationWarning
        Where Theorem 3's estimate exceeds the distance of an adversarial point found
        (see :func:`~amrlearn.metrics.margin_bounds`), and, which would be a bug, where
        a certified margin does.

    See Also
    --------
    amrlearn.attacks.robust_accuracy : PGD at fixed radii; the curve agrees with it up
        to the strength of each attack.
    amrlearn.plotting.plot_robustness_curve : Draws the curve and the bracket.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from amrlearn.metrics import robustness_curve
    >>> torch.manual_seed(0)
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    >>> X = np.random.default_rng(0).uniform(size=(20, 4)).astype(np.float32)
    >>> y = net(torch.from_numpy(X)).argmax(1).numpy()
    >>> curve = robustness_curve(net, X, y, eps=[0.0, 0.05, 0.2], attack_steps=20,
    ...                          bound_params={"n_batches": 1, "batch_size": 32})
    >>> float(curve.accuracy[0]), bool(np.all(curve.accuracy_lower <= curve.accuracy))
    (1.0, True)
    >>> bool(np.all(curve.accuracy_certified <= curve.accuracy))
    True
    """
    from ._bounds import CHEAP_BOUND_PARAMS, margin_bounds

    budget = {k: v for k, v in CHEAP_BOUND_PARAMS.items() if k != "attack_steps"}
    budget.update(bound_params or {})
    res = margin_bounds(
        model,
        X,
        y,
        lower=lower,
        certified=certified,
        clip=clip,
        attack=attack,
        attack_steps=attack_steps,
        random_state=random_state,
        device=device,
        verbose=verbose,
        **budget,
    )
    lo, up, cert = res["lower"], res["upper"], res["certified"]
    if eps is None:
        finite = up[np.isfinite(up)]
        eps = np.linspace(0.0, float(finite.max()) if finite.size else 1.0, 101)
    eps = np.atleast_1d(np.asarray(eps, dtype=np.float64))
    return RobustnessCurve(
        eps=eps,
        accuracy=_accuracy_above(up, eps),
        accuracy_lower=_accuracy_above(lo, eps),
        lower=lo,
        upper=up,
        certified=cert,
        accuracy_certified=None if cert is None else _accuracy_above(cert, eps),
    )
