"""Regularizers of the margin *distribution*, the paper's open question (section 6).

AMR (objective 15) raises the batch mean of the truncated margins ``[m_i]_0^tau``. The
paper's conclusion asks which other functionals of the margin distribution promote
robustness. Three, as pure torch functions of per-sample margins (no estimator state):

* :func:`soft_min_margin_term`: a soft minimum of the truncated margins, ``-T log mean
  exp(-[m_i]_0^tau / T)``. It moves between the two ends of the paper's trade-off: the
  average margin (AMR's term) as ``T -> inf`` and the minimum margin as ``T -> 0``, so a
  finite ``T`` weights the small margins, where attacks succeed first, more than the mean
  does, without the minimum's single-sample gradient.
* :func:`margin_spread_term`: the variance of the truncated margins of the correctly
  classified samples, the second moment of the large-margin-distribution machines
  (Zhang & Zhou 2014, LDM: maximize the mean margin and minimize its variance).
* :func:`deepfool_input_margin`: a one-step input-space estimate of each sample's
  distance to the boundary, ``(z_y - z_k) / ||grad_x (z_y - z_k)||`` for the runner-up
  class ``k`` (DeepFool's step towards that class; DeepFool's first step takes the
  minimum over all classes, which costs a Jacobian,
  :func:`~amrlearn.attacks.class_gap_gradients`, instead of one backward). It estimates
  the quantity MMA training maximizes (Ding et al. 2020). Differentiable with respect to
  the parameters through a double backward.

Each has its part, a :class:`~amrlearn.neural.Penalty`, below its maths:
:class:`SoftMinMarginPenalty`, :class:`MarginSpreadPenalty` and
:class:`InputMarginPenalty`. With an adversarially trained net,
:class:`CleanMarginPenalty` puts AMR's margin term on the clean points of each batch
(``AMRMarginPenalty`` there reads the adversarial ones). This module is also the recipe
for a new regularizer: its maths and its part in one file, one export in
``amrlearn.neural``, one record in ``amrlearn.experiments._methods``.
"""

from numbers import Real

import torch

from .._math._margin import pair_distances_torch, signed_margins_torch
from ..utils._compat import Interval
from ._amrpenalty import AMRMarginPenalty, check_feature_layer
from ._penalty import Penalty, PenaltyBatch

__all__ = [
    "CleanMarginPenalty",
    "InputMarginPenalty",
    "MarginSpreadPenalty",
    "SoftMinMarginPenalty",
    "deepfool_input_margin",
    "margin_spread_term",
    "soft_min_margin_term",
]


def soft_min_margin_term(margin, tau, temperature):
    """Soft minimum of the truncated margins of a batch, ``-T log mean_i exp(-[m_i]_0^tau / T)``.

    A misclassified sample (``m_i <= 0``) enters with ``[m_i]_0^tau = 0``, as in AMR's
    term. The value lies between the batch minimum and the batch mean of ``[m_i]_0^tau``:
    it tends to the mean (:func:`~amrlearn.neural._penalties.amr_margin_term`) as
    ``temperature -> inf`` and to the minimum as ``temperature -> 0``. Its gradient puts
    the weight ``softmax(-[m]_0^tau / T)_i`` on sample ``i``: most on the smallest margins.

    Parameters
    ----------
    margin : Tensor of shape (n_samples,)
        Signed margins with respect to the true labels.
    tau : float
        Truncation threshold (> 0).
    temperature : float
        ``T`` (> 0), in the margins' units.

    Returns
    -------
    term : Tensor (scalar)
        To be subtracted, times a weight, from the loss.

    Examples
    --------
    >>> import torch
    >>> from amrlearn.neural._distribution import soft_min_margin_term
    >>> m = torch.tensor([1.0, 3.0, -2.0])
    >>> float(soft_min_margin_term(m, 5.0, 1e3))  # about the mean of [1, 3, 0]
    1.33...
    >>> float(soft_min_margin_term(m, 5.0, 1e-3))  # about the minimum
    0.001...
    """
    _check_positive(tau=tau, temperature=temperature)
    t = margin.clamp(0.0, tau) / -temperature
    log_mean = torch.logsumexp(t, dim=0) - torch.log(t.new_tensor(float(t.numel())))
    return -temperature * log_mean


