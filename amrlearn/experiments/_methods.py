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
the time estimates. A new method is one record in :data:`METHODS`.
"""

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .._paper import ADV_EPS, ADV_STEP_SIZE, ADV_STEPS, TAU
from ._callbacks import finetune_rule, optimizer_schedule

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

#: Certified AMR: lambda, tau in input units (about the largest radius to certify), the
#: Lipschitz constant in training (``"power"``: one power step per step) and beta
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
}

#: GloRo: the radius trained for (Leino et al.: MNIST at 1.58, CIFAR-10 at 36/255),
#: raised linearly over the first ``warmup_fraction`` of the epochs (their schedule),
#: and the Lipschitz constant in training.
GLORO_DEFAULTS = {
    "eps": {"mnist": 1.58, "cifar10": 36 / 255},
    "warmup_fraction": 0.5,
    "lipschitz": "power",
}

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


def per_model(value, model):
    """``value[model]`` (else ``value["default"]``) where ``value`` is keyed by model name;
    ``value`` itself otherwise.

    Every training and measuring setting of a configuration (``lr``, ``batch_size``,
    ``epochs``, ``pgd``, ``margin``, ``track``) may be given per model this way: the quick
    modes give the cheap MLP a larger budget than the CNN.

    Examples
    --------
    >>> from amrlearn.experiments._recipe import per_model
    >>> per_model({"MLP": 40, "default": 10}, "CNN"), per_model(0.05, "CNN")
    (10, 0.05)
    >>> per_model({"steps": 20}, "MLP")
    {'steps': 20}
    """
    if isinstance(value, dict) and (model in value or "default" in value):
        return value.get(model, value.get("default"))
    return value


def per_dataset(value, dataset):
    """``value[dataset]`` where ``value`` is a dict, else ``value``."""
    return value[dataset] if isinstance(value, dict) else value


@dataclass(frozen=True)
class MethodInputs:
    """What the rules of a :class:`Method` read for one cell.

    Attributes
    ----------
    dataset : str or None
        ``None`` where only the epochs are asked for (:func:`~._recipe.n_epochs`).
    model : str
    config : dict
        The experiment's configuration.
    settings : mapping
        The method's ``defaults`` overridden by ``config[key]`` (empty without a ``key``).
    """

    dataset: str
    model: str
    config: Mapping
    settings: Mapping

    @property
    def base_epochs(self):
        """The configuration's epochs of the model: those of standard training."""
        return int(per_model(self.config["epochs"], self.model))


def _base_epochs(c):
    return c.base_epochs


def _none(c):
    return 0


def _no_change(c):
    return {}


def _one_step(params, batch_size):
    return 1.0


def _build(cls, plan, common):
    return cls(**common, **plan.params)


def regularized_step_cost(full):
    """The cost rule of a regularizer on ``reg_batch_size`` samples of each batch:
    ``1 + full * min(reg_batch_size, batch_size) / batch_size`` standard steps, where
    ``full`` is the extra cost of regularizing every sample.

    Examples
    --------
    >>> from amrlearn.experiments._methods import regularized_step_cost
    >>> cost = regularized_step_cost(40.0)
    >>> cost({"reg_batch_size": 4}, 32), cost({"reg_batch_size": None}, 32)
    (6.0, 41.0)
    """

    def cost(params, batch_size):
        reg = params.get("reg_batch_size") or batch_size
        return 1.0 + full * min(reg, batch_size) / batch_size

    return cost


@dataclass(frozen=True)
class Method:
    """One method of the experiments: its net, hyperparameters, epochs and cost.

    Every rule is a function of the cell's :class:`MethodInputs` (``c``) unless said.

    Attributes
    ----------
    name : str
        The method's name in the configurations and in ``results.json``.
    estimator : str
        The class of :mod:`amrlearn.neural` that trains it.
    params : callable
        ``params(c) -> dict``: the estimator's hyperparameters (stored as a cell's
        ``"params"``).
    key : str or None
        The configuration's entry that overrides ``defaults`` (e.g. ``"dd"``).
    defaults : mapping or None
        The method's settings when the configuration does not give them.
    epochs : callable
        ``epochs(c) -> int``: the cell's epochs (default: the configuration's).
    plain_epochs : callable
        ``plain_epochs(c) -> int``: how many of the first epochs train as standard
        training, at its cost (Deep Defense's pretraining; default 0).
    training : callable
        ``training(c) -> dict``: the training settings that the method changes
        (``optimizer``, ``lr``, ``batch_size``, ``momentum``, ``nesterov``, ``augment``).
    build : callable
        ``build(cls, plan, common) -> net``: the unfitted net from the estimator class, the
        cell's plan and the arguments that every net shares (default:
        ``cls(**common, **plan.params)``).
    step_cost : callable
        ``step_cost(params, batch_size) -> float``: one training step in standard
        training steps of that batch size (the time estimates; default 1).
    """

    name: str
    estimator: str
    params: Callable[[MethodInputs], dict]
    key: str | None = None
    defaults: Mapping[str, Any] | None = None
    epochs: Callable[[MethodInputs], int] = _base_epochs
    plain_epochs: Callable[[MethodInputs], int] = _none
    training: Callable[[MethodInputs], dict] = _no_change
    build: Callable = _build
    step_cost: Callable[[Mapping, int], float] = _one_step

    def inputs(self, dataset, model, config):
        """The :class:`MethodInputs` of a cell: the defaults merged with the configuration
        once."""
        settings = {**(self.defaults or {}), **((config.get(self.key) or {}) if self.key else {})}
        return MethodInputs(dataset, model, config, MappingProxyType(settings))


def _objective15(lam, beta):
    """The parameters of objective (15) at ``lam`` and ``beta`` (``None``: the
    configuration's), with the configuration's tau and orthogonality schedule."""

    def params(c):
        config = c.config
        tau = config.get("tau", {}).get(f"{c.dataset}/{c.model}", TAU[(c.dataset, c.model)])
        out = {
            "lam": float(config["lam"] if lam is None else lam),
            "beta": float(config["beta"] if beta is None else beta),
            "tau": float(tau),
        }
        if config.get("ortho_every") is not None:
            # The orthogonality penalty's schedule; absent: the estimator's default (lazy).
            # ``1`` is the exact every-step penalty of objective (15).
            out["ortho_every"] = int(config["ortho_every"])
        return out

    return params


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


_AMR = "AMRNeuralNetClassifier"

#: Every method of the experiments, by name.
METHODS = {
    m.name: m
    for m in (
        Method("Std", _AMR, _objective15(0.0, 0.0)),
        Method("LCR", _AMR, _objective15(0.0, None)),
        Method("AMR (beta=0)", _AMR, _objective15(None, 0.0)),
        Method("AMR", _AMR, _objective15(None, None)),
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
        Method(
            "certified AMR",
            _AMR,
            _certified_params,
            key="certified",
            defaults=CERTIFIED_DEFAULTS,
        ),
        Method(
            "GloRo",
            "GloRoNeuralNetClassifier",
            _gloro_params,
            key="gloro",
            defaults=GLORO_DEFAULTS,
        ),
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
    ValueError: Unknown method 'TRADES'; choose from ['AMR', 'AMR (beta=0)', 'Adv', ...].
    """
    if name not in METHODS:
        raise ValueError(f"Unknown method {name!r}; choose from {sorted(METHODS)}.")
    return METHODS[name]
