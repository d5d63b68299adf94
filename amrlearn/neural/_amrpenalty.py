"""The two penalties of objective (15): AMR's truncated margin term and the orthogonality one.

The maths lives in :mod:`amrlearn.neural._penalties` (eq. (14) and the Gram penalty) and
the ``every="auto"`` cost model in :mod:`amrlearn.neural._lazy`; these are the parts that
put them in a net's loss (:class:`~amrlearn.neural.Penalty`).
"""

from numbers import Integral, Real

import torch

from ..utils._compat import Interval, StrOptions
from ._lazy import penalty_multiply_adds
from ._lipschitz import LIPSCHITZ_METHODS
from ._penalties import amr_margin_loss, orthogonality_penalty
from ._penalty import Penalty

__all__ = ["AMRMarginPenalty", "OrthogonalityPenalty"]


def check_feature_layer(net, who, instead):
    """Refuse a net whose module has no layer for eq. (14)'s features: ``who`` (a penalty's
    setting) needs them, ``instead`` says what else the user can do."""
    if net.feature_layer_ is None:
        raise ValueError(
            f"{who} needs the features of eq. (14), the input of the linear layer that "
            f"produces the logits, but {type(net.bare_module_).__name__} has no "
            "torch.nn.Linear layer. End the module with an nn.Linear (named with "
            "feature_layer='...' if it is not the last one), return (logits, features) from "
            f"forward, or {instead}."
        )


class AMRMarginPenalty(Penalty):
    """AMR's average margin term of objective (15), ``-(1/n) sum_i [m_i]_0^tau``.

    ``m_i`` is the feature-space margin of eq. (14) of a correctly classified sample
    (misclassified ones count zero; see :func:`~amrlearn.neural.feature_margin`). The
    term is a reward: it enters the loss negated, times ``weight`` (the paper's
    ``lambda``). It reads the net's own forward pass (the logits and the layer that
    produces them), no forward of its own.

    Parameters
    ----------
    weight : float, default=0.1
        ``lambda`` (Appendix F: 0.1 for all models).
    tau : float, default=5.0
        Truncation of the margin.
    margin : {"feature", "logit", "certified"}, default="feature"
        As ``margin`` of :class:`~amrlearn.neural.AMRNeuralNetClassifier`.
    lipschitz : {"power", "bound"}, default="power"
        How ``P`` is computed with ``margin="certified"``.
    start_epoch, warmup_epochs, every, reg_batch_size
        The schedule and sub-batch of :class:`~amrlearn.neural.Penalty`.

    Examples
    --------
    >>> import numpy as np
    >>> from amrlearn.neural import (AMRMarginPenalty, AdversarialNeuralNetClassifier,
    ...                              models)
    >>> X = np.random.default_rng(0).uniform(size=(32, 5)).astype(np.float32)
    >>> y = (X[:, 0] > 0.5).astype(np.int64)
    >>> net = AdversarialNeuralNetClassifier(   # PGD training plus AMR's margin term
    ...     models.MLP, module__in_features=5, module__hidden=8, module__n_classes=2,
    ...     attack__eps=0.1, attack__steps=2, penalty=AMRMarginPenalty(tau=1.0),
    ...     max_epochs=2, verbose=0).fit(X, y)
    >>> net.penalties_["margin"].tau
    1.0
    """

    name = "margin"

    _parameter_constraints = {
        **Penalty._parameter_constraints,
        "tau": [Interval(Real, 0, None, closed="left")],
        "margin": [StrOptions({"feature", "logit", "certified"})],
        "lipschitz": [StrOptions(set(LIPSCHITZ_METHODS))],
    }

    def __init__(
        self,
        weight=0.1,
        *,
        tau=5.0,
        margin="feature",
        lipschitz="power",
        start_epoch=1,
        warmup_epochs=0,
        every=1,
        reg_batch_size=None,
    ):
        super().__init__(
            weight,
            start_epoch=start_epoch,
            warmup_epochs=warmup_epochs,
            every=every,
            reg_batch_size=reg_batch_size,
        )
        self.tau = tau
        self.margin = margin
        self.lipschitz = lipschitz

    def check_net(self, net):
        check_feature_layer(net, f"lam={self.weight}", "train with lam=0")

    def compute(self, net, batch, clock):
        """``-mean [m]_0^tau``, from the logits and the layer's weight in one piece.

        logits == layer(features) (checked where the features are captured). With
        ``margin="certified"`` the margins are divided by ``net.feature_lipschitz(X)``.
        """
        logits, _, layer = net._logits_features_layer(
            batch.y_pred, alternative=", or train with lam=0"
        )
        if self.margin == "certified":
            # [m / P]_0^tau: eq. (14)'s margin in feature space over the Lipschitz
            # constant of the features, from the logits scaled by 1 / P.
            P = net.feature_lipschitz(batch.X, training=clock.training, method=self.lipschitz)
            logits = logits / P
        normalize = self.margin != "logit"
        return -amr_margin_loss(logits, layer.weight, batch.y, self.tau, normalize=normalize)


