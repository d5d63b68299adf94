"""Input-space margin bounds of neural nets: Theorem 3 (lower) and a minimum-norm attack (upper).

Theorem 3 (eq. (16) of Wu & Yu, after Hein & Andriushchenko 2017): for a classifier
``f`` predicting ``yhat = argmax_k f_k(x)`` and any ``r > 0``,

    d(x, bd F_yhat) >= min{ min_{k != yhat} (f_yhat(x) - f_k(x)) / L_k, r },

where ``L_k`` is the Lipschitz constant of ``f_yhat - f_k`` on the ball ``B(x, r)``. As in
the paper (Appendix F), ``L_k`` is estimated by the largest gradient norm over points
drawn uniformly in the ball; all ``k`` come from one Jacobian per batch of points
(``torch.func.vmap(jacrev(f))``). The attack's distance (DDN) bounds the same distance
from above.
"""

import warnings
from numbers import Integral, Real

import numpy as np

from ..utils import as_logit_fn, progress
from ..utils._compat import Interval
from ._linear import margins_from_scores

__all__ = ["CHEAP_BOUND_PARAMS", "PAPER_BOUND_PARAMS", "lipschitz_margin_bound", "margin_bounds"]

#: The paper's budget (Appendix F): r = 5, 50 batches of 1024 points per sample.
PAPER_BOUND_PARAMS = {"radius": 5.0, "n_batches": 50, "batch_size": 1024}
#: The default budget of ``margin_report`` on neural nets, cheap enough for
#: cross-validation: 128 points per sample for the lower bound, 100 DDN steps.
CHEAP_BOUND_PARAMS = {"radius": 5.0, "n_batches": 1, "batch_size": 128, "attack_steps": 100}


def _validate_budget(radius, n_batches, batch_size, clip):
    from ..utils._compat import validate_parameter_constraints

    validate_parameter_constraints(
        {
            "radius": [Interval(Real, 0, None, closed="neither")],
            "n_batches": [Interval(Integral, 1, None, closed="left")],
            "batch_size": [Interval(Integral, 1, None, closed="left")],
            "clip": [tuple, list, None],
        },
        {"radius": radius, "n_batches": n_batches, "batch_size": batch_size, "clip": clip},
        caller_name="lipschitz_margin_bound",
    )
    if clip is not None and not (len(clip) == 2 and clip[0] < clip[1]):
        raise ValueError(f"clip must be (low, high) with low < high, got {clip!r}.")


def _as_tensor(X, fn):
    import torch

    X_t = X if torch.is_tensor(X) else torch.as_tensor(np.asarray(X))
    X_t = X_t.detach().to(fn.dtype)
    if X_t.dim() < 2 or X_t.shape[0] == 0:
        raise ValueError(f"X must have shape (n_samples, ...), got {tuple(X_t.shape)}.")
    if not torch.isfinite(X_t).all():
        raise ValueError("X contains NaN or infinity.")
    return X_t


def _logits(fn, X_t, batch_size):
    """Logits of all of ``X_t`` (float64, on the CPU), in batches, without gradients."""
    import torch

    out = []
    with torch.no_grad():
        for s in range(0, X_t.shape[0], batch_size):
            out.append(fn(X_t[s : s + batch_size].to(fn.device)).double().cpu())
    return torch.cat(out)


def _jacobian_fn(fn):
    """``z -> J`` with ``J`` of shape (batch, n_classes, *input_shape): one call per batch."""
    from torch.func import jacrev, vmap

    def single(z):
        return fn(z.unsqueeze(0)).squeeze(0)

    return vmap(jacrev(single))


