"""DeepFool's mathematics (Moosavi-Dezfooli, Fawzi & Frossard 2016): the linearized jumps.

At each iterate DeepFool linearizes every gap ``g_k = f_k - f_y`` (``k != y``) and jumps to
the closest hyperplane of the linearization, ``r = |g_l| / ||w_l||^2 * w_l`` with
``w_k = grad g_k`` and ``l = argmin_k |g_k| / ||w_k||`` (Algorithm 2 of the paper). On an
affine model the first jump lands on the closest boundary point, eq. (7) of Wu & Yu.

Pure functions of tensors, shared by the attack (:class:`amrlearn.attacks.DeepFool`, which
then tightens the point by bisection) and by Deep Defense
(:mod:`amrlearn.neural._ddpenalty`, which differentiates the unrolled iterations in the
model's weights): :func:`class_gap_gradients` (all the ``g_k`` and ``w_k`` from one batched
Jacobian), :func:`deepfool_step` (one jump) and :func:`deepfool_perturbation` (the unrolled
iterations, differentiable with ``create_graph=True``). Public through
:mod:`amrlearn.attacks`. torch is imported inside the functions.
"""

__all__ = ["class_gap_gradients", "deepfool_perturbation", "deepfool_step"]


def class_gap_gradients(fn, x, y, *, create_graph=False):
    """Logit gaps ``f_k(x) - f_y(x)`` and their input gradients, every class at once.

    One Jacobian per batch (``torch.func.vmap(jacrev(fn))``); on a 2-core CPU this was
    1.4-2x faster than one backward pass per class for a 784-1024-10 MLP.

    Parameters
    ----------
    fn : callable
        ``fn(x) -> logits`` of shape (n, n_classes); every sample must be processed
        independently (eval mode).
    x : tensor of shape (n, ...)
    y : tensor of shape (n,) of int64
    create_graph : bool, default=False
        Keep the graph, so that the results can be differentiated again (in the
        model's weights, or in ``x``).

    Returns
    -------
    logits : tensor of shape (n, n_classes)
    gaps : tensor of shape (n, n_classes)
        ``f_k - f_y``; column ``y`` is zero.
    grads : tensor of shape (n, n_classes, *x.shape[1:])
        ``grad_x (f_k - f_y)``.

    Examples
    --------
    >>> import torch
    >>> from amrlearn.attacks import class_gap_gradients
    >>> lin = torch.nn.Linear(3, 4)
    >>> logits, gaps, grads = class_gap_gradients(lin, torch.zeros(2, 3), torch.tensor([0, 1]))
    >>> bool(torch.allclose(grads[1, 2], lin.weight[2] - lin.weight[1]))
    True
    """
    import torch
    from torch.func import jacrev, vmap

    def single(z):
        out = fn(z.unsqueeze(0)).squeeze(0)
        return out, out

    # Without create_graph, no graph to the weights: jacrev still differentiates in x.
    with torch.enable_grad() if create_graph else torch.no_grad():
        J, logits = vmap(jacrev(single, has_aux=True))(x if create_graph else x.detach())
        rows = torch.arange(x.shape[0], device=x.device)
        gaps = logits - logits[rows, y].unsqueeze(1)
        grads = J - J[rows, y].unsqueeze(1)
    return logits, gaps, grads


def deepfool_step(gaps, grads, y):
    """One DeepFool jump: to the closest hyperplane of the linearized gaps.

    ``l = argmin_{k != y} |g_k| / ||w_k||`` and ``r = |g_l| / ||w_l||^2 * w_l``
    (Algorithm 2 of Moosavi-Dezfooli et al.). Classes whose gap has a zero gradient are
    out of reach and skipped.

    Parameters
    ----------
    gaps : tensor of shape (n, n_classes)
        ``f_k - f_y`` at the current point.
    grads : tensor of shape (n, n_classes, ...)
        Their gradients.
    y : tensor of shape (n,) of int64

    Returns
    -------
    r : tensor of shape (n, ...)
        The jump; zero where no class is in reach.

    Examples
    --------
    >>> import torch
    >>> from amrlearn.attacks import deepfool_step
    >>> gaps = torch.tensor([[0.0, -3.0]]); grads = torch.tensor([[[0.0, 0.0], [3.0, 4.0]]])
    >>> deepfool_step(gaps, grads, torch.tensor([0]))
    tensor([[0.3600, 0.4800]])
    """
    import torch

    n, k = gaps.shape
    w2 = grads.flatten(2).pow(2).sum(2)  # (n, K)
    reach = w2 > 0
    reach[torch.arange(n, device=gaps.device), y] = False
    # Minimizing |g|^2 / ||w||^2 avoids a square root, whose gradient at 0 is infinite.
    dist2 = torch.where(reach, gaps.pow(2) / torch.where(reach, w2, 1.0), float("inf"))
    best = dist2.argmin(1)
    rows = torch.arange(n, device=gaps.device)
    scale = torch.where(
        reach[rows, best], gaps[rows, best].abs() / torch.where(reach, w2, 1.0)[rows, best], 0.0
    )
    return scale.view(-1, *[1] * (grads.dim() - 2)) * grads[rows, best]


