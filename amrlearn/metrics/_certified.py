"""Certified l2 margins: lower bounds on the distance to the decision boundary that hold.

Theorem 3's bound (:func:`~amrlearn.metrics.lipschitz_margin_bound`) estimates the
Lipschitz constant from samples, so it can exceed the distance. Here the constant is
bounded with a proof (the global form of Tsuzuku et al. 2018 and Leino et al. 2021): for
a ReLU net ``f(x) = A phi(x) + c`` whose feature map ``phi`` (everything below the last
affine layers) is ``P``-Lipschitz,

    |(f_y - f_k)(x) - (f_y - f_k)(x')| <= ||a_y - a_k|| P ||x - x'||,

so no point closer than ``min_{k != y} (f_y(x) - f_k(x)) / (||a_y - a_k|| P)`` is
classified otherwise. ``P`` is a product of proven bounds (:mod:`._chain`, :mod:`._spectral`).
"""

from numbers import Integral

import numpy as np

from ..utils import as_logit_fn
from ..utils._compat import Interval, StrOptions, validate_parameter_constraints
from ..utils._inputs import as_input_tensor, as_labels
from ._linear import margins_from_scores

__all__ = ["LIPSCHITZ_RTOL", "certified_margins", "layerwise_lipschitz"]

#: Every Lipschitz bound is enlarged by this relative amount. It covers the float64
#: rounding of the SVDs, eigenvalues, FFTs and Gram iterations (about ``n * 1e-16``
#: relative) with more than six orders of magnitude to spare.
LIPSCHITZ_RTOL = 1e-6

_PARAMS = {
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "conv_bound": [StrOptions({"eig", "gram"})],
    "method": [StrOptions({"global", "crown"})],
}


def _model_chain(model, fn, X_t):
    """The model's layers as a :class:`~._chain.Chain` in float64; a Pipeline's affine
    scaler comes first."""
    import torch
    from sklearn.pipeline import Pipeline

    from ..utils._affine import pipeline_affine
    from ..utils._torch import LogitFunction, _is_skorch_net
    from ._chain import Chain, NotCertifiableError, _Diag, module_chain

    ops = []
    if isinstance(model, Pipeline):
        scale, shift, _ = pipeline_affine(model)  # as_logit_fn refused any other step
        model = model.steps[-1][1]
        if scale is not None:
            s, t = (torch.as_tensor(v, dtype=torch.float64) for v in (scale, shift))
            ops.append(_Diag("scaler", s, t, flat=True))
    if _is_skorch_net(model):
        model = model.module_
    elif isinstance(model, LogitFunction):
        if model.module is None or model._forward is not model.module:
            raise NotCertifiableError(
                "certified_margins reads the layers of the model: pass the module, the net "
                "or the Pipeline itself, not a LogitFunction that wraps it."
            )
        model = model.module
    return Chain(ops + module_chain(model), X_t[:2].cpu())


#: Samples on which the chain's float64 logits are compared with the model's.
N_CHECKED = 64


def _check_chain(chain, fn, X_t, logits):
    """Refuse a chain whose float64 logits are not the model's (to float rounding) on
    ``N_CHECKED`` samples spread over ``X_t``: a forward hook or an unusual ``forward``
    would make the certificate bound another net. Returns the largest relative rounding
    ``|f_model - f_chain| / (1 + max |f|)`` seen."""
    import torch

    from ._chain import NotCertifiableError

    if not bool(torch.isfinite(logits).all()):
        raise NotCertifiableError(
            "The model's logits are not all finite (NaN or inf: a diverged net?); no margin "
            "of it can be certified."
        )
    idx = torch.unique(torch.linspace(0, len(X_t) - 1, min(len(X_t), N_CHECKED)).round().long())
    device = fn.device if fn.device.type in ("cpu", "cuda") else torch.device("cpu")
    with torch.no_grad():
        out = chain(X_t[idx].to(device)).cpu()
    if not bool(torch.isfinite(out).all()):
        raise NotCertifiableError(
            "The model's layers give non-finite logits (NaN or inf weights: a diverged "
            "net?); no margin of it can be certified."
        )
    if out.shape != logits[idx].shape:
        raise NotCertifiableError(
            f"The layers give logits of shape {tuple(out.shape)}, the model "
            f"{tuple(logits[idx].shape)}."
        )
    rel = (out - logits[idx]).abs().max(dim=1).values / (1.0 + out.abs().max(dim=1).values)
    if bool((rel > 1e-4).any()):
        raise NotCertifiableError(
            f"The model's logits differ from those of the chain of its layers (by up to "
            f"{float(rel.max()):.3g} relative): its forward is not the layers applied in "
            "order (a forward hook, or an overridden forward?). Only such chains are "
            "certified."
        )
    return float(rel.max())


