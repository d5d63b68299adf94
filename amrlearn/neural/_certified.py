"""Training for certified margins: the Lipschitz bound on the nets, and the GloRo baseline.

:class:`LipschitzBoundMixin` gives a net ``feature_lipschitz(X)``, a differentiable bound
``P`` on the Lipschitz constant of its feature map (:class:`._lipschitz.FeatureLipschitz`),
for the certified margin of :class:`~amrlearn.neural.AMRNeuralNetClassifier`
(``margin="certified"``) and for :class:`GloRoNeuralNetClassifier`, the globally robust
training of Leino et al. (2021), the baseline certified AMR must beat.
"""

from numbers import Integral, Real

import numpy as np
import torch
from skorch import NeuralNetClassifier
from skorch.utils import to_tensor

from ..utils._compat import Interval, StrOptions
from ._base import NET_INPUT_NOTES, NET_PARAMS_DOC, FeatureMarginNet
from ._lipschitz import LIPSCHITZ_METHODS, FeatureLipschitz, pairwise_lipschitz

__all__ = ["GloRoNeuralNetClassifier", "LipschitzBoundMixin", "gloro_logits"]

#: The doc of the ``lipschitz`` parameter, shared by the nets that train with ``P``.
LIPSCHITZ_PARAM_DOC = """    lipschitz : {"power", "bound"}, default="power"
        How the Lipschitz constant ``P`` of the feature map (the layers below the one
        that produces the logits) is computed in training, differentiably, once per step.
        ``"power"``: per segment of affine layers between two nonlinearities, one power
        step from the vector of the previous step (as spectral normalization does): cheap,
        but an estimate from *below*, no proof; a loss that pushes the top singular
        value down keeps it behind the weights (GloRo on MNIST's LeNetSmall: 0.6x the
        proven value), and the net then certifies less than it was trained for.
        ``"bound"``: a proven bound, the product
        of the layers' exact spectral norms (an SVD per ``Linear``), Gram-iteration
        bounds of the convolutions, batch norm's largest ``|scale|`` and the pooling
        constants: dearer (on a CPU, an SVD of a 1024 x 3136 layer per step costs more
        than the step). Either way, what is certified after training comes from
        :func:`~amrlearn.metrics.certified_margins`, which proves its bound.
"""


class LipschitzBoundMixin:
    """``feature_lipschitz``: ``P`` for the module's current weights, differentiable.

    For nets with a ``lipschitz`` parameter (``"power"`` or ``"bound"``). The bound's
    structure (layer names, shapes, power vectors) is built at the first call of a fit
    from a batch of inputs and kept in ``feature_lipschitz_``; a new module (``initialize``)
    drops it.
    """

    def initialize_module(self):
        super().initialize_module()
        self.feature_lipschitz_ = None
        return self

    def feature_lipschitz(self, X=None, *, training=False, method=None):
        """A differentiable bound (``lipschitz="bound"``) or estimate (``"power"``) of the
        Lipschitz constant of the feature map ``Phi``, in l2.

        Parameters
        ----------
        X : tensor or ndarray of shape (n_samples, ...), default=None
            A batch of inputs; needed at the first call after ``initialize``, to read the
            layers' shapes.
        training : bool, default=False
            Take this step's power iteration (``"power"``).
        method : {"power", "bound"} or None, default=None
            ``None``: the net's ``lipschitz``.

        Returns
        -------
        P : Tensor (scalar)
        """
        module = self.bare_module_
        method = self.lipschitz if method is None else method
        key = (id(module), method)
        bound = self.__dict__.get("feature_lipschitz_")
        if bound is None or self.__dict__.get("_lipschitz_key") != key:
            if X is None or not isinstance(X, torch.Tensor | np.ndarray):
                raise ValueError(
                    f"{type(self).__name__} reads its layers' shapes from a batch of inputs "
                    f"(a tensor or an array), got {type(X).__name__}."
                )
            if self.feature_layer_ is None:
                raise ValueError(
                    f"{type(self).__name__} needs the linear layer that produces the logits; "
                    f"{type(module).__name__} has none."
                )
            example = torch.as_tensor(X[:2]).detach().cpu().float()
            bound = FeatureLipschitz(module, self.feature_layer_, example, method=method)
            self.feature_lipschitz_, self._lipschitz_key = bound, key
        return bound(module, update=training)


def gloro_logits(logits, L, eps):
    """The logits of a globally robust net: ``f`` and the bottom logit ``f_bot``.

    With ``j = argmax_k f_k(x)`` the predicted class and ``L_ij`` a bound on the
    Lipschitz constant of ``f_i - f_j``,

    ``f_bot(x) = max_{i != j} (f_i(x) + eps L_ij)``

    (Leino et al. 2021): the prediction ``j`` is certified at radius ``eps`` exactly
    when ``f_j > f_bot``. The cross-entropy over ``[f, f_bot]`` with the true label is
    GloRo's loss. At ``eps = 0`` the bottom logit is the runner-up logit, so the loss is
    not the plain cross-entropy: it is larger, and stays so as the net grows confident.

    Parameters
    ----------
    logits : Tensor of shape (n_samples, n_classes)
    L : Tensor of shape (n_classes, n_classes)
        Pairwise Lipschitz bounds (:func:`._lipschitz.pairwise_lipschitz`), symmetric.
    eps : float
        The radius to certify.

    Returns
    -------
    augmented : Tensor of shape (n_samples, n_classes + 1)
        ``[f, f_bot]``, differentiable in ``logits`` and ``L``.

    Examples
    --------
    >>> import torch
    >>> from amrlearn.neural import gloro_logits
    >>> f = torch.tensor([[3.0, 1.0, 0.0]])
    >>> L = torch.ones(3, 3) - torch.eye(3)
    >>> gloro_logits(f, L, 0.5)  # max(1 + 0.5, 0 + 0.5)
    tensor([[3.0000, 1.0000, 0.0000, 1.5000]])
    """
    j = logits.detach().argmax(dim=1)
    shifted = logits + eps * L.index_select(0, j)  # f_i + eps L_ji, L symmetric
    own = torch.nn.functional.one_hot(j, logits.shape[1]).bool()
    bottom = shifted.masked_fill(own, float("-inf")).max(dim=1).values
    return torch.cat([logits, bottom[:, None]], dim=1)