def deepfool_perturbation(fn, x, y, *, max_iter=50, overshoot=0.02, clip=None, create_graph=False):
    """The unrolled DeepFool iterations: the perturbation and whether it is adversarial.

    ``x_{i+1} = clip(x + (1 + overshoot) * r_tot)`` with ``r_tot`` the sum of the jumps
    (:func:`deepfool_step`); a sample stops as soon as its iterate is misclassified.
    With a box, the gradient components that would push a coordinate lying on a face of
    the box outwards are zeroed first, so that the jump uses the directions left free
    (plain DeepFool stalls on images with saturated pixels).

    Parameters
    ----------
    fn : callable
        ``fn(x) -> logits``; its mode is the caller's business.
    x : tensor of shape (n, ...)
    y : tensor of shape (n,) of int64
        The classes to move away from.
    max_iter : int, default=50
        Maximal number of jumps.
    overshoot : float, default=0.02
        Relative overshoot, so that the iterate crosses the boundary.
    clip : tuple of (float, float) or None, default=None
        Box of the iterates.
    create_graph : bool, default=False
        Keep the graph through every iteration, so that the perturbation can be
        differentiated in the model's weights (Deep Defense, Yan et al. 2018).

    Returns
    -------
    x_adv : tensor like ``x``
        The last iterate.
    is_adv : tensor of shape (n,) of bool
        Whether ``x_adv`` is misclassified.
    n_iter : tensor of shape (n,) of int64
        Jumps taken per sample.

    Examples
    --------
    >>> import torch
    >>> from amrlearn.attacks import deepfool_perturbation
    >>> lin = torch.nn.Linear(2, 3)
    >>> x = torch.zeros(4, 2); y = lin(x).argmax(1)
    >>> x_adv, is_adv, n_iter = deepfool_perturbation(lin, x, y)
    >>> bool(is_adv.all()), n_iter.tolist()
    (True, [1, 1, 1, 1])
    """
    import torch

    x0 = x if create_graph else x.detach()
    r_tot = torch.zeros_like(x0)
    n_iter = torch.zeros(x0.shape[0], dtype=torch.int64, device=x0.device)
    is_adv = torch.zeros(x0.shape[0], dtype=torch.bool, device=x0.device)
    x_cur = x0
    rows = torch.arange(x0.shape[0], device=x0.device)  # the samples still moving
    for i in range(max_iter + 1):
        xa, ya = x_cur[rows], y[rows]
        logits, gaps, grads = class_gap_gradients(fn, xa, ya, create_graph=create_graph)
        adv = logits.argmax(1) != ya
        is_adv[rows] = adv
        if i == max_iter or bool(adv.all()):
            break
        keep = ~adv
        rows, xa, ya, gaps, grads = rows[keep], xa[keep], ya[keep], gaps[keep], grads[keep]
        if clip is not None:  # coordinates on a face of the box cannot move outwards
            xc = xa.unsqueeze(1)
            blocked = ((xc <= clip[0]) & (grads < 0)) | ((xc >= clip[1]) & (grads > 0))
            grads = torch.where(blocked, 0.0, grads)
        # Out-of-place updates of the moving rows only, so that the graph stays intact.
        r_tot = r_tot.index_add(0, rows, deepfool_step(gaps, grads, ya).to(x0.dtype))
        n_iter[rows] += 1
        x_new = x0[rows] + (1 + overshoot) * r_tot[rows]
        if clip is not None:
            x_new = x_new.clamp(clip[0], clip[1])
        x_cur = x_cur.index_copy(0, rows, x_new)
    return x_cur, is_adv, n_iter
