"""Linear regions of ReLU networks, and the MMR regularizer (Croce, Andriushchenko & Hein 2019).

On the linear region of ``x`` (its ReLU activation pattern fixed), every hidden
pre-activation ``z_j`` and every logit ``f_k`` is affine in the input. The l2 distance
from ``x`` to the hyperplane ``z_j = 0`` is ``|z_j(x)| / ||grad z_j||`` (a boundary of the
region) and to ``f_k = f_y`` it is ``(f_y - f_k) / ||grad f_k - grad f_y||`` (a decision
hyperplane). The gradients are the rows of the region's affine map, computed exactly by
pushing the input's standard basis through the network with the biases removed and every
ReLU replaced by its fixed mask. In-place ReLUs are read before they overwrite their
input, and every call checks that the region's affine map gives the module's own logits:
an activation the ``nn.ReLU`` hooks cannot see (``torch.relu`` in ``forward``) is refused.

* :func:`check_piecewise_linear`: refuses modules that are not ReLU networks of linear
  and convolutional layers;
* :func:`region_distances`: both kinds of distances, differentiable in the weights;
* :func:`mmr_penalty`: MMR-l2 of each sample from those distances;
* :class:`MMRPenalty`: MMR as a part of a net's loss.
"""

import math
from numbers import Integral, Real

import torch
from torch import nn
from torch.func import functional_call

from ..utils._compat import Interval
from ._features import logits_of
from ._penalty import Penalty

__all__ = ["MMRPenalty", "check_piecewise_linear", "mmr_penalty", "region_distances"]

#: The authors' floor on each input-gradient entry of a decision hyperplane's normal:
#: its norm is at least this times sqrt(input size).
_NORM_FLOOR = 1e-5

#: Layers through which the region's map is affine (ReLU aside).
_AFFINE_LAYERS = (nn.Linear, nn.Conv2d, nn.Flatten, nn.Identity, nn.Dropout, nn.AvgPool2d)


def check_piecewise_linear(module):
    """Raise a ``ValueError`` unless ``module`` is a ReLU network of affine layers.

    Its leaf modules must be ``nn.ReLU`` (the activations, at least one) and linear maps:
    ``nn.Linear``, ``nn.Conv2d``, ``nn.AvgPool2d``, ``nn.Flatten``, ``nn.Identity`` and
    ``nn.Dropout`` (identity in eval mode); ``nn.ReLU(inplace=True)`` is fine.
    Activations applied as functions in ``forward`` (``torch.relu(...)``) are invisible
    here: :func:`region_distances` refuses them at its first call (the region's affine
    map does not give the module's logits). Use ``nn.ReLU`` modules.

    Parameters
    ----------
    module : torch.nn.Module

    Returns
    -------
    n_relus : int
        Number of ``nn.ReLU`` modules.

    Examples
    --------
    >>> from torch import nn
    >>> from amrlearn.neural._regions import check_piecewise_linear
    >>> check_piecewise_linear(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)))
    1
    >>> check_piecewise_linear(nn.Sequential(nn.Linear(3, 4), nn.Tanh()))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: MMR needs a piecewise-linear ReLU network ... but layer '1' is a Tanh...
    """
    allowed = ", ".join(c.__name__ for c in (nn.ReLU, *_AFFINE_LAYERS))
    n_relus = 0
    for name, sub in module.named_modules():
        if next(sub.children(), None) is not None:
            continue  # a container: its leaves are checked
        if isinstance(sub, nn.ReLU):
            n_relus += 1
        elif not isinstance(sub, _AFFINE_LAYERS):
            raise ValueError(
                "MMR needs a piecewise-linear ReLU network of linear and convolutional "
                f"layers, but layer {name!r} is a {type(sub).__name__}. Allowed layers: "
                f"{allowed}."
            )
    if n_relus == 0:
        raise ValueError(
            f"MMR needs a ReLU network, but {type(module).__name__} has no nn.ReLU module "
            "(activations applied as functions in forward are not seen): write the "
            "activations as nn.ReLU modules."
        )
    return n_relus


def _relu_hooks(module, hook, *, pre):
    relus = [m for m in module.modules() if isinstance(m, nn.ReLU)]
    register = "register_forward_pre_hook" if pre else "register_forward_hook"
    return [getattr(m, register)(hook) for m in relus]


