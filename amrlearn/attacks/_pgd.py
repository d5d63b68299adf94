"""l2 projected gradient descent (Madry et al. 2018) and robust accuracy (section 5).

The paper evaluates robustness with l2 PGD: 1000 steps of size 0.01, eps in
{0.5, 1, 1.5, 2} on MNIST and {0.1, 0.2, 0.3, 0.4} on CIFAR10 (Appendix F).
"""

from numbers import Integral, Real

import numpy as np

from ..utils import as_logit_fn, progress
from ..utils._compat import Interval, StrOptions
from ._base import FixedEpsilonAttack, _check_box, _flat_norm, _torch_seed

__all__ = ["L2PGD", "attack_loss", "robust_accuracy", "uniform_l2_ball"]


def uniform_l2_ball(shape, eps, *, generator=None, device=None, dtype=None):
    """Draw perturbations uniformly from the l2 ball of radius ``eps``.

    The direction is a normalized Gaussian vector and the radius is ``eps * U**(1/d)``
    with ``U`` uniform on [0, 1] and ``d`` the number of entries of one sample: the
    radius then has the density ``d r^(d-1) / eps^d`` of the uniform law on the ball
    (not ``eps * U``, which crowds the centre).

    Parameters
    ----------
    shape : tuple of int
        ``(n_samples, *sample_shape)``.
    eps : float or tensor of shape (n_samples,)
        Radius of the ball.
    generator : torch.Generator, default=None
        Source of randomness (torch's global one when None).
    device, dtype : torch device and dtype, default=None

    Returns
    -------
    delta : tensor of shape ``shape``

    Examples
    --------
    >>> import torch
    >>> from amrlearn.attacks import uniform_l2_ball
    >>> d = uniform_l2_ball((5, 3, 4), 0.5, generator=torch.Generator().manual_seed(0))
    >>> bool((d.flatten(1).norm(dim=1) <= 0.5).all())
    True
    """
    import torch

    direction = torch.randn(shape, generator=generator, device=device, dtype=dtype)
    direction = direction / _flat_norm(direction).clamp_min(torch.finfo(direction.dtype).tiny)
    d = int(np.prod(shape[1:]))
    u = torch.rand(shape[0], generator=generator, device=device, dtype=direction.dtype)
    eps = torch.as_tensor(eps, device=direction.device, dtype=direction.dtype)
    radius = eps * u.pow(1.0 / d)
    return direction * radius.view(-1, *[1] * (len(shape) - 1))


def attack_loss(logits, y, loss="ce"):
    """Per-sample loss that PGD ascends.

    Parameters
    ----------
    logits : tensor of shape (n, n_classes)
    y : tensor of shape (n,) of int64
    loss : {"ce", "margin"}, default="ce"
        ``"ce"``: the cross-entropy (Madry et al., the paper's attack). ``"margin"``: the
        logit margin ``max_{k != y} z_k - z_y`` of Carlini & Wagner, whose gradient does
        not vanish when the softmax saturates. A net whose logit gaps exceed about 100
        (float32) has an exactly zero cross-entropy gradient, and PGD on ``"ce"`` then
        never moves: a flat robust accuracy across eps is the telltale sign.

    Returns
    -------
    loss : tensor of shape (n,)

    Examples
    --------
    >>> import torch
    >>> from amrlearn.attacks import attack_loss
    >>> z = torch.tensor([[300.0, 0.0]], requires_grad=True)
    >>> y = torch.tensor([0])
    >>> torch.autograd.grad(attack_loss(z, y, "ce").sum(), z)[0].abs().sum().item()
    0.0
    >>> torch.autograd.grad(attack_loss(z, y, "margin").sum(), z)[0].tolist()
    [[-1.0, 1.0]]
    """
    import torch
    import torch.nn.functional as F

    if loss == "ce":
        return F.cross_entropy(logits, y, reduction="none")
    if loss == "margin":
        true = logits.gather(1, y[:, None])[:, 0]
        other = logits.masked_fill(
            torch.nn.functional.one_hot(y, logits.shape[1]).bool(), -float("inf")
        )
        return other.max(dim=1).values - true
    raise ValueError(f"loss must be 'ce' or 'margin', got {loss!r}.")


def _project(x, delta, eps, clip):
    """Project ``delta`` onto the l2 ball of radius ``eps``, then ``x + delta`` onto the box.

    The box step only moves coordinates towards ``x`` (which lies in the box), so it
    never increases the norm: the result lies in both sets.
    """
    norm = _flat_norm(delta)
    delta = delta * _ball_factor(norm, eps)
    if clip is not None:
        delta = (x + delta).clamp(clip[0], clip[1]) - x
    return delta


