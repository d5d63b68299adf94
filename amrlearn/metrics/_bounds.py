"""Input-space margin bounds of neural nets: Theorem 3 (lower) and a minimum-norm attack (upper).

Theorem 3 (eq. (16) of Wu & Yu, after Hein & Andriushchenko 2017): for a classifier
``f`` predicting ``yhat = argmax_k f_k(x)`` and any ``r > 0``,

    d(x, bd F_yhat) >= min{ min_{k != yhat} (f_yhat(x) - f_k(x)) / L_k, r },

where ``L_k`` is the Lipschitz constant of ``f_yhat - f_k`` on the ball ``B(x, r)``. As in
the paper (Appendix F), ``L_k`` is estimated by the largest gradient norm over points
drawn uniformly in the ball; all ``k`` come from one Jacobian per batch of points
(``torch.func.vmap(jacrev(f))``). The distance of the closest adversarial point that a
minimum-norm ensemble finds bounds the same distance from above.
"""

from numbers import Integral, Real

import numpy as np

from .._paper import BOUND_BUDGET
from ..utils import as_logit_fn, progress
from ..utils._alarms import warn, warn_if_stochastic
from ..utils._compat import Interval
from ..utils._inputs import CLIP_CONSTRAINT, as_input_tensor, check_clip, torch_generator
from ..utils._math import uniform_l2_ball
from ._linear import margins_from_scores

__all__ = ["CHEAP_BOUND_PARAMS", "PAPER_BOUND_PARAMS", "lipschitz_margin_bound", "margin_bounds"]

#: The paper's budget (Appendix F): r = 5, 50 batches of 1024 points per sample.
PAPER_BOUND_PARAMS = dict(BOUND_BUDGET)
#: The default budget of ``margin_report`` on neural nets, cheap enough for
#: cross-validation: 128 points per sample for the Theorem 3 estimate, 100 steps of the
#: minimum-norm ensemble's FMN and DDN.
CHEAP_BOUND_PARAMS = {"radius": 5.0, "n_batches": 1, "batch_size": 128, "attack_steps": 100}


def _validate_budget(radius, n_batches, batch_size, clip):
    from ..utils._compat import validate_parameter_constraints

    validate_parameter_constraints(
        {
            "radius": [Interval(Real, 0, None, closed="neither")],
            "n_batches": [Interval(Integral, 1, None, closed="left")],
            "batch_size": [Interval(Integral, 1, None, closed="left")],
            "clip": CLIP_CONSTRAINT,
        },
        {"radius": radius, "n_batches": n_batches, "batch_size": batch_size, "clip": clip},
        caller_name="lipschitz_margin_bound",
    )
    return check_clip(clip)


