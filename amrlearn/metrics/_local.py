"""Local certified l2 radii by linear bound propagation (CROWN) over the l2 ball.

For :func:`~amrlearn.metrics.certified_margins` with ``method="crown"``. The global
certificate (:mod:`._certified`) bounds the gap ``f_y - f_k`` by a Lipschitz constant that
holds everywhere; here the gap is bounded from below on the ball ``||x' - x|| <= r``
itself (Zhang et al. 2018): every nonlinearity is enclosed between two linear functions
valid on the ball, and the gap's lower bound is carried backwards through the chain
(:class:`~._chain.Chain`) as a linear function of the input, whose minimum over the ball
is ``a . x + c - r ||a||`` (the dual of l2 is l2).

* **ReLU**, with pre-activation bounds ``l < 0 < u``: ``relu(z) <= u (z - l) / (u - l)``
  and ``relu(z) >= alpha z`` with ``alpha = 1`` where ``u > -l``, else 0 (CROWN's
  adaptive choice); exact where the neuron is stably on or off.
* **Max pooling**, with bounds on its inputs: the output is at least the window's input
  of the largest lower bound ``x_s``; it equals ``x_s`` where ``l_s`` is at least every
  other input's upper bound, else it is at most the window's largest upper bound.
* **Affine layers** (``Linear``, ``Conv2d``, batch norm and scalers, average pooling,
  reshapes): carried exactly through their adjoint (autograd), their bias added.

The pre-activation bounds of each nonlinearity are computed in order: exact for the first
one (``z(x) +- r ||row||``, the segment's row norms computed once); by CROWN itself, one
backward pass per neuron and sample, where the layer has at most :data:`CROWN_NEURONS`
entries; else by interval arithmetic from the previous nonlinearity's output box. Every
bound holds for real numbers; the float32 rounding slack of :func:`._certified._slack` is
asked of the gaps on top.
"""

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ._chain import NotCertifiableError, _Conv, _Dense, _Diag, _Fixed, _pair
from ._spectral import adjoint_of

__all__ = ["CROWN_NEURONS", "SEARCH_STEPS", "crown_radii", "relu_relaxation"]

#: A nonlinearity whose input has at most this many entries gets its pre-activation bounds
#: from CROWN (two backward passes per entry and sample); larger ones by interval
#: arithmetic, which is looser but costs one forward pass.
CROWN_NEURONS = 1024
#: Evaluations of the bound per sample in the search for the largest certified radius.
SEARCH_STEPS = 14
#: Rows (specifications times samples) carried backwards at once.
_ROWS = 8192


def relu_relaxation(lower, upper):
    """Linear bounds ``a_l z + b_l <= relu(z) <= a_u z + b_u`` valid for ``lower <= z <=
    upper`` (elementwise): ``(a_l, b_l, a_u, b_u)``, CROWN's adaptive lower slope."""
    on, off = lower >= 0, upper <= 0
    unstable = ~(on | off)
    span = torch.where(unstable, upper - lower, torch.ones_like(upper))
    a_u = torch.where(unstable, upper / span, on.to(upper.dtype))
    b_u = torch.where(unstable, -upper * lower / span, torch.zeros_like(upper))
    a_l = torch.where(unstable, (upper > -lower).to(upper.dtype), on.to(upper.dtype))
    return a_l, torch.zeros_like(lower), a_u, b_u


def _abs_linear(op, x):
    """``|A| x`` for the linear part ``A`` of an affine layer (interval arithmetic)."""
    if isinstance(op, _Dense):
        return F.linear(x, op.W.abs())
    if isinstance(op, _Conv):
        return F.conv2d(x, op.W.abs(), None, **op.args)
    if isinstance(op, _Diag):
        return _Diag(op.name, op.scale.abs(), op.shift, op.flat).linear(x)
    if isinstance(op, _Fixed) and (op.reshape or type(op.module) is nn.AvgPool2d):
        return op.linear(x)  # a permutation, or nonnegative weights
    raise NotCertifiableError(f"{op.name}: no interval bound for {type(op).__name__}.")