class GloRoNeuralNetClassifier(LipschitzBoundMixin, FeatureMarginNet):
    __doc__ = f"""Globally robust training (GloRo, Leino et al. 2021): the certified baseline.

    The loss of a batch is the cross-entropy, with the true labels, over the logits and
    a bottom logit ``f_bot = max_{{i != j}} (f_i + eps L_ij)`` (see :func:`gloro_logits`),
    with ``j`` the predicted class and ``L_ij = ||w_i - w_j|| P`` a bound on the Lipschitz
    constant of ``f_i - f_j``: ``w`` the weights of the layer that produces the logits
    and ``P`` the feature map's constant (``lipschitz``). Minimizing it pushes every
    sample to be classified right with the margin ``f_y - f_k > eps L_yk``, which
    certifies it at radius ``eps``. Prediction uses the logits alone; what is certified
    comes from :func:`~amrlearn.metrics.certified_margins` (``mean(cert > eps)`` is the
    verified robust accuracy, VRA).

    The module must be a chain that :func:`~amrlearn.metrics.certified_margins` reads
    (an ``nn.Sequential`` of supported layers, or an amrlearn zoo model) ending in the
    ``nn.Linear`` that produces the logits; anything else is refused at the first step.

    Parameters
    ----------
    eps : float, default=0.5
        The l2 radius trained for (GloRo trains MNIST at the radius it certifies,
        1.58; larger values cost clean accuracy).
    warmup_epochs : int, default=0
        Raise the radius linearly over the first epochs: epoch ``e`` (from 1) trains at
        ``eps * min(1, e / warmup_epochs)``. From the start at full ``eps``, a deep net,
        whose Lipschitz bound at initialization is large, can collapse to a constant
        prediction (certified everywhere, right on one class): GloRo's authors raise
        eps over the first half of training.
{LIPSCHITZ_PARAM_DOC}{NET_PARAMS_DOC}
    Attributes
    ----------
    module_ : torch.nn.Module
        The trained module.
    classes_ : ndarray of shape (n_classes,)
        Class labels seen in ``fit``, sorted.
    feature_lipschitz_ : FeatureLipschitz or None
        The structure of ``P`` (built at the first step of a fit).

    See Also
    --------
    AMRNeuralNetClassifier : With ``margin="certified"``, AMR's truncated average of the
        certified margins.
    amrlearn.metrics.certified_margins : The proven certificate, after training.

    Notes
    -----
    Leino et al. also use an eps schedule, a TRADES-style loss and 300+ epochs for their
    MNIST results (VRA 62.8 % at 1.58); this is the plain cross-entropy form.
{NET_INPUT_NOTES}
    References
    ----------
    K. Leino, Z. Wang and M. Fredrikson, "Globally-robust neural networks", ICML 2021.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from amrlearn.neural import GloRoNeuralNetClassifier
    >>> from amrlearn.metrics import certified_margins
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(size=(64, 5)).astype(np.float32)
    >>> y = (X[:, 0] > 0.5).astype(np.int64)
    >>> mlp = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    >>> net = GloRoNeuralNetClassifier(mlp, eps=0.1, max_epochs=3, random_state=0, verbose=0)
    >>> cert = certified_margins(net.fit(X, y), X, y)
    >>> cert.shape
    (64,)
    """

    _parameter_constraints = {
        **FeatureMarginNet._parameter_constraints,
        "eps": [Interval(Real, 0, None, closed="left")],
        "warmup_epochs": [Interval(Integral, 0, None, closed="left")],
        "lipschitz": [StrOptions(set(LIPSCHITZ_METHODS))],
    }

    def __init__(self, module, *args, eps=0.5, warmup_epochs=0, lipschitz="power", **kwargs):
        super().__init__(module, *args, **kwargs)
        self.eps = eps
        self.warmup_epochs = warmup_epochs
        self.lipschitz = lipschitz

    def current_eps(self):
        """The radius trained for now: ``eps``, ramped over ``warmup_epochs`` (the epoch
        is the length of ``history``, so ``partial_fit`` continues the ramp)."""
        if not self.warmup_epochs:
            return float(self.eps)
        epoch = max(len(self.history or ()), 1)
        return float(self.eps) * min(1.0, epoch / self.warmup_epochs)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """The cross-entropy over :func:`gloro_logits`."""
        logits, _, layer = self._logits_features_layer(y_pred)
        self._check_n_outputs(logits.shape[1])
        L = pairwise_lipschitz(layer.weight, self.feature_lipschitz(X, training=training))
        augmented = gloro_logits(logits, L.to(logits.dtype), self.current_eps())
        # skorch's loss (the criterion on the targets), past FeatureMarginNet's check of
        # the number of outputs, which the bottom logit adds one to.
        y_true = to_tensor(y_true, device=logits.device)
        return NeuralNetClassifier.get_loss(self, augmented, y_true, X=X, training=training)
