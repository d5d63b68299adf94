"""The Deep Defense regularizer (Yan, Guo & Zhang 2018): DeepFool unrolled in the loss.

Deep Defense penalizes the relative DeepFool distance ``rho = ||dx|| / ||x||`` of every
training sample: ``exp(-c rho)`` on a correctly classified one (large distances cost
little) and ``exp(d rho)`` on a misclassified one, whose ``dx`` moves it to its true
class. ``dx`` comes from DeepFool's iterations, kept in the autograd graph so that the
loss is differentiated through every iterate and every linearization (the authors'
"inverse network"). These are pure functions of tensors:

* :func:`targeted_deepfool_perturbation`: the misclassified samples' DeepFool, towards
  their true class (the untargeted one is :func:`amrlearn.attacks.deepfool_perturbation`);
* :func:`deep_defense_rho`: ``rho`` of every sample, differentiable in the weights;
* :func:`deep_defense_penalty`: the batch's penalty ``(1/n) sum_k R(+-s rho_k)``;
* :class:`DeepDefensePenalty`: that penalty as a part of a net's loss.
"""

from numbers import Integral, Real

import torch

from .._math._deepfool import class_gap_gradients, deepfool_perturbation, deepfool_step
from ..utils._compat import Interval
from ._features import logits_of
from ._penalty import Penalty

__all__ = [
    "DeepDefensePenalty",
    "deep_defense_penalty",
    "deep_defense_rho",
    "targeted_deepfool_perturbation",
]


def targeted_deepfool_perturbation(
    fn, x, source, target, *, max_iter=5, overshoot=0.02, create_graph=False
):
    """DeepFool towards one class: jumps onto the linearized ``f_target = f_source``.

    ``x_{i+1} = x + (1 + overshoot) * r_tot``, ``r_tot`` the sum of the jumps
    ``r = |g| / ||w||^2 * w`` with ``g = f_target - f_source`` and ``w = grad g`` at the
    current iterate (:func:`~amrlearn.attacks.deepfool_step` restricted to ``target``). A
    sample stops once its iterate is classified as ``target``.

    Parameters
    ----------
    fn : callable
        ``fn(x) -> logits``.
    x : tensor of shape (n, ...)
    source : tensor of shape (n,) of int64
        The class to leave (the current prediction).
    target : tensor of shape (n,) of int64
        The class to reach (the true class); must differ from ``source``.
    max_iter : int, default=5
    overshoot : float, default=0.02
    create_graph : bool, default=False
        Keep the graph through every iteration (differentiable in the weights).

    Returns
    -------
    x_adv : tensor like ``x``
    reached : tensor of shape (n,) of bool
        Whether ``x_adv`` is classified as ``target``.

    Examples
    --------
    >>> import torch
    >>> from amrlearn.neural._ddpenalty import targeted_deepfool_perturbation
    >>> lin = torch.nn.Linear(2, 3)
    >>> x = torch.zeros(1, 2); src = lin(x).argmax(1); tgt = (src + 1) % 3
    >>> x_adv, reached = targeted_deepfool_perturbation(lin, x, src, tgt)
    >>> bool(reached.all()), bool((lin(x_adv).argmax(1) == tgt).all())
    (True, True)
    """
    x0 = x if create_graph else x.detach()
    r_tot = torch.zeros_like(x0)
    reached = torch.zeros(x0.shape[0], dtype=torch.bool, device=x0.device)
    x_cur = x0
    rows = torch.arange(x0.shape[0], device=x0.device)  # the samples still moving
    for i in range(max_iter + 1):
        xa, sa, ta = x_cur[rows], source[rows], target[rows]
        logits, gaps, grads = class_gap_gradients(fn, xa, sa, create_graph=create_graph)
        done = logits.argmax(1) == ta
        reached[rows] = done
        if i == max_iter or bool(done.all()):
            break
        keep = ~done
        rows, sa, ta, gaps, grads = rows[keep], sa[keep], ta[keep], gaps[keep], grads[keep]
        # Only the target's hyperplane is in reach: the other classes' gradients vanish.
        only = torch.nn.functional.one_hot(ta, gaps.shape[1]).to(grads.dtype)
        grads = grads * only.view(*only.shape, *[1] * (grads.dim() - 2))
        r_tot = r_tot.index_add(0, rows, deepfool_step(gaps, grads, sa).to(x0.dtype))
        x_cur = x_cur.index_copy(0, rows, x0[rows] + (1 + overshoot) * r_tot[rows])
    return x_cur, reached


