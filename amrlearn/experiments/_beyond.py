"""Methods beyond the paper: certified training and the cost-robustness frontier.

One :class:`~._method.Method` record each (see :mod:`._methods` for the paper's):

=========================  ==========================================================
name                       what it trains
=========================  ==========================================================
``certified AMR``          AMR's term on the certified margins (``margin="certified"``)
``GloRo``                  globally robust training (Leino et al.), the certified
                           baseline
``soft-min AMR``           LCR plus the soft minimum of the feature margins
                           (:class:`~amrlearn.neural.SoftMinMarginPenalty`)
``AMR + spread``           AMR plus the variance of the margins
                           (:class:`~amrlearn.neural.MarginSpreadPenalty`)
``input margin``           DeepFool's one-step input-space margin
                           (:class:`~amrlearn.neural.InputMarginPenalty`)
``FGSM-RS``                cheap adversarial training (Wong et al.;
                           :class:`~amrlearn.attacks.FGSMRS`)
``AMR + FGSM-RS (adv)``    FGSM-RS with AMR's penalties on the adversarial points
``AMR + FGSM-RS (clean)``  FGSM-RS with AMR's margin term on the clean points
                           (:class:`~amrlearn.neural.CleanMarginPenalty`)
=========================  ==========================================================

A penalty method's parameters name its penalty (``"penalty"``, a class of
:mod:`amrlearn.neural`) and its ``penalty__*`` settings, so that ``results.json`` stays
plain JSON; the build turns the names into parts.
"""

import math

from .._paper import ADV_EPS
from ._method import AMR_NET, Method, objective15, per_dataset, regularized_step_cost

__all__ = [
    "BEYOND_METHODS",
    "CERTIFIED_DEFAULTS",
    "FGSM_DEFAULTS",
    "GLORO_DEFAULTS",
    "REGULARIZER_DEFAULTS",
]

#: Certified AMR: lambda, tau in input units (about the largest radius to certify), the
#: Lipschitz constant in training (``"power"``: one power step per step), ``adam_lr`` (see
#: :func:`_certified_training`) and beta
#: (``None``: the configuration's). Tried on small MNIST runs only (10k-20k images, 5-15
#: epochs): on the MLP this lambda gives AMR's certified margins; on the CNN (5k images,
#: 3 epochs) it barely moves them at beta 1e-3, lam 3 with beta 3e-2 gave 18x those of
#: 2 epochs of standard training, and lam 3 at beta 1e-3 or lam 10 collapsed the net to
#: one class.
CERTIFIED_DEFAULTS = {
    "lam": 0.3,
    "beta": None,
    "tau": {"mnist": 2.0, "cifar10": 0.5},
    "lipschitz": "power",
    "adam_lr": None,
}

#: GloRo: the radius trained for (Leino et al.: MNIST at 1.58, CIFAR-10 at 36/255),
#: raised linearly over the first ``warmup_fraction`` of the epochs (their schedule),
#: the Lipschitz constant in training and ``adam_lr``. A configuration may give either
#: block per model.
GLORO_DEFAULTS = {
    "eps": {"mnist": 1.58, "cifar10": 36 / 255},
    "warmup_fraction": 0.5,
    "lipschitz": "power",
    "adam_lr": None,
}


def _certified_training(c):
    """``adam_lr``: Adam at that rate (GloRo's authors' optimizer) in place of the
    configuration's SGD; ``None`` keeps the configuration's."""
    lr = c.settings["adam_lr"]
    if lr is None:
        return {}
    return {"optimizer": "Adam", "lr": float(lr), "momentum": None, "nesterov": None}


def _certified_params(c):
    s = c.settings
    return {
        "lam": float(s["lam"]),
        "beta": float(c.config["beta"] if s["beta"] is None else s["beta"]),
        "tau": float(per_dataset(s["tau"], c.dataset)),
        "margin": "certified",
        "lipschitz": s["lipschitz"],
    }


def _gloro_params(c):
    s = c.settings
    return {
        "eps": float(per_dataset(s["eps"], c.dataset)),
        "warmup_epochs": math.ceil(s["warmup_fraction"] * c.base_epochs),
        "lipschitz": s["lipschitz"],
    }


#: FGSM-RS (Wong et al.): the radius trained for (Appendix F's PGD training radius) and
#: the step, ``step_ratio * eps`` (theirs: 1.25).
FGSM_DEFAULTS = {"step_ratio": 1.25}

#: The margin-distribution penalties: weight, truncation, the soft minimum's temperature
#: (in feature-margin units), the input margin's truncation (input units, about the
#: largest radius to defend) and its sub-batch (a double backward per sample).
REGULARIZER_DEFAULTS = {
    "weight": 0.1,
    "temperature": 1.0,
    "spread_weight": 0.05,
    "input_tau": 2.0,
    "input_reg_batch_size": 32,
}

#: The extra cost of the one-step input margin on every sample of a batch, in standard
#: steps (a double backward: about 2).
_INPUT_MARGIN_STEP_COST = 2.0


