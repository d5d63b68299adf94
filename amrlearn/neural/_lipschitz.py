"""Differentiable Lipschitz bounds of a net's feature map, for training certified margins.

The certified margin of :func:`amrlearn.metrics.certified_margins` divides each logit gap
``f_y - f_k`` by ``||w_y - w_k|| P``, with ``P`` a proven bound on the Lipschitz
constant of the feature map ``Phi`` (everything below the layer that produces the
logits). Training for it needs ``P`` as a differentiable function of the weights, once
per step. :class:`FeatureLipschitz` reads the net as the same chain of layers as the
certificate (:func:`amrlearn.metrics._chain.module_chain`: anything else is refused) and
gives ``P`` in one of two ways:

* ``"power"``: for each *segment* (the affine layers between two nonlinearities, as the
  certificate norms them) the norm ``||A v||`` of the segment's linear map at a unit
  vector ``v`` kept from step to step and moved by ``n_power_iter`` power steps per
  training step (as spectral normalization does, Miyato et al. 2018). Cheap (one
  forward and backward pass of one sample per step), but an estimate from *below*: it
  proves nothing.
* ``"bound"``: layer by layer, a bound that holds: the exact largest singular value of a
  ``Linear`` (``torch.linalg.matrix_norm(ord=2)``, differentiable), for a ``Conv2d`` the
  Gram iteration bound (Delattre et al. 2023) of the frequency blocks of the circular
  convolution that contains it (:func:`~amrlearn.metrics._spectral.conv2d_frequency_blocks`),
  the largest ``|scale|`` of a batch norm (with its running variance), the exact
  constant of average pooling. Dearer (an SVD of every dense layer per step).

Nonlinearities count as at the certificate: ReLU 1, max pooling 1 without overlap, else
``sqrt`` of the number of windows that hold one input. Batch norm counts with its running
variance, the eval-mode function (in training mode it normalizes by the batch's own
statistics, so no constant bounds it).
"""

import torch
from torch.nn import functional as F

from ..metrics._chain import Chain, NotCertifiableError, _Conv, _Dense, _Diag, module_chain
from ..metrics._spectral import (
    adjoint_of,
    conv2d_frequency_blocks,
    gram_iteration_bound,
    positive_map_bound,
)

__all__ = ["FeatureLipschitz", "LIPSCHITZ_METHODS", "pairwise_lipschitz"]

LIPSCHITZ_METHODS = ("power", "bound")
#: Gram iteration steps per convolution in training (``"bound"``): at most a factor
#: ``rank ** (1 / 2 ** 7)`` above the exact norm of each frequency block (1.03 for rank 64).
TRAIN_GRAM_STEPS = 6


def _layer(op, out_shape):
    """One affine layer of the chain as ``(kind, name, payload)``: its structure only,
    no weights and no module, so that the bound pickles with the net and reads the
    module's current parameters by name."""
    if isinstance(op, _Dense):
        return ("linear", op.name, None)
    if isinstance(op, _Conv):
        return ("conv", op.name, dict(op.args))
    if isinstance(op, _Diag):
        return ("batchnorm", op.name, None)
    if getattr(op, "reshape", False):  # Flatten, Unflatten, the zoo's reshapes: row-major
        return ("reshape", op.name, tuple(out_shape))
    return ("avgpool", op.name, op.module)  # the only other affine layer; no parameters


def _live(layer, module):
    """The linear part of one affine layer, from the module's *current* parameters
    (autograd flows to them, unless ``detach``)."""
    kind, name, payload = layer
    if kind == "reshape":
        return lambda x, detach=False: x.reshape(x.shape[0], *payload)
    if kind == "avgpool":
        return lambda x, detach=False: payload(x)
    sub = module.get_submodule(name)
    if kind == "linear":
        return lambda x, detach=False: F.linear(x, _w(sub.weight, detach))
    if kind == "conv":
        return lambda x, detach=False: F.conv2d(x, _w(sub.weight, detach), None, **payload)
    return lambda x, detach=False: x * _bn_scale(sub, detach).reshape(-1, *[1] * (x.dim() - 2))


def _w(weight, detach):
    return weight.detach() if detach else weight


def _bn_scale(layer, detach=False):
    """``gamma / sqrt(running_var + eps)``: the linear part of eval-mode batch norm."""
    inv = torch.rsqrt(layer.running_var.detach() + layer.eps)
    return inv if layer.weight is None else _w(layer.weight, detach) * inv


