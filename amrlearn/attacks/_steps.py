"""The pieces of the projected-gradient loop that :class:`L2PGD` and :class:`APGD` share.

Both attacks ascend a loss inside the l2 ball of radius ``eps`` around ``x`` and the box:
they start at a random point of the ball (:func:`start`), step along the normalized
gradient and project back (:func:`ascent_step`, :func:`project`), and keep per sample the
best iterate seen, dropping a sample from the batch once it is broken
(:class:`BestPoints`). Each attack's own loop (fixed step for PGD; momentum and a halving
step size for APGD) is written in terms of these. :class:`GradientAttack` is their base
class: ``run`` and ``broken`` are one search, with or without the bookkeeping of the
best points.
"""

from ..utils._math import flat_norm, uniform_l2_ball
from ._base import FixedEpsilonAttack

__all__ = ["BestPoints", "GradientAttack", "ascent_step", "project", "start"]


def _ball_factor(norm, eps):
    """``min(1, eps / norm)``, equal to 1 where ``norm`` is 0."""
    import torch

    return torch.where(norm > eps, eps / norm.clamp_min(torch.finfo(norm.dtype).tiny), 1.0)


def project(x, delta, eps, clip):
    """Project ``delta`` onto the l2 ball of radius ``eps``, then ``x + delta`` onto the box.

    The box step only moves coordinates towards ``x`` (which lies in the box), so it
    never increases the norm: the result lies in both sets.

    Parameters
    ----------
    x : tensor of shape (n, ...)
        The centres, inside the box.
    delta : tensor like ``x``
    eps : float or tensor broadcastable against ``flat_norm(delta)``
        The radius, one for all or one per sample.
    clip : tuple of (float, float) or None
        The box; ``None`` for none.

    Returns
    -------
    delta : tensor like ``x``
    """
    delta = delta * _ball_factor(flat_norm(delta), eps)
    if clip is not None:
        delta = (x + delta).clamp(clip[0], clip[1]) - x
    return delta


def start(x, eps, random_start, clip, generator):
    """The first perturbation: uniform in the ball if ``random_start`` (and ``eps > 0``),
    else zero; projected onto the ball and the box."""
    import torch

    if random_start and eps > 0:
        delta = uniform_l2_ball(x.shape, eps, generator=generator, device=x.device, dtype=x.dtype)
    else:
        delta = torch.zeros_like(x)
    return project(x, delta, eps, clip)


def ascent_step(x, delta, grad, size, eps, clip):
    """``delta + size * grad / ||grad||``, projected onto the ball and the box.

    ``size`` is a float or a tensor broadcastable against ``delta`` (one per sample).
    """
    grad = grad / flat_norm(grad).clamp_min(1e-12)
    return project(x, delta + size * grad, eps, clip)


class BestPoints:
    """The best iterate per sample of an ascent, and which samples are broken.

    A misclassified iterate beats a correct one; among iterates of the same kind the one
    of higher loss wins. With ``first_hit=True`` (early stopping) the first misclassified
    iterate of a sample is final.

    Parameters
    ----------
    x : tensor of shape (n, ...)
        The clean points; ``points`` starts as a copy.
    first_hit : bool, default=True
        Keep the first misclassified iterate rather than the one of highest loss.
    track : bool, default=True
        ``False`` keeps ``broken`` only (``points`` stays ``x``).
    """

    def __init__(self, x, *, first_hit=True, track=True):
        import torch

        self.points = x.clone()
        self.loss = torch.full((x.shape[0],), -float("inf"), device=x.device, dtype=x.dtype)
        self.broken = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        self.first_hit, self.track = first_hit, track

    def record(self, idx, x_cur, logits, y, loss):
        """Record the iterates ``x_cur`` of the samples ``idx`` (their labels ``y``)."""
        wrong = logits.detach().argmax(1) != y
        was = self.broken[idx]
        self.broken[idx] = was | wrong
        if not self.track:
            return
        loss = loss.detach().to(self.loss.dtype)
        better = (wrong & ~was) | ((wrong == was) & (loss > self.loss[idx]))
        if self.first_hit:
            better &= ~was
        sel = idx[better]
        self.points[sel] = x_cur.detach()[better]
        self.loss[sel] = loss[better]

    def survivors(self, idx, *tensors):
        """``(idx, *tensors)`` restricted to the samples not yet broken; ``None`` if none is
        left. The tensors are indexed along their first axis like ``idx``."""
        keep = ~self.broken[idx]
        if not keep.any():
            return None
        if keep.all():
            return (idx, *tensors)
        return (idx[keep], *[t[keep] for t in tensors])


class GradientAttack(FixedEpsilonAttack):
    """Base class of the projected-gradient attacks: ``run`` and ``broken`` from one search.

    Subclasses implement ``_attack(fn, x, y, generator, track)``, returning the points
    and the boolean tensor of broken samples; ``track=False`` may skip the bookkeeping of
    the best points.
    """

    def run(self, fn, x, y, *, generator=None):
        """Attack one batch; return the best iterate per sample (a tensor like ``x``).

        The best iterate is a misclassified one where there was any (the sample is
        broken), else one of highest loss.

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
        return self._attack(fn, x, y, generator, track=True)[0]

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
        return self._attack(fn, x, y, generator, track=False)[1]

    def _attack(self, fn, x, y, generator, track):
        """The search on one batch: ``(points, broken)``, each of length ``n``."""
        raise NotImplementedError
