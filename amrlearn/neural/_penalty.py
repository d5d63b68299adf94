"""A regularizer as a part of a net: :class:`Penalty`, its schedule and its batch.

A penalty is a term that a :class:`~amrlearn.neural.RegularizedNeuralNetClassifier` adds
to its loss, as skorch adds a ``criterion``. One contract for all of them:

* :meth:`Penalty.compute` returns the *unweighted* term of a batch: a tensor of shape
  ``(n,)``, one value per sample, which is averaged here; or a scalar, taken as the batch
  mean already (or as a term of the weights alone, such as the orthogonality penalty).
  Its sign is that of the loss: a reward, such as AMR's average margin, comes back
  negated.
* :meth:`Penalty.__call__` returns ``scale * weight * mean``, the scalar that the net adds
  to the loss, or ``None`` when the penalty is off on this batch.

The schedule runs on one clock, the net's (:class:`Clock`): the epoch, from 1, and the
training steps taken since ``initialize``. From it come ``start_epoch`` (off before),
``warmup_epochs`` (a linear ramp of the weight) and ``every`` (lazy: on one training step
in ``every``, with weight ``every * weight``). The base also does what every penalty
that runs its own forward pass needs (``needs_input``): the batch as tensors on the
net's device, its first ``reg_batch_size`` samples, the module in eval mode.
"""

from dataclasses import dataclass
from numbers import Integral, Real

from sklearn.base import BaseEstimator
from skorch.utils import to_tensor

from ..utils._compat import Interval, StrOptions, validate_parameter_constraints
from ._features import eval_mode
from ._lazy import auto_ortho_every

__all__ = ["Clock", "Penalty", "PenaltyBatch"]


@dataclass(frozen=True)
class Clock:
    """Where a net is in its training, as a penalty's schedule reads it.

    Attributes
    ----------
    epoch : int
        The current epoch, from 1 (``len(net.history)``; 1 before any).
    step : int
        Training steps taken since ``initialize``, this one not included.
    training : bool
        The ``training`` flag of ``get_loss``.
    in_step : bool
        Whether the loss is computed inside a training step (not a validation batch or a
        direct call of ``get_loss``).
    max_epochs : int
        The net's ``max_epochs``.
    step_macs : int or None
        Multiply-adds of this step's forward pass, counted on the steps where a
        penalty with ``every="auto"`` has yet to choose its schedule.
    """

    epoch: int
    step: int
    training: bool
    in_step: bool
    max_epochs: int
    step_macs: int | None = None


@dataclass(frozen=True)
class PenaltyBatch:
    """The batch a penalty computes on (its first ``reg_batch_size`` samples).

    Attributes
    ----------
    X : tensor, ndarray or None
        The inputs; a float tensor on the net's device where the penalty
        ``needs_input``.
    y : tensor of int64 of shape (n,)
        The class codes ``0..n_classes-1``.
    y_pred : tensor or tuple
        The module's output on the batch: the logits, or ``(logits, features)``.
    """

    X: object
    y: object
    y_pred: object


def _head(value, n):
    if isinstance(value, tuple | list):
        return type(value)(_head(v, n) for v in value)
    return value[:n] if hasattr(value, "__getitem__") else value