def margin_spread_term(margin, correct, tau):
    """Variance of the truncated margins ``[m_i]_0^tau`` over the correctly classified samples.

    The second moment of the margin distribution (Zhang & Zhou 2014): with AMR's mean
    term, it pushes the small margins up and holds the large ones (already capped by
    ``tau``) back. 0 when fewer than two samples are correct.

    Parameters
    ----------
    margin : Tensor of shape (n_samples,)
        Signed margins with respect to the true labels.
    correct : Tensor of bool of shape (n_samples,)
        Which samples are correctly classified.
    tau : float
        Truncation threshold (> 0).

    Returns
    -------
    term : Tensor (scalar)
        To be added, times a weight, to the loss.

    Examples
    --------
    >>> import torch
    >>> from amrlearn.neural._distribution import margin_spread_term
    >>> m = torch.tensor([1.0, 3.0, 9.0, -2.0])
    >>> margin_spread_term(m, torch.tensor([True, True, True, False]), 5.0)  # of [1, 3, 5]
    tensor(2.6667)
    """
    _check_positive(tau=tau)
    kept = margin[correct].clamp(0.0, tau)
    if kept.numel() < 2:
        return margin.sum() * 0.0
    return ((kept - kept.mean()) ** 2).mean()


def deepfool_input_margin(logit_fn, x, y, *, create_graph=True, eps=1e-12):
    """The linearized input-space l2 distance to the runner-up class's boundary, per sample.

    ``d_i = (z_y - z_k)(x_i) / ||grad_x (z_y - z_k)(x_i)||`` with ``k`` the highest-scoring
    class other than ``y``: the distance to the ``y``-``k`` boundary of the net's
    linearization at ``x_i`` (exact for an affine net; another class's boundary may be
    nearer, which DeepFool's minimum over all classes would find at the cost of a
    Jacobian). Negative on a misclassified sample.

    Parameters
    ----------
    logit_fn : callable
        Maps a batch of inputs to logits of shape (n_samples, n_classes).
    x : Tensor of shape (n_samples, ...)
    y : Tensor of int of shape (n_samples,)
    create_graph : bool, default=True
        Keep the graph of the input gradient, so that ``d`` is differentiable with
        respect to the parameters (a double backward; about twice a plain step's cost).
    eps : float, default=1e-12
        Floor of the gradient's norm.

    Returns
    -------
    d : Tensor of shape (n_samples,)

    Examples
    --------
    >>> import torch
    >>> from amrlearn.neural._distribution import deepfool_input_margin
    >>> lin = torch.nn.Linear(2, 2)
    >>> with torch.no_grad():
    ...     _ = lin.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    ...     _ = lin.bias.zero_()
    >>> deepfool_input_margin(lin, torch.tensor([[3.0, 1.0]]), torch.tensor([0]))  # 2 / sqrt(2)
    tensor([1.4142], grad_fn=<DivBackward0>)
    """
    x = x.detach().requires_grad_(True)
    logits = logit_fn(x)
    y = y.long()
    other = logits.detach().scatter(1, y[:, None], float("-inf")).argmax(dim=1)
    gap = logits.gather(1, y[:, None]).squeeze(1) - logits.gather(1, other[:, None]).squeeze(1)
    (grad,) = torch.autograd.grad(gap.sum(), x, create_graph=create_graph)
    norm = grad.flatten(1).norm(dim=1).clamp_min(eps)
    return gap / norm


def _check_positive(**values):
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value!r}.")


# ------------------------------------------------------------------------------ parts


class _FeatureMarginPenalty(Penalty):
    """A penalty on the feature margins of eq. (14) of the net's own forward pass."""

    _parameter_constraints = {
        **Penalty._parameter_constraints,
        "tau": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self, weight=0.1, *, tau=5.0, start_epoch=1, warmup_epochs=0, every=1, reg_batch_size=None
    ):
        super().__init__(
            weight,
            start_epoch=start_epoch,
            warmup_epochs=warmup_epochs,
            every=every,
            reg_batch_size=reg_batch_size,
        )
        self.tau = tau

    def check_net(self, net):
        check_feature_layer(net, type(self).__name__, f"leave {type(self).__name__} out")

    def _margins(self, net, batch):
        """Eq. (14)'s margins from the forward pass's own logits (``layer(features)``,
        checked when the features are caught): no second product with the weights."""
        logits, _, layer = net._logits_features_layer(batch.y_pred)
        return signed_margins_torch(logits, pair_distances_torch(layer.weight), batch.y)[0]


