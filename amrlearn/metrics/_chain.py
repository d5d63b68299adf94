"""A feed-forward ReLU net read as a chain of layers, and a proven bound on its Lipschitz constant.

For the certified margins (:mod:`._certified`). :func:`module_chain` reads a module as a
list of operations: affine layers (``Linear``, ``Conv2d``, eval-mode batch norm as a
diagonal map, average pooling, reshapes) and the nonlinearities ``ReLU`` and max pooling.
Anything else is refused with a ValueError: a number is given only for a net that is known
to be that chain. :class:`Chain` evaluates it in float64 and bounds its Lipschitz constant:
the affine layers between two nonlinearities form one *segment*, normed as a whole
(exactly where it is small, else layer by layer, see :meth:`Chain.segment_bound`); ReLU is
1-Lipschitz in l2, and so is a max pooling whose windows do not overlap. The affine layers
after the last nonlinearity are the *head*, whose rows ``a_k`` are read off exactly.
"""

import math
import sys

import torch
from torch import nn
from torch.nn import functional as F

from ..exceptions import NotCertifiableError
from ._spectral import (
    adjoint_of,
    conv2d_norm_bound,
    operator_norm,
    pool_coverage,
    positive_map_bound,
    power_iteration,
)

__all__ = ["Chain", "NotCertifiableError", "module_chain", "pairwise_norms"]


#: A segment (or layer) whose smaller side has at most this many dimensions is normed
#: exactly, from its Gram matrix; larger ones layer by layer with proven bounds.
EXACT_DIM = 1024
#: ... and whose larger side has at most this many.
MAX_SIDE = 1 << 17

_ZOO = ("LR", "MLP", "CNN", "ConvNet", "LeNet", "LeNetSmall")
_SKIPPED = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d)  # identities in eval mode


class _Op:
    """One layer: ``kind`` is ``"affine"``, ``"relu"`` or ``"maxpool"``."""

    kind = "affine"

    def __init__(self, name):
        self.name = name

    def linear(self, x):  # the linear part of an affine layer
        return self(x)


class _Dense(_Op):
    def __init__(self, name, layer):
        super().__init__(name)
        self.W = layer.weight.detach().to(torch.float64)
        self.b = None if layer.bias is None else layer.bias.detach().to(torch.float64)

    def __call__(self, x):
        return F.linear(x, self.W.to(x.device), None if self.b is None else self.b.to(x.device))

    def linear(self, x):
        return F.linear(x, self.W.to(x.device))


class _Conv(_Op):
    def __init__(self, name, layer):
        super().__init__(name)
        if layer.padding_mode != "zeros":
            raise NotCertifiableError(
                f"{name}: Conv2d with padding_mode={layer.padding_mode!r} is not supported; "
                "only zero padding is."
            )
        self.W = layer.weight.detach().to(torch.float64)
        self.b = None if layer.bias is None else layer.bias.detach().to(torch.float64)
        self.args = dict(
            stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups
        )

    def __call__(self, x):
        b = None if self.b is None else self.b.to(x.device)
        return F.conv2d(x, self.W.to(x.device), b, **self.args)

    def linear(self, x):
        return F.conv2d(x, self.W.to(x.device), None, **self.args)


class _Diag(_Op):
    """``x * scale + shift``: eval-mode batch norm (per channel, ``flat=False``) or an
    affine scaler of a Pipeline (per feature of the flattened input, ``flat=True``)."""

    def __init__(self, name, scale, shift, flat=False):
        super().__init__(name)
        self.scale, self.shift, self.flat = scale, shift, flat

    def _view(self, v, x):
        return v.to(x.device).reshape(-1, *[1] * (x.dim() - 2))

    def __call__(self, x):
        if self.flat:
            z = x.reshape(x.shape[0], -1) * self.scale.to(x.device) + self.shift.to(x.device)
            return z.reshape(x.shape)
        return x * self._view(self.scale, x) + self._view(self.shift, x)

    def linear(self, x):
        if self.flat:
            return (x.reshape(x.shape[0], -1) * self.scale.to(x.device)).reshape(x.shape)
        return x * self._view(self.scale, x)

    def full_scale(self, shape):
        """The scale of every entry of one sample of ``shape``."""
        if self.flat:
            return self.scale.reshape(shape)
        return self.scale.reshape(-1, *[1] * (len(shape) - 1)).expand(shape)