def _ball_factor(norm, eps):
    """``min(1, eps / norm)``, equal to 1 where ``norm`` is 0."""
    import torch

    return torch.where(norm > eps, eps / norm.clamp_min(torch.finfo(norm.dtype).tiny), 1.0)


class L2PGD(FixedEpsilonAttack):
    """l2 projected gradient descent, the attack of the paper's section 5.

    Each step ascends the cross-entropy along its normalized gradient,
    ``delta <- delta + step_size * g / ||g||``, projects ``delta`` onto the l2 ball of
    radius ``eps`` and then ``x + delta`` onto the box ``clip``. The iterate returned for
    each sample is the best one seen: a misclassified iterate if there was any (the
    sample counts as broken), else the one of highest loss.

    Parameters
    ----------
    eps : float
        Radius of the l2 ball. ``eps=0`` returns ``x`` unchanged.
    steps : int, default=1000
        Gradient steps per restart (the paper uses 1000).
    step_size : float, default=0.01
        Length of each step (the paper uses 0.01).
    random_start : bool, default=True
        Start from a point drawn uniformly in the ball (see :func:`uniform_l2_ball`)
        rather than from ``x``.
    clip : tuple of (float, float) or None, default=(0.0, 1.0)
        The data box. ``X`` must lie in it. ``None`` disables clipping.
    restarts : int, default=1
        Independent runs; a sample is broken if any run breaks it.
    loss : {"ce", "margin"}, default="ce"
        The loss ascended: the cross-entropy (the paper's) or the logit margin of Carlini
        & Wagner, which still has a gradient where the softmax saturates (see
        :func:`attack_loss`).
    early_stop : bool, default=True
        Stop attacking a sample as soon as an iterate misclassifies it (it is broken,
        which is all robust accuracy needs). ``False`` runs every step on every sample
        and returns the highest-loss misclassified iterate, as adversarial training
        may prefer.
    batch_size : int, default=256
        Samples attacked at once by ``__call__``.
    device : str, torch.device or None, default=None
        Where to run; ``None`` keeps the model where it is.
    verbose : int, default=0
        0 silences the progress bar.
    random_state : int, RandomState instance or None, default=None
        Seeds the random starts.

    See Also
    --------
    robust_accuracy : Accuracy under this attack over a grid of eps.
    DDN : A minimization attack, for the distance to the boundary.

    Notes
    -----
    ``attack(model, X, y)`` handles batching, eval mode and the device. For adversarial
    training, call ``attack.run(fn, x, y)`` on tensors on the device, with
    ``fn = amrlearn.utils.as_logit_fn(module)``; ``run`` neither switches the module's
    mode nor touches the gradients of its parameters, and uses torch's global random
    generator unless ``generator`` is given.

    References
    ----------
    A. Madry, A. Makelov, L. Schmidt, D. Tsipras, A. Vladu. Towards Deep Learning Models
    Resistant to Adversarial Attacks. ICLR 2018.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from amrlearn.attacks import L2PGD
    >>> torch.manual_seed(0)
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> X = np.random.default_rng(0).uniform(size=(10, 4)).astype(np.float32)
    >>> y = net(torch.from_numpy(X)).argmax(1).numpy()
    >>> X_adv = L2PGD(eps=0.5, steps=20, step_size=0.1, random_state=0)(net, X, y)
    >>> bool((np.linalg.norm(X_adv - X, axis=1) <= 0.5 + 1e-6).all())
    True
    """

    _parameter_constraints: dict = {
        **FixedEpsilonAttack._parameter_constraints,
        "eps": [Interval(Real, 0, None, closed="left")],
        "steps": [Interval(Integral, 0, None, closed="left")],
        "step_size": [Interval(Real, 0, None, closed="left")],
        "random_start": ["boolean"],
        "clip": [tuple, list, None],
        "restarts": [Interval(Integral, 1, None, closed="left")],
        "early_stop": ["boolean"],
        "loss": [StrOptions({"ce", "margin"})],
    }

    def __init__(
        self,
        eps,
        *,
        steps=1000,
        step_size=0.01,
        random_start=True,
        clip=(0.0, 1.0),
        restarts=1,
        early_stop=True,
        loss="ce",
        batch_size=256,
        device=None,
        verbose=0,
        random_state=None,
    ):
        self.eps = eps
        self.steps = steps
        self.step_size = step_size
        self.random_start = random_start
        self.clip = clip
        self.restarts = restarts
        self.early_stop = early_stop
        self.loss = loss
        self.batch_size = batch_size
        self.device = device
        self.verbose = verbose
        self.random_state = random_state

    def run(self, fn, x, y, *, generator=None):
        """Attack one batch; return the best iterate per sample (a tensor like ``x``).

        Parameters
        ----------
        fn : callable
            ``fn(x) -> logits`` (see :func:`amrlearn.utils.as_logit_fn`); its mode is the
            caller's business.
        x : tensor of shape (n, ...)
            Inputs on the model's device, inside the box ``clip``.
        y : tensor of shape (n,) of int64
            Indices of the true classes.
        generator : torch.Generator, default=None
            For the random starts; torch's global generator when None.

        Returns
        -------
        x_adv : tensor like ``x``, detached
        """
        return self._run(fn, x, y, generator=generator)[0]

    def _run(self, fn, x, y, *, generator=None, track=True):
        """``run``, also returning the boolean tensor of broken samples.

        ``track=False`` skips the bookkeeping of the best iterates (``best`` is then
        ``x``): robust accuracy needs the broken flags alone.
        """
        import torch

        eps = float(self.eps)
        clip = None if self.clip is None else (float(self.clip[0]), float(self.clip[1]))
        x = x.detach()
        best = x.clone()
        best_loss = torch.full((x.shape[0],), -float("inf"), device=x.device)
        broken = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)

        def record(idx, x_cur, logits, loss):
            # Best so far: any misclassified iterate beats a correct one; then higher loss.
            wrong = logits.detach().argmax(1) != y[idx]
            was = broken[idx]
            if not track:
                broken[idx] = was | wrong
                return
            loss = loss.detach().float()
            better = (wrong & ~was) | ((wrong == was) & (loss > best_loss[idx]))
            if self.early_stop:
                better &= ~was
            sel = idx[better]
            best[sel] = x_cur.detach()[better]
            best_loss[sel] = loss[better]
            broken[idx] = was | wrong

        for _ in range(self.restarts):
            idx = torch.nonzero(~broken).flatten() if self.early_stop else torch.arange(
                x.shape[0], device=x.device
            )
            if idx.numel() == 0:
                break
            x0 = x[idx]
            if self.random_start and eps > 0:
                delta = uniform_l2_ball(
                    x0.shape, eps, generator=generator, device=x.device, dtype=x.dtype
                )
            else:
                delta = torch.zeros_like(x0)
            delta = _project(x0, delta, eps, clip)
            for step in range(self.steps + 1):
                delta.requires_grad_(True)
                logits = fn(x0 + delta)
                loss = attack_loss(logits, y[idx], self.loss)
                record(idx, x0 + delta, logits, loss)
                if step == self.steps:
                    break
                (grad,) = torch.autograd.grad(loss.sum(), delta)
                delta = delta.detach()
                if self.early_stop:
                    keep = ~broken[idx]
                    if not keep.any():
                        break
                    if not keep.all():
                        idx, x0, delta, grad = idx[keep], x0[keep], delta[keep], grad[keep]
                grad = grad / _flat_norm(grad).clamp_min(1e-12)
                delta = _project(x0, delta + self.step_size * grad, eps, clip)
        return best, broken