def _masked_call(module, inp, masks, n, params, on_input=None):
    """The module's logits on ``inp`` with its k-th ReLU call replaced by the k-th mask.

    ``inp`` holds rows shared by the ``n`` samples: the layers before the first ReLU run
    on them once, and the first mask spreads them over the batch (``n`` times as many
    rows from there on). ``params`` replaces parameters (:func:`functional_call`);
    ``on_input(k, lin)`` sees the k-th ReLU's input, shaped (n or 1, rows, ...).
    """
    stash, calls = [], iter(range(len(masks)))

    def keep(m, args):
        # An in-place ReLU would overwrite the input: it gets a copy to work on.
        stash.append(args[0])
        return (args[0].clone(),) if m.inplace else None

    def masked(m, args, out):
        k, lin = next(calls), stash.pop()
        lin = lin.reshape(1 if k == 0 else n, -1, *lin.shape[1:])
        if on_input is not None:
            on_input(k, lin)
        return (lin * masks[k].unsqueeze(1)).reshape(-1, *lin.shape[2:])

    handles = _relu_hooks(module, keep, pre=True) + _relu_hooks(module, masked, pre=False)
    try:
        return logits_of(functional_call(module, params, (inp,)))
    finally:
        for h in handles:
            h.remove()


def _region_maps(module, x):
    """Pre-activations, logits, and the squared norms of their input gradients.

    Returns ``(z, f, z_grad2, f_grad)``: ``z`` of shape (n, N_h), the hidden units in the
    order the ReLUs run; ``f`` (n, K); ``z_grad2`` (n, N_h) the squared norms of
    ``grad_x z_j``; ``f_grad`` (n, D, K) the logits' input gradients.
    """
    pre = []

    def record(m, args):  # a copy where an in-place ReLU overwrites its input
        pre.append(args[0].clone() if m.inplace else args[0])

    handles = _relu_hooks(module, record, pre=True)
    try:
        f = logits_of(module(x))
    finally:
        for h in handles:
            h.remove()
    masks = [(p > 0).to(x.dtype).detach() for p in pre]

    n, dim = x.shape[0], x[0].numel()
    basis = torch.eye(dim, dtype=x.dtype, device=x.device).reshape(dim, *x.shape[1:])
    grad2 = []

    def norms(k, lin):  # the rows of grad_x z of the k-th ReLU's units
        grad2.append(lin.flatten(2).pow(2).sum(1).expand(n, -1))

    no_bias = {
        f"{name}.bias": torch.zeros_like(sub.bias)
        for name, sub in module.named_modules()
        if isinstance(sub, nn.Linear | nn.Conv2d) and sub.bias is not None
    }
    f_grad = _masked_call(module, basis, masks, n, no_bias, norms).reshape(n, dim, -1)
    _check_affine(module, x, f, f_grad, masks)
    z = torch.cat([p.flatten(1) for p in pre], 1)
    return z, f, torch.cat(grad2, 1), f_grad


def _check_affine(module, x, f, f_grad, masks):
    """Raise a ``ValueError`` unless the region's affine map gives the module's logits.

    On the region of ``x``, ``f(x) = J x + c`` with ``J`` the map found with the masks
    and ``c`` the masked network at input 0. An activation the hooks do not see
    (``torch.relu`` in ``forward``) makes the masked network non-linear: they differ.
    """
    n = x.shape[0]
    with torch.no_grad():
        zero = torch.zeros_like(x[:1])
        c = _masked_call(module, zero, masks, n, {}).reshape(n, -1)
        xf, jac = x.flatten(1), f_grad.detach()
        affine = torch.einsum("nd,ndk->nk", xf, jac) + c
        scale = torch.einsum("nd,ndk->nk", xf.abs(), jac.abs()) + c.abs() + f.detach().abs()
        # Generous: rounding (TF32 convolutions on GPUs) stays far below 1% of the scale.
        excess = ((affine - f.detach()).abs() - 1e-2 * scale).flatten(1).max(1).values
    if bool((excess > 0).any()):
        i = int(excess.argmax())
        raise ValueError(
            f"MMR: {type(module).__name__}'s logits are not the affine map of its linear "
            f"region built from its nn.ReLU modules (sample {i} of the batch). forward "
            "applies an activation that is not an nn.ReLU module (torch.relu, "
            "F.relu, ...), or is not deterministic (dropout in train mode). Write every "
            "activation as an nn.ReLU module."
        )