def _check_inside(X_t, clip, where):
    """The out-of-box alarm of the bounds: their ``clip`` only shapes the sampled points,
    so a sample outside the box is bounded over a set it does not lie in."""
    if clip is not None and X_t.numel() and (X_t.min() < clip[0] or X_t.max() > clip[1]):
        warn(
            f"{where}: X has values in [{float(X_t.min()):.4g}, {float(X_t.max()):.4g}], "
            f"outside the box clip={clip!r}; the points sampled around those samples are "
            "clipped into a box they do not lie in. Rescale X or pass clip=None.",
            stacklevel=4,
        )


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

    n = X_t.shape[0]
    jac = _jacobian_fn(fn)
    pred_dev = pred.to(fn.device)
    L = None
    total = n * n_samples
    for s in progress(range(0, total, batch_size), verbose=verbose, desc="lipschitz_margin_bound"):
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

    ratio = torch.where(L > 0, gaps / L.clamp_min(1e-300), torch.where(gaps > 0, float("inf"), 0.0))
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
    """The Theorem 3 estimate of the l2 distance to the decision boundary, eq. (16).

    Theorem 3 bounds the distance from below,
    ``d(x) >= min{ min_{k != yhat} (f_yhat(x) - f_k(x)) / L_k, r }``, with ``L_k`` the
    Lipschitz constant of ``f_yhat - f_k`` on ``B(x, r)``. Like the paper, this function
    estimates ``L_k`` as the largest gradient norm over ``n_batches * batch_size``
    points of the ball (``x`` itself and points drawn uniformly in it). An estimate
    from samples can fall short of the true constant, so the result is an estimate of
    the margin, not a guaranteed lower bound (see Notes). One Jacobian per batch of
    points gives every ``k`` at once.

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
        The Theorem 3 estimate of the distance from each sample to the boundary of its
        predicted region (unsigned).
    y_pred : ndarray of shape (n_samples,)
        Predicted labels, if ``return_pred``.

    Notes
    -----
    The bound is exact for affine models (section 5.1): where the model is known to be
    affine (a linear estimator, or a module that
    :func:`amrlearn.utils.is_affine_module` recognizes, such as
    :class:`amrlearn.neural.models.LR`), the gradient is the same everywhere (the
    paper's "sampling size 1 for linear classifiers"), so the closed form (eq. (6)) is
    returned: it holds for every ``r`` and is not capped at ``radius``.
    For other models ``L_k`` is estimated from samples, so it can fall short of the true
    Lipschitz constant, and the estimate then exceeds the distance: it is no bound
    there. :func:`margin_bounds` checks it against the distances of the adversarial
    points it finds and warns when it exceeds them; a larger budget narrows that risk.

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
    clip = _validate_budget(radius, n_batches, batch_size, clip)
    fn = as_logit_fn(model, device)
    X_t = as_input_tensor(X, fn.dtype)
    _check_inside(X_t, clip, "lipschitz_margin_bound")
    with fn.eval_mode():
        warn_if_stochastic(fn, X_t[:8].to(fn.device), "lipschitz_margin_bound")
    bound, _, pred = _lipschitz_bound(
        fn, X_t, radius, n_batches, batch_size, clip, random_state, verbose
    )
    if return_pred:
        return bound, fn.index_label(pred)
    return bound


def _affine_distances(fn, X_t):
    """Exact distances to the boundary of the predicted region of an affine model: eq. (6)."""
    coef, intercept = fn.affine_weights(X_t)
    Xf = X_t.reshape(X_t.shape[0], -1).double().cpu().numpy()
    return margins_from_scores(Xf @ coef.T + intercept, coef)[0]


def _lipschitz_bound(
    fn, X_t, radius, n_batches, batch_size, clip, random_state, verbose, X_adv=None
):
    """Eq. (16) on a tensor: ``(bound, tightened, pred)``.

    ``bound`` is the paper's estimator. ``tightened`` (``None`` without ``X_adv``) also
    takes the secant slopes to the points ``X_adv`` found by an attack: for any two
    points ``a, b`` of the ball, ``|g(a) - g(b)| / ||a - b||`` is at most the Lipschitz
    constant of ``g``, so ``L_k`` stays an estimate from below and, with ``b`` the
    attack's point, the bound is at most the attack's distance (mean value theorem on
    the segment). For an affine model both are the exact distance.
    """
    import torch

    with fn.eval_mode():
        logits = _logits(fn, X_t, batch_size)
        pred = logits.argmax(1)
        if fn.affine:
            exact = _affine_distances(fn, X_t)
            return exact, exact.copy(), pred.numpy()
        rows = torch.arange(len(pred))
        gaps = logits[rows, pred].unsqueeze(1) - logits
        L = _local_lipschitz(
            fn,
            X_t,
            pred,
            radius=float(radius),
            n_samples=n_batches * batch_size,
            batch_size=batch_size,
            clip=clip,
            generator=torch_generator(random_state, fn.device),
            verbose=verbose,
        )
        bound = _bound_from(gaps, L, pred, float(radius)).numpy()
        tightened = None
        if X_adv is not None:
            la = _logits(fn, X_adv, batch_size)
            gaps_adv = la[rows, pred].unsqueeze(1) - la
            u = (X_adv - X_t).flatten(1).double().norm(dim=1)
            ok = (u > 0) & (u <= radius)
            slope = (gaps - gaps_adv).abs() / torch.where(ok, u, 1.0).unsqueeze(1)
            L = torch.maximum(L, torch.where(ok.unsqueeze(1), slope, 0.0))
            tightened = _bound_from(gaps, L, pred, float(radius)).numpy()
    return bound, tightened, pred.numpy()


def _upper_bound(fn, X_t, y_pred, attack, *, attack_steps, clip, random_state, verbose):
    """The minimum-norm attack's points and distances: the upper bound, in one place."""
    from ..attacks import MinimumNormEnsemble

    if attack is None:
        attack = MinimumNormEnsemble(
            steps=attack_steps, clip=clip, random_state=random_state, verbose=verbose
        )
    # Move away from the predicted class: this bounds the distance to the boundary of
    # the predicted region, misclassified samples included.
    return attack(fn, X_t, y_pred)