def _local_lipschitz(fn, X_t, pred, *, radius, n_samples, batch_size, clip, generator, verbose):
    """``L[i, k]``: the largest ``||grad (f_pred_i - f_k)||`` over ``X_t[i]`` and
    ``n_samples - 1`` points drawn uniformly in ``B(X_t[i], radius)`` (clipped to ``clip``
    if given)."""
    import torch

    from ..attacks import uniform_l2_ball

    n = X_t.shape[0]
    jac = _jacobian_fn(fn)
    pred_dev = pred.to(fn.device)
    L = None
    total = n * n_samples
    for s in progress(
        range(0, total, batch_size), verbose=verbose, desc="lipschitz_margin_bound"
    ):
        rows = torch.arange(s, min(s + batch_size, total))
        pts = (rows // n_samples).to(fn.device)
        x = X_t[rows // n_samples].to(fn.device)
        z = x + uniform_l2_ball(
            x.shape, radius, generator=generator, device=fn.device, dtype=x.dtype
        )
        # The first point of each sample is its centre: x itself lies in the ball.
        centre = (rows % n_samples == 0).to(fn.device)
        z[centre] = x[centre]
        if clip is not None:
            z = z.clamp(clip[0], clip[1])
        with torch.no_grad():  # the transform still differentiates in x, not in the weights
            J = jac(z).flatten(2)  # (b, K, d)
        Jy = J[torch.arange(J.shape[0], device=J.device), pred_dev[pts]]
        norms = (J - Jy.unsqueeze(1)).norm(dim=2).double()  # (b, K)
        if L is None:
            L = torch.zeros(n, norms.shape[1], dtype=torch.float64, device=fn.device)
        L.scatter_reduce_(0, pts.unsqueeze(1).expand_as(norms), norms, "amax")
    return L.cpu()


def _bound_from(gaps, L, pred, radius):
    """Eq. (16): ``min(min_{k != yhat} gap_k / L_k, r)`` per sample."""
    import torch

    ratio = torch.where(
        L > 0, gaps / L.clamp_min(1e-300), torch.where(gaps > 0, float("inf"), 0.0)
    )
    ratio[torch.arange(ratio.shape[0]), pred] = float("inf")
    return torch.clamp(ratio.min(dim=1).values, max=radius)


def lipschitz_margin_bound(
    model,
    X,
    *,
    radius=5.0,
    n_batches=50,
    batch_size=1024,
    clip=None,
    random_state=0,
    device=None,
    verbose=0,
    return_pred=False,
):
    """Lower bounds on the l2 distance to the decision boundary: Theorem 3, eq. (16).

    ``d(x) >= min{ min_{k != yhat} (f_yhat(x) - f_k(x)) / L_k, r }`` with ``L_k`` the
    largest gradient norm of ``f_yhat - f_k`` over ``n_batches * batch_size`` points of
    ``B(x, r)``: ``x`` itself and points drawn uniformly in the ball. One Jacobian per
    batch of points gives every ``k`` at once.

    Parameters
    ----------
    model : torch.nn.Module, skorch net or fitted linear estimator
        See :func:`amrlearn.utils.as_logit_fn`. Runs where the model is (GPU included).
    X : array-like or tensor of shape (n_samples, ...)
        Flat vectors or images.
    radius : float, default=5.0
        ``r``, the radius of the ball (the paper's value).
    n_batches : int, default=50
        Batches of sampled points per sample (the paper: 50).
    batch_size : int, default=1024
        Points per batch, and rows per Jacobian call (the paper: 1024).
    clip : tuple of (float, float) or None, default=None
        Clip the sampled points to this data box. This changes the set over which
        ``L_k`` is estimated to the ball intersected with the box (the points outside
        are projected onto its faces), so the result then bounds the distance to the
        boundary within the box rather than in the whole space.
    random_state : int, RandomState instance or None, default=0
        Seeds the sampled points: the same seed gives the same bounds.
    device : str, torch.device or None, default=None
        ``None`` keeps the model where it is.
    verbose : int, default=0
        0 silences the progress bar.
    return_pred : bool, default=False
        Also return the predicted labels.

    Returns
    -------
    bounds : ndarray of shape (n_samples,)
        Lower bounds on the distance from each sample to the boundary of its predicted
        region (unsigned).
    y_pred : ndarray of shape (n_samples,)
        Predicted labels, if ``return_pred``.

    Notes
    -----
    The bound is exact for affine models (section 5.1): where the model is known to be
    affine (a linear estimator, or a module that is one ``nn.Linear``), the gradient is
    the same everywhere, so one point suffices (the paper's "sampling size 1 for linear
    classifiers") and the bound holds for every ``r``: it is not capped at ``radius``.
    For other models ``L_k`` is estimated from samples, so it can fall short of the true
    Lipschitz constant, and the "bound" then exceeds the distance; a larger budget
    narrows that risk.

    References
    ----------
    M. Hein, M. Andriushchenko. Formal Guarantees on the Robustness of a Classifier
    against Adversarial Manipulation. NeurIPS 2017.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from amrlearn.metrics import lipschitz_margin_bound
    >>> torch.manual_seed(0)
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    >>> X = np.random.default_rng(0).uniform(size=(5, 4)).astype(np.float32)
    >>> b = lipschitz_margin_bound(net, X, radius=1.0, n_batches=2, batch_size=64)
    >>> b.shape, bool(np.all((b >= 0) & (b <= 1.0)))
    ((5,), True)
    """
    _validate_budget(radius, n_batches, batch_size, clip)
    fn = as_logit_fn(model, device)
    X_t = _as_tensor(X, fn)
    bound, pred = _lipschitz_bound(
        fn, X_t, radius, n_batches, batch_size, clip, random_state, verbose
    )
    if return_pred:
        return bound, fn.index_label(pred)
    return bound


def _lipschitz_bound(
    fn, X_t, radius, n_batches, batch_size, clip, random_state, verbose, X_adv=None
):
    """Eq. (16) on a tensor; ``X_adv`` (points found by an attack) adds secant slopes.

    For any two points ``a, b`` of the ball, ``|g(a) - g(b)| / ||a - b||`` is at most
    the Lipschitz constant of ``g``: taking it into the maximum keeps ``L_k`` a valid
    estimate from below and, with ``b`` the attack's point, makes the bound at most
    the attack's distance (mean value theorem on the segment).
    """
    import torch

    from ..attacks._base import _torch_seed

    generator = torch.Generator(device=fn.device)
    generator.manual_seed(_torch_seed(random_state))
    affine = fn.linear is not None
    radius = float(radius)
    with fn.eval_mode():
        logits = _logits(fn, X_t, batch_size)
        pred = logits.argmax(1)
        rows = torch.arange(len(pred))
        gaps = logits[rows, pred].unsqueeze(1) - logits
        L = _local_lipschitz(
            fn,
            X_t,
            pred,
            radius=radius,
            n_samples=1 if affine else n_batches * batch_size,
            batch_size=batch_size,
            clip=None if clip is None else (float(clip[0]), float(clip[1])),
            generator=generator,
            verbose=verbose,
        )
        if X_adv is not None and not affine:
            la = _logits(fn, X_adv, batch_size)
            gaps_adv = la[rows, pred].unsqueeze(1) - la
            u = (X_adv - X_t).flatten(1).double().norm(dim=1)
            ok = (u > 0) & (u <= radius)
            slope = (gaps - gaps_adv).abs() / torch.where(ok, u, 1.0).unsqueeze(1)
            L = torch.maximum(L, torch.where(ok.unsqueeze(1), slope, 0.0))
    bound = _bound_from(gaps, L, pred, float("inf") if affine else radius).numpy()
    return bound, pred.numpy()


def margin_bounds(
    model,
    X,
    y=None,
    *,
    upper=True,
    lower=True,
    radius=5.0,
    n_batches=50,
    batch_size=1024,
    clip=None,
    attack=None,
    attack_steps=100,
    random_state=0,
    device=None,
    verbose=0,
):
    """Lower and upper bounds on the l2 margin of each sample, and the exact one if linear.

    ``lower`` is Theorem 3's bound (:func:`lipschitz_margin_bound`); ``upper`` is the
    distance of the closest adversarial point that a minimum-norm attack finds
    (:class:`~amrlearn.attacks.MinimumNormEnsemble` by default); ``exact`` is the closed
    form (eq. (6)) where the model is affine.

    Parameters
    ----------
    model : torch.nn.Module, skorch net or fitted linear estimator
        See :func:`amrlearn.utils.as_logit_fn`. The model counts as affine, with an
        exact margin, when it is a linear estimator (``coef_``) or a module that is a
        single ``nn.Linear`` (possibly inside an ``nn.Sequential`` with ``nn.Flatten``).
    X : array-like or tensor of shape (n_samples, ...)
    y : array-like of shape (n_samples,), default=None
        True labels. Given, every returned margin is negated where the prediction is
        wrong (the paper's signed margin); ``None`` returns unsigned distances.
    upper, lower : bool, default=True
        Which bounds to compute (a skipped one is ``None``).
    radius, n_batches, batch_size, clip, random_state, device, verbose
        The budget of the lower bound, as for :func:`lipschitz_margin_bound` (defaults:
        the paper's). ``clip`` is also the attack's box.
    attack : MinimizationAttack, default=None
        The attack of the upper bound; ``None`` means
        ``MinimumNormEnsemble(steps=attack_steps, clip=clip, random_state=random_state)``:
        DeepFool, FMN from DeepFool's points and DDN, each point verified by a forward
        pass, the closest kept.
    attack_steps : int, default=100
        Steps of the default attack's FMN and DDN.

    Returns
    -------
    bounds : dict
        ``lower``, ``upper``, ``exact``: ndarrays of shape (n_samples,) or ``None``;
        ``y_pred``: predicted labels. Both bounds refer to the distance from ``x`` to the
        boundary of its predicted region, ``|lower| <= |upper|``; for an affine model both
        equal ``exact`` (the attack is then the closest boundary point, eq. (7)).

    Notes
    -----
    When the attack runs first, its points also enter the estimate of ``L_k``: the
    secant slope ``|g_k(x) - g_k(x_adv)| / ||x - x_adv||`` of ``g_k = f_yhat - f_k`` is
    at most the true Lipschitz constant on the ball, so the estimate stays one from
    below, and by the mean value theorem ``|lower| <= |upper|`` then holds by
    construction (where ``x_adv`` lies in the ball; beyond it ``lower <= radius``).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from amrlearn.metrics import margin_bounds
    >>> X = np.array([[0.0, 0.0], [1.0, 0.5], [3.0, 1.0], [4.0, 2.0]])
    >>> y = np.array([0, 0, 1, 1])
    >>> res = margin_bounds(LogisticRegression().fit(X, y), X, y)
    >>> bool(np.allclose(res["lower"], res["exact"]) and np.allclose(res["upper"], res["exact"]))
    True
    """
    import torch

    from ..attacks import MinimizationAttack, MinimumNormEnsemble

    _validate_budget(radius, n_batches, batch_size, clip)
    if attack is not None and not isinstance(attack, MinimizationAttack):
        raise TypeError(f"attack must be a MinimizationAttack, got {type(attack).__name__}.")
    fn = as_logit_fn(model, device)
    X_t = _as_tensor(X, fn)
    with fn.eval_mode():
        logits = _logits(fn, X_t, batch_size)
    pred = logits.argmax(1).numpy()
    y_pred = fn.index_label(pred)
    sign = np.ones(len(pred))
    if y is not None:
        y = y.detach().cpu().numpy() if torch.is_tensor(y) else np.asarray(y)
        if y.shape != (len(pred),):
            raise ValueError(f"y must have shape ({len(pred)},), got {y.shape}.")
        sign = np.where(y_pred == y, 1.0, -1.0)

    exact = None
    if fn.linear is not None:
        coef, intercept = fn.linear
        Xf = X_t.reshape(X_t.shape[0], -1).double().numpy()
        exact, _ = margins_from_scores(Xf @ coef.T + intercept, coef)

    up, X_adv = None, None
    if upper:
        if exact is not None and attack is None:
            up = exact.copy()  # the closest boundary point, eq. (7), is the optimal attack
        else:
            if attack is None:
                attack = MinimumNormEnsemble(
                    steps=attack_steps, clip=clip, random_state=random_state, verbose=verbose
                )
            # Move away from the predicted class: this bounds the distance to the
            # boundary of the predicted region, misclassified samples included.
            X_adv, up = attack(fn, X_t, y_pred)
    lo = None
    if lower:
        lo, _ = _lipschitz_bound(
            fn, X_t, radius, n_batches, batch_size, clip, random_state, verbose, X_adv=X_adv
        )
        if up is not None and np.any(lo > up * (1 + 1e-5) + 1e-7):
            bad = int(np.sum(lo > up * (1 + 1e-5) + 1e-7))
            warnings.warn(
                f"The lower bound exceeds the upper bound on {bad} samples.",
                UserWarning,
                stacklevel=2,
            )
    return {
        "lower": None if lo is None else sign * lo,
        "upper": None if up is None else sign * up,
        "exact": None if exact is None else sign * exact,
        "y_pred": y_pred,
    }