def _widen(lower, upper, rtol=1e-10):
    """A box enlarged by far more than the float64 rounding of its computation."""
    return lower - rtol * (1 + lower.abs()), upper + rtol * (1 + upper.abs())


class _Pool:
    """The windows of a max pooling layer on a ``(c, h, w)`` input: ``index`` of shape
    ``(k, L)``, the flat input position of each of the ``k`` entries of each of the ``L``
    windows, ``-1`` for padding."""

    def __init__(self, op, in_shape, out_shape):
        m = op.module
        stride = m.stride or m.kernel_size
        k, s, p, d = (_pair(v) for v in (m.kernel_size, stride, m.padding, m.dilation))
        h, w = in_shape[-2:]
        pos = torch.arange(h * w, dtype=torch.float64).reshape(1, 1, h, w)
        extra = [
            max(0, (o - 1) * s[a] + d[a] * (k[a] - 1) + 1 - (n + 2 * p[a]))
            for a, (o, n) in enumerate(zip(out_shape[-2:], (h, w)))
        ]  # ceil_mode's last windows
        pos = F.pad(pos, (p[1], p[1] + extra[1], p[0], p[0] + extra[0]), value=-1.0)
        self.index = F.unfold(pos, k, dilation=d, stride=s)[0].long()
        if self.index.shape[1] != math.prod(out_shape[-2:]):
            raise NotCertifiableError(f"{op.name}: its windows could not be read.")
        self.in_shape, self.out_shape = in_shape, out_shape

    def windows(self, t):
        """``t`` of shape ``(b, c, h, w)`` as ``(b, c, k, L)`` windows, ``-inf`` padded."""
        flat = t.reshape(t.shape[0], t.shape[1], -1)
        vals = flat[:, :, self.index.clamp(min=0)]
        return vals.masked_fill(self.index < 0, -math.inf)

    def relax(self, lower, upper):
        """``(select, decided, top)``: per window, the flat input position whose lower
        bound is largest, whether the output equals it on the whole box, and the largest
        upper bound (the constant upper bound where it is not decided)."""
        lw, uw = self.windows(lower), self.windows(upper)
        best, arg = lw.max(dim=2, keepdim=True)
        others = uw.scatter(2, arg, -math.inf).max(dim=2).values
        top = uw.max(dim=2).values
        select = self.index.expand(*lw.shape[:2], -1, -1).gather(2, arg)[:, :, 0]
        return select, best[:, :, 0] >= others, top


