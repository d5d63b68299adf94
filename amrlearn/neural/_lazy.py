"""The cost model of lazy regularization: when ``every="auto"`` makes a penalty lazy.

A penalty with ``every`` (:class:`~amrlearn.neural.Penalty`) enters the loss of one
training step in ``every`` with weight ``every * weight``, and is not computed on the
others: at fixed weights, its gradients over ``every`` consecutive steps sum to those of
the every-step penalty. ``every="auto"`` is :func:`auto_ortho_every` of the penalty's
multiply-adds (:func:`penalty_multiply_adds` for the orthogonality penalty) and of the
first training step's, counted by :class:`_ForwardCounter` during its forward pass.
"""

import math

import torch

from ._penalties import penalized_weights

__all__ = ["auto_ortho_every", "penalty_multiply_adds"]

#: ``ortho_every="auto"`` computes the exact penalty on every step where it costs at most
#: this share of a training step's multiply-adds: where it is affordable, nothing is
#: approximated (on the quick MNIST CNN the lazy schedule's effect could not be told apart
#: from rounding, which moves that net by as much; docs/reproduction.md).
AUTO_EXACT_SHARE = 0.15
#: Where the exact penalty costs more, the smallest ``ortho_every`` that keeps its
#: multiply-adds, spread over the steps, within this share of theirs ...
AUTO_PENALTY_SHARE = 0.05
#: ... and never lazier than this: the penalty's step is a kick of weight
#: ``ortho_every * beta``, which must stay a small perturbation.
AUTO_MAX_EVERY = 64


def penalty_multiply_adds(module):
    """Multiply-adds of one exact orthogonality penalty and its gradient.

    Each weight, flattened to ``out x d``, costs a Gram matrix and the closed-form
    gradient ``4 W A``: ``2 * out * d * min(out, d)``.

    Examples
    --------
    >>> import torch
    >>> from amrlearn.neural._lazy import penalty_multiply_adds
    >>> penalty_multiply_adds(torch.nn.Linear(4, 2))
    32
    """
    total = 0
    for w in penalized_weights(module):
        out, d = w.shape[0], w[0].numel()
        total += 2 * out * d * min(out, d)
    return total


def auto_ortho_every(penalty_macs, step_macs):
    """The ``ortho_every`` of ``"auto"``.

    1 (the exact penalty) where one penalty costs at most ``AUTO_EXACT_SHARE`` of a step;
    otherwise the smallest number of steps over which it costs at most
    ``AUTO_PENALTY_SHARE`` of theirs, at most ``AUTO_MAX_EVERY``.

    Parameters
    ----------
    penalty_macs : int
        Multiply-adds of one penalty evaluation (:func:`penalty_multiply_adds`).
    step_macs : int
        Multiply-adds of one training step (three times the forward pass's).

    Returns
    -------
    every : int

    Examples
    --------
    >>> from amrlearn.neural._lazy import auto_ortho_every
    >>> auto_ortho_every(100, 1000), auto_ortho_every(500, 1000), auto_ortho_every(10**9, 1)
    (1, 10, 64)
    """
    if step_macs <= 0:
        return AUTO_MAX_EVERY
    share = penalty_macs / step_macs
    if share <= AUTO_EXACT_SHARE:
        return 1
    every = math.ceil(share / AUTO_PENALTY_SHARE)
    return int(min(max(every, 1), AUTO_MAX_EVERY))


class _ForwardCounter:
    """Counts the multiply-adds of the linear and convolutional layers of a forward."""

    def __init__(self, module):
        self.macs = 0
        self.handles = []
        for layer in module.modules():
            if isinstance(layer, torch.nn.Linear):
                per_output = layer.in_features
            elif isinstance(layer, torch.nn.modules.conv._ConvNd):
                per_output = layer.in_channels // layer.groups * math.prod(layer.kernel_size)
            else:
                continue
            self.handles.append(layer.register_forward_hook(self._hook(per_output)))

    def _hook(self, per_output):
        def hook(_, inputs, output):
            self.macs += output.numel() * per_output

        return hook

    def remove(self):
        for handle in self.handles:
            handle.remove()
        self.handles = []
