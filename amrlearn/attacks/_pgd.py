"""l2 projected gradient descent (Madry et al. 2018), the attack of section 5.

The paper evaluates robustness with l2 PGD: 1000 steps of size 0.01, eps in
{0.5, 1, 1.5, 2} on MNIST and {0.1, 0.2, 0.3, 0.4} on CIFAR10 (Appendix F).
"""

from numbers import Integral, Real

from ..utils._compat import Interval, StrOptions
from ..utils._inputs import CLIP_CONSTRAINT, check_clip
from ..utils._math import uniform_l2_ball
from ._steps import BestPoints, GradientAttack, ascent_step, start

__all__ = ["L2PGD", "attack_loss", "uniform_l2_ball"]


def attack_loss(logits, y, loss="ce"):
    """Per-sample loss that PGD ascends.

    Parameters
    ----------
    logits : tensor of shape (n, n_classes)
    y : tensor of shape (n,) of int64
    loss : {"ce", "margin"}, default="ce"
        ``"ce"``: the cross-entropy (Madry et al., the paper's attack). ``"margin"``: the
        logit margin ``max_{k != y} z_k - z_y`` of Carlini & Wagner, whose gradient does
        not vanish when the softmax saturates. A net whose logit gaps exceed about 100
        (float32) has an exactly zero cross-entropy gradient, and PGD on ``"ce"`` then
        never moves: a flat robust accuracy across eps is the telltale sign.

    Returns
    -------
    loss : tensor of shape (n,)

    Examples
    --------
    >>> import torch
    >>> from amrlearn.attacks import attack_loss
    >>> z = torch.tensor([[300.0, 0.0]], requires_grad=True)
    >>> y = torch.tensor([0])
    >>> torch.autograd.grad(attack_loss(z, y, "ce").sum(), z)[0].abs().sum().item()
    0.0
    >>> torch.autograd.grad(attack_loss(z, y, "margin").sum(), z)[0].tolist()
    [[-1.0, 1.0]]
    """
    import torch
    import torch.nn.functional as F

    if loss == "ce":
        return F.cross_entropy(logits, y, reduction="none")
    if loss == "margin":
        true = logits.gather(1, y[:, None])[:, 0]
        other = logits.masked_fill(
            torch.nn.functional.one_hot(y, logits.shape[1]).bool(), -float("inf")
        )
        return other.max(dim=1).values - true
    raise ValueError(f"loss must be 'ce' or 'margin', got {loss!r}.")