class SoftMinMarginPenalty(_FeatureMarginPenalty):
    """The soft minimum of the batch's truncated feature margins, as a reward.

    ``-weight * (-T log mean_i exp(-[m_i]_0^tau / T))``, with ``m_i`` the feature margin of
    eq. (14) (:func:`soft_min_margin_term`). ``temperature -> inf`` is AMR's average
    margin term; a small ``temperature`` pushes the smallest margins of each batch, where
    an attack succeeds first. Use it with the orthogonality penalty (as AMR does), which
    keeps feature margins meaningful in the input space.

    Parameters
    ----------
    weight : float, default=0.1
        Like AMR's ``lambda``.
    tau : float, default=5.0
        Truncation of the margin.
    temperature : float, default=1.0
        ``T``, in the feature margin's units (> 0).
    start_epoch, warmup_epochs, every, reg_batch_size
        The schedule and sub-batch of :class:`~amrlearn.neural.Penalty`.

    Examples
    --------
    >>> import numpy as np
    >>> from amrlearn.neural import (OrthogonalityPenalty, RegularizedNeuralNetClassifier,
    ...                              SoftMinMarginPenalty, models)
    >>> X = np.random.default_rng(0).uniform(size=(32, 5)).astype(np.float32)
    >>> y = (X[:, 0] > 0.5).astype(np.int64)
    >>> net = RegularizedNeuralNetClassifier(
    ...     models.MLP, module__in_features=5, module__hidden=8, module__n_classes=2,
    ...     penalty=[OrthogonalityPenalty, SoftMinMarginPenalty(temperature=0.5)],
    ...     max_epochs=2, verbose=0).fit(X, y)
    >>> sorted(net.penalties_)
    ['ortho', 'soft_min']
    """

    name = "soft_min"

    _parameter_constraints = {
        **_FeatureMarginPenalty._parameter_constraints,
        "temperature": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        weight=0.1,
        *,
        tau=5.0,
        temperature=1.0,
        start_epoch=1,
        warmup_epochs=0,
        every=1,
        reg_batch_size=None,
    ):
        super().__init__(
            weight,
            tau=tau,
            start_epoch=start_epoch,
            warmup_epochs=warmup_epochs,
            every=every,
            reg_batch_size=reg_batch_size,
        )
        self.temperature = temperature

    def compute(self, net, batch, clock):
        return -soft_min_margin_term(self._margins(net, batch), self.tau, self.temperature)


class MarginSpreadPenalty(_FeatureMarginPenalty):
    """The variance of the truncated feature margins of the batch's correct samples.

    ``weight * Var_{i correct}([m_i]_0^tau)`` (:func:`margin_spread_term`): with AMR's
    mean term, the large-margin-distribution objective of Zhang & Zhou (2014), mean up and
    variance down.

    Parameters
    ----------
    weight : float, default=0.1
    tau : float, default=5.0
        Truncation of the margin.
    start_epoch, warmup_epochs, every, reg_batch_size
        The schedule and sub-batch of :class:`~amrlearn.neural.Penalty`.

    Examples
    --------
    >>> import numpy as np
    >>> from amrlearn.neural import AMRNeuralNetClassifier, MarginSpreadPenalty, models
    >>> X = np.random.default_rng(0).uniform(size=(32, 5)).astype(np.float32)
    >>> y = (X[:, 0] > 0.5).astype(np.int64)
    >>> net = AMRNeuralNetClassifier(   # AMR's mean term, its orthogonality, and the spread
    ...     models.MLP, module__in_features=5, module__hidden=8, module__n_classes=2,
    ...     penalty=MarginSpreadPenalty, penalty__weight=0.05, max_epochs=2, verbose=0)
    >>> net.fit(X, y).penalties_["spread"].weight
    0.05
    """

    name = "spread"

    def compute(self, net, batch, clock):
        margin = self._margins(net, batch)
        return margin_spread_term(margin, margin > 0, self.tau)


