"""Pure torch maths of section 4.2: the feature-space margin (14) and the orthogonality penalty.

One function per equation of the paper, no estimator state: the skorch nets in
:mod:`amrlearn.neural._net` call these, and so do the tests and the margin tracker.
"""

import torch

from .._math._margin import pair_distances_torch, signed_margins_torch

__all__ = [
    "amr_margin_loss",
    "amr_margin_term",
    "feature_margin",
    "last_linear_layer",
    "orthogonality_penalty",
    "penalized_weights",
]


def feature_margin(features, weight, bias=None, y=None, *, normalize=True):
    """Signed feature-space margin of eq. (14), one value per sample.

    With ``Phi = features`` the input of the last linear layer (weights ``w_k``, biases
    ``b_k``) and ``c`` the reference class of a sample,

    ``m = min_{k != c} ((w_c - w_k)^T Phi + b_c - b_k) / ||w_c - w_k||``,

    the exact signed distance in feature space from ``Phi`` to the boundary of the region
    where class ``c`` wins. It is positive when ``c`` is the predicted class and negative
    when another class scores higher.

    Parameters
    ----------
    features : Tensor of shape (n_samples, n_features)
        ``Phi(x)``, the input of the last linear layer.
    weight : Tensor of shape (n_classes, n_features)
        Weight of the last linear layer.
    bias : Tensor of shape (n_classes,), default=None
        Its bias (``None`` for a layer without bias).
    y : Tensor of shape (n_samples,), default=None
        Reference classes (the true labels, for training). ``None`` uses the predicted
        classes, which gives the unsigned distance to the nearest boundary.
    normalize : bool, default=True
        Divide each logit gap by ``||w_c - w_k||`` (the paper's "normalized" weights,
        an exact distance). ``False`` gives the raw logit gap
        ``min_{k != c} z_c - z_k``, as in the authors' released code.

    Returns
    -------
    margin : Tensor of shape (n_samples,)
        Differentiable with respect to ``features``, ``weight`` and ``bias``. Equal
        weight rows follow the rule of :mod:`amrlearn._math._margin` (whose torch form
        this is): ``+inf`` or ``-inf``, with a finite gradient.

    Examples
    --------
    >>> import torch
    >>> from amrlearn.neural import feature_margin
    >>> W = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> phi = torch.tensor([[3.0, 1.0], [0.0, 2.0]])
    >>> feature_margin(phi, W, y=torch.tensor([0, 0]))
    tensor([ 1.4142, -1.4142])
    >>> feature_margin(phi, W, y=torch.tensor([0, 0]), normalize=False)
    tensor([ 2., -2.])
    """
    if features.dim() != 2 or weight.dim() != 2 or features.shape[1] != weight.shape[1]:
        raise ValueError(
            f"features of shape (n, d) and weight of shape (c, d) expected, got "
            f"{tuple(features.shape)} and {tuple(weight.shape)}."
        )
    n_classes = weight.shape[0]
    if n_classes < 2:
        raise ValueError("A margin needs at least two classes.")
    logits = features @ weight.T
    if bias is not None:
        logits = logits + bias
    if y is None:
        y = logits.argmax(dim=1)
    dist = pair_distances_torch(weight) if normalize else None
    return signed_margins_torch(logits, dist, y)[0]


def amr_margin_term(margin, correct, tau):
    """The average margin term of objective (15): the batch mean of ``[m_i]_0^tau``.

    Only correctly classified samples count; the mean runs over the whole batch, with a
    zero for each misclassified sample (as in the sum of eq. (8) divided by ``n``).

    Parameters
    ----------
    margin : Tensor of shape (n_samples,)
        Signed margins with respect to the true labels (:func:`feature_margin`).
    correct : Tensor of bool of shape (n_samples,)
        Which samples are correctly classified.
    tau : float
        Truncation threshold.

    Returns
    -------
    term : Tensor (scalar)
        To be subtracted, times ``lambda``, from the loss.

    Examples
    --------
    >>> import torch
    >>> from amrlearn.neural._penalties import amr_margin_term
    >>> amr_margin_term(torch.tensor([1.0, 9.0, -2.0]), torch.tensor([True, True, False]), 5.0)
    tensor(2.)
    """
    return (margin.clamp(0.0, tau) * correct.to(margin.dtype)).mean()


