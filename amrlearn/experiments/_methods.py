"""The methods of the deep-model experiments: one :class:`Method` record each.

The methods (objective (15) with its parts switched on and off, and the baselines):

======================  =========  ==========  ===================================
name                    lambda     beta        what it isolates
======================  =========  ==========  ===================================
``Std``                 0          0           standard training
``LCR``                 0          1e-3        Lipschitz constant regularization:
                                               the orthogonality penalty alone
``AMR (beta=0)``        0.1        0           the margin term alone
``AMR``                 0.1        1e-3        the paper's regularizer
``Adv``                 --         --          PGD adversarial training
``DD``                  --         --          Deep Defense (Yan et al.) fine-tuning
                                               the Std model
``MMR``                 --         --          the maximum margin regularizer
                                               (Croce et al.), from scratch
``certified AMR``       0.3        1e-3        AMR's term on the certified margins
                                               (``margin="certified"``)
``GloRo``               --         --          globally robust training (Leino et
                                               al.), the certified baseline
======================  =========  ==========  ===================================

A record holds everything that sets a method apart: its estimator, its hyperparameters
(the record's ``defaults`` overridden by the configuration's entry ``key``: ``"adv"``,
``"dd"``, ``"mmr"``, ``"certified"``, ``"gloro"``, merged once per cell), its epochs, the
training settings it changes, how its net is built, and its cost per training step for
the time estimates. A new method is one record: in :data:`METHODS` here, or, beyond the paper, in
:mod:`._beyond`.
"""

import math

from .._paper import ADV_EPS, ADV_STEP_SIZE, ADV_STEPS
from ._beyond import BEYOND_METHODS, CERTIFIED_DEFAULTS, GLORO_DEFAULTS
from ._callbacks import finetune_rule, optimizer_schedule
from ._method import (
    AMR_NET,
    Method,
    MethodInputs,
    _base_epochs,
    objective15,
    per_dataset,
    per_model,
    regularized_step_cost,
)

__all__ = [
    "CERTIFIED_DEFAULTS",
    "DD_DEFAULTS",
    "GLORO_DEFAULTS",
    "METHODS",
    "MMR_DEFAULTS",
    "Method",
    "MethodInputs",
    "get_method",
    "per_dataset",
    "per_model",
]

#: Deep Defense, the authors' LeNet/MNIST settings (their code's defaults; none were
#: retrieved for the CIFAR-10 ConvNet): the regularizer, and ``epochs`` of fine-tuning
#: of the Std model by SGD (momentum 0.9, weight decay 5e-4 on the weights and none on
#: the biases, learning rate 5e-4, halved at 80% of the fine-tuning). ``reg_batch_size``:
#: the penalty on that many samples of each batch (``None``: all, the authors').
DD_DEFAULTS = {
    "lam": 15.0,
    "c": 25.0,
    "d": 5.0,
    "max_iter": 5,
    "overshoot": 0.02,
    "epochs": 5,
    "lr": 5e-4,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "reg_batch_size": None,
}

#: MMR-l2, the authors' LeNetSmall settings (released models and ``train.py``): lambda
#: and gamma_B = gamma_D per dataset, Adam at ``lr`` divided by 10 from 90% of the
#: ``epochs``, batches of 128, lambda ramped up over the first 10% of the epochs, k_B
#: from 10% to 2% of the hidden units, no augmentation.
MMR_DEFAULTS = {
    "lam": {"mnist": 3.0, "cifar10": 1.5},
    "gamma": {"mnist": 0.45, "cifar10": 0.2},
    "lr": {"mnist": 1e-4, "cifar10": 1e-3},
    "epochs": 100,
    "batch_size": 128,
    "k_B": (0.10, 0.02),
    "warmup_fraction": 0.1,
    "lr_drop_at": 0.9,
    "reg_batch_size": None,
}

#: PGD training's defaults (Appendix F), overridden by a configuration's ``"adv"``.
ADV_DEFAULTS = {"steps": ADV_STEPS, "step_size": ADV_STEP_SIZE}

#: Parameters that Deep Defense's fine-tuning does not decay (the authors' bias group).
_NO_DECAY = "*bias"

#: Madry et al.'s step rule for PGD training with ``step_size="auto"``: the path
#: ``steps * step_size`` is this many times eps, enough to reach the sphere and move on it.
_AUTO_STEP_PATH = 2.5

#: The extra cost of one training step that regularizes every sample of its batch, in
#: standard training steps of that batch, derived from the committed quick Table 2 run
#: (``docs/reproduction/2026-12-07-cpu/table2-quick``: training CPU seconds on one torch
#: thread): LeNet's DD fine-tuning epoch (penalty on 4 of 32 samples) cost 5.15 Std
#: epochs, 1 + 33 x 4/32; an MMR step of LeNetSmall (2 of 128) 11.5 Std steps of 128,
#: 1 + 673 x 2/128. (``benchmarks/bench_training_cost.py``, older code on 1,024 images,
#: gave 3x more.) Certified AMR and GloRo, timed on MLP batches of 128, cost what Std
#: does within the noise (0.8-1.2x): the default 1.
_DD_STEP_COST = 33.0
_MMR_STEP_COST = 673.0