def _model_logits(fn, X_t, batch_size):
    import torch

    with torch.no_grad():
        return torch.cat(
            [
                fn(X_t[s : s + batch_size].to(fn.device)).double().cpu()
                for s in range(0, len(X_t), batch_size)
            ]
        )


def _lipschitz(chain, conv_bound, estimate, random_state):
    """``(factors, feature, rows, pairwise)`` of a chain; see :func:`layerwise_lipschitz`."""
    import math

    import torch

    from ..utils._inputs import torch_generator
    from ._chain import pairwise_norms

    gen = torch_generator(random_state, "cpu") if estimate else None
    factors = chain.factors(conv_bound, estimate, gen)
    feature = math.prod(f["bound"] for f in factors) * (1.0 + LIPSCHITZ_RTOL)
    rows = chain.head_rows()
    pairwise = pairwise_norms(rows) * feature * (1.0 + LIPSCHITZ_RTOL)
    logit = float(torch.linalg.matrix_norm(rows, ord=2)) * feature * (1.0 + LIPSCHITZ_RTOL)
    return factors, feature, pairwise, logit


def layerwise_lipschitz(model, X, *, conv_bound="eig", estimate=False, random_state=0, device=None):
    """Proven upper bounds on the Lipschitz constants of a ReLU net, layer by layer, in l2.

    The net ``f(x) = A phi(x) + c`` is read as a chain of layers (see
    :func:`certified_margins` for which): ``phi`` ends with its last nonlinearity, ``A``
    (the *head*, usually the last ``nn.Linear``) is read off exactly. ``phi`` is bounded
    piece by piece: the affine layers between two nonlinearities form a *segment*, ReLU
    and max pooling are the pieces between them.

    Parameters
    ----------
    model : torch.nn.Module, skorch net, or Pipeline of affine scalers ending in one
        An ``nn.Sequential`` of supported layers or an amrlearn zoo model; it is read in
        eval mode.
    X : array-like or tensor of shape (n_samples, ...)
        A few inputs (the first two are used): they fix the shape of every layer, on
        which the norm of a convolution depends.
    conv_bound : {"eig", "gram"}, default="eig"
        How a large convolution's frequency blocks are normed (see Notes).
    estimate : bool, default=False
        Also give each segment a power-iteration *lower* estimate of its norm (100
        steps), to show how tight the bound is. It proves nothing.
    random_state : int, RandomState instance or None, default=0
        Seeds the power iteration.
    device : str, torch.device or None, default=None
        ``None`` keeps the model where it is. The bounds are computed on the CPU.

    Returns
    -------
    lipschitz : dict
        - ``factors``: list of dict, one per piece of ``phi``: ``layers`` (names),
          ``kind`` (``"segment"``, ``"relu"`` or ``"maxpool"``), ``bound``, ``method`` and
          ``estimate`` (``None`` unless ``estimate``);
        - ``feature``: float, the bound on the Lipschitz constant of ``phi``: the product
          of the factors, enlarged by :data:`LIPSCHITZ_RTOL`;
        - ``pairwise``: ndarray of shape (n_logits, n_logits), ``L_yk = ||a_y - a_k||
          * feature``, a bound on the Lipschitz constant of ``f_y - f_k``;
        - ``logit``: float, a bound on the Lipschitz constant of ``f`` itself
          (``||A||_2 * feature``).

    Notes
    -----
    How each piece is bounded (every bound holds; none is estimated from samples):

    * a segment whose smaller side has at most 1024 dimensions (and larger side at most
      131072): its exact norm, the square root of the largest eigenvalue of its Gram
      matrix, built column by column from the layers themselves (float64);
    * else layer by layer, the product of: ``nn.Linear``: the exact largest singular
      value (``torch.linalg.matrix_norm(ord=2)``, float64); batch norm: folded into the
      neighbouring Linear or Conv2d (else its largest ``|scale|``); ``nn.Conv2d``: exact
      as above where small, else the exact norm of a circular convolution on a grid of
      ``ceil(n / stride) + ceil(k_eff / stride)`` points per axis, which contains the
      zero-padded layer as a part and so bounds it (proof in
      :func:`~amrlearn.metrics._spectral.conv2d_norm_bound`); each of its frequency
      blocks normed exactly (``conv_bound="eig"``) or by 12 steps of Gram iteration
      (``"gram"``, Delattre et al. 2023, at most 0.1 % above for blocks of rank up to
      1000); average pooling: ``sqrt(||A||_1 ||A||_inf)`` (exact, ``1 / k``, for
      non-overlapping ``k x k`` windows); reshapes: 1;
    * ReLU: 1; max pooling: 1 without overlap, ``sqrt(c_h c_w)`` when an input lies in
      up to ``c_h x c_w`` windows.

    References
    ----------
    Y. Tsuzuku, I. Sato and M. Sugiyama. Lipschitz-Margin Training. NeurIPS 2018.
    B. Delattre, Q. Barthélemy, A. Araujo and A. Allauzen. Efficient Bound of Lipschitz
    Constant for Convolutional Layers by Gram Iteration. ICML 2023.

    Examples
    --------
    >>> import torch
    >>> from amrlearn.metrics import layerwise_lipschitz
    >>> torch.manual_seed(0)
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> lip = layerwise_lipschitz(net, torch.zeros(2, 4), estimate=True)
    >>> [f["kind"] for f in lip["factors"]]
    ['segment', 'relu']
    >>> seg = lip["factors"][0]
    >>> bool(seg["estimate"] <= seg["bound"] * (1 + 1e-9)), lip["pairwise"].shape
    (True, (3, 3))
    """
    validate_parameter_constraints(
        _PARAMS, {"batch_size": 1, "conv_bound": conv_bound}, caller_name="layerwise_lipschitz"
    )
    fn = as_logit_fn(model, device)
    X_t = as_input_tensor(X, fn.dtype)[:2]
    with fn.eval_mode():
        if fn.linear is not None or fn.affine:
            return _affine_lipschitz(fn, X_t)
        chain = _model_chain(model, fn, X_t)
        _check_chain(chain, fn, X_t, _model_logits(fn, X_t, 2))
        factors, feature, pairwise, logit = _lipschitz(chain, conv_bound, estimate, random_state)
    return {"factors": factors, "feature": feature, "pairwise": pairwise, "logit": logit}