class _Fixed(_Op):
    """A layer without parameters, run as the module itself: reshapes, average pooling
    (affine), ReLU and max pooling (not)."""

    def __init__(self, name, fn, kind="affine", module=None, reshape=False):
        super().__init__(name)
        self.fn, self.kind, self.module, self.reshape = fn, kind, module, reshape

    def __call__(self, x):
        return self.fn(x)


def _batch_norm(name, m):
    if not m.track_running_stats or m.running_mean is None:
        raise NotCertifiableError(
            f"{name}: {type(m).__name__} without running statistics normalizes by the "
            "batch's own statistics even in eval mode, so a sample's logits depend on the "
            "others in its batch; it is not supported."
        )
    inv = 1.0 / torch.sqrt(m.running_var.detach().double() + m.eps)
    scale = inv if m.weight is None else m.weight.detach().double() * inv
    shift = -m.running_mean.detach().double() * scale
    if m.bias is not None:
        shift = shift + m.bias.detach().double()
    return _Diag(name, scale, shift)


def _max_pool(name, m):
    if m.return_indices:
        raise NotCertifiableError(f"{name}: MaxPool2d(return_indices=True) is not supported.")
    return _Fixed(name, m, kind="maxpool", module=m)


def _leaf(name, m):
    if type(m) is nn.Linear:
        return _Dense(name, m)
    if type(m) is nn.Conv2d:
        return _Conv(name, m)
    if type(m) in (nn.BatchNorm1d, nn.BatchNorm2d):
        return _batch_norm(name, m)
    if type(m) is nn.ReLU:
        return _Fixed(name, torch.relu, kind="relu")
    if type(m) is nn.MaxPool2d:
        return _max_pool(name, m)
    if type(m) is nn.AvgPool2d:
        return _Fixed(name, m, module=m)
    if type(m) in (nn.Flatten, nn.Unflatten):
        return _Fixed(name, m, module=m, reshape=True)
    raise NotCertifiableError(
        f"{name or 'the model'}: {type(m).__name__} is not supported by the certified "
        "margins, which bound feed-forward ReLU nets built from Linear, Conv2d, MaxPool2d, "
        "AvgPool2d, Flatten, ReLU and eval-mode BatchNorm1d/2d (and Dropout, Identity), "
        "in an nn.Sequential or one of amrlearn's zoo models. Other activations, residual "
        "connections and custom forward methods are not certified."
    )


def _zoo_chain(module):
    """The layers of an amrlearn zoo model, in the order its ``forward`` applies them."""
    kind = type(module).__name__
    if kind in ("LR", "MLP"):
        ops = [_Fixed("flatten", lambda x: x.flatten(1), reshape=True)]
        if kind == "MLP":
            ops += [_leaf("hidden_layer", module.hidden_layer), _Fixed("relu", torch.relu, "relu")]
    else:
        shape = tuple(module.input_shape)
        ops = [_Fixed("reshape", lambda x: x.reshape(x.shape[0], *shape), reshape=True)]
        ops += _sequential(module.features, "features")
        if kind == "CNN":
            ops += _sequential(module.head, "head")
    return ops + [_leaf("last_linear", module.last_linear)]


def _sequential(module, prefix):
    ops = []
    for name, child in module.named_children():
        full = f"{prefix}.{name}" if prefix else name
        if type(child) is nn.Sequential:
            ops += _sequential(child, full)
        elif type(child) not in _SKIPPED:
            ops.append(_leaf(full, child))
    return ops