class _Propagator:
    """The chain prepared for bound propagation: each affine layer's adjoint and bias,
    each max pooling's windows, the first segment's row norms."""

    def __init__(self, chain):
        self.chain, self.ops, self.shapes = chain, chain.ops, chain.shapes
        self.nonlinear = [i for i, op in enumerate(self.ops) if op.kind != "affine"]
        self.adj, self.bias, self.pools = {}, {}, {}
        with torch.no_grad():
            for i, op in enumerate(self.ops):
                if op.kind == "affine":
                    self.adj[i] = adjoint_of(op.linear, self.shapes[i])
                    self.bias[i] = op(torch.zeros((1, *self.shapes[i]), dtype=torch.float64))[0]
                elif op.kind == "maxpool":
                    if len(self.shapes[i]) != 3:
                        raise NotCertifiableError(f"{op.name}: max pooling needs (c, h, w) input.")
                    self.pools[i] = _Pool(op, self.shapes[i], self.shapes[i + 1])
                elif op.kind != "relu":
                    raise NotCertifiableError(f"{op.name}: {op.kind} has no linear relaxation.")
        self.first = self.nonlinear[0] if self.nonlinear else None
        if self.first is not None:
            self.row_norms = self._row_norms(self.first)

    def _row_norms(self, stop):
        """``||row_i||`` of the linear part of ``ops[:stop]`` (all affine), in chunks."""
        n, out = math.prod(self.shapes[stop]), []
        chunk = max(1, _ROWS // max(1, math.prod(self.shapes[0]) // 512))
        with torch.no_grad():
            for s in range(0, n, chunk):
                m = min(chunk, n - s)
                e = torch.zeros(m, n, dtype=torch.float64)
                e[torch.arange(m), torch.arange(s, s + m)] = 1.0
                a = self._affine_back(e.reshape(-1, *self.shapes[stop]), 0, stop)[0]
                out.append(a.reshape(len(e), -1).norm(dim=1))
        return torch.cat(out).reshape(self.shapes[stop])

    def _affine_back(self, A, start, stop):
        """``A`` (rows on the output of ``ops[stop - 1]``) through the affine
        ``ops[start:stop]``: ``(A', c)`` with ``A . z_stop = A' . z_start + c``."""
        const = torch.zeros(A.shape[0], dtype=torch.float64)
        for i in reversed(range(start, stop)):
            const = const + (A * self.bias[i]).reshape(A.shape[0], -1).sum(1)
            A = self.adj[i](A)
        return A, const

    def backward(self, A, stop, bounds):
        """A lower bound of ``A . z_stop`` over the box ``bounds`` of every nonlinearity
        below ``stop``, as ``(A_in, const)``: ``A . z_stop >= A_in . x + const``.

        ``A`` has shape ``(b, s, *shape)``: ``s`` rows for each of ``b`` samples.
        """
        b, s = A.shape[:2]
        const = torch.zeros(b, s, dtype=torch.float64)
        for i in reversed(range(stop)):
            op = self.ops[i]
            if op.kind == "affine":
                const = const + (A * self.bias[i]).reshape(b, s, -1).sum(2)
                A = self.adj[i](A.reshape(b * s, *A.shape[2:]))
                A = A.reshape(b, s, *A.shape[1:])
                continue
            pos, neg = A.clamp(min=0), A.clamp(max=0)
            if op.kind == "relu":  # the relaxation once per sample, broadcast over rows
                a_l, b_l, a_u, b_u = (t[:, None] for t in relu_relaxation(*bounds[i]))
                const = const + (pos * b_l + neg * b_u).reshape(b, s, -1).sum(2)
                A = pos * a_l + neg * a_u
            else:
                select, decided, top = (t[:, None] for t in self.pools[i].relax(*bounds[i]))
                pos, neg = pos.flatten(3), neg.flatten(3)
                const = const + (neg * (~decided) * top).reshape(b, s, -1).sum(2)
                coef = pos + neg * decided
                A = torch.zeros(b, s, coef.shape[2], math.prod(self.shapes[i][-2:]),
                                dtype=torch.float64)  # fmt: skip
                A = A.scatter_add_(3, select.expand(-1, s, -1, -1), coef)
                A = A.reshape(b, s, *self.shapes[i])
        return A, const

    def lower(self, A, stop, bounds, x0, r):
        """``min`` of ``A . z_stop`` over the ball of radius ``r`` (per sample) around
        ``x0``, given the boxes: ``A_in . x0 + const - r ||A_in||``."""
        A_in, const = self.backward(A, stop, bounds)
        flat = A_in.reshape(*A_in.shape[:2], -1)
        center = (flat * x0.reshape(len(x0), 1, -1)).sum(2)
        return center + const - r[:, None] * flat.norm(dim=2)

    def bounds(self, x0, r):
        """The box of the input of every nonlinearity over the balls, in order."""
        out = {}
        if self.first is None:
            return out
        with torch.no_grad():
            z = x0
            for op in self.ops[: self.first]:
                z = op(z)
        rad = r.reshape(-1, *[1] * (z.dim() - 1)) * self.row_norms
        out[self.first] = _widen(z - rad, z + rad)
        for j, i in enumerate(self.nonlinear[1:], 1):
            p = self.nonlinear[j - 1]
            n = math.prod(self.shapes[i])
            if n <= CROWN_NEURONS and i > p + 1:
                out[i] = _widen(*self._crown_box(x0, r, i, out))
            else:
                out[i] = _widen(*self._interval_box(p, i, out[p]))
        return out

    def _interval_box(self, p, i, box):
        """Interval arithmetic from the box of the input of ``ops[p]`` to that of
        ``ops[i]`` (both nonlinearities are monotone)."""
        lo, up = (self.ops[p](t) for t in box)
        center, rad = (up + lo) / 2, (up - lo) / 2
        for op in self.ops[p + 1 : i]:
            center, rad = op(center), _abs_linear(op, rad)
        return center - rad, center + rad

    def _crown_box(self, x0, r, i, out):
        n, shape = math.prod(self.shapes[i]), self.shapes[i]
        eye = torch.eye(n, dtype=torch.float64).reshape(n, *shape)
        spec = torch.cat([eye, -eye])
        lows, ups, per = [], [], max(1, _ROWS // (2 * n))
        for s in range(0, len(x0), per):
            sl = slice(s, s + per)
            sub = {k: (v[0][sl], v[1][sl]) for k, v in out.items()}
            A = spec.expand(len(x0[sl]), *spec.shape)
            bound = self.lower(A, i, sub, x0[sl], r[sl])
            lows.append(bound[:, :n].reshape(-1, *shape))
            ups.append(-bound[:, n:].reshape(-1, *shape))
        return torch.cat(lows), torch.cat(ups)

    def certified(self, x0, r, pred, slack):
        """Whether CROWN proves every gap ``f_pred - f_k`` above ``slack`` on the ball."""
        k = self.shapes[-1][0]
        eye = torch.eye(k, dtype=torch.float64)
        spec = eye[pred][:, None, :] - eye[None]  # (b, k, k): row k is e_pred - e_k
        with torch.no_grad():
            gaps = self.lower(spec, len(self.ops), self.bounds(x0, r), x0, r)
        gaps[torch.arange(len(pred)), pred] = math.inf
        return (gaps > slack[:, None]).all(dim=1)


def crown_radii(chain, X_t, pred, slack, radius, batch_size=256, steps=SEARCH_STEPS):
    """The largest radius per sample that CROWN certifies, searched from ``radius``.

    Parameters
    ----------
    chain : Chain
        The model's layers, checked against its logits.
    X_t : tensor of shape (n, ...)
        The inputs.
    pred : ndarray of shape (n,)
        The predicted classes (indices of the logits).
    slack : ndarray of shape (n,)
        Each gap must be above it on the ball (float32 rounding of the logits).
    radius : ndarray of shape (n,)
        Proven radii (the global certificate): the search starts there and never returns
        less.
    batch_size : int, default=256
    steps : int, default=SEARCH_STEPS
        Evaluations per sample: doubling ``radius`` while it is certified, then
        bisection between the largest certified and the smallest refused radius.

    Returns
    -------
    radius : ndarray of shape (n,)
    """
    prop = _Propagator(chain)
    out = np.array(radius, dtype=np.float64, copy=True)
    todo = np.flatnonzero((out > 0) & np.isfinite(out))
    for s in range(0, len(todo), batch_size):
        idx = todo[s : s + batch_size]
        x0 = X_t[idx].cpu().to(torch.float64)
        p, sl = torch.as_tensor(pred[idx]), torch.as_tensor(slack[idx], dtype=torch.float64)
        lo, hi = out[idx].copy(), np.full(len(idx), np.inf)
        for _ in range(steps):
            trial = np.where(np.isinf(hi), 2.0 * lo, (lo + hi) / 2.0)
            ok = prop.certified(x0, torch.as_tensor(trial), p, sl).numpy()
            lo, hi = np.where(ok, trial, lo), np.where(ok, hi, trial)
        out[idx] = lo
    return out
