"""Decoupled Direction and Norm (DDN, Rony et al. 2019): a minimum-norm l2 attack.

The distance of the closest adversarial point it finds is an upper bound on the l2
distance to the decision boundary; :class:`MinimumNormEnsemble` runs it with DeepFool and
FMN and keeps the closest verified point.
Written from the paper (Algorithm 1), with its published settings: the step size is
cosine-annealed from ``step_size`` to ``step_size / 100`` and the norm ``eps_k`` shrinks
by ``1 - gamma`` after an adversarial iterate and grows by ``1 + gamma`` otherwise.
"""

from numbers import Integral, Real

from ..utils._compat import Interval
from ..utils._inputs import CLIP_CONSTRAINT, check_clip
from ..utils._math import flat_norm
from ._base import MinimizationAttack
from ._search import _box_radius, _cosine, _keep_closest, _random_where_zero

__all__ = ["DDN"]


class DDN(MinimizationAttack):
    """Decoupled Direction and Norm attack: the closest adversarial point it can find.

    Each step moves ``delta`` along the normalized gradient of the cross-entropy (the
    direction), then rescales it to the norm ``eps_k`` (the norm), which shrinks while
    the iterate is adversarial and grows while it is not; ``x + delta`` is then clipped
    to the box. The smallest adversarial perturbation seen is kept. All samples of a
    batch are updated at once.

    Parameters
    ----------
    steps : int, default=100
        Iterations.
    step_size : float, default=1.0
        Initial step length ``alpha``, cosine-annealed to ``step_size / 100``.
    gamma : float, default=0.05
        Relative change of the norm per step, in (0, 1).
    init_norm : float, default=1.0
        Initial norm ``eps_0``.
    clip : tuple of (float, float) or None, default=(0.0, 1.0)
        The data box. ``X`` must lie in it. ``None`` disables clipping.
    batch_size : int, default=256
        Samples attacked at once by ``__call__``.
    device : str, torch.device or None, default=None
        Where to run; ``None`` keeps the model where it is.
    verbose : int, default=0
        0 silences the progress bar.
    random_state : int, RandomState instance or None, default=None
        Seeds the random direction used where the gradient vanishes.

    See Also
    --------
    L2PGD : The fixed-radius attack of the paper.
    amrlearn.metrics.margin_bounds : Uses DDN's distances as upper bounds on the margin.

    Notes
    -----
    ``attack(model, X, y)`` returns ``(X_adv, distances)``. ``distances`` is ``0`` where
    ``x`` is already misclassified and ``inf`` where no adversarial point was found;
    ``X_adv`` is then ``x``.

    References
    ----------
    J. Rony, L. G. Hafemann, L. S. Oliveira, I. Ben Ayed, R. Sabourin, E. Granger.
    Decoupling Direction and Norm for Efficient Gradient-Based L2 Adversarial Attacks
    and Defenses. CVPR 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from amrlearn.attacks import DDN
    >>> from amrlearn.metrics import linear_margins
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(size=(40, 2)).astype(np.float32); y = (X.sum(1) > 1).astype(int)
    >>> clf = LogisticRegression().fit(X, y)
    >>> X_adv, dist = DDN(steps=200, clip=None)(clf, X, clf.predict(X))
    >>> bool(np.all(dist >= linear_margins(clf, X) - 1e-5))
    True
    """

    _parameter_constraints: dict = {
        **MinimizationAttack._parameter_constraints,
        "steps": [Interval(Integral, 1, None, closed="left")],
        "step_size": [Interval(Real, 0, None, closed="neither")],
        "gamma": [Interval(Real, 0, 1, closed="neither")],
        "init_norm": [Interval(Real, 0, None, closed="neither")],
        "clip": CLIP_CONSTRAINT,
    }

    def __init__(
        self,
        *,
        steps=100,
        step_size=1.0,
        gamma=0.05,
        init_norm=1.0,
        clip=(0.0, 1.0),
        batch_size=256,
        device=None,
        verbose=0,
        random_state=None,
    ):
        self.steps = steps
        self.step_size = step_size
        self.gamma = gamma
        self.init_norm = init_norm
        self.clip = clip
        self.batch_size = batch_size
        self.device = device
        self.verbose = verbose
        self.random_state = random_state

    def run(self, fn, x, y, *, generator=None):
        """Attack one batch of tensors on the device.

        Parameters
        ----------
        fn : callable
            ``fn(x) -> logits``; its mode is the caller's business.
        x : tensor of shape (n, ...)
        y : tensor of shape (n,) of int64
            Class indices to move away from.
        generator : torch.Generator, default=None

        Returns
        -------
        x_adv : tensor like ``x``
        distances : tensor of shape (n,)
            ``||x_adv - x||``, ``inf`` where nothing adversarial was found.
        """
        import torch
        import torch.nn.functional as F

        x = x.detach()
        n = x.shape[0]
        clip = check_clip(self.clip)
        shape = (-1, *[1] * (x.dim() - 1))
        delta = torch.zeros_like(x)
        norm = torch.full((n,), float(self.init_norm), device=x.device, dtype=x.dtype)
        worst = _box_radius(x, clip)
        best = x.clone()
        best_dist = torch.full((n,), float("inf"), device=x.device, dtype=torch.float64)
        for i in range(self.steps + 1):
            delta.requires_grad_(True)
            logits = fn(x + delta)
            is_adv = logits.detach().argmax(1) != y
            best_dist, _ = _keep_closest(best, best_dist, x, delta.detach(), is_adv)
            if i == self.steps:
                break
            loss = F.cross_entropy(logits, y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, delta)
            delta = delta.detach()
            grad = _random_where_zero(grad, generator)  # where the gradient vanishes
            alpha = _cosine(self.step_size, self.step_size / 100.0, i, self.steps)
            delta = delta + alpha * grad / flat_norm(grad)
            norm = norm * (1 - (2 * is_adv.to(norm.dtype) - 1) * self.gamma)
            norm = torch.minimum(norm, worst)
            delta = delta * (norm.view(shape) / flat_norm(delta).clamp_min(1e-12))
            if clip is not None:
                delta = (x + delta).clamp(clip[0], clip[1]) - x
        found = torch.isfinite(best_dist)
        dist = torch.where(found, flat_norm(best - x).flatten().double(), best_dist)
        return best, dist