class FeatureLipschitz:
    """A differentiable bound (or estimate) of the Lipschitz constant of ``Phi``, in l2.

    ``Phi`` is everything below the layer that produces the logits, which must be the
    last layer of the chain. The object keeps the chain's structure (layer names and
    shapes) and, for ``"power"``, one vector per segment; never the module itself, so it
    survives pickling with the net. Call it with the module to get ``P``.

    Parameters
    ----------
    module : torch.nn.Module
        A net that :func:`~amrlearn.metrics.certified_margins` reads (an
        ``nn.Sequential`` of supported layers or a zoo model), without a data-parallel
        wrapper.
    feature_layer : str
        The qualified name of the ``nn.Linear`` that produces the logits.
    example : tensor of shape (n, ...)
        A batch of inputs: it fixes the layers' shapes.
    method : {"power", "bound"}, default="power"
        See the module's docstring.
    n_power_iter : int, default=1
        Power steps per call that updates (``"power"``).

    Examples
    --------
    >>> import torch
    >>> from amrlearn.neural._lipschitz import FeatureLipschitz
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    >>> bound = FeatureLipschitz(net, "2", torch.zeros(2, 4), method="bound")
    >>> P = bound(net)
    >>> bool(torch.isclose(P, torch.linalg.matrix_norm(net[0].weight, ord=2)))
    True
    >>> P.backward(); net[0].weight.grad.shape
    torch.Size([6, 4])
    """

    def __init__(self, module, feature_layer, example, *, method="power", n_power_iter=1):
        if method not in LIPSCHITZ_METHODS:
            raise ValueError(f"method must be one of {LIPSCHITZ_METHODS}, got {method!r}.")
        ops = module_chain(module)
        chain = Chain(ops, torch.as_tensor(example[:2]).detach().cpu())
        if not (ops and isinstance(ops[-1], _Dense) and ops[-1].name == feature_layer):
            last = ops[-1].name if ops else None
            raise NotCertifiableError(
                f"The certified margin needs the layer that produces the logits "
                f"({feature_layer!r}) to be the net's last layer; the chain of its layers "
                f"ends with {last!r}."
            )
        self.method, self.n_power_iter = method, int(n_power_iter)
        self.shapes = chain.shapes
        # ("segment", layers, first index) or ("const", the bound of a nonlinearity)
        self.pieces, start = [], 0
        for i, op in enumerate(ops[:-1] + [None]):
            if op is not None and op.kind == "affine":
                continue
            if i > start:
                layers = [_layer(o, chain.shapes[k + 1]) for k, o in enumerate(ops[start:i], start)]
                self.pieces.append(("segment", layers, start))
            if op is not None:
                self.pieces.append(("const", chain._nonlinear_bound(i)["bound"]))
            start = i + 1
        self._avg_pool = {}  # index in ops -> exact constant of an average pooling
        for j, op in enumerate(ops[:-1]):
            if op.kind == "affine" and type(getattr(op, "module", None)) is torch.nn.AvgPool2d:
                lin = op.linear
                self._avg_pool[j] = positive_map_bound(
                    lin, adjoint_of(lin, chain.shapes[j]), chain.shapes[j], chain.shapes[j + 1]
                )
        self.vectors = {}

    def __call__(self, module, *, update=True):
        """``P`` for the module's current weights: a scalar tensor, differentiable.

        Parameters
        ----------
        module : torch.nn.Module
            The module the object was built from (or one of the same structure).
        update : bool, default=True
            ``"power"``: take ``n_power_iter`` power steps first (in training); ``False``
            evaluates at the vectors as they are (validation).
        """
        device = next(module.parameters()).device
        P = torch.ones((), device=device)
        for piece in self.pieces:
            if piece[0] == "const":
                P = P * piece[1]
            elif self.method == "power":
                P = P * self._power(module, piece, update)
            else:
                P = P * self._bound(module, piece)
        return P

    def _power(self, module, piece, update):
        _, layers, start = piece
        in_shape = self.shapes[start]
        fns = [_live(layer, module) for layer in layers]

        def lin(x, detach=False):
            for fn in fns:
                x = fn(x, detach)
            return x

        dtype = next(module.parameters()).dtype
        device = next(module.parameters()).device
        v = self.vectors.get(start)
        if v is None or v.device != device or v.dtype != dtype:
            gen = torch.Generator().manual_seed(start)
            v = torch.randn((1, *in_shape), generator=gen, dtype=dtype).to(device)
            v = v / v.norm()
            update, steps = True, max(self.n_power_iter, 20)  # a first estimate
        else:
            steps = self.n_power_iter
        if update:
            for _ in range(steps):
                with torch.enable_grad():
                    x = v.detach().requires_grad_(True)
                    out = lin(x, detach=True)
                    (g,) = torch.autograd.grad(out, x, out)  # A^T A v
                norm = g.norm()
                if norm == 0:
                    break
                v = (g / norm).detach()
            self.vectors[start] = v
        return lin(v).norm()

    def _bound(self, module, piece):
        _, layers, start = piece
        value = torch.ones((), device=next(module.parameters()).device)
        for j, (kind, name, payload) in enumerate(layers, start):
            if kind == "linear":
                w = module.get_submodule(name).weight
                value = value * torch.linalg.matrix_norm(w, ord=2)
            elif kind == "conv":
                w = module.get_submodule(name).weight
                blocks, _ = conv2d_frequency_blocks(w, self.shapes[j], **{
                    k: payload[k] for k in ("stride", "dilation", "groups")
                })  # fmt: skip
                bound = gram_iteration_bound(blocks, TRAIN_GRAM_STEPS).max()
                value = value * bound.to(value.dtype)
            elif kind == "batchnorm":
                value = value * _bn_scale(module.get_submodule(name)).abs().max()
            elif kind == "avgpool":
                value = value * self._avg_pool[j]
        return value


def pairwise_lipschitz(weight, P):
    """``L_yk = ||w_y - w_k|| P`` for every pair of classes: differentiable, with a zero
    diagonal whose square root has a finite derivative.

    Parameters
    ----------
    weight : Tensor of shape (n_classes, n_features)
        The layer that produces the logits.
    P : Tensor (scalar) or float
        A bound on the Lipschitz constant of its input, the features.

    Returns
    -------
    L : Tensor of shape (n_classes, n_classes)

    Examples
    --------
    >>> import torch
    >>> from amrlearn.neural._lipschitz import pairwise_lipschitz
    >>> pairwise_lipschitz(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), 2.0)
    tensor([[0.0000, 2.8284],
            [2.8284, 0.0000]])
    """
    c = weight.shape[0]
    eye = torch.eye(c, dtype=weight.dtype, device=weight.device)
    sq = ((weight[:, None, :] - weight[None, :, :]) ** 2).sum(-1)
    return (sq + eye).clamp_min(torch.finfo(weight.dtype).tiny).sqrt() * (1 - eye) * P