class L2PGD(GradientAttack):
    """l2 projected gradient descent, the attack of the paper's section 5.

    Each step ascends the cross-entropy along its normalized gradient,
    ``delta <- delta + step_size * g / ||g||``, projects ``delta`` onto the l2 ball of
    radius ``eps`` and then ``x + delta`` onto the box ``clip``. The iterate returned for
    each sample is the best one seen: a misclassified iterate if there was any (the
    sample counts as broken), else the one of highest loss.

    Parameters
    ----------
    eps : float
        Radius of the l2 ball. ``eps=0`` returns ``x`` unchanged.
    steps : int, default=1000
        Gradient steps per restart (the paper uses 1000).
    step_size : float, default=0.01
        Length of each step (the paper uses 0.01).
    random_start : bool, default=True
        Start from a point drawn uniformly in the ball (see :func:`uniform_l2_ball`)
        rather than from ``x``.
    clip : tuple of (float, float) or None, default=(0.0, 1.0)
        The data box. ``X`` must lie in it. ``None`` disables clipping.
    restarts : int, default=1
        Independent runs; a sample is broken if any run breaks it.
    loss : {"ce", "margin"}, default="ce"
        The loss ascended: the cross-entropy (the paper's) or the logit margin of Carlini
        & Wagner, which still has a gradient where the softmax saturates (see
        :func:`attack_loss`).
    early_stop : bool, default=True
        Stop attacking a sample as soon as an iterate misclassifies it (it is broken,
        which is all robust accuracy needs). ``False`` runs every step on every sample
        and returns the highest-loss misclassified iterate, as adversarial training
        may prefer.
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
    robust_accuracy : Accuracy under this attack over a grid of eps.
    DDN : A minimization attack, for the distance to the boundary.

    Notes
    -----
    ``attack(model, X, y)`` handles batching, eval mode and the device. For adversarial
    training, call ``attack.run(fn, x, y)`` on tensors on the device, with
    ``fn = amrlearn.utils.as_logit_fn(module)``; ``attack.broken(fn, x, y)`` tells which
    samples the attack breaks, for robust accuracy. ``run`` neither switches the module's
    mode nor touches the gradients of its parameters, and uses torch's global random
    generator unless ``generator`` is given.

    References
    ----------
    A. Madry, A. Makelov, L. Schmidt, D. Tsipras, A. Vladu. Towards Deep Learning Models
    Resistant to Adversarial Attacks. ICLR 2018.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from amrlearn.attacks import L2PGD
    >>> torch.manual_seed(0)
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> X = np.random.default_rng(0).uniform(size=(10, 4)).astype(np.float32)
    >>> y = net(torch.from_numpy(X)).argmax(1).numpy()
    >>> X_adv = L2PGD(eps=0.5, steps=20, step_size=0.1, random_state=0)(net, X, y)
    >>> bool((np.linalg.norm(X_adv - X, axis=1) <= 0.5 + 1e-6).all())
    True
    """

    _parameter_constraints: dict = {
        **GradientAttack._parameter_constraints,
        "eps": [Interval(Real, 0, None, closed="left")],
        "steps": [Interval(Integral, 0, None, closed="left")],
        "step_size": [Interval(Real, 0, None, closed="left")],
        "random_start": ["boolean"],
        "clip": CLIP_CONSTRAINT,
        "restarts": [Interval(Integral, 1, None, closed="left")],
        "early_stop": ["boolean"],
        "loss": [StrOptions({"ce", "margin"})],
    }

    def __init__(
        self,
        eps,
        *,
        steps=1000,
        step_size=0.01,
        random_start=True,
        clip=(0.0, 1.0),
        restarts=1,
        early_stop=True,
        loss="ce",
        batch_size=256,
        device=None,
        verbose=0,
        random_state=None,
    ):
        self.eps = eps
        self.steps = steps
        self.step_size = step_size
        self.random_start = random_start
        self.clip = clip
        self.restarts = restarts
        self.early_stop = early_stop
        self.loss = loss
        self.batch_size = batch_size
        self.device = device
        self.verbose = verbose
        self.random_state = random_state

    def _attack(self, fn, x, y, generator, track):
        """The search: ``(best iterate per sample, broken)``; ``track=False`` skips the
        bookkeeping of the best iterates (the points are then ``x``)."""
        import torch

        from ..utils._alarms import warn_if_training

        warn_if_training(fn, "L2PGD")
        eps = float(self.eps)
        clip = check_clip(self.clip)
        x = x.detach()
        best = BestPoints(x, first_hit=self.early_stop, track=track)
        for _ in range(self.restarts):
            idx = (
                torch.nonzero(~best.broken).flatten()
                if self.early_stop
                else torch.arange(x.shape[0], device=x.device)
            )
            if idx.numel() == 0:
                break
            x0 = x[idx]
            delta = start(x0, eps, self.random_start, clip, generator)
            for step in range(self.steps + 1):
                delta.requires_grad_(True)
                logits = fn(x0 + delta)
                loss = attack_loss(logits, y[idx], self.loss)
                best.record(idx, x0 + delta, logits, y[idx], loss)
                if step == self.steps:
                    break
                (grad,) = torch.autograd.grad(loss.sum(), delta)
                delta = delta.detach()
                if self.early_stop:
                    kept = best.survivors(idx, x0, delta, grad)
                    if kept is None:
                        break
                    idx, x0, delta, grad = kept
                delta = ascent_step(x0, delta, grad, self.step_size, eps, clip)
        return best.points, best.broken