def _affine_lipschitz(fn, X_t):
    """An affine model: ``phi`` is the identity and ``A`` its weights, exactly."""
    import torch

    from ._chain import pairwise_norms

    coef, _ = fn.affine_weights(X_t)
    rows = torch.as_tensor(coef, dtype=torch.float64)
    return {
        "factors": [],
        "feature": 1.0,
        "pairwise": pairwise_norms(rows),
        "logit": float(torch.linalg.matrix_norm(rows, ord=2)),
    }


def certified_margins(
    model,
    X,
    y=None,
    *,
    conv_bound="eig",
    batch_size=256,
    device=None,
    return_lipschitz=False,
    method="global",
):
    """Signed certified l2 margins: provable lower bounds on the distance to the boundary.

    For each sample, ``r = min_{k != yhat} (f_yhat(x) - f_k(x)) / L_yhat,k`` with
    ``L_yk`` a *proven* upper bound on the Lipschitz constant of ``f_y - f_k``
    (:func:`layerwise_lipschitz`): no point of the open l2 ball of radius ``r`` around
    ``x`` is classified otherwise than ``x``, so ``r`` never exceeds the distance that any
    attack can find. Unlike Theorem 3's estimate
    (:func:`~amrlearn.metrics.lipschitz_margin_bound`), it holds; it is also much
    smaller on nets not trained for it.

    Parameters
    ----------
    model : torch.nn.Module, skorch net, fitted linear estimator or Pipeline
        - a fitted linear estimator (``coef_``), or a module that
          :func:`amrlearn.utils.is_affine_module` recognizes: the exact margin (eq. (6));
        - a feed-forward ReLU net: an ``nn.Sequential`` (nested ones included) of
          ``nn.Linear``, ``nn.Conv2d`` (zero padding), ``nn.ReLU``, ``nn.MaxPool2d``,
          ``nn.AvgPool2d``, ``nn.Flatten``, ``nn.Unflatten``, ``nn.BatchNorm1d/2d`` (with
          running statistics), ``nn.Dropout`` and ``nn.Identity``; or an amrlearn zoo
          model (:mod:`amrlearn.neural.models`: ``MLP``, ``CNN``, ``ConvNet``, ``LeNet``,
          ``LeNetSmall``, ``LR``); or a fitted skorch net of one of these; or a Pipeline
          of affine scalers ending in one. Anything else (other activations, residual
          connections, custom ``forward`` methods, subclasses) raises a ValueError. The
          model is evaluated in eval mode (dropout off, batch norm on its running
          statistics) and its mode restored.
    X : array-like or tensor of shape (n_samples, ...)
    y : array-like of shape (n_samples,), default=None
        True labels (mapped through the model's ``classes_``). ``None`` treats every
        prediction as right: the margins are then the unsigned certified radii.
    conv_bound : {"eig", "gram"}, default="eig"
        How large convolutions are bounded; see :func:`layerwise_lipschitz`.
    batch_size : int, default=256
        Samples per forward pass.
    device : str, torch.device or None, default=None
        Where the forward passes run (``None``: where the model is); the Lipschitz bound
        is computed on the CPU, once per call.
    return_lipschitz : bool, default=False
        Also return the :func:`layerwise_lipschitz` dict.
    method : {"global", "crown"}, default="global"
        ``"global"``: the Lipschitz certificate above, one bound per net. ``"crown"``:
        also bound each gap on the ball around the sample by linear bound propagation
        (CROWN, Zhang et al. 2018; :mod:`amrlearn.metrics._local`) and return the
        largest radius it certifies, searched from the global radius up (doubling, then
        bisection; 14 evaluations per sample), so never less than ``"global"``. It costs
        14 backward passes per sample and logit, more for deep nets (see Notes). Linear
        models are certified exactly either way.

    Returns
    -------
    margins : ndarray of shape (n_samples,)
        ``r`` where the prediction is right and ``-r`` where it is wrong (then ``<= 0``):
        the prediction, right or wrong, is certified constant within ``|margin|``, so
        ``margin`` is a lower bound on the signed margin of a correct sample and an
        upper bound on that of a misclassified one. ``inf`` where no other class can
        ever win (``a_y == a_k`` for all ``k``).
    lipschitz : dict
        If ``return_lipschitz``.

    See Also
    --------
    layerwise_lipschitz : The bounds behind ``L_yk``, piece by piece.
    margin_bounds : Theorem 3's estimate and the attack's upper bound.

    Notes
    -----
    The layers read are checked to be the ones the model runs: on up to 64 samples
    spread over ``X`` the chain's float64 logits must match the model's (else a
    ValueError). The predicted class and the gaps ``f_yhat - f_k`` are the model's own.
    The Lipschitz bound is a statement about the network as a function of reals; the
    model computes in float32, whose rounding moves the boundary by a little, so each
    gap is lowered by ``(4 rho + 8 eps) (1 + max_k |f_k|)``, with ``rho`` the largest
    relative float32-to-float64 difference seen in the check and ``eps`` the model's
    machine epsilon: a relative change of about ``1e-6``. Every Lipschitz bound is
    enlarged by :data:`LIPSCHITZ_RTOL` (1e-6) for float64 rounding.

    The global Lipschitz bound is loose on nets not trained for it (a product of layer
    norms, often 10 to 1000 times the local slope), so certified margins are then far
    below the attack's distances: they are what can be *proven*, not an estimate of the
    margin. Linear models are certified exactly.

    ``method="crown"`` encloses each ReLU between two lines (CROWN's adaptive lower
    slope) and each max pooling between its window's best input and largest upper
    bound, on boxes of the pre-activations over the ball: exact for the first layer,
    CROWN for layers of at most 1024 entries, interval arithmetic above. Every gap must
    exceed the same rounding slack. It pays on small, narrow nets (a median 2.7 to 8.7
    times the global radius on random nets of 4 or 16 inputs and one or two hidden
    layers) but not on wide ones, where an l2 ball leaves most ReLUs unstable: on the
    zoo's MNIST MLP-1024 (3 epochs on 10,000 images, 1,000 test points) it raised the
    average certified margin by 0.25 % (0.604 to 0.605, also +0.13 % after certified
    AMR) and left the certified accuracy at eps 0.5/1/1.58/2 unchanged (56.6, 16.3, 1.2,
    0.1 %), for 14 s of CPU against 0.2 s; on LeNetSmall it costs about 1.4 s per sample.

    References
    ----------
    H. Zhang, T.-W. Weng, P.-Y. Chen, C.-J. Hsieh and L. Daniel. Efficient Neural
    Network Robustness Certification with General Activation Functions. NeurIPS 2018.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from amrlearn.metrics import certified_margins
    >>> from amrlearn.attacks import MinimumNormEnsemble
    >>> torch.manual_seed(0)
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    >>> X = np.random.default_rng(0).uniform(size=(8, 4)).astype(np.float32)
    >>> pred = net(torch.from_numpy(X)).argmax(1).numpy()
    >>> cert = certified_margins(net, X, pred)
    >>> _, dist = MinimumNormEnsemble(steps=20, clip=None)(net, X, pred)
    >>> bool(np.all((cert >= 0) & (cert <= dist)))
    True
    >>> local = certified_margins(net, X, pred, method="crown")  # never below cert
    >>> bool(np.all((local >= cert) & (local <= dist)))
    True
    """

    validate_parameter_constraints(
        _PARAMS,
        {"batch_size": batch_size, "conv_bound": conv_bound, "method": method},
        caller_name="certified_margins",
    )
    fn = as_logit_fn(model, device)
    X_t = as_input_tensor(X, fn.dtype)
    n = X_t.shape[0]
    with fn.eval_mode():
        logits = _model_logits(fn, X_t, batch_size)
        if fn.linear is not None or fn.affine:
            coef, intercept = fn.affine_weights(X_t)
            Xf = X_t.reshape(n, -1).double().cpu().numpy()
            radius, pred = margins_from_scores(Xf @ coef.T + intercept, coef)
            lip = _affine_lipschitz(fn, X_t) if return_lipschitz else None
        else:
            chain = _model_chain(model, fn, X_t)
            rel = _check_chain(chain, fn, X_t, logits)
            factors, feature, pairwise, logit = _lipschitz(chain, conv_bound, False, 0)
            pred = logits.argmax(1).numpy()
            radius = _radii(logits.numpy(), pred, rel, pairwise, fn.dtype)
            if method == "crown":
                from ._local import crown_radii

                slack = _slack(logits.numpy(), rel, fn.dtype)
                radius = crown_radii(chain, X_t, pred, slack, radius, batch_size)
            lip = {"factors": factors, "feature": feature, "pairwise": pairwise, "logit": logit}
    y_pred = fn.index_label(pred)
    sign = np.ones(n) if y is None else np.where(y_pred == as_labels(y, n), 1.0, -1.0)
    margins = sign * radius
    return (margins, lip) if return_lipschitz else margins


