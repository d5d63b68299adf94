"""The record of a method of the deep-model experiments, and the rules records share.

:class:`Method` says everything that sets a method apart (its estimator, parameters,
epochs, training settings, how its net is built and its cost per step), as functions of a
cell's :class:`MethodInputs`. The records themselves are in :mod:`._methods` (the paper's
methods and its baselines) and :mod:`._beyond` (methods beyond the paper).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .._paper import TAU

__all__ = [
    "AMR_NET",
    "Method",
    "MethodInputs",
    "objective15",
    "per_dataset",
    "per_model",
    "regularized_step_cost",
]

#: The estimator of objective (15) and its ablations.
AMR_NET = "AMRNeuralNetClassifier"


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
        once. ``config[key]`` may be given per model (``{"MLP": {...}, "LeNetSmall": {...}}``,
        see :func:`per_model`)."""
        given = per_model(config.get(self.key), model) if self.key else None
        settings = {**(self.defaults or {}), **(given or {})}
        return MethodInputs(dataset, model, config, MappingProxyType(settings))


def objective15(lam, beta):
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
