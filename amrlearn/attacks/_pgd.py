"""l2 projected gradient descent (Madry et al. 2018), the attack of section 5.

The paper evaluates robustness with l2 PGD: 1000 steps of size 0.01, eps in
{0.5, 1, 1.5, 2} on MNIST and {0.1, 0.2, 0.3, 0.4} on CIFAR10 (Appendix F).
"""

from numbers import Integral, Real

from ..utils._compat import Interval, StrOptions
from ..utils._inputs import (
    CLIP_CONSTRAINT,
    check_clip,
)
from ..utils._math import flat_norm, uniform_l2_ball
from ._base import FixedEpsilonAttack

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


def _project(x, delta, eps, clip):
    """Project ``delta`` onto the l2 ball of radius ``eps``, then ``x + delta`` onto the box.

    The box step only moves coordinates towards ``x`` (which lies in the box), so it
    never increases the norm: the result lies in both sets.
    """
    norm = flat_norm(delta)
    delta = delta * _ball_factor(norm, eps)
    if clip is not None:
        delta = (x + delta).clamp(clip[0], clip[1]) - x
    return delta


def _ball_factor(norm, eps):
    """``min(1, eps / norm)``, equal to 1 where ``norm`` is 0."""
    import torch

    return torch.where(norm > eps, eps / norm.clamp_min(torch.finfo(norm.dtype).tiny), 1.0)


class L2PGD(FixedEpsilonAttack):
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
        **FixedEpsilonAttack._parameter_constraints,
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

    def run(self, fn, x, y, *, generator=None):
        """Attack one batch; return the best iterate per sample (a tensor like ``x``).

        Parameters
        ----------
        fn : callable
            ``fn(x) -> logits`` (see :func:`amrlearn.utils.as_logit_fn`); its mode is the
            caller's business.
        x : tensor of shape (n, ...)
            Inputs on the model's device, inside the box ``clip``.
        y : tensor of shape (n,) of int64
            Indices of the true classes.
        generator : torch.Generator, default=None
            For the random starts; torch's global generator when None.

        Returns
        -------
        x_adv : tensor like ``x``, detached
        """
        return self._attack(fn, x, y, generator=generator)[0]

    def broken(self, fn, x, y, *, generator=None):
        """Which samples of one batch the attack breaks (tensor-level, like :meth:`run`).

        A sample is broken when some iterate of the search is misclassified; that is all
        robust accuracy needs, so the best iterates are not kept.

        Parameters
        ----------
        fn, x, y, generator
            As for :meth:`run`.

        Returns
        -------
        broken : bool tensor of shape (n,)
            ``True`` where the attack found an adversarial point within ``eps``
            (including samples that ``fn`` already misclassifies).
        """
        self._validate_params()
        return self._attack(fn, x, y, generator=generator, track=False)[1]

    def _attack(self, fn, x, y, *, generator=None, track=True):
        """``run``, also returning the boolean tensor of broken samples.

        ``track=False`` skips the bookkeeping of the best iterates (``best`` is then
        ``x``).
        """
        import torch

        from ..utils._alarms import warn_if_training

        warn_if_training(fn, "L2PGD")
        eps = float(self.eps)
        clip = check_clip(self.clip)
        x = x.detach()
        best = x.clone()
        best_loss = torch.full((x.shape[0],), -float("inf"), device=x.device)
        broken = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)

        def record(idx, x_cur, logits, loss):
            # Best so far: any misclassified iterate beats a correct one; then higher loss.
            wrong = logits.detach().argmax(1) != y[idx]
            was = broken[idx]
            if not track:
                broken[idx] = was | wrong
                return
            loss = loss.detach().float()
            better = (wrong & ~was) | ((wrong == was) & (loss > best_loss[idx]))
            if self.early_stop:
                better &= ~was
            sel = idx[better]
            best[sel] = x_cur.detach()[better]
            best_loss[sel] = loss[better]
            broken[idx] = was | wrong

        for _ in range(self.restarts):
            idx = (
                torch.nonzero(~broken).flatten()
                if self.early_stop
                else torch.arange(x.shape[0], device=x.device)
            )
            if idx.numel() == 0:
                break
            x0 = x[idx]
            if self.random_start and eps > 0:
                delta = uniform_l2_ball(
                    x0.shape, eps, generator=generator, device=x.device, dtype=x.dtype
                )
            else:
                delta = torch.zeros_like(x0)
            delta = _project(x0, delta, eps, clip)
            for step in range(self.steps + 1):
                delta.requires_grad_(True)
                logits = fn(x0 + delta)
                loss = attack_loss(logits, y[idx], self.loss)
                record(idx, x0 + delta, logits, loss)
                if step == self.steps:
                    break
                (grad,) = torch.autograd.grad(loss.sum(), delta)
                delta = delta.detach()
                if self.early_stop:
                    keep = ~broken[idx]
                    if not keep.any():
                        break
                    if not keep.all():
                        idx, x0, delta, grad = idx[keep], x0[keep], delta[keep], grad[keep]
                grad = grad / flat_norm(grad).clamp_min(1e-12)
                delta = _project(x0, delta + self.step_size * grad, eps, clip)
        return best, broken