def _slack(logits, rel, dtype):
    """``(4 rel + 8 eps) (1 + max_k |f_k|)`` per sample: how much the rounding of the
    model's logits may move a gap; a certified gap must exceed it."""
    import torch

    eps = float(torch.finfo(dtype).eps)
    return (4.0 * rel + 8.0 * eps) * (1.0 + np.abs(logits).max(axis=1))


def _radii(logits, pred, rel, pairwise, dtype):
    """``min_{k != pred} max(gap_k - slack, 0) / L_{pred,k}`` per sample (float64), with
    :func:`_slack` for the rounding of the model's logits."""
    rows = np.arange(len(pred))
    slack = _slack(logits, rel, dtype)
    gaps = np.maximum(logits[rows, pred][:, None] - logits - slack[:, None], 0.0)
    L = pairwise[pred]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(L > 0, gaps / np.where(L > 0, L, 1.0), np.where(gaps > 0, np.inf, 0.0))
    ratio[rows, pred] = np.inf
    return ratio.min(axis=1)


def certified_radii(model, X_t, *, batch_size=256, device=None):
    """Unsigned certified radii (:func:`certified_margins` without labels), or ``None``
    where the model is not certifiable: what the bracket functions report beside their
    other numbers, so that a net outside the supported chains (a Tanh net) still gets
    those."""
    from ._chain import NotCertifiableError

    try:
        return certified_margins(model, X_t, batch_size=batch_size, device=device)
    except NotCertifiableError:
        return None


def check_certificate(radius, distance, where, stacklevel=4):
    """The alarm of a broken certificate: a certified radius above the distance of an
    adversarial point actually found (beyond float32 rounding). It cannot happen unless
    the certificate (or the attack's verification) has a bug."""
    from ..utils._alarms import warn

    bad = radius > distance * (1 + 1e-5) + 1e-7
    if np.any(bad):
        warn(
            f"{where}: the certified margin exceeds the distance to an adversarial point "
            f"found on {int(bad.sum())} of {bad.size} samples. A certificate that holds "
            "cannot; please report this as a bug (with the model).",
            stacklevel=stacklevel,
        )
