"""Fast Minimum-Norm attack (FMN, Pintor et al. 2021), l2: written from Algorithm 1 of the paper.

Each step descends the logit margin ``L = f_y - max_{j != y} f_j`` along its normalized
gradient, then projects the perturbation onto the l2 ball of radius ``eps_k``. The radius
follows the iterate: while it is adversarial, ``eps_k = min(eps_{k-1} (1 - gamma_k),
||delta*||)``; while it is not, ``eps_k = ||delta|| + L / ||grad L||`` (the linearized
distance to the boundary, times ``1 + gamma_k`` so that an affine boundary is
crossed) until a first adversarial point is found, then ``eps_{k-1} (1 + gamma_k)``.
The step size is cosine-annealed from ``step_size`` to ``step_size / 100`` and
``gamma_k`` from ``gamma`` to ``0.001`` (the paper's settings).
"""

from numbers import Integral, Real

from ..utils._compat import Interval
from ..utils._inputs import CLIP_CONSTRAINT, check_clip
from ..utils._math import flat_norm
from ._base import MinimizationAttack
from ._search import _box_radius, _cosine, _finish, _is_adv, _keep_closest, _random_where_zero
from ._steps import project

__all__ = ["FMN", "logit_margin"]


def logit_margin(logits, y):
    """``f_y - max_{j != y} f_j`` per sample: negative exactly where ``x`` is misclassified
    (up to ties).

    Examples
    --------
    >>> import torch
    >>> from amrlearn.attacks import logit_margin
    >>> logit_margin(torch.tensor([[2.0, 0.5, 1.0], [0.0, 3.0, 1.0]]), torch.tensor([0, 0]))
    tensor([ 1., -3.])
    """
    import torch

    rows = torch.arange(logits.shape[0], device=logits.device)
    own = logits[rows, y]
    other = logits.clone()
    other[rows, y] = float("-inf")
    return own - other.max(1).values


class FMN(MinimizationAttack):
    """Fast Minimum-Norm attack (l2): gradient steps inside an adaptive l2 ball.

    The ball's radius shrinks while the iterate is misclassified and grows while it is
    not, starting from the linearized distance to the boundary; the smallest verified
    adversarial perturbation is kept. All samples of a batch are updated at once.

    Parameters
    ----------
    steps : int, default=100
        Iterations.
    step_size : float, default=1.0
        Initial step ``alpha_0``, cosine-annealed to ``step_size / 100``.
    gamma : float, default=0.05
        Initial relative change of the radius, cosine-annealed to ``0.001``.
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
    DeepFool : Exact on affine models in one step.
    DDN : The decoupled direction and norm attack.
    MinimumNormEnsemble : Starts FMN from DeepFool's points and keeps the best.

    Notes
    -----
    ``run(fn, x, y, x_init=...)`` starts from adversarial points found elsewhere (the
    paper's warm start): the radius then starts at their distance, and only shrinks
    below it. ``attack(model, X, y)`` returns ``(X_adv, distances)``, ``0`` where ``x``
    is already misclassified and ``inf`` (with ``X_adv = x``) where nothing was found.

    References
    ----------
    M. Pintor, F. Roli, W. Brendel, B. Biggio. Fast Minimum-norm Adversarial Attacks
    through Adaptive Norm Constraints. NeurIPS 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from amrlearn.attacks import FMN
    >>> from amrlearn.metrics import linear_margins
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(size=(40, 2)).astype(np.float32); y = (X.sum(1) > 1).astype(int)
    >>> clf = LogisticRegression().fit(X, y)
    >>> X_adv, dist = FMN(steps=100, clip=None)(clf, X, clf.predict(X))
    >>> bool(np.all(dist >= linear_margins(clf, X) - 1e-5))
    True
    """

    _parameter_constraints: dict = {
        **MinimizationAttack._parameter_constraints,
        "steps": [Interval(Integral, 1, None, closed="left")],
        "step_size": [Interval(Real, 0, None, closed="neither")],
        "gamma": [Interval(Real, 0, 1, closed="neither")],
        "clip": CLIP_CONSTRAINT,
    }

    accepts_x_init = True

    def __init__(
        self,
        *,
        steps=100,
        step_size=1.0,
        gamma=0.05,
        clip=(0.0, 1.0),
        batch_size=256,
        device=None,
        verbose=0,
        random_state=None,
    ):
        self.steps = steps
        self.step_size = step_size
        self.gamma = gamma
        self.clip = clip
        self.batch_size = batch_size
        self.device = device
        self.verbose = verbose
        self.random_state = random_state

    def run(self, fn, x, y, *, generator=None, x_init=None):
        """Attack one batch of tensors on the device.

        Parameters
        ----------
        fn : callable
            ``fn(x) -> logits``; its mode is the caller's business.
        x : tensor of shape (n, ...)
        y : tensor of shape (n,) of int64
            Class indices to move away from.
        generator : torch.Generator, default=None
        x_init : tensor like ``x``, default=None
            Starting points; those that are misclassified (and in the box) start the
            search with their distance as the radius.

        Returns
        -------
        x_adv : tensor like ``x``
        distances : tensor of shape (n,)
            ``||x_adv - x||``, ``inf`` where nothing adversarial was found.
        """
        import torch

        x = x.detach()
        clip = check_clip(self.clip)
        shape = (-1, *[1] * (x.dim() - 1))
        worst = _box_radius(x, clip)
        best, best_dist = _finish(fn, x, x if x_init is None else x_init.detach(), y, clip)
        best_dist = best_dist.to(x.dtype)
        found = torch.isfinite(best_dist)
        delta = torch.where(found.view(shape), best - x, 0.0)
        eps = torch.where(found, best_dist, float("inf"))
        min_step = self.step_size / 100.0
        for i in range(self.steps):
            delta.requires_grad_(True)
            logits = fn(x + delta)
            loss = logit_margin(logits, y)
            (grad,) = torch.autograd.grad(loss.sum(), delta)
            grad = grad.to(x.dtype)
            delta, loss = delta.detach(), loss.detach().to(x.dtype)
            is_adv = logits.detach().argmax(1) != y
            best_dist, norm = _keep_closest(best, best_dist, x, delta, is_adv)
            found = found | is_adv
            grad = _random_where_zero(grad, generator)
            gnorm = flat_norm(grad)
            gamma = _cosine(self.gamma, 0.001, i, self.steps)
            # The paper's radius before the first adversarial point is the linearized
            # distance itself; on an affine model the iterate then sits on the boundary,
            # where rounding can keep it on the wrong side forever. 1 + gamma crosses.
            linear = (norm + loss.clamp_min(0) / gnorm.flatten()) * (1 + gamma)
            eps = torch.where(
                is_adv,
                torch.minimum(eps * (1 - gamma), best_dist),
                torch.where(found, eps * (1 + gamma), linear),
            )
            eps = torch.minimum(eps, worst)
            delta = delta - _cosine(self.step_size, min_step, i, self.steps) * grad / gnorm
            delta = project(x, delta, eps.view(shape), clip)
        with torch.no_grad():
            _keep_closest(best, best_dist, x, delta, _is_adv(fn, x + delta, y))
        return _finish(fn, x, best, y, clip)
