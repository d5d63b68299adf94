"""Spectral norms of linear layers: exact values and proven upper bounds, in float64.

Pure mathematics on tensors, for the certified margins (:mod:`._certified`). A linear
map is given by two callables on batches: ``lin(x)`` and its adjoint ``adj(u)``.

* :func:`operator_norm` is the exact largest singular value (to float64 rounding) of any
  linear map, from the eigenvalues of its Gram matrix on the smaller side; it is built
  column by column, so it serves maps of up to a few thousand inputs or outputs.
* :func:`conv2d_norm_bound` bounds a zero-padded ``Conv2d`` of any size from above: the
  exact norm of a circular convolution on a grid large enough that the zero-padded map is
  a part of it (see its Notes), from the FFT of the kernel; each frequency's block by its
  exact largest singular value, or by Gram iteration.
* :func:`gram_iteration_bound` (Delattre et al. 2023) bounds the largest singular value of
  a batch of matrices from above, for every number of iterations.
* :func:`power_iteration` approaches the norm from *below*: it is no proof, and is used
  only to show how tight the bounds are.
"""

import math

import torch

__all__ = [
    "conv2d_frequency_blocks",
    "conv2d_norm_bound",
    "gram_iteration_bound",
    "operator_norm",
    "pool_coverage",
    "positive_map_bound",
    "power_iteration",
]


def adjoint_of(lin, in_shape, dtype=torch.float64, device="cpu"):
    """The adjoint ``u -> A^T u`` of a linear map ``lin`` on batches, by autograd.

    ``lin`` must act on each sample of a batch independently (as layers in eval mode do).
    """

    def adj(u):
        with torch.enable_grad():
            x = torch.zeros((u.shape[0], *in_shape), dtype=dtype, device=device)
            x.requires_grad_(True)
            (g,) = torch.autograd.grad(lin(x), x, u)
        return g

    return adj


def operator_norm(lin, adj, in_shape, out_shape, *, chunk=256, dtype=torch.float64, device="cpu"):
    """The exact spectral norm of a linear map, from the Gram matrix of its smaller side.

    ``G = A^T A`` (or ``A A^T`` when the output is smaller) is built ``chunk`` columns
    at a time as ``adj(lin(E))`` for blocks ``E`` of the identity, then
    ``||A||_2 = sqrt(lambda_max(G))`` from ``torch.linalg.eigvalsh``, in float64: exact to
    rounding (a relative error of a few ``n * 1e-16``).

    Parameters
    ----------
    lin, adj : callable
        The map and its adjoint, on batches of shape ``(b, *in_shape)`` and
        ``(b, *out_shape)``.
    in_shape, out_shape : tuple of int
        Per-sample shapes.

    Returns
    -------
    norm : float
    """
    d_in, d_out = math.prod(in_shape), math.prod(out_shape)
    first, second, shape, d = (lin, adj, in_shape, d_in)
    if d_out < d_in:
        first, second, shape, d = (adj, lin, out_shape, d_out)
    G = torch.empty((d, d), dtype=dtype, device=device)
    with torch.no_grad():
        for s in range(0, d, chunk):
            e = min(s + chunk, d)
            E = torch.zeros((e - s, d), dtype=dtype, device=device)
            E[torch.arange(e - s), torch.arange(s, e)] = 1.0
            G[:, s:e] = second(first(E.reshape(e - s, *shape))).reshape(e - s, d).T
    G = 0.5 * (G + G.T)  # symmetric up to rounding; eigvalsh reads one triangle
    lam = torch.linalg.eigvalsh(G)[-1]
    return float(lam.clamp_min(0.0).sqrt())


def gram_iteration_bound(M, n_iter=12):
    """Upper bounds on the largest singular value of each matrix of a batch: Gram iteration.

    ``G_0 = M`` and ``G_{t+1} = G_t^H G_t`` have ``sigma_1(G_t) = sigma_1(M) ** 2**t``,
    and ``sigma_1 <= ||.||_F``, so ``sigma_1(M) <= ||G_T||_F ** (1 / 2**T)`` for every
    ``T``; the gap is at most a factor ``rank ** (1 / 2**(T+1))`` (1.0006 for rank 128
    and ``T = 12``). Each ``G_t`` is rescaled to unit Frobenius norm and the scale kept in
    logarithms, so nothing overflows (Delattre, Barthélemy, Araujo and Allauzen, 2023).

    Parameters
    ----------
    M : tensor of shape (..., m, n), real or complex
    n_iter : int, default=12

    Returns
    -------
    bound : tensor of shape (...), float64

    Examples
    --------
    >>> import torch
    >>> from amrlearn.metrics._spectral import gram_iteration_bound
    >>> M = torch.tensor([[3.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    >>> round(float(gram_iteration_bound(M, 10)), 6)
    3.0
    """
    G = M.to(torch.complex128 if M.is_complex() else torch.float64)
    if G.shape[-2] < G.shape[-1]:
        G = G.mH
    log_scale = torch.zeros(G.shape[:-2], dtype=torch.float64, device=G.device)
    for t in range(n_iter + 1):
        r = torch.linalg.matrix_norm(G, "fro")
        zero = r == 0
        r = torch.where(zero, 1.0, r)
        log_scale = log_scale + torch.where(zero, -math.inf, r.log()) / 2.0**t
        if t == n_iter:
            break
        G = G / r[..., None, None]
        G = G.mH @ G
    return log_scale.exp()