def _check_order(paper, lo, up):
    """The broken-estimate alarm: Theorem 3's estimate above the distance of an
    adversarial point actually found (beyond float32 rounding)."""
    n = up.size

    def above(b):
        return int(np.sum(b > up * (1 + 1e-5) + 1e-7))

    if above(paper):
        warn(
            f"Theorem 3's estimate exceeds the distance to an adversarial point found on "
            f"{above(paper)} of {n} samples: the Lipschitz constant sampled in the ball "
            "falls short of the true one there, so the estimate is no lower bound (a "
            "larger n_batches * batch_size narrows that). The interval's lower end uses "
            "the estimate tightened by the attack's points.",
            stacklevel=4,
        )
    if above(lo):
        warn(
            f"The tightened lower end exceeds the attack's distance on {above(lo)} "
            "samples (an attack whose distances do not match its points); it is lowered "
            "to that distance.",
            stacklevel=4,
        )


def margin_bounds(
    model,
    X,
    y=None,
    *,
    upper=True,
    lower=True,
    certified=True,
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
    """An interval around the signed l2 margin of each sample, and the exact margin if affine.

    The distance ``d`` from ``x`` to the boundary of its predicted region is bracketed by
    the Theorem 3 estimate (:func:`lipschitz_margin_bound`, tightened by the attack's
    points: an estimate from below, not a guarantee) and the distance of the closest
    adversarial point that the minimum-norm ensemble finds
    (:class:`~amrlearn.attacks.MinimumNormEnsemble` by default; an upper bound). The signed
    margin is ``d`` where the prediction is right and ``-d`` where it is wrong, so it
    lies in ``[lower, upper]``: ``[d_lower, d_upper]`` for a correct sample and
    ``[-d_upper, -d_lower]`` for a misclassified one. ``lower <= upper`` for every
    sample.

    Parameters
    ----------
    model : torch.nn.Module, skorch net, fitted linear estimator or Pipeline
        See :func:`amrlearn.utils.as_logit_fn`. The model counts as affine, with an
        exact margin, when it is a linear estimator (``coef_``) or a module that
        :func:`amrlearn.utils.is_affine_module` recognizes (``nn.Linear``, an
        ``nn.Sequential`` of affine layers, :class:`amrlearn.neural.models.LR`, or a
        module that opts in with ``amrlearn_affine = True``).
    X : array-like or tensor of shape (n_samples, ...)
    y : array-like of shape (n_samples,), default=None
        True labels, mapped through the model's ``classes_``; a bare torch module has
        none, so its labels must be the output indices ``0..n_outputs-1`` (anything else
        is refused). ``None`` treats every prediction as right: the interval is then one
        on the unsigned distance.
    upper, lower : bool, default=True
        Which ends to compute: ``upper`` runs the attack, ``lower`` the Theorem 3
        estimate. An end of the interval whose bound was skipped is the trivial one
        (``d >= 0``, ``d <= inf``).
    certified : bool, default=True
        Also compute the certified margin (:func:`~amrlearn.metrics.certified_margins`),
        a proven lower bound, beside Theorem 3's estimate.
    radius, n_batches, batch_size, clip, random_state, device, verbose
        The budget of the Theorem 3 estimate, as for :func:`lipschitz_margin_bound` (defaults:
        the paper's). ``clip`` is also the attack's box.
    attack : MinimizationAttack, default=None
        The attack of the upper end; ``None`` means
        ``MinimumNormEnsemble(steps=attack_steps, clip=clip, random_state=random_state)``:
        DeepFool, FMN from DeepFool's points and DDN, each point verified by a forward
        pass, the closest kept.
    attack_steps : int, default=100
        Steps of the default attack's FMN and DDN.

    Returns
    -------
    bounds : dict
        - ``lower``, ``upper``: ndarrays of shape (n_samples,), the interval that holds
          the signed margin, ``lower <= upper``;
        - ``lipschitz``: the paper's estimator of the signed margin, Theorem 3 alone
          (:func:`lipschitz_margin_bound`, signed), never tightened by the attack;
          ``None`` when ``lower=False``;
        - ``certified``: the signed certified margin
          (:func:`~amrlearn.metrics.certified_margins`), ``|certified| <= d`` with a
          proof: ``0 <= certified <= m`` where the prediction is right,
          ``m <= certified <= 0`` where it is wrong. ``None`` where the model is not
          certifiable (a layer that ``certified_margins`` does not list, such as Tanh;
          the other keys are computed as usual) or with ``certified=False``;
        - ``exact``: the signed margin in closed form (eq. (6)) where the model is
          affine, else ``None``. The interval then shrinks to it (unless an ``attack``
          is given, which then only gives the upper end);
        - ``y_pred``: the predicted labels.

    Notes
    -----
    When the attack runs first, its points also enter the estimate of ``L_k`` for the
    interval (not for ``lipschitz``): the secant slope
    ``|g_k(x) - g_k(x_adv)| / ||x - x_adv||`` of ``g_k = f_yhat - f_k`` is at most the
    true Lipschitz constant on the ball, so the estimate stays one from below, and by
    the mean value theorem the tightened ``d_lower <= d_upper`` holds by construction
    (where ``x_adv`` lies in the ball; beyond it ``d_lower <= radius``). A violation
    beyond rounding (an attack whose distances do not match its points) is warned about
    and the lower end lowered to the attack's distance, so the interval stays ordered.

    Warnings, all :class:`~amrlearn.exceptions.EvaluationWarning`: ``lipschitz`` above
    the attack's distance on some samples (the sampled Lipschitz constant fell short:
    Theorem 3's estimate is then no bound); ``certified`` above the attack's distance
    (which a proven bound cannot be: a bug); ``X`` outside ``clip`` (the sampled points
    are clipped into a box the sample is not in); a model whose output is random in
    eval mode.

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
    >>> bool(np.all(res["lower"] <= res["upper"]))
    True
    """
    from ..attacks import MinimizationAttack

    clip = _validate_budget(radius, n_batches, batch_size, clip)
    if attack is not None and not isinstance(attack, MinimizationAttack):
        raise TypeError(f"attack must be a MinimizationAttack, got {type(attack).__name__}.")
    fn = as_logit_fn(model, device)
    X_t = as_input_tensor(X, fn.dtype)
    _check_inside(X_t, clip, "margin_bounds")
    n = X_t.shape[0]
    with fn.eval_mode():
        warn_if_stochastic(fn, X_t[:8].to(fn.device), "margin_bounds")
        pred = _logits(fn, X_t, batch_size).argmax(1).numpy()
    y_pred = fn.index_label(pred)
    sign = np.ones(n)
    if y is not None:
        # Compared as column indices: a bare module's labels must be its output indices
        # (no guess from strings), an estimator's are mapped through its classes_.
        sign = np.where(pred == fn.targets(y, X_t).numpy(), 1.0, -1.0)
    exact = _affine_distances(fn, X_t) if fn.affine else None

    up, X_adv = None, None
    if upper:
        if exact is not None and attack is None:
            up = exact.copy()  # the closest boundary point, eq. (7), is the optimal attack
        else:
            X_adv, up = _upper_bound(
                fn,
                X_t,
                y_pred,
                attack,
                attack_steps=attack_steps,
                clip=clip,
                random_state=random_state,
                verbose=verbose,
            )
    cert = None
    if certified:
        from ._certified import certified_radii, check_certificate

        cert = certified_radii(model, X_t, batch_size=batch_size, device=device)
        if cert is not None and up is not None:
            check_certificate(cert, up, "margin_bounds")
    paper, lo = None, None
    if lower:
        paper, tightened, _ = _lipschitz_bound(
            fn, X_t, radius, n_batches, batch_size, clip, random_state, verbose, X_adv=X_adv
        )
        lo = paper if tightened is None else tightened
        if up is not None:
            _check_order(paper, lo, up)
            lo = np.minimum(lo, up)
    lo_d = np.zeros(n) if lo is None else lo
    up_d = np.full(n, np.inf) if up is None else up
    return {
        "lower": np.where(sign > 0, lo_d, -up_d),
        "upper": np.where(sign > 0, up_d, -lo_d),
        "lipschitz": None if paper is None else sign * paper,
        "certified": None if cert is None else sign * cert,
        "exact": None if exact is None else sign * exact,
        "y_pred": y_pred,
    }
