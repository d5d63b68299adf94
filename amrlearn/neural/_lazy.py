"""Lazy regularization for skorch nets: a training-step counter and the penalty's weight.

A mixin, placed before the skorch net in the bases, that counts training steps in
``n_train_steps_`` and tells ``get_loss`` by how much to multiply a costly penalty on the
current step: ``every`` on one step in ``every``, ``0`` on the others (so that, at fixed
weights, the penalty's gradients over ``every`` consecutive steps sum to those of the
every-step penalty), and ``1`` outside a training step (validation, direct calls).

``every`` is the net's ``ortho_every``, or with ``ortho_every="auto"`` the one that
:func:`auto_ortho_every` picks from the multiply-adds of the first training step.
"""

import math

import torch

from ._penalties import penalized_weights

__all__ = ["LazyPenaltyMixin", "auto_ortho_every"]

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


class LazyPenaltyMixin:
    """Counts training steps; :meth:`lazy_penalty_scale` gives the lazy penalty's weight.

    The net must have a parameter ``ortho_every``: an integer (>= 1) or ``"auto"``.

    Attributes
    ----------
    n_train_steps_ : int
        Training steps taken since the last ``initialize``.
    ortho_every_ : int or None
        The schedule in use: ``ortho_every``, or the value ``"auto"`` picked at the first
        training step (``None`` until then).

    Examples
    --------
    >>> import numpy as np
    >>> from amrlearn.neural import AMRNeuralNetClassifier, models
    >>> X = np.random.default_rng(0).uniform(size=(20, 4)).astype(np.float32)
    >>> y = np.arange(20) % 2
    >>> net = AMRNeuralNetClassifier(models.MLP, module__in_features=4, module__hidden=8,
    ...                              module__n_classes=2, batch_size=5, max_epochs=2,
    ...                              ortho_every=3, verbose=0).fit(X, y)
    >>> net.n_train_steps_, net.ortho_every_
    (8, 3)
    >>> net.lazy_penalty_scale(training=False)
    1
    """

    _in_train_step = False
    _forward_counter = None

    def _finish_initialize(self):
        # The nets' set-up step that both skorch's and AccelerateMixin's initialize() run.
        out = super()._finish_initialize()
        self.n_train_steps_ = 0
        self.ortho_every_ = None if self.ortho_every == "auto" else int(self.ortho_every)
        return out

    def train_step(self, batch, **fit_params):
        if self.ortho_every_ is None:  # "auto": count this step's forward pass
            self._forward_counter = _ForwardCounter(self.bare_module_)
        self._in_train_step = True
        try:
            return super().train_step(batch, **fit_params)
        finally:
            self._in_train_step = False
            if self._forward_counter is not None:
                self._forward_counter.remove()
                self._forward_counter = None
            self.n_train_steps_ += 1

    def lazy_penalty_scale(self, training):
        """Weight multiplier of the lazy penalty for the loss being computed.

        Parameters
        ----------
        training : bool
            The ``training`` flag of ``get_loss``.

        Returns
        -------
        scale : int
            ``ortho_every_`` or ``0`` inside a training step, else ``1``.
        """
        if not (training and self._in_train_step):
            return 1
        if self.ortho_every_ is None:
            # "auto", first step: its forward pass has just been counted.
            step = 3 * self._forward_counter.macs  # forward, and backward to input and weights
            penalty = penalty_multiply_adds(self.bare_module_)
            self.ortho_every_ = auto_ortho_every(penalty, step)
        every = self.ortho_every_
        return every if self.n_train_steps_ % every == 0 else 0