class _MarginTerm(torch.autograd.Function):
    """Forward and hand-written backward of :func:`amr_margin_loss` (see there).

    The forward pass is eq. (14) of :mod:`amrlearn._math._margin` (its torch form, run
    without autograd); only the backward is written by hand, for few tensor operations:
    on a CPU each costs microseconds of dispatch, more than the arithmetic of a (batch x
    classes) table (``benchmarks/bench_margin_backward.py``).
    """

    @staticmethod
    def forward(ctx, logits, weight, y, tau, normalize):
        # The margins of eq. (14) and their distances from the one home of the equation.
        dist = pair_distances_torch(weight) if normalize else None
        m, k = signed_margins_torch(logits, dist, y)
        y1, k1 = y[:, None], k[:, None]
        # A correct sample has m >= 0 and a misclassified one m <= 0, so [m]_0^tau is
        # already 0 for the latter. d term / d m_i, times n: 1 where 0 <= m_i <= tau
        # (torch.clamp's convention at the ends), else 0 (also where m = +-inf).
        clamped = m.clamp(0.0, tau)
        coef = clamped == m
        if normalize:
            # m = (z_y - z_k) / d_yk: d m / d (z_y - z_k) = 1 / d_yk, d m / d d_yk = -m / d_yk
            # (d_yk > 0 wherever m is finite).
            inv_yk = dist[y, k].where(coef, 1.0).reciprocal_()
            coef = coef * inv_yk
            ctx.save_for_backward(weight, y, y1, k, k1, coef, (m * inv_yk).where(coef > 0, 0.0))
        else:
            ctx.save_for_backward(weight, y, y1, k, k1, coef.to(m.dtype), None)
        ctx.normalize = normalize
        return clamped.mean()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        weight, y, y1, k, k1, coef, m_over_d = ctx.saved_tensors
        c = weight.shape[0]
        cz = coef.mul(grad / len(y))[:, None]  # d term / d z_y = -d term / d z_k
        grad_logits = cz.new_zeros(len(cz), c).scatter_(1, y1, cz).scatter_add_(1, k1, -cz)
        grad_weight = None
        if ctx.normalize and ctx.needs_input_grad[1]:
            # d d_ab / d w_a = (w_a - w_b) / d_ab. With t_ab the sum of cz * m / d_ab over
            # the samples with (y, k) = (a, b) and s = t + t^T (zero diagonal),
            # d term / d W = s W - diag(s 1) W.
            t = cz.new_zeros(c, c).index_put_((y, k), cz.view(-1) * m_over_d, accumulate=True)
            s = t + t.T
            s.diagonal().sub_(s.sum(1))
            grad_weight = s @ weight
        return grad_logits, grad_weight, None, None, None


def amr_margin_loss(logits, weight, y, tau, *, normalize=True):
    """The average margin term of objective (15), computed from the logits in one piece.

    Equal, in value and gradient, to
    ``amr_margin_term(feature_margin(features, weight, bias, y), logits.argmax(1) == y,
    tau)`` when ``logits = features @ weight.T + bias`` (the module's own output), but
    without recomputing the logits and with a hand-written backward pass (the forward is
    the torch form of :mod:`amrlearn._math._margin`, run without autograd): on a CPU
    this saves 0.8-2.6 % of an MLP's training step (``bench_margin_backward.py``).
    Only :class:`~amrlearn.neural.AMRMarginPenalty` needs it; :func:`feature_margin`
    stays the reference. The one difference is the
    subgradient at an exact tie between the true class and another top class (margin
    0): here it is that of ``[m]_0^tau``, there 0 when ``argmax`` picks the other class.

    Parameters
    ----------
    logits : Tensor of shape (n_samples, n_classes)
        Output of the last linear layer, ``features @ weight.T + bias``.
    weight : Tensor of shape (n_classes, n_features)
        Weight of that layer (its ``||w_y - w_k||`` normalize the gaps).
    y : Tensor of int of shape (n_samples,)
        True labels.
    tau : float
        Truncation threshold.
    normalize : bool, default=True
        As in :func:`feature_margin`; ``False`` uses the raw logit gaps and gives
        ``weight`` no gradient through this term.

    Returns
    -------
    term : Tensor (scalar)
        Differentiable (once) with respect to ``logits`` and ``weight``.

    Examples
    --------
    >>> import torch
    >>> from amrlearn.neural._penalties import amr_margin_loss
    >>> W = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> logits = torch.tensor([[3.0, 1.0], [0.0, 2.0]])
    >>> amr_margin_loss(logits, W, torch.tensor([0, 0]), 5.0)  # (sqrt(2) + 0) / 2
    tensor(0.7071)
    """
    if logits.dim() != 2 or weight.dim() != 2 or logits.shape[1] != weight.shape[0]:
        raise ValueError(
            f"logits of shape (n, c) and weight of shape (c, d) expected, got "
            f"{tuple(logits.shape)} and {tuple(weight.shape)}."
        )
    if logits.shape[1] < 2:
        raise ValueError("A margin needs at least two classes.")
    return _MarginTerm.apply(logits, weight, y.long(), float(tau), bool(normalize))