def region_distances(module, x, y):
    """l2 distances from ``x`` to the hyperplanes of its linear region and to the decision
    hyperplanes of that region's affine map.

    Exact for ReLU networks of linear and convolutional layers (see
    :func:`check_piecewise_linear`), and differentiable in the weights (through the
    numerators and the gradients' norms; the masks are constants). The module's mode is
    the caller's business (eval mode for dropout). Raises a ``ValueError`` where the
    region's affine map does not reproduce the module's logits on ``x`` (an activation
    in ``forward`` that is not an ``nn.ReLU`` module).

    Parameters
    ----------
    module : torch.nn.Module
        Returns logits, or ``(logits, features)``.
    x : tensor of shape (n, ...)
    y : tensor of shape (n,) of int64
        True classes.

    Returns
    -------
    d_region : tensor of shape (n, n_hidden)
        ``|z_j(x)| / ||grad_x z_j||`` for every hidden unit (every ReLU input), ``inf``
        where the unit is constant on the region.
    d_decision : tensor of shape (n, n_classes)
        ``(f_y - f_k) / ||grad_x f_k - grad_x f_y||``, signed (negative where ``k`` beats
        ``y``); ``inf`` at ``k = y``. The norm is floored at ``1e-5 sqrt(D)``, ``D`` the
        input size (the authors' stabilizer): where ``f_k - f_y`` is constant on the
        region, the distance is ``(f_y - f_k) / (1e-5 sqrt(D))``, large and negative
        where ``k`` beats ``y`` (misclassified everywhere on the region: a large
        penalty), large and positive where it never does.

    Examples
    --------
    >>> import torch
    >>> from amrlearn.neural._regions import region_distances
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    >>> d_region, d_decision = region_distances(net, torch.zeros(4, 2), torch.zeros(4).long())
    >>> tuple(d_region.shape), tuple(d_decision.shape)
    ((4, 3), (4, 2))
    """
    z, f, z_grad2, f_grad = _region_maps(module, x)
    d_region = _ratio(z.abs(), z_grad2)
    rows = torch.arange(x.shape[0], device=x.device)
    gap = f[rows, y].unsqueeze(1) - f
    w2 = (f_grad - f_grad[rows, :, y].unsqueeze(2)).pow(2).sum(1)
    # The authors' floor on the norm: where f_k - f_y is constant on the region, a large
    # distance of gap's sign (a point that k beats everywhere there is misclassified).
    d_decision = gap / w2.clamp_min(_NORM_FLOOR**2 * x[0].numel()).sqrt()
    true = torch.nn.functional.one_hot(y, f.shape[1]).bool()
    return d_region, torch.where(true, float("inf"), d_decision)


def _ratio(num, norm2):
    """``num / sqrt(norm2)``, ``inf`` where ``norm2 == 0``, with finite gradients."""
    ok = norm2 > 0
    return torch.where(ok, num / torch.where(ok, norm2, 1.0).sqrt(), float("inf"))


def mmr_penalty(d_region, d_decision, *, k_B, k_D, gamma_B, gamma_D):
    """MMR-l2 of each sample, from its distances (:func:`region_distances`).

    ``(1/k_B) sum_{i<=k_B} max(0, 1 - d_B^(i) / gamma_B)
    + (1/k_D) sum_{i<=k_D} max(0, 1 - d_D^(i) / gamma_D)``, with ``d_B^(i)`` the i-th
    smallest distance to the region's boundary hyperplanes and ``d_D^(i)`` the i-th
    smallest (signed) distance to a decision hyperplane. ``k_B`` and ``k_D`` are capped at
    the numbers of hidden units and of other classes.

    Parameters
    ----------
    d_region : tensor of shape (n, n_hidden)
    d_decision : tensor of shape (n, n_classes)
        ``inf`` at the true class.
    k_B, k_D : int
    gamma_B, gamma_D : float

    Returns
    -------
    penalty : tensor of shape (n,)

    Examples
    --------
    >>> import torch
    >>> from amrlearn.neural._regions import mmr_penalty
    >>> d_region = torch.tensor([[0.1, 0.5, 2.0]])
    >>> d_decision = torch.tensor([[float("inf"), -0.2]])
    >>> mmr_penalty(d_region, d_decision, k_B=2, k_D=9, gamma_B=1.0, gamma_D=1.0)
    tensor([1.9000])
    """
    k_b = min(int(k_B), d_region.shape[1])
    k_d = min(int(k_D), d_decision.shape[1] - 1)
    near_b = torch.topk(d_region, k_b, dim=1, largest=False).values
    near_d = torch.topk(d_decision, k_d, dim=1, largest=False).values
    hinge_b = torch.relu(1 - near_b / gamma_B).mean(1)
    hinge_d = torch.relu(1 - near_d / gamma_D).mean(1)
    return hinge_b + hinge_d


