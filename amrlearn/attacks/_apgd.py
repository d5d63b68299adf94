"""Auto-PGD (APGD, Croce & Hein 2020), l2: written from Algorithm 1 of the paper.

PGD with momentum (``alpha = 0.75``) whose step size needs no tuning: it starts at
``2 eps`` and is halved at checkpoints ``w_j`` (at fractions 0, 0.22, 0.41, ... of the
budget, ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``) where fewer than
``rho = 0.75`` of the steps since the last checkpoint raised the loss, or where neither
the step size nor the best loss changed since the last checkpoint; a halving restarts
from the best point. Two losses: the cross-entropy (APGD-CE), and the targeted
Difference of Logits Ratio (APGD-T with DLR), which is invariant to a shift and a
rescaling of the logits, so that a saturated softmax cannot mask its gradient.
"""

from numbers import Integral, Real

from ..utils._compat import Interval, StrOptions
from ..utils._inputs import CLIP_CONSTRAINT, check_clip
from ._pgd import attack_loss
from ._steps import BestPoints, GradientAttack, ascent_step, project, start

__all__ = ["APGD", "dlr_loss"]


def _checkpoints(steps):
    """The iterations ``w_j`` at which the step size may be halved."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({int(round(q * steps)) for q in p[1:] if 0 < round(q * steps) <= steps})


def dlr_loss(logits, y, target=None):
    """Difference of Logits Ratio per sample (Croce & Hein 2020), to be maximized.

    Untargeted: ``-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3)``; targeted at ``t``:
    ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)``, with ``z_pi1 >= z_pi2 >= ...`` the
    sorted logits. Both are unchanged when the logits are shifted or scaled. With
    fewer classes than the ratio needs, the lowest logit stands in; with two classes the
    denominator is 1 (the plain logit margin).

    Parameters
    ----------
    logits : tensor of shape (n, n_classes)
    y : tensor of shape (n,) of int64
    target : tensor of shape (n,) of int64 or None, default=None

    Returns
    -------
    loss : tensor of shape (n,)

    Examples
    --------
    >>> import torch
    >>> from amrlearn.attacks import dlr_loss
    >>> z = torch.tensor([[4.0, 2.0, 1.0, 0.0]])
    >>> round(dlr_loss(z, torch.tensor([0])).item(), 6)
    -0.666667
    >>> round(dlr_loss(10 * z + 3, torch.tensor([0])).item(), 6)
    -0.666667
    """
    import torch

    z = logits
    k = z.shape[1]
    srt = z.sort(dim=1, descending=True).values
    own = z.gather(1, y[:, None])[:, 0]
    if target is None:
        other = z.masked_fill(torch.nn.functional.one_hot(y, k).bool(), -float("inf"))
        num = own - other.max(dim=1).values
        den = srt[:, 0] - srt[:, min(2, k - 1)]
    else:
        num = own - z.gather(1, target[:, None])[:, 0]
        den = srt[:, 0] - (srt[:, min(2, k - 1)] + srt[:, min(3, k - 1)]) / 2
    if k == 2:
        den = torch.ones_like(den)
    return -num / (den + 1e-12)


class APGD(GradientAttack):
    """Auto-PGD in l2 (APGD-CE, APGD-DLR and targeted APGD-T), without a step size to tune.

    Parameters
    ----------
    eps : float
        Radius of the l2 ball.
    steps : int, default=100
        Iterations per run (AutoAttack's 100).
    loss : {"ce", "dlr"}, default="dlr"
        The cross-entropy (APGD-CE) or the Difference of Logits Ratio (see
        :func:`dlr_loss`).
    n_targets : int, default=0
        0: untargeted. ``k > 0``: one run per target class, the ``k`` classes of
        largest logit other than the true one at ``x`` (AutoAttack's APGD-T uses 9 with
        ``loss="dlr"``); a sample is broken if any run breaks it.
    restarts : int, default=1
        Runs per target (untargeted: runs), each from a new random start.
    rho : float, default=0.75
        A checkpoint halves the step size when fewer than this fraction of its steps
        raised the loss.
    random_start : bool, default=True
        Start from a point drawn uniformly in the ball rather than from ``x``.
    clip : tuple of (float, float) or None, default=(0.0, 1.0)
        The data box. ``X`` must lie in it. ``None`` disables clipping.
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
    L2PGD : Fixed-step PGD, the paper's attack.
    robust_accuracy : ``attack="auto"`` chains PGD on two losses (and APGD on request).

    Notes
    -----
    ``attack.run(fn, x, y)`` and ``attack.broken(fn, x, y)`` are the tensor-level calls,
    as for :class:`L2PGD`. Samples are dropped from a run as soon as an iterate
    misclassifies them, as in :class:`L2PGD`'s ``early_stop``. Every iterate is
    projected onto the ball, then the box (see :class:`L2PGD`), so perturbations never
    exceed ``eps``.

    References
    ----------
    F. Croce, M. Hein. Reliable evaluation of adversarial robustness with an ensemble of
    diverse parameter-free attacks. ICML 2020.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from amrlearn.attacks import APGD
    >>> torch.manual_seed(0)
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))
    >>> X = np.random.default_rng(0).uniform(size=(10, 4)).astype(np.float32)
    >>> y = net(torch.from_numpy(X)).argmax(1).numpy()
    >>> X_adv = APGD(eps=0.5, steps=20, n_targets=2, random_state=0)(net, X, y)
    >>> bool((np.linalg.norm(X_adv - X, axis=1) <= 0.5 + 1e-6).all())
    True
    """

    _parameter_constraints: dict = {
        **GradientAttack._parameter_constraints,
        "eps": [Interval(Real, 0, None, closed="left")],
        "steps": [Interval(Integral, 1, None, closed="left")],
        "loss": [StrOptions({"ce", "dlr"})],
        "n_targets": [Interval(Integral, 0, None, closed="left")],
        "restarts": [Interval(Integral, 1, None, closed="left")],
        "rho": [Interval(Real, 0, 1, closed="both")],
        "random_start": ["boolean"],
        "clip": CLIP_CONSTRAINT,
    }

    def __init__(
        self,
        eps,
        *,
        steps=100,
        loss="dlr",
        n_targets=0,
        restarts=1,
        rho=0.75,
        random_start=True,
        clip=(0.0, 1.0),
        batch_size=256,
        device=None,
        verbose=0,
        random_state=None,
    ):
        self.eps = eps
        self.steps = steps
        self.loss = loss
        self.n_targets = n_targets
        self.restarts = restarts
        self.rho = rho
        self.random_start = random_start
        self.clip = clip
        self.batch_size = batch_size
        self.device = device
        self.verbose = verbose
        self.random_state = random_state

    def _losses(self, logits, y, target):
        if self.loss == "ce":
            if target is None:
                return attack_loss(logits, y, "ce")
            return -attack_loss(logits, target, "ce")
        return dlr_loss(logits, y, target)

    def _attack(self, fn, x, y, generator, track):
        """Every run, each on the samples not yet broken: ``(points, broken)``.

        The points are those of the last run that saw the sample.
        """
        import torch

        from ..utils._alarms import warn_if_training

        warn_if_training(fn, "APGD")
        x = x.detach()
        out = x.clone()
        broken = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        if float(self.eps) == 0:
            with torch.no_grad():
                return out, fn(x).argmax(1) != y
        targets = [None]
        if self.n_targets:
            with torch.no_grad():
                z = fn(x)
            z = z.masked_fill(torch.nn.functional.one_hot(y, z.shape[1]).bool(), -float("inf"))
            order = z.argsort(dim=1, descending=True)
            targets = [order[:, j] for j in range(min(self.n_targets, z.shape[1] - 1))]
        for target in targets:
            for _ in range(self.restarts):
                idx = torch.nonzero(~broken).flatten()
                if idx.numel() == 0:
                    return out, broken
                t = None if target is None else target[idx]
                x_best, hit = self._once(fn, x[idx], y[idx], t, generator, track)
                out[idx] = x_best
                broken[idx] = hit
        return out, broken

    def _once(self, fn, x, y, target, generator, track):
        """One run on the samples ``x``: ``(point per sample, broken)``."""
        import torch

        eps, clip = float(self.eps), check_clip(self.clip)
        n = x.shape[0]
        delta = start(x, eps, self.random_start, clip, generator)
        shape = (-1, *[1] * (x.dim() - 1))
        best = BestPoints(x, track=track)

        def evaluate(idx, d):
            d = d.detach().requires_grad_(True)
            logits = fn(x[idx] + d)
            tgt = None if target is None else target[idx]
            loss = self._losses(logits, y[idx], tgt)
            (grad,) = torch.autograd.grad(loss.sum(), d)
            best.record(idx, x[idx] + d, logits, y[idx], loss)
            return loss.detach(), grad.detach()

        idx = torch.arange(n, device=x.device)
        loss, grad = evaluate(idx, delta)
        s = {
            "idx": idx,
            "delta": delta,
            "prev": delta,
            "grad": grad,
            "loss": loss,
            "best": delta,
            "best_grad": grad,
            "best_loss": loss,
            "eta": torch.full((n,), 2 * eps, device=x.device, dtype=x.dtype),
            "ups": torch.zeros(n, device=x.device),
            "ckpt_loss": loss,
            "halved": torch.zeros(n, dtype=torch.bool, device=x.device),
        }
        checkpoints, last = _checkpoints(self.steps), 0
        for k in range(self.steps):
            kept = best.survivors(s["idx"], *s.values())
            if kept is None:
                break
            s = dict(zip(s, kept[1:]))
            idx, xs = s["idx"], x[s["idx"]]
            z = ascent_step(xs, s["delta"], s["grad"], s["eta"].view(shape), eps, clip)
            a = 1.0 if k == 0 else 0.75
            new = s["delta"] + a * (z - s["delta"]) + (1 - a) * (s["delta"] - s["prev"])
            new = project(xs, new, eps, clip)
            loss, grad = evaluate(idx, new)
            s["ups"] = s["ups"] + (loss > s["loss"]).float()
            s["prev"], s["delta"], s["loss"], s["grad"] = s["delta"], new, loss, grad
            better = loss > s["best_loss"]
            for name, v in (("best", new), ("best_grad", grad), ("best_loss", loss)):
                s[name] = torch.where(better.view(-1, *[1] * (v.dim() - 1)), v, s[name])
            if k + 1 in checkpoints:
                height = k + 1 - last
                last = k + 1
                stalled = ~s["halved"] & (s["best_loss"] <= s["ckpt_loss"])
                halve = (s["ups"] < self.rho * height) | stalled
                s["eta"] = torch.where(halve, s["eta"] / 2, s["eta"])
                h = halve.view(shape)
                s["delta"] = torch.where(h, s["best"], s["delta"])
                s["prev"] = torch.where(h, s["best"], s["prev"])
                s["grad"] = torch.where(h, s["best_grad"], s["grad"])
                s["loss"] = torch.where(halve, s["best_loss"], s["loss"])
                s["halved"], s["ckpt_loss"] = halve, s["best_loss"]
                s["ups"] = torch.zeros_like(s["ups"])
        return best.points, best.broken