def penalized_weights(module):
    """The weights of every linear and convolutional layer of ``module``, once each.

    Biases are left out, and a layer reached twice (shared) is counted once.

    Parameters
    ----------
    module : torch.nn.Module

    Returns
    -------
    weights : list of Tensor
        Each of shape (out, in) or (out, in/groups, *kernel).

    Examples
    --------
    >>> import torch
    >>> from amrlearn.neural._penalties import penalized_weights
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(),
    ...                           torch.nn.Linear(4, 2))
    >>> [tuple(w.shape) for w in penalized_weights(net)]
    [(4, 1, 3, 3), (2, 4)]
    """
    layer_types = (torch.nn.Linear, torch.nn.modules.conv._ConvNd)
    out, seen = [], set()
    for layer in module.modules():  # modules() already yields each module once
        if isinstance(layer, layer_types) and layer.weight is not None:
            if id(layer.weight) not in seen:
                seen.add(id(layer.weight))
                out.append(layer.weight)
    return out


class _GramPenalty(torch.autograd.Function):
    """``||A||_F^2`` with ``A = W^T W - I`` (``side="input"``) or ``W W^T - I``.

    Autograd through ``W^T @ W`` spends two products of the cost of the forward one on
    the backward pass; the gradient is ``4 W A`` (or ``4 A W``), one product.
    """

    @staticmethod
    def forward(ctx, w, side):
        a = w.T @ w if side == "input" else w @ w.T
        a.diagonal().sub_(1.0)
        ctx.save_for_backward(w, a)
        ctx.side = side
        flat = a.reshape(-1)
        return torch.dot(flat, flat)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        w, a = ctx.saved_tensors
        out = w @ a if ctx.side == "input" else a @ w
        return out.mul_(4.0 * grad), None


def _gram_penalty(weight, gram):
    """``||W W^T - I||_F^2`` of one weight, flattened to out x (in * k * k)."""
    w = weight.reshape(weight.shape[0], -1)
    n_out, n_in = w.shape
    if gram == "auto":
        gram = "input" if n_in < n_out else "output"
    if gram == "output":
        return _GramPenalty.apply(w, "output")
    # ||W W^T - I_out||^2 = ||W^T W||^2 - 2 ||W||^2 + n_out, and ||W^T W - I_in||^2 differs
    # only in the last term: adding n_out - n_in gives the paper's value, and the gradient
    # is the same.
    return _GramPenalty.apply(w, "input") + (n_out - n_in)


def _hutchinson_penalty(weight, n_probes, generator=None):
    """Unbiased estimate of ``||W W^T - I||_F^2`` from ``n_probes`` Rademacher probes.

    With ``A = W^T W - I`` (or ``W W^T - I``, on the smaller side) and probes ``v`` of
    independent signs, ``E ||A v||^2 = ||A||_F^2`` (Hutchinson), and ``A v`` costs two
    products with ``W``: ``O(out * in * n_probes)`` instead of ``O(out * in * min(out, in))``.
    """
    w = weight.reshape(weight.shape[0], -1)
    n_out, n_in = w.shape
    if n_in <= n_out:  # probe the (in x in) side: A v = W^T (W v) - v
        v = torch.randint(0, 2, (n_in, n_probes), generator=generator, device="cpu")
        v = (2 * v - 1).to(dtype=w.dtype, device=w.device)
        av = w.T @ (w @ v) - v
        const = n_out - n_in
    else:  # probe the (out x out) side: A v = W (W^T v) - v
        v = torch.randint(0, 2, (n_out, n_probes), generator=generator, device="cpu")
        v = (2 * v - 1).to(dtype=w.dtype, device=w.device)
        av = w @ (w.T @ v) - v
        const = 0
    return (av**2).sum() / n_probes + const