class MMRPenalty(Penalty):
    """The maximum margin regularizer MMR-l2 (Croce et al. 2019) as a part of a net's loss.

    The batch mean of :func:`mmr_penalty` of each sample, from the exact distances of
    :func:`region_distances` (on the module in eval mode). Training losses only. The
    module must be a ReLU network (:func:`check_piecewise_linear`, checked when the net
    is initialized).

    Parameters
    ----------
    weight : float, default=3.0
        Final ``lambda`` (the authors' MNIST l2 LeNetSmall: 3.0; CIFAR-10: 1.5).
    gamma_B, gamma_D : float, default=0.45
        Margins of the region and decision boundaries.
    k_B : int, float or tuple of two floats, default=(0.10, 0.02)
        Region hyperplanes counted (see ``k_B`` of
        :class:`~amrlearn.neural.MMRNeuralNetClassifier`; a pair is a schedule over
        the net's ``max_epochs``).
    k_D : int or None, default=None
        Decision hyperplanes counted; ``None``: every other class.
    warmup_epochs : int, default=10
        The authors' ramp of ``lambda`` (epochs from 1).
    start_epoch, every, reg_batch_size
        As in :class:`~amrlearn.neural.Penalty`.

    Attributes
    ----------
    n_hidden_ : int
        Hidden units (ReLU inputs) of the module, known after the first training step.

    Examples
    --------
    >>> from amrlearn.neural import MMRPenalty
    >>> MMRPenalty(k_B=3).get_params()["k_B"]
    3
    """

    name = "mmr"
    needs_input = True
    training_only = True

    _parameter_constraints = {
        **Penalty._parameter_constraints,
        "gamma_B": [Interval(Real, 0, None, closed="neither")],
        "gamma_D": [Interval(Real, 0, None, closed="neither")],
        "k_B": [
            Interval(Integral, 1, None, closed="left"),
            Interval(Real, 0, 1, closed="right"),
            tuple,
        ],
        "k_D": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(
        self,
        weight=3.0,
        *,
        gamma_B=0.45,
        gamma_D=0.45,
        k_B=(0.10, 0.02),
        k_D=None,
        start_epoch=1,
        warmup_epochs=10,
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
        self.gamma_B = gamma_B
        self.gamma_D = gamma_D
        self.k_B = k_B
        self.k_D = k_D

    def initialize(self, net):
        super().initialize(net)
        if isinstance(self.k_B, tuple) and not (
            len(self.k_B) == 2 and all(isinstance(k, Real) and 0 < k <= 1 for k in self.k_B)
        ):
            raise ValueError(
                f"k_B as a tuple is a schedule (start, end) of two fractions in (0, 1]; "
                f"got {self.k_B!r}."
            )
        return self

    def check_net(self, net):
        check_piecewise_linear(net.bare_module_)

    def current_k_B(self, epoch, max_epochs):
        """``k_B`` at ``epoch`` (from 1), in hidden units (needs ``n_hidden_``)."""
        n_h = self.n_hidden_
        if isinstance(self.k_B, tuple):
            k0, k1 = (math.floor(f * n_h) for f in self.k_B)
            frac = min(epoch / max_epochs, 1.0)
            k = int(k0 + (k1 - k0) * frac)
        elif isinstance(self.k_B, Integral):
            k = int(self.k_B)
        else:
            k = math.floor(self.k_B * n_h)
        return max(k, 1)

    def compute(self, net, batch, clock):
        d_region, d_decision = region_distances(net.bare_module_, batch.X, batch.y)
        self.n_hidden_ = int(d_region.shape[1])
        k_D = d_decision.shape[1] - 1 if self.k_D is None else self.k_D
        return mmr_penalty(
            d_region,
            d_decision,
            k_B=self.current_k_B(clock.epoch, clock.max_epochs),
            k_D=k_D,
            gamma_B=self.gamma_B,
            gamma_D=self.gamma_D,
        )