class OrthogonalityPenalty(Penalty):
    """The orthogonality penalty of objective (15), ``sum_l ||W_l W_l^T - I||_F^2``.

    A term of the weights alone (:func:`~amrlearn.neural.orthogonality_penalty`), lazy
    by default: its cost, ``O(out * in * min(out, in))`` per evaluation whatever the
    batch, is spread over ``every`` steps (``"auto"``: chosen at the first training step
    from :func:`~amrlearn.neural._lazy.auto_ortho_every`). Without autograd (validation
    batches) it is computed once per state of the weights.

    Parameters
    ----------
    weight : float, default=1e-3
        ``beta`` (Appendix F: 1e-3, also for LCR).
    gram : {"auto", "output", "input"}, default="auto"
        Which Gram matrix to form (same value and gradient).
    n_probes : int or None, default=None
        ``None``: exact; an integer: Hutchinson's estimate from that many sign vectors.
    every : int or "auto", default="auto"
        The lazy schedule (see ``ortho_every`` of
        :class:`~amrlearn.neural.AMRNeuralNetClassifier`).
    start_epoch, warmup_epochs, reg_batch_size
        As in :class:`~amrlearn.neural.Penalty` (the term does not depend on the batch).

    Examples
    --------
    >>> import torch
    >>> from amrlearn.neural import OrthogonalityPenalty
    >>> OrthogonalityPenalty(every=4).multiply_adds(torch.nn.Linear(4, 2))
    32
    """

    name = "ortho"

    _parameter_constraints = {
        **Penalty._parameter_constraints,
        "gram": [StrOptions({"auto", "output", "input"})],
        "n_probes": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(
        self,
        weight=1e-3,
        *,
        gram="auto",
        n_probes=None,
        start_epoch=1,
        warmup_epochs=0,
        every="auto",
        reg_batch_size=None,
    ):
        super().__init__(
            weight,
            start_epoch=start_epoch,
            warmup_epochs=warmup_epochs,
            every=every,
            reg_batch_size=reg_batch_size,
        )
        self.gram = gram
        self.n_probes = n_probes

    def multiply_adds(self, module):
        return penalty_multiply_adds(module)

    def compute(self, net, batch, clock):
        return self.value(net.bare_module_)  # its layers, not a DistributedDataParallel

    def value(self, module):
        """The penalty of the module's current weights.

        Without autograd it is computed once per state of the weights, told by the
        parameters' version counters, which every in-place update (an optimizer step,
        ``load_state_dict``) advances.
        """
        if torch.is_grad_enabled():
            return orthogonality_penalty(module, gram=self.gram, n_probes=self.n_probes)
        params = tuple(module.parameters())
        key = (id(module), self.gram, self.n_probes, *(id(p) for p in params))
        key += tuple(p._version for p in params)
        cached = self.__dict__.get("_cache")
        if cached is None or cached[0] != key:
            value = orthogonality_penalty(module, gram=self.gram, n_probes=self.n_probes)
            self._cache = cached = (key, value)
        return cached[1]

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_cache", None)  # a cache of the weights, not a state of the penalty
        return state