def orthogonality_penalty(module_or_weights, *, gram="auto", n_probes=None, generator=None):
    """Orthogonality penalty of objective (15): ``sum_l ||W_l W_l^T - I||_F^2``.

    Every linear and convolutional layer counts once, its weight only (the biases are
    not penalized; the authors' released code counts a layer a second time through its
    bias, which this does not copy). A convolution weight of shape
    ``(out, in, k, k)`` is flattened to ``out x (in * k * k)`` first, as the paper says.

    Parameters
    ----------
    module_or_weights : torch.nn.Module or iterable of Tensor
        A module (its layers are found by :func:`penalized_weights`) or the weights.
    gram : {"auto", "output", "input"}, default="auto"
        Which Gram matrix to form. ``"output"`` is the paper's ``W W^T`` (out x out),
        ``"input"`` is ``W^T W`` (in x in), ``"auto"`` the smaller of the two. Since
        ``||W W^T - I||_F^2 - ||W^T W - I||_F^2 = out - in`` is a constant, all three give
        the same value (the constant is added back) and the same gradient; only the cost
        differs, ``O(out * in * min(out, in))`` with ``"auto"``.
    n_probes : int or None, default=None
        ``None`` computes the penalty exactly. An integer ``k`` replaces it, for each layer
        where ``2 k < min(out, in)``, by Hutchinson's unbiased estimate from ``k`` random
        sign vectors, ``||A||_F^2 = E ||A v||^2``, at cost ``O(out * in * k)``: the
        stochastic gradient is then unbiased for the same objective. For wide layers on a
        CPU, where the exact Gram matrices cost more than the forward and backward passes
        of a batch.
    generator : torch.Generator, default=None
        Source of the probes (torch's global generator when None).

    Returns
    -------
    penalty : Tensor (scalar)

    Examples
    --------
    >>> import torch
    >>> from amrlearn.neural import orthogonality_penalty
    >>> orthogonality_penalty([torch.eye(3)])
    tensor(0.)
    >>> orthogonality_penalty([2 * torch.eye(2)])
    tensor(18.)
    """
    if gram not in ("auto", "output", "input"):
        raise ValueError(f"gram must be 'auto', 'output' or 'input', got {gram!r}.")
    if isinstance(module_or_weights, torch.nn.Module):
        weights = penalized_weights(module_or_weights)
    else:
        weights = list(module_or_weights)
    if n_probes is not None and (int(n_probes) != n_probes or n_probes < 1):
        raise ValueError(f"n_probes must be a positive integer or None, got {n_probes!r}.")
    if not weights:
        return torch.zeros(())

    def one(w):
        if n_probes is not None and 2 * n_probes < min(w.shape[0], w[0].numel()):
            return _hutchinson_penalty(w, int(n_probes), generator)
        return _gram_penalty(w, gram)

    total = one(weights[0])
    for w in weights[1:]:
        total = total + one(w)
    return total


def last_linear_layer(module, n_features=None, n_classes=None):
    """The last linear layer of ``module``: the ``(w_k, b_k)`` of eq. (14).

    A module may name it ``last_linear`` (all models of :mod:`amrlearn.neural.models`
    do); otherwise the last registered :class:`torch.nn.Linear` whose shape matches
    ``(n_classes, n_features)`` is taken.

    Parameters
    ----------
    module : torch.nn.Module
    n_features, n_classes : int, default=None
        Expected input and output sizes, checked when given.

    Returns
    -------
    layer : torch.nn.Linear

    Examples
    --------
    >>> import torch
    >>> from amrlearn.neural._penalties import last_linear_layer
    >>> net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    >>> last_linear_layer(net, 4, 3)
    Linear(in_features=4, out_features=3, bias=True)
    """

    def fits(layer):
        return (
            isinstance(layer, torch.nn.Linear)
            and (n_features is None or layer.in_features == n_features)
            and (n_classes is None or layer.out_features == n_classes)
        )

    named = getattr(module, "last_linear", None)
    if named is not None and fits(named):
        return named
    for layer in reversed(list(module.modules())):
        if fits(layer):
            return layer
    raise ValueError(
        f"{type(module).__name__} has no torch.nn.Linear layer of shape "
        f"({n_classes}, {n_features}) to measure a feature-space margin with. The module must "
        "return (logits, features) where logits = last_linear(features); name that layer "
        "`last_linear`."
    )