def _fgsm_params(c):
    return {"eps": float(ADV_EPS[c.dataset]), "step_ratio": float(c.settings["step_ratio"])}


def _penalty_params(penalty, lam, **extra):
    """Objective (15) at ``lam`` with the configuration's beta and tau, plus ``penalty``
    (a class name of :mod:`amrlearn.neural`) with ``penalty__*`` from ``extra(c)``."""
    base = objective15(lam, None)

    def params(c):
        out = {**base(c), "penalty": penalty}
        for key, rule in extra.items():
            out[f"penalty__{key}"] = rule(c)
        return out

    return params


def _resolve(params):
    """``params`` with the names of penalties and attacks made classes."""
    from .. import attacks, neural

    out = dict(params)
    if "penalty" in out:
        out["penalty"] = getattr(neural, out["penalty"])
    if "attack" in out:
        out["attack"] = getattr(attacks, out["attack"])
    return out


def _build_penalized(cls, plan, common):
    return cls(**common, **_resolve(plan.params))


def _build_fgsm(cls, plan, common, margin_on=None):
    """FGSM-RS training; with ``margin_on`` (``"adv"`` or ``"clean"``), plus AMR's two
    penalties, the margin term on the adversarial or on the clean points."""
    from .. import neural
    from ..attacks import FGSMRS

    p = plan.params
    kwargs = {"attack": FGSMRS, "attack__eps": p["eps"], "attack__step_ratio": p["step_ratio"]}
    if margin_on is not None:
        margin = {"adv": neural.AMRMarginPenalty, "clean": neural.CleanMarginPenalty}[margin_on]
        kwargs["penalty"] = [
            neural.OrthogonalityPenalty(weight=p["beta"], every=p.get("ortho_every", "auto")),
            margin(weight=p["lam"], tau=p["tau"]),
        ]
    return cls(**common, **kwargs)


def _amr_fgsm_params(c):
    return {**objective15(None, None)(c), **_fgsm_params(c)}


def _setting(key):
    return lambda c: c.settings[key]


_ADV_NET = "AdversarialNeuralNetClassifier"

#: The records of this module, in the order of the table above.
BEYOND_METHODS = (
    Method(
        "certified AMR",
        AMR_NET,
        _certified_params,
        key="certified",
        defaults=CERTIFIED_DEFAULTS,
        training=_certified_training,
    ),
    Method(
        "GloRo",
        "GloRoNeuralNetClassifier",
        _gloro_params,
        key="gloro",
        defaults=GLORO_DEFAULTS,
        training=_certified_training,
    ),
    Method(
        "soft-min AMR",
        AMR_NET,
        _penalty_params(
            "SoftMinMarginPenalty",
            0.0,
            weight=_setting("weight"),
            temperature=_setting("temperature"),
            tau=lambda c: objective15(0.0, None)(c)["tau"],
        ),
        key="regularizers",
        defaults=REGULARIZER_DEFAULTS,
        build=_build_penalized,
    ),
    Method(
        "AMR + spread",
        AMR_NET,
        _penalty_params(
            "MarginSpreadPenalty",
            None,
            weight=_setting("spread_weight"),
            tau=lambda c: objective15(0.0, None)(c)["tau"],
        ),
        key="regularizers",
        defaults=REGULARIZER_DEFAULTS,
        build=_build_penalized,
    ),
    Method(
        "input margin",
        AMR_NET,
        _penalty_params(
            "InputMarginPenalty",
            0.0,
            weight=_setting("weight"),
            tau=_setting("input_tau"),
            reg_batch_size=_setting("input_reg_batch_size"),
        ),
        key="regularizers",
        defaults=REGULARIZER_DEFAULTS,
        build=_build_penalized,
        step_cost=lambda params, batch_size: regularized_step_cost(_INPUT_MARGIN_STEP_COST)(
            {"reg_batch_size": params.get("penalty__reg_batch_size")}, batch_size
        ),
    ),
    Method(
        "FGSM-RS",
        _ADV_NET,
        _fgsm_params,
        key="fgsm",
        defaults=FGSM_DEFAULTS,
        build=_build_fgsm,
        step_cost=lambda params, batch_size: 2.0,  # one attack gradient, one training step
    ),
    Method(
        "AMR + FGSM-RS (adv)",
        _ADV_NET,
        _amr_fgsm_params,
        key="fgsm",
        defaults=FGSM_DEFAULTS,
        build=lambda cls, plan, common: _build_fgsm(cls, plan, common, "adv"),
        step_cost=lambda params, batch_size: 2.0,
    ),
    Method(
        "AMR + FGSM-RS (clean)",
        _ADV_NET,
        _amr_fgsm_params,
        key="fgsm",
        defaults=FGSM_DEFAULTS,
        build=lambda cls, plan, common: _build_fgsm(cls, plan, common, "clean"),
        step_cost=lambda params, batch_size: 3.0,  # plus a clean forward and backward
    ),
)