class InputMarginPenalty(Penalty):
    """MMA's idea at the cost of one extra backward: a one-step input-space margin.

    ``-weight * mean_i [d_i]_0^tau`` with ``d_i`` the input-space distance to the boundary
    of the net's linearization at ``x_i`` (:func:`deepfool_input_margin`; negative, so
    counting 0, on a misclassified sample). Unlike eq. (14)'s feature margin it needs no
    Lipschitz control to mean a distance in the input space; its gradient takes a double
    backward on the penalty's samples (``reg_batch_size`` bounds the cost). Training only.

    Parameters
    ----------
    weight : float, default=0.1
    tau : float, default=2.0
        Truncation, in input units (about the largest radius to defend).
    start_epoch, warmup_epochs, every, reg_batch_size
        The schedule and sub-batch of :class:`~amrlearn.neural.Penalty`.

    References
    ----------
    G. W. Ding, Y. Sharma, K. Y. C. Lui and R. Huang. MMA Training: Direct Input Space
    Margin Maximization through Adversarial Training. ICLR 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from amrlearn.neural import InputMarginPenalty, RegularizedNeuralNetClassifier, models
    >>> X = np.random.default_rng(0).uniform(size=(32, 5)).astype(np.float32)
    >>> y = (X[:, 0] > 0.5).astype(np.int64)
    >>> net = RegularizedNeuralNetClassifier(
    ...     models.MLP, module__in_features=5, module__hidden=8, module__n_classes=2,
    ...     penalty=InputMarginPenalty(tau=0.5, reg_batch_size=8), max_epochs=2, verbose=0)
    >>> net.fit(X, y).penalties_["input_margin"].tau
    0.5
    """

    name = "input_margin"
    needs_input = True
    training_only = True

    _parameter_constraints = {
        **Penalty._parameter_constraints,
        "tau": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self, weight=0.1, *, tau=2.0, start_epoch=1, warmup_epochs=0, every=1, reg_batch_size=None
    ):
        super().__init__(
            weight,
            start_epoch=start_epoch,
            warmup_epochs=warmup_epochs,
            every=every,
            reg_batch_size=reg_batch_size,
        )
        self.tau = tau

    def compute(self, net, batch, clock):
        from ._features import logits_of

        module = net.bare_module_
        d = deepfool_input_margin(lambda x: logits_of(module(x)), batch.X, batch.y)
        return -d.clamp(0.0, self.tau)


class CleanMarginPenalty(AMRMarginPenalty):
    """AMR's margin term on the *clean* points of an adversarially trained net's batch.

    :class:`~amrlearn.neural.AMRMarginPenalty` added to
    :class:`~amrlearn.neural.AdversarialNeuralNetClassifier` reads the forward pass of the
    adversarial examples; this one runs the module on the batch's clean inputs (one more
    forward and backward) and rewards their truncated feature margins. Elsewhere (a net
    that trains on clean inputs) it is AMR's term. Training only.

    Parameters
    ----------
    As :class:`~amrlearn.neural.AMRMarginPenalty`.

    Examples
    --------
    >>> import numpy as np
    >>> from amrlearn.attacks import FGSMRS
    >>> from amrlearn.neural import (AdversarialNeuralNetClassifier, CleanMarginPenalty,
    ...                              models)
    >>> X = np.random.default_rng(0).uniform(size=(32, 5)).astype(np.float32)
    >>> y = (X[:, 0] > 0.5).astype(np.int64)
    >>> net = AdversarialNeuralNetClassifier(   # FGSM-RS training plus clean margins
    ...     models.MLP, module__in_features=5, module__hidden=8, module__n_classes=2,
    ...     attack=FGSMRS, attack__eps=0.1, penalty=CleanMarginPenalty(tau=1.0),
    ...     max_epochs=2, verbose=0).fit(X, y)
    >>> net.penalties_["clean_margin"].tau
    1.0
    """

    name = "clean_margin"
    training_only = True

    def compute(self, net, batch, clock):
        clean = net.__dict__.get("_clean_batch")
        if clean is None or not clock.in_step:
            return super().compute(net, batch, clock)
        x, y = clean
        n = self.reg_batch_size
        if n is not None:
            x, y = x[:n], y[:n]
        y_pred = net.infer(x)
        return super().compute(net, PenaltyBatch(x, y, y_pred), clock)