def module_chain(module):
    """The layers of ``module`` as a list of operations, or a ValueError.

    Read: an ``nn.Sequential`` (nested ones included) of supported layers, and the
    amrlearn zoo models (:mod:`amrlearn.neural.models`), whose ``forward`` is known.
    A data-parallel wrapper is looked through. Subclasses are refused: their ``forward``
    may differ.
    """
    while isinstance(module, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        module = module.module
    zoo = sys.modules.get("amrlearn.neural.models")
    if zoo is not None and any(type(module) is getattr(zoo, n) for n in _ZOO):
        return _zoo_chain(module)
    if type(module) is nn.Sequential:
        return _sequential(module, "")
    if type(module) in _SKIPPED:
        return []
    return [_leaf("", module)]


def _compose(ops, part):
    def apply(x):
        for op in ops:
            x = getattr(op, part)(x)
        return x

    return apply


def _small(in_shape, out_shape):
    """Whether a linear map is normed exactly: a small side, and a Gram matrix built from
    blocks of at most ``256 * MAX_SIDE`` numbers."""
    d_in, d_out = math.prod(in_shape), math.prod(out_shape)
    return min(d_in, d_out) <= EXACT_DIM and max(d_in, d_out) <= MAX_SIDE


class Chain:
    """A chain of layers with known shapes, in float64.

    Parameters
    ----------
    ops : list
        From :func:`module_chain` (a leading :class:`_Diag` for a Pipeline's scaler).
    example : tensor of shape (n, ...)
        A few inputs: they fix every layer's shape.
    """

    def __init__(self, ops, example):
        self.ops = ops
        x = example[:2].to(torch.float64)
        self.shapes = [tuple(x.shape[1:])]
        with torch.no_grad():
            for op in ops:
                y = op(x)
                if y.dim() < 2 or y.shape[0] != x.shape[0]:
                    raise NotCertifiableError(f"{op.name}: the layer mixes the samples of a batch.")
                x = y
                self.shapes.append(tuple(x.shape[1:]))
        if len(self.shapes[-1]) != 1 or self.shapes[-1][0] < 2:
            raise NotCertifiableError(
                f"The model's output has shape {self.shapes[-1]} per sample; the certified "
                "margins need a vector of at least 2 logits."
            )
        nonlinear = [i for i, op in enumerate(ops) if op.kind != "affine"]
        self.head_start = nonlinear[-1] + 1 if nonlinear else 0

    def __call__(self, x):
        return _compose(self.ops, "__call__")(x.to(torch.float64))

    def _linear_map(self, start, stop):
        """``(lin, adj, in_shape, out_shape)`` of the linear part of ``ops[start:stop]``."""
        in_shape = self.shapes[start]
        lin = _compose(self.ops[start:stop], "linear")
        return lin, adjoint_of(lin, in_shape), in_shape, self.shapes[stop]

    def head_rows(self):
        """The rows ``a_k`` (float64, shape ``(n_logits, d)``) of the linear part of the
        head: ``f_k(x) = a_k . phi(x) + c_k`` with ``phi`` the output of the last
        nonlinearity (the input itself, for an affine chain)."""
        _, adj, _, (k,) = self._linear_map(self.head_start, len(self.ops))
        with torch.no_grad():
            return adj(torch.eye(k, dtype=torch.float64)).reshape(k, -1)

    def factors(self, conv_bound="eig", estimate=False, generator=None):
        """Proven bounds on the Lipschitz constants of the pieces of ``phi``, in order.

        Returns
        -------
        factors : list of dict
            ``layers`` (names), ``kind`` (``"segment"``, ``"relu"`` or ``"maxpool"``),
            ``bound``, ``method`` and ``estimate`` (a power-iteration lower estimate of a
            segment's norm where ``estimate`` is true, else ``None``). Their product
            bounds the Lipschitz constant of ``phi`` in l2.
        """
        out, start = [], 0
        for i in range(self.head_start):
            if self.ops[i].kind == "affine":
                continue
            if i > start:
                out.append(self.segment_bound(start, i, conv_bound, estimate, generator))
            out.append(self._nonlinear_bound(i))
            start = i + 1
        return out

    def _nonlinear_bound(self, i):
        op = self.ops[i]
        bound, method = 1.0, "ReLU is 1-Lipschitz"
        if op.kind == "maxpool":
            m = op.module
            stride = m.stride or m.kernel_size
            k, s, p, d = (_pair(v) for v in (m.kernel_size, stride, m.padding, m.dilation))
            c = [
                max(pool_coverage(n, k[a], s[a], p[a], d[a], m.ceil_mode), 1)
                for a, n in enumerate(self.shapes[i][-2:])
            ]
            bound = math.sqrt(c[0] * c[1])
            method = (
                "max pooling without overlap is 1-Lipschitz"
                if bound == 1.0
                else f"overlapping max pooling: sqrt({c[0]} x {c[1]}) windows per input"
            )
        return {"layers": op.name, "kind": op.kind, "bound": bound, "method": method,
                "estimate": None}  # fmt: skip

    def segment_bound(self, start, stop, conv_bound="eig", estimate=False, generator=None):
        """A proven bound on the norm of the linear part of the layers ``start:stop``."""
        lin, adj, in_shape, out_shape = self._linear_map(start, stop)
        names = ", ".join(op.name for op in self.ops[start:stop] if op.name)
        res = {"layers": names, "kind": "segment", "estimate": None}
        if _small(in_shape, out_shape):
            res["bound"] = operator_norm(lin, adj, in_shape, out_shape)
            res["method"] = "exact: largest eigenvalue of the Gram matrix (float64)"
        else:
            res["bound"], res["method"] = self._layerwise(start, stop, conv_bound)
        if estimate:
            res["estimate"] = power_iteration(lin, adj, in_shape, generator=generator)
        return res

    def _layerwise(self, start, stop, conv_bound):
        """The product of the layers' norms, each batch norm folded into a neighbouring
        Linear or Conv2d where it can be (the exact norm of the product, not a product of
        norms), else counted as its largest ``|scale|``."""
        ops, shapes = self.ops[start:stop], self.shapes[start : stop + 1]
        weights = {j: op.W for j, op in enumerate(ops) if isinstance(op, (_Dense, _Conv))}
        bound, methods = 1.0, []
        for j, op in enumerate(ops):
            if isinstance(op, _Diag) and not _fold(ops, shapes, j, weights):
                bound *= float(op.full_scale(shapes[j]).abs().max())
                methods.append(f"{op.name}: largest |scale|")
        for j, op in enumerate(ops):
            if isinstance(op, _Dense):
                bound *= float(torch.linalg.matrix_norm(weights[j], ord=2))
                methods.append(f"{op.name}: exact (SVD, float64)")
            elif isinstance(op, _Conv) and _small(shapes[j], shapes[j + 1]):
                W, args = weights[j], op.args

                def lin(x, W=W, args=args):
                    return F.conv2d(x, W, None, **args)

                bound *= operator_norm(lin, adjoint_of(lin, shapes[j]), shapes[j], shapes[j + 1])
                methods.append(f"{op.name}: exact (Gram matrix, float64)")
            elif isinstance(op, _Conv):
                a = op.args
                value, grid = conv2d_norm_bound(
                    weights[j], shapes[j], stride=a["stride"], dilation=a["dilation"],
                    groups=a["groups"], method=conv_bound,
                )  # fmt: skip
                bound *= value
                how = "exact per frequency" if conv_bound == "eig" else "Gram iteration"
                methods.append(f"{op.name}: circular convolution on {grid} (FFT, {how})")
            elif isinstance(op, _Fixed) and type(op.module) is nn.AvgPool2d:
                lin = op.linear
                bound *= positive_map_bound(
                    lin, adjoint_of(lin, shapes[j]), shapes[j], shapes[j + 1]
                )
                methods.append(f"{op.name}: sqrt(||A||_1 ||A||_inf), exact without overlap")
        return bound, "; ".join(methods)


def _fold(ops, shapes, j, weights):
    """Fold the diagonal map ``ops[j]`` into the weights of the Linear or Conv2d right
    before it (scaling its outputs) or after it (scaling its inputs; a reshape between a
    diagonal and a Linear keeps the order of the entries). Returns whether it folded."""
    diag, shape = ops[j], shapes[j]
    if j > 0 and isinstance(ops[j - 1], _Dense) and len(shape) == 1:
        weights[j - 1] = diag.full_scale(shape).reshape(-1, 1) * weights[j - 1]
        return True
    if j > 0 and isinstance(ops[j - 1], _Conv) and not diag.flat:
        weights[j - 1] = diag.scale.reshape(-1, 1, 1, 1) * weights[j - 1]
        return True
    nxt = j + 1
    while nxt < len(ops) and getattr(ops[nxt], "reshape", False):
        nxt += 1
    if nxt == len(ops):
        return False
    op = ops[nxt]
    if isinstance(op, _Dense) and shapes[nxt] == (math.prod(shape),):
        weights[nxt] = weights[nxt] * diag.full_scale(shape).reshape(1, -1)
        return True
    if isinstance(op, _Conv) and not diag.flat and nxt == j + 1:
        c_out, c_in_g = op.W.shape[:2]
        first = torch.arange(c_out).div(c_out // op.args["groups"], rounding_mode="floor")
        channel = first.reshape(-1, 1) * c_in_g + torch.arange(c_in_g).reshape(1, -1)
        weights[nxt] = weights[nxt] * diag.scale[channel].reshape(c_out, c_in_g, 1, 1)
        return True
    return False


def _pair(v):
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def pairwise_norms(rows):
    """``||a_y - a_k||`` for every pair of rows (float64), without the Gram trick's
    cancellation."""
    return torch.cdist(rows, rows, compute_mode="donot_use_mm_for_euclid_dist").numpy()