def robust_accuracy(
    model,
    X,
    y,
    eps=(0.5, 1.0, 1.5, 2.0),
    *,
    steps=1000,
    step_size=0.01,
    random_start=True,
    clip=(0.0, 1.0),
    restarts=1,
    loss="ce",
    batch_size=256,
    device=None,
    verbose=0,
    random_state=None,
):
    """Accuracy under l2 PGD for each radius of a grid: the paper's robustness measure.

    Work is shared across the grid. The radii are processed in increasing order; a
    sample misclassified at ``x`` is never attacked, and a sample broken at a radius
    is counted as broken at every larger radius without being attacked again (its
    adversarial point lies in every larger ball). Only the survivors of one radius are
    attacked at the next. ``eps=0`` gives the clean accuracy.

    Parameters
    ----------
    model : torch.nn.Module, skorch net or fitted linear estimator
        See :func:`amrlearn.utils.as_logit_fn`.
    X : array-like or tensor of shape (n_samples, ...)
        Inputs, inside the box ``clip``.
    y : array-like of shape (n_samples,)
        True labels.
    eps : float or sequence of float, default=(0.5, 1.0, 1.5, 2.0)
        Radii (the paper's MNIST grid by default; {0.1, 0.2, 0.3, 0.4} on CIFAR10).
    steps, step_size, random_start, clip, restarts, batch_size, device, verbose, random_state
        As for :class:`L2PGD`.
    loss : {"ce", "margin"} or sequence of them, default="ce"
        The loss PGD ascends (see :func:`attack_loss`). A sequence, e.g.
        ``("ce", "margin")``, attacks each survivor with every loss in turn: a sample is
        robust only if no attack breaks it. The cross-entropy alone is the paper's setting;
        adding ``"margin"`` guards against saturated softmaxes (gradient masking).

    Returns
    -------
    accuracies : ndarray of shape (n_eps,)
        ``accuracies[i]`` is the robust accuracy at ``eps[i]``, in the order given.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from amrlearn.attacks import robust_accuracy
    >>> torch.manual_seed(0)
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> X = np.random.default_rng(0).uniform(size=(20, 4)).astype(np.float32)
    >>> y = net(torch.from_numpy(X)).argmax(1).numpy()
    >>> acc = robust_accuracy(net, X, y, eps=[0.0, 0.1, 0.5], steps=20, step_size=0.05,
    ...                       random_state=0)
    >>> acc.tolist()[0], bool(np.all(np.diff(acc) <= 0))
    (1.0, True)
    """
    import torch

    eps_arr = np.atleast_1d(np.asarray(eps, dtype=np.float64))
    if eps_arr.ndim != 1 or eps_arr.size == 0 or np.any(~np.isfinite(eps_arr)) or np.any(
        eps_arr < 0
    ):
        raise ValueError(f"eps must be a non-empty sequence of finite radii >= 0, got {eps!r}.")
    losses = [loss] if isinstance(loss, str) else list(loss)
    if not losses:
        raise ValueError("loss must name at least one loss.")
    attack = L2PGD(
        eps=float(eps_arr.max()),
        steps=steps,
        step_size=step_size,
        random_start=random_start,
        clip=clip,
        restarts=restarts,
        early_stop=True,
        loss=losses[0],
        batch_size=batch_size,
        device=device,
        verbose=verbose,
        random_state=random_state,
    )
    for name in losses:
        attack.set_params(loss=name)._check_params()
    fn = as_logit_fn(model, device)
    X_t = X if torch.is_tensor(X) else torch.as_tensor(np.asarray(X))
    X_t = X_t.detach().to(fn.dtype)
    y_np = y.detach().cpu().numpy() if torch.is_tensor(y) else np.asarray(y)
    if X_t.dim() < 2 or y_np.shape != (X_t.shape[0],) or X_t.shape[0] == 0:
        raise ValueError(
            f"X must have shape (n_samples, ...) and y shape (n_samples,), got "
            f"{tuple(X_t.shape)} and {y_np.shape}."
        )
    if not torch.isfinite(X_t).all():
        raise ValueError("X contains NaN or infinity.")
    _check_box(X_t, clip)
    y_t = torch.as_tensor(fn.label_index(y_np))
    n = X_t.shape[0]
    generator = torch.Generator(device=fn.device)
    generator.manual_seed(_torch_seed(random_state))

    def batches(index):
        for s in range(0, len(index), batch_size):
            sel = index[s : s + batch_size]
            yield sel, X_t[sel].to(fn.device), y_t[sel].to(fn.device)

    with fn.eval_mode(), torch.no_grad():
        correct = torch.zeros(n, dtype=torch.bool)
        for sel, xb, yb in batches(torch.arange(n)):
            correct[sel] = (fn(xb).argmax(1) == yb).cpu()
    order = np.argsort(eps_arr, kind="stable")
    acc = np.empty(eps_arr.size)
    survivors = torch.nonzero(correct).flatten()
    with fn.eval_mode():
        for i in progress(order, verbose=verbose, desc="robust_accuracy"):
            e = float(eps_arr[i])
            if e > 0 and survivors.numel():
                attack.eps = e
                for name in losses:
                    attack.loss = name
                    still = []
                    for sel, xb, yb in batches(survivors):
                        _, broken = attack._run(fn, xb, yb, generator=generator, track=False)
                        still.append(sel[~broken.cpu()])
                    survivors = torch.cat(still)
                    if survivors.numel() == 0:
                        break
            acc[i] = survivors.numel() / n
    return acc