def deep_defense_rho(fn, x, y, *, max_iter=5, overshoot=0.02, create_graph=True):
    """Relative DeepFool distances ``rho_k = ||dx_k|| / ||x_k||``, and which are correct.

    A correctly classified sample gets the untargeted DeepFool perturbation
    (:func:`amrlearn.attacks.deepfool_perturbation`, no box); a misclassified one the
    targeted one towards ``y`` (:func:`targeted_deepfool_perturbation`). ``||x||`` is a
    constant.

    Parameters
    ----------
    fn : callable
        ``fn(x) -> logits``, samples processed independently (eval mode).
    x : tensor of shape (n, ...)
    y : tensor of shape (n,) of int64
        True classes.
    max_iter : int, default=5
        DeepFool iterations (Deep Defense: 5, in training and test).
    overshoot : float, default=0.02
    create_graph : bool, default=True
        Differentiable in the weights of ``fn`` through every iteration.

    Returns
    -------
    rho : tensor of shape (n,)
    correct : tensor of shape (n,) of bool

    Examples
    --------
    >>> import torch
    >>> from amrlearn.neural._ddpenalty import deep_defense_rho
    >>> lin = torch.nn.Linear(2, 3)
    >>> x = torch.ones(4, 2); y = torch.tensor([0, 1, 2, 0])
    >>> rho, correct = deep_defense_rho(lin, x, y)
    >>> rho.shape, bool((rho > 0).all())
    (torch.Size([4]), True)
    """
    with torch.no_grad():
        pred = fn(x.detach()).argmax(1)
    correct = pred == y
    wrong = ~correct
    dx = torch.zeros_like(x)
    if bool(correct.any()):
        x_adv, _, _ = deepfool_perturbation(
            fn,
            x[correct],
            y[correct],
            max_iter=max_iter,
            overshoot=overshoot,
            create_graph=create_graph,
        )
        dx = dx.index_put((correct.nonzero()[:, 0],), x_adv - x[correct])
    if bool(wrong.any()):
        x_adv, _ = targeted_deepfool_perturbation(
            fn,
            x[wrong],
            pred[wrong],
            y[wrong],
            max_iter=max_iter,
            overshoot=overshoot,
            create_graph=create_graph,
        )
        dx = dx.index_put((wrong.nonzero()[:, 0],), x_adv - x[wrong])
    x_norm = x.detach().flatten(1).norm(dim=1).clamp_min(torch.finfo(x.dtype).tiny)
    dx2 = dx.flatten(1).pow(2).sum(1)
    # sqrt with a finite gradient where dx = 0 (a sample DeepFool could not move).
    safe = torch.where(dx2 > 0, dx2, 1.0).sqrt()
    return torch.where(dx2 > 0, safe, 0.0) / x_norm, correct


def deep_defense_penalty(rho, correct, *, c=25.0, d=5.0):
    """Deep Defense's penalty of a batch: ``(1/n) sum_k R(-c rho_k or d rho_k)``, ``R = exp``.

    Parameters
    ----------
    rho : tensor of shape (n,)
        Relative DeepFool distances (:func:`deep_defense_rho`).
    correct : tensor of shape (n,) of bool
        ``exp(-c rho)`` where True, ``exp(d rho)`` where False.
    c, d : float, default=25.0, 5.0

    Returns
    -------
    penalty : scalar tensor

    Examples
    --------
    >>> import torch
    >>> from amrlearn.neural._ddpenalty import deep_defense_penalty
    >>> rho = torch.tensor([0.0, 0.1]); correct = torch.tensor([True, False])
    >>> round(float(deep_defense_penalty(rho, correct, c=25.0, d=5.0)), 4)
    1.3244
    """
    return torch.where(correct, torch.exp(-c * rho), torch.exp(d * rho)).mean()


class DeepDefensePenalty(Penalty):
    """Deep Defense's penalty (Yan et al. 2018) as a part of a net's loss.

    ``(1/n) sum_k exp(-c rho_k)`` over the correctly classified samples and
    ``exp(d rho_k)`` over the others, with ``rho_k`` the relative DeepFool distance
    (:func:`deep_defense_rho`, differentiated through DeepFool's iterations). Training
    losses only; DeepFool runs on the module in eval mode.

    Parameters
    ----------
    weight : float, default=15.0
        ``lambda`` (the authors' LeNet/MNIST value).
    c, d : float, default=25.0, 5.0
    max_iter : int, default=5
        DeepFool iterations.
    overshoot : float, default=0.02
    start_epoch, warmup_epochs, every, reg_batch_size
        The schedule and sub-batch of :class:`~amrlearn.neural.Penalty`
        (``start_epoch = pretrain_epochs + 1`` of
        :class:`~amrlearn.neural.DeepDefenseNeuralNetClassifier`).

    Examples
    --------
    >>> from amrlearn.neural import DeepDefensePenalty
    >>> DeepDefensePenalty(weight=1.0, start_epoch=3)
    DeepDefensePenalty(start_epoch=3, weight=1.0)
    """

    name = "deepdefense"
    needs_input = True
    training_only = True

    _parameter_constraints = {
        **Penalty._parameter_constraints,
        "c": [Interval(Real, 0, None, closed="left")],
        "d": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "overshoot": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self,
        weight=15.0,
        *,
        c=25.0,
        d=5.0,
        max_iter=5,
        overshoot=0.02,
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
        self.c = c
        self.d = d
        self.max_iter = max_iter
        self.overshoot = overshoot

    def compute(self, net, batch, clock):
        module = net.bare_module_

        def fn(inp):
            return logits_of(module(inp))

        rho, correct = deep_defense_rho(
            fn, batch.X, batch.y, max_iter=self.max_iter, overshoot=self.overshoot
        )
        return deep_defense_penalty(rho, correct, c=self.c, d=self.d)
