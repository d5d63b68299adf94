"""Helpers of the minimum-norm attacks: the adversarial check, a bisection back toward the
clean point along the segment, and the verified finish that every attack's points go
through (a forward pass confirms each point is adversarial; non-adversarial points get an
infinite distance). Also the pieces of the loop that FMN and DDN share: the cosine
schedule, the largest useful radius in the box, the random direction where the gradient
vanishes, and the closest adversarial iterate kept per sample."""

import math

from ..utils._math import flat_norm

__all__ = ["boundary_search"]


def _is_adv(fn, x, y):
    """Whether ``fn`` misclassifies each row of ``x`` (one forward pass, no gradient)."""
    import torch

    with torch.no_grad():
        return fn(x).argmax(1) != y


def _cosine(start, end, i, n):
    """The cosine schedule from ``start`` (step 0) to ``end`` (step ``n``), at step ``i``."""
    return end + (start - end) * (1 + math.cos(math.pi * i / n)) / 2


def _box_radius(x, clip):
    """Per sample, the distance to the farthest corner of the box: no useful norm is
    larger (``inf`` without a box)."""
    import torch

    if clip is None:
        return torch.full((x.shape[0],), float("inf"), device=x.device, dtype=x.dtype)
    return flat_norm(torch.maximum(x - clip[0], clip[1] - x)).flatten()


def _keep_closest(best, best_dist, x, delta, is_adv):
    """Write ``x + delta`` into ``best`` where it is adversarial and closer than
    ``best_dist``; return the updated distances and ``||delta||`` per sample."""
    import torch

    norm = flat_norm(delta).flatten()
    better = is_adv & (norm < best_dist)
    best[better] = (x + delta)[better]
    return torch.where(better, norm.to(best_dist.dtype), best_dist), norm


def _random_where_zero(grad, generator):
    """Replace the rows of ``grad`` that are exactly zero by Gaussian directions."""
    import torch

    flat = flat_norm(grad).flatten() == 0
    if flat.any():
        grad = grad.clone()
        grad[flat] = torch.randn(
            grad[flat].shape, generator=generator, device=grad.device, dtype=grad.dtype
        )
    return grad


def _finish(fn, x, x_adv, y, clip):
    """``(x_adv, ||x_adv - x||)`` where ``x_adv`` is verified adversarial and in the box;
    ``(x, inf)`` elsewhere. Distances are float64."""
    import torch

    with torch.no_grad():
        x_adv = x_adv.detach()
        if clip is not None:
            x_adv = x_adv.clamp(clip[0], clip[1])
        ok = _is_adv(fn, x_adv, y)
        dist = flat_norm(x_adv - x).flatten().double()
        dist = torch.where(ok, dist, float("inf"))
        x_adv = torch.where(ok.view(-1, *[1] * (x.dim() - 1)), x_adv, x)
    return x_adv, dist


def boundary_search(fn, x, x_adv, y, *, steps=20, clip=None):
    """Pull adversarial points back towards ``x`` by bisection along the segment.

    For each sample, finds ``t`` in ``[0, 1]`` (to ``2**-steps``) such that
    ``x + t (x_adv - x)`` is still misclassified, and returns that point: never farther
    than ``x_adv``, and on an affine model the crossing of the segment with the
    boundary. Samples whose ``x_adv`` is not misclassified come back unchanged; those
    whose ``x`` is already misclassified come back as ``x``.

    Parameters
    ----------
    fn : callable
        ``fn(x) -> logits``; its mode is the caller's business.
    x : tensor of shape (n, ...)
    x_adv : tensor like ``x``
    y : tensor of shape (n,) of int64
        The classes to move away from.
    steps : int, default=20
        Bisection steps (one forward pass each).
    clip : tuple of (float, float) or None, default=None
        The box; points of the segment are clamped to it against rounding.

    Returns
    -------
    x_adv : tensor like ``x``

    Examples
    --------
    >>> import torch
    >>> from amrlearn.attacks import boundary_search
    >>> lin = torch.nn.Linear(1, 2, bias=False)
    >>> with torch.no_grad():
    ...     _ = lin.weight.copy_(torch.tensor([[1.0], [-1.0]]))
    >>> x = torch.tensor([[1.0]]); far = torch.tensor([[-3.0]])
    >>> round(float(boundary_search(lin, x, far, torch.tensor([0]))), 4)
    -0.0
    """
    import torch

    with torch.no_grad():
        x, x_adv = x.detach(), x_adv.detach()
        start = _is_adv(fn, x, y)
        active = _is_adv(fn, x_adv, y) & ~start
        shape = (-1, *[1] * (x.dim() - 1))
        lo = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
        hi = torch.where(start, 0.0, torch.ones_like(lo))

        def point(t):
            p = torch.lerp(x, x_adv, t.view(shape))
            return p if clip is None else p.clamp(clip[0], clip[1])

        for _ in range(steps if bool(active.any()) else 0):
            mid = (lo + hi) / 2
            adv = _is_adv(fn, point(mid), y)
            hi = torch.where(active & adv, mid, hi)
            lo = torch.where(active & ~adv, mid, lo)
        return point(hi)
