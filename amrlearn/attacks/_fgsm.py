"""FGSM with a random start in the l2 ball: the one-step attack of cheap adversarial training.

Wong, Rice & Kolter (2020), "Fast is better than free", train on one signed-gradient step
of size ``alpha = 1.25 eps`` from a uniformly random point of the l-infinity ball. In l2
the step is the normalized gradient and the start is uniform in the l2 ball; everything
else is theirs. One gradient per training batch, so adversarial training with it costs
about two standard steps (PGD with ``k`` steps: ``k + 1``).
"""

from numbers import Real

from ..utils._compat import Interval, StrOptions
from ..utils._inputs import CLIP_CONSTRAINT, check_clip
from ._pgd import attack_loss
from ._steps import GradientAttack, ascent_step, start

__all__ = ["FGSMRS"]


class FGSMRS(GradientAttack):
    """One normalized-gradient step from a random point of the l2 ball (FGSM-RS, in l2).

    ``delta_0`` is uniform in the ball of radius ``eps`` (and projected onto the box);
    ``delta = proj(delta_0 + alpha g / ||g||)`` with ``g`` the gradient of the loss at
    ``x + delta_0`` and ``alpha = step_ratio * eps``. The returned point is that step's,
    as Wong et al. train on it, not the better of the two iterates.

    Parameters
    ----------
    eps : float
        Radius of the l2 ball.
    step_ratio : float, default=1.25
        ``alpha / eps``: Wong et al.'s 1.25. Above about 2, one-step training is prone to
        catastrophic overfitting (robustness to the one-step attack only), which a
        strong evaluation (``robust_accuracy(..., attack="auto")``) exposes.
    clip : tuple of (float, float) or None, default=(0.0, 1.0)
        The data box. ``None`` disables clipping.
    loss : {"ce", "margin"}, default="ce"
        The loss ascended (see :func:`~amrlearn.attacks.attack_loss`).
    batch_size : int, default=256
        Samples attacked at once by ``__call__``.
    device : str, torch.device or None, default=None
        Where to run; ``None`` keeps the model where it is.
    verbose : int, default=0
        0 silences the progress bar.
    random_state : int, RandomState instance or None, default=None
        Seeds the random starts.

    See Also
    --------
    L2PGD : The multi-step attack (PGD adversarial training).
    amrlearn.neural.AdversarialNeuralNetClassifier : Trains on this attack's points with
        ``attack=FGSMRS``.

    References
    ----------
    E. Wong, L. Rice and J. Z. Kolter. Fast is better than free: revisiting adversarial
    training. ICLR 2020.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from amrlearn.attacks import FGSMRS
    >>> torch.manual_seed(0)
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> X = np.random.default_rng(0).uniform(size=(10, 4)).astype(np.float32)
    >>> y = net(torch.from_numpy(X)).argmax(1).numpy()
    >>> X_adv = FGSMRS(eps=0.5, random_state=0)(net, X, y)
    >>> bool((np.linalg.norm(X_adv - X, axis=1) <= 0.5 + 1e-6).all())
    True
    """

    _parameter_constraints: dict = {
        **GradientAttack._parameter_constraints,
        "eps": [Interval(Real, 0, None, closed="left")],
        "step_ratio": [Interval(Real, 0, None, closed="left")],
        "clip": CLIP_CONSTRAINT,
        "loss": [StrOptions({"ce", "margin"})],
    }

    def __init__(
        self,
        eps,
        *,
        step_ratio=1.25,
        clip=(0.0, 1.0),
        loss="ce",
        batch_size=256,
        device=None,
        verbose=0,
        random_state=None,
    ):
        self.eps = eps
        self.step_ratio = step_ratio
        self.clip = clip
        self.loss = loss
        self.batch_size = batch_size
        self.device = device
        self.verbose = verbose
        self.random_state = random_state

    def _attack(self, fn, x, y, generator, track):
        import torch

        from ..utils._alarms import warn_if_training

        warn_if_training(fn, "FGSMRS")
        eps = float(self.eps)
        clip = check_clip(self.clip)
        x = x.detach()
        delta = start(x, eps, True, clip, generator).requires_grad_(True)
        logits = fn(x + delta)
        (grad,) = torch.autograd.grad(attack_loss(logits, y, self.loss).sum(), delta)
        start_wrong = logits.detach().argmax(1) != y
        delta = ascent_step(x, delta.detach(), grad, self.step_ratio * eps, eps, clip)
        x_adv = x + delta
        if track:  # run(): the step's point, as Wong et al. train on it
            return x_adv, None
        with torch.no_grad():
            broken = start_wrong | (fn(x_adv).argmax(1) != y)
        return x_adv, broken