def _adv_params(c):
    eps, steps, step_size = ADV_EPS[c.dataset], c.settings["steps"], c.settings["step_size"]
    if step_size == "auto":
        step_size = _AUTO_STEP_PATH * eps / steps
    return {"eps": eps, "steps": steps, "step_size": step_size}


def _build_adv(cls, plan, common):
    return cls(**common, **{f"attack__{key}": value for key, value in plan.params.items()})


def _dd_params(c):
    keys = ("lam", "c", "d", "max_iter", "overshoot", "reg_batch_size")
    return {**{k: c.settings[k] for k in keys}, "pretrain_epochs": c.base_epochs}


def _build_dd(cls, plan, common):
    # The Std epochs with the Std settings, then the authors' fine-tuning optimizer, whose
    # SGD has a bias group that is never decayed.
    s = plan.settings
    rule = finetune_rule(plan.plain_epochs, s["epochs"], s["lr"], s["momentum"], s["weight_decay"])
    schedule = optimizer_schedule(rule, no_decay=_NO_DECAY)
    common = {
        **common,
        "optimizer__param_groups": [(_NO_DECAY, {"weight_decay": 0.0})],
        "callbacks": [*common["callbacks"], ("dd_schedule", schedule)],
    }
    return cls(**common, **plan.params)


def _mmr_epochs(c):
    return int(c.settings["epochs"])


def _mmr_params(c):
    s = c.settings
    return {
        "lam": float(per_dataset(s["lam"], c.dataset)),
        "gamma_B": float(per_dataset(s["gamma"], c.dataset)),
        "gamma_D": float(per_dataset(s["gamma"], c.dataset)),
        "k_B": tuple(s["k_B"]),
        "lam_warmup_epochs": math.ceil(s["warmup_fraction"] * _mmr_epochs(c)),
        "reg_batch_size": s["reg_batch_size"],
    }


def _mmr_training(c):
    # Adam on the authors' batches, and their default: no augmentation.
    return {
        "optimizer": "Adam",
        "lr": per_dataset(c.settings["lr"], c.dataset),
        "batch_size": c.settings["batch_size"],
        "momentum": None,
        "nesterov": None,
        "augment": False,
    }


def _build_mmr(cls, plan, common):
    lr, drop = plan.lr, plan.settings["lr_drop_at"] * plan.epochs
    schedule = optimizer_schedule(lambda e: {"lr": lr / 10 if e >= drop else lr})
    return cls(
        **{**common, "callbacks": [*common["callbacks"], ("mmr_lr", schedule)]}, **plan.params
    )


#: Every method of the experiments, by name.
METHODS = {
    m.name: m
    for m in (
        Method("Std", AMR_NET, objective15(0.0, 0.0)),
        Method("LCR", AMR_NET, objective15(0.0, None)),
        Method("AMR (beta=0)", AMR_NET, objective15(None, 0.0)),
        Method("AMR", AMR_NET, objective15(None, None)),
        Method(
            "Adv",
            "AdversarialNeuralNetClassifier",
            _adv_params,
            key="adv",
            defaults=ADV_DEFAULTS,
            build=_build_adv,
            step_cost=lambda params, batch_size: 1.0 + params["steps"],  # a pass per step
        ),
        Method(
            "DD",
            "DeepDefenseNeuralNetClassifier",
            _dd_params,
            key="dd",
            defaults=DD_DEFAULTS,
            epochs=lambda c: c.base_epochs + int(c.settings["epochs"]),
            plain_epochs=_base_epochs,
            build=_build_dd,
            step_cost=regularized_step_cost(_DD_STEP_COST),
        ),
        Method(
            "MMR",
            "MMRNeuralNetClassifier",
            _mmr_params,
            key="mmr",
            defaults=MMR_DEFAULTS,
            epochs=_mmr_epochs,
            training=_mmr_training,
            build=_build_mmr,
            step_cost=regularized_step_cost(_MMR_STEP_COST),
        ),
        *BEYOND_METHODS,
    )
}


def get_method(name):
    """The :class:`Method` record called ``name``.

    Examples
    --------
    >>> from amrlearn.experiments._methods import get_method
    >>> get_method("MMR").estimator
    'MMRNeuralNetClassifier'
    >>> get_method("TRADES")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Unknown method 'TRADES'; choose from ['AMR', 'AMR (beta=0)', ...].
    """
    if name not in METHODS:
        raise ValueError(f"Unknown method {name!r}; choose from {sorted(METHODS)}.")
    return METHODS[name]