def _conv_polyphase_kernel(weight, in_channels, stride, dilation, groups):
    """The kernel of the stride-1 convolution on polyphase components that holds a strided,
    dilated, grouped ``Conv2d``: shape ``(c_out, c_in * s_h * s_w, q_h, q_w)``."""
    c_out, c_in_g, kh, kw = weight.shape
    W = weight.to(torch.float64)
    if groups > 1:  # block-diagonal over the groups
        full = W.new_zeros((c_out, in_channels, kh, kw))
        per_out, per_in = c_out // groups, in_channels // groups
        for g in range(groups):
            full[g * per_out : (g + 1) * per_out, g * per_in : (g + 1) * per_in] = W[
                g * per_out : (g + 1) * per_out
            ]
        W = full
    (dh, dw), (sh, sw) = dilation, stride
    keh, kew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    qh, qw = -(-keh // sh), -(-kew // sw)
    K = W.new_zeros((c_out, in_channels, qh * sh, qw * sw))
    K[:, :, :keh:dh, :kew:dw] = W
    # a = q * s + r: the tap at offset a reads phase r of the input, shifted by q.
    K = K.reshape(c_out, in_channels, qh, sh, qw, sw).permute(0, 1, 3, 5, 2, 4)
    return K.reshape(c_out, in_channels * sh * sw, qh, qw)


def conv2d_norm_bound(weight, in_shape, *, stride=1, dilation=1, groups=1, method="eig"):
    """An upper bound on the spectral norm of a zero-padded ``Conv2d`` on ``in_shape`` inputs.

    Parameters
    ----------
    weight : tensor of shape (c_out, c_in / groups, k_h, k_w)
    in_shape : tuple of (int, int, int)
        ``(c_in, h, w)`` of one input.
    stride, dilation : int or tuple of (int, int), default=1
    groups : int, default=1
    method : {"eig", "gram"}, default="eig"
        How each frequency's block is normed: ``"eig"`` exactly (the largest eigenvalue
        of its Gram matrix, float64), ``"gram"`` by :func:`gram_iteration_bound`.

    Returns
    -------
    bound : float
        At least the spectral norm of the layer's linear part for every zero padding.
    grid : tuple of (int, int)
        The size of the circular grid.

    Notes
    -----
    Why it is a bound, per spatial axis (the two axes are independent):

    1. A stride-``s`` convolution is a stride-1 convolution of the ``s`` polyphase
       components of the input (``x_r[u] = x[s u + r]``, a permutation of the input, so
       an isometry), with the kernel ``K_r[q] = K[s q + r]`` of ``ceil(k_eff / s)`` taps
       (``k_eff`` the dilated size).
    2. With zero padding, every output is an output of the *full* linear correlation of
       the finite input: the layer is a restriction of that map to some of its outputs,
       so its norm is no larger; the padding drops out.
    3. The full correlation of signals of length ``m = ceil(n / s) + 1`` is exactly the
       circular correlation on a grid of ``N >= m + q - 1`` points, restricted to inputs
       that vanish outside ``m`` of them: nothing wraps around. Its norm is at most the
       circular one's, which the 2-D DFT block-diagonalizes into the matrices
       ``K_hat(w)`` (``c_out x c_in s^2``), one per frequency ``w``:
       ``||circ|| = max_w sigma_1(K_hat(w))``. Real kernels give ``K_hat(-w) =
       conj(K_hat(w))``, so ``rfft2``'s half of the frequencies suffices.

    So ``N = ceil(n / s) + ceil(k_eff / s)`` per axis. The circular norm at the same size
    ``n`` would *not* be a bound for zero padding; this larger grid is.

    Examples
    --------
    >>> import torch
    >>> from amrlearn.metrics._spectral import conv2d_norm_bound
    >>> w = torch.zeros(1, 1, 3, 3); w[0, 0, 1, 1] = 2.0   # 2 times the identity
    >>> bound, grid = conv2d_norm_bound(w, (1, 8, 8))
    >>> round(bound, 6), grid
    (2.0, (11, 11))
    """
    if method not in ("eig", "gram"):
        raise ValueError(f"method must be 'eig' or 'gram', got {method!r}.")
    F, grid = conv2d_frequency_blocks(
        weight.detach().cpu(), in_shape, stride=stride, dilation=dilation, groups=groups
    )
    if method == "gram":
        return float(gram_iteration_bound(F).max()), grid
    G = F.mH @ F if F.shape[-1] <= F.shape[-2] else F @ F.mH
    lam = torch.linalg.eigvalsh(G)[..., -1].max()
    return float(lam.clamp_min(0.0).sqrt()), grid


def conv2d_frequency_blocks(weight, in_shape, *, stride=1, dilation=1, groups=1):
    """The blocks ``K_hat(w)`` of :func:`conv2d_norm_bound`'s circular convolution.

    ``max_w sigma_1(K_hat(w))`` bounds the norm of the zero-padded ``Conv2d`` (see
    :func:`conv2d_norm_bound`'s Notes). Differentiable in ``weight`` (autograd flows
    through the polyphase kernel and ``rfft2``), so a bound on the blocks that is
    differentiable, :func:`gram_iteration_bound`, gives a differentiable bound on the
    layer: what certified training uses.

    Parameters
    ----------
    weight : tensor of shape (c_out, c_in / groups, k_h, k_w)
    in_shape : tuple of (int, int, int)
    stride, dilation : int or tuple of (int, int), default=1
    groups : int, default=1

    Returns
    -------
    blocks : complex128 tensor of shape (N_h, N_w // 2 + 1, c_out, c_in s_h s_w)
    grid : tuple of (int, int)
        ``(N_h, N_w)``.
    """
    stride, dilation = _pair(stride), _pair(dilation)
    c_in, h, w = in_shape
    K = _conv_polyphase_kernel(weight, c_in, stride, dilation, groups)
    grid = tuple(-(-n // s) + q for n, s, q in zip((h, w), stride, K.shape[2:]))
    return torch.fft.rfft2(K, s=grid).permute(2, 3, 0, 1), grid


def positive_map_bound(lin, adj, in_shape, out_shape, dtype=torch.float64, device="cpu"):
    """``sqrt(||A||_1 ||A||_inf)`` for a linear map whose matrix entries share one sign.

    Holds for every matrix (Schur's test); ``||A||_inf = max |A 1|`` and
    ``||A||_1 = max |A^T 1|`` when no row or column mixes signs, as for average pooling
    (where it is exact: ``1 / k`` for non-overlapping ``k x k`` windows).
    """
    with torch.no_grad():
        row = lin(torch.ones((1, *in_shape), dtype=dtype, device=device)).abs().max()
        col = adj(torch.ones((1, *out_shape), dtype=dtype, device=device)).abs().max()
    return float((row * col).sqrt())


def pool_coverage(size, kernel, stride, padding, dilation=1, ceil_mode=False):
    """The largest number of windows of a pooling that hold one input, along one axis.

    A max pooling whose windows hold each input at most ``c_h`` times along the height
    and ``c_w`` times along the width is ``sqrt(c_h c_w)``-Lipschitz in l2 (1-Lipschitz
    when no windows overlap): each output moves by at most the largest move in its window.
    The windows are torch's: output ``o`` reads ``o * stride - padding + dilation * j``.
    """
    span = dilation * (kernel - 1) + 1
    num = size + 2 * padding - span
    out = (-(-num // stride) if ceil_mode else num // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1  # torch: the last window must start inside the input or left padding
    count = [0] * size
    for o in range(out):
        for j in range(kernel):
            i = o * stride - padding + dilation * j
            if 0 <= i < size:
                count[i] += 1
    return max(count) if count else 0


def power_iteration(lin, adj, in_shape, *, n_iter=100, generator=None, dtype=torch.float64):
    """A lower estimate of the spectral norm: ``||A v||`` after ``n_iter`` power steps.

    ``||A v|| <= ||A||_2`` for a unit ``v``, so this never exceeds the norm; it is *no*
    upper bound and certifies nothing. It shows how tight the bounds are.
    """
    v = torch.randn((1, *in_shape), generator=generator, dtype=dtype)
    with torch.no_grad():
        for _ in range(n_iter):
            v = adj(lin(v / v.norm()))
            if v.norm() == 0:
                return 0.0
        return float(lin(v / v.norm()).norm())


def _pair(v):
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))