class Penalty(BaseEstimator):
    """Base of the regularizers that a net adds to its loss; see the module's docstring.

    A subclass sets ``name`` (its key in the net's ``penalties_``), lists its parameters
    in ``__init__`` (these four included) and stores them unchanged, and implements
    :meth:`compute`. It may refuse a net in :meth:`check_net`, and give
    :meth:`multiply_adds` to allow ``every="auto"``.

    Parameters
    ----------
    weight : float, default=1.0
        The weight of the term in the loss (the paper's ``lambda`` or ``beta``).
    start_epoch : int, default=1
        The first epoch (from 1) with the penalty on; before it, standard training.
    warmup_epochs : int, default=0
        The weight rises linearly over this many epochs from ``start_epoch``:
        ``weight * min((epoch - start_epoch + 1) / warmup_epochs, 1)``. ``0``: no ramp.
    every : int or "auto", default=1
        Lazy regularization: in a training step, the penalty enters the loss of one step
        in ``every`` (the first of a fit included) with weight ``every * weight``, and is
        not computed on the others; outside a training step its weight is ``weight``.
        ``"auto"`` picks it at the first training step from the multiply-adds of the
        penalty and of the step (penalties with :meth:`multiply_adds` only).
    reg_batch_size : int or None, default=None
        Compute the penalty on the first ``reg_batch_size`` samples of each (shuffled)
        batch, an unbiased estimate of the batch's mean; ``None``: the whole batch.

    Attributes
    ----------
    every_ : int or None
        The lazy schedule in use (``every``, or what ``"auto"`` picked; ``None`` before
        the first training step).

    Examples
    --------
    A penalty on the squared logits, added to a net's loss:

    >>> import numpy as np
    >>> from amrlearn.neural import Penalty, RegularizedNeuralNetClassifier, models
    >>> class LogitSquares(Penalty):
    ...     name = "logit_squares"
    ...
    ...     def __init__(self, weight=0.01, *, start_epoch=1, warmup_epochs=0, every=1,
    ...                  reg_batch_size=None):
    ...         super().__init__(weight, start_epoch=start_epoch, warmup_epochs=warmup_epochs,
    ...                          every=every, reg_batch_size=reg_batch_size)
    ...
    ...     def compute(self, net, batch, clock):
    ...         logits = batch.y_pred[0]
    ...         return (logits**2).sum(1)  # one value per sample: the base averages them
    >>> X = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    >>> y = (X[:, 0] > 0).astype(np.int64)
    >>> net = RegularizedNeuralNetClassifier(
    ...     models.MLP, module__in_features=4, module__hidden=8, module__n_classes=2,
    ...     penalty=LogitSquares, penalty__weight=0.1, max_epochs=2, verbose=0)
    >>> net.fit(X, y).penalties_["logit_squares"].weight
    0.1
    """

    #: The penalty's key in a net's ``penalties_`` (and in ``penalty__<name>__*``).
    name = "penalty"
    #: The penalty runs its own forward passes on the inputs: ``X`` is required, made a
    #: float tensor on the net's device, and the module is in eval mode meanwhile.
    needs_input = False
    #: The penalty enters training losses only (``valid_loss`` is the criterion's).
    training_only = False

    _parameter_constraints = {
        "weight": [Interval(Real, 0, None, closed="left")],
        "start_epoch": [Interval(Integral, 1, None, closed="left")],
        "warmup_epochs": [Interval(Integral, 0, None, closed="left")],
        "every": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "reg_batch_size": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(self, weight=1.0, *, start_epoch=1, warmup_epochs=0, every=1, reg_batch_size=None):
        self.weight = weight
        self.start_epoch = start_epoch
        self.warmup_epochs = warmup_epochs
        self.every = every
        self.reg_batch_size = reg_batch_size

    # ------------------------------------------------------------ for subclasses
    def compute(self, net, batch, clock):
        """The unweighted term of a batch.

        Parameters
        ----------
        net : RegularizedNeuralNetClassifier
        batch : PenaltyBatch
        clock : Clock

        Returns
        -------
        value : tensor of shape (n,) or scalar tensor
            Per-sample values (averaged by the caller) or the batch mean.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement compute().")

    def check_net(self, net):
        """Refuse, with a clear error, a net this penalty cannot work with.

        Called by :meth:`initialize` once the module is built, when ``weight > 0``.
        """

    def multiply_adds(self, module):
        """Multiply-adds of one evaluation of the penalty, for ``every="auto"``."""
        raise NotImplementedError

    # -------------------------------------------------------------- the schedule
    def initialize(self, net):
        """Check the parameters and the net, and reset the fitted state."""
        validate_parameter_constraints(
            self._parameter_constraints, self.get_params(deep=False), type(self).__name__
        )
        if self.every == "auto" and type(self).multiply_adds is Penalty.multiply_adds:
            raise ValueError(
                f"{type(self).__name__} has no cost model for every='auto' (multiply_adds); "
                "give every an integer."
            )
        self.every_ = None if self.every == "auto" else int(self.every)
        if self.weight > 0:
            self.check_net(net)
        return self

    def scale(self, net, clock):
        """The schedule's factor of ``weight`` on this batch; ``0``: off."""
        if (self.training_only and not clock.training) or clock.epoch < self.start_epoch:
            return 0
        lazy = 1
        if clock.training and clock.in_step:
            if self.every_ is None:  # "auto", first step: its forward has just been counted
                penalty = self.multiply_adds(net.bare_module_)
                self.every_ = auto_ortho_every(penalty, 3 * (clock.step_macs or 0))
            lazy = self.every_ if clock.step % self.every_ == 0 else 0
        if not self.warmup_epochs:
            return lazy
        return lazy * min((clock.epoch - self.start_epoch + 1) / self.warmup_epochs, 1.0)

    def __call__(self, net, y_pred, y_true, X, clock):
        """The term to add to the loss, ``scale * weight * mean``, or ``None`` when off.

        Parameters
        ----------
        net : RegularizedNeuralNetClassifier
        y_pred : tensor or tuple
            The module's output on the batch.
        y_true : tensor or ndarray of shape (n,)
            The class codes.
        X : tensor, ndarray or None
            The batch's inputs.
        clock : Clock

        Returns
        -------
        term : scalar tensor or None
        """
        scale = self.scale(net, clock)
        if not (scale and self.weight):
            return None
        n = self.reg_batch_size
        if self.needs_input:
            if X is None:
                raise ValueError(f"{type(self).__name__} needs the batch X in get_loss.")
            x = to_tensor(X, device=net.device).float()
            y = to_tensor(y_true, device=net.device).long()
            if n is not None:
                x, y, y_pred = x[:n], y[:n], _head(y_pred, n)
            with eval_mode(net.bare_module_):
                value = self.compute(net, PenaltyBatch(x, y, y_pred), clock)
        else:
            logits = y_pred[0] if isinstance(y_pred, tuple | list) else y_pred
            y = to_tensor(y_true, device=logits.device).long()
            if n is not None:
                X, y, y_pred = _head(X, n), y[:n], _head(y_pred, n)
            value = self.compute(net, PenaltyBatch(X, y, y_pred), clock)
        if value.dim() > 0:
            value = value.mean()
        return (scale * self.weight) * value
