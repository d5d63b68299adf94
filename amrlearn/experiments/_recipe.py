"""The recipe of one cell (dataset, model, method): its plan, and its net.

:func:`plan_cell` reads the experiment's configuration once and returns a frozen
:class:`CellPlan`: the method's hyperparameters (from its record in
:mod:`._methods`), the epochs, the training settings, the evaluation and the margin
budgets. Training and measuring a cell (:mod:`._runner`) and its time estimate
(:mod:`._estimate`) read the plan, never the configuration.

Every training and measuring setting of a configuration may be given per model
(:func:`per_model`); the numbers of the paper's protocol come from :mod:`amrlearn._paper`.
"""

import dataclasses
import math

from .._paper import BOUND_BUDGET, INPUT_SHAPES
from ._common import ReadOnlyDict, cell_key
from ._methods import (
    CERTIFIED_DEFAULTS,
    DD_DEFAULTS,
    GLORO_DEFAULTS,
    METHODS,
    MMR_DEFAULTS,
    get_method,
    per_dataset,
    per_model,
)

__all__ = [
    "CERTIFIED_DEFAULTS",
    "CellPlan",
    "DD_DEFAULTS",
    "EvalPlan",
    "GLORO_DEFAULTS",
    "METHODS",
    "MMR_DEFAULTS",
    "build_net",
    "make_net",
    "method_params",
    "n_epochs",
    "per_dataset",
    "per_model",
    "plan_cell",
]

#: Models that take flat vectors (they flatten images themselves).
_FLAT_MODELS = ("LR", "MLP")


@dataclasses.dataclass(frozen=True)
class EvalPlan:
    """The robust-accuracy evaluation of a cell (:func:`~amrlearn.attacks.robust_accuracy`).

    Attributes
    ----------
    n_points : int
        Test points attacked (a fixed subset).
    eps : tuple of float
        The eps grid of the cell's dataset.
    chain : tuple of str
        The attacks, the paper's PGD first (the configuration's ``pgd_loss``).
    steps, step_size, batch_size
        The PGD budget, the step size of the cell's dataset and the attack's batch size.
    """

    n_points: int
    eps: tuple
    chain: tuple
    steps: int
    step_size: float
    batch_size: int

    @property
    def attack(self):
        """The ``attack`` argument of ``robust_accuracy``: a name, or a list of them."""
        return self.chain[0] if len(self.chain) == 1 else list(self.chain)


@dataclasses.dataclass(frozen=True)
class CellPlan:
    """Everything that training, measuring and pricing one cell need, resolved once.

    Attributes
    ----------
    dataset, model, method : str
    params : dict (read-only)
        The estimator's hyperparameters (the cell's ``"params"`` in ``results.json``).
    settings : dict (read-only)
        The method's defaults overridden by the configuration's entry (``"dd"``, ...).
    epochs : int
        The epochs of training (``max_epochs``).
    plain_epochs : int
        The first epochs that train as standard training (Deep Defense's pretraining).
    optimizer : {"SGD", "Adam"}
    lr, batch_size, momentum, nesterov
        The optimizer's settings (``momentum`` and ``nesterov`` are ``None`` for Adam).
    augment : bool
        Appendix F's crop and flip on the training batches.
    step_cost : float
        One training step in standard training steps (the time estimates).
    n_train : int or None
        The training subset's size (``None``: the whole training set).
    seed, init_seed : int
        The data and evaluation seed, and the training's (initialization, batch order).
    device : str
    verbose : int
    pgd : EvalPlan or None
        The robust-accuracy evaluation; ``None``: none.
    margin : dict (read-only) or None
        Theorem 3's budget (with ``n_points``) of the final margins; ``None``: none.
    track : dict (read-only) or None
        The budget of the margins over epochs, when the cell tracks them.
    track_epochs : tuple of int
        The epochs at which the margins are tracked.
    distance : dict (read-only) or None
        The minimum-norm distances' budget (``n_points``, ``steps``): the mean and median
        distance to the boundary (:func:`~amrlearn.metrics.robustness_curve`); ``None``:
        none.
    """

    dataset: str
    model: str
    method: str
    params: ReadOnlyDict
    settings: ReadOnlyDict
    epochs: int
    plain_epochs: int
    optimizer: str
    lr: float
    batch_size: int
    momentum: float | None
    nesterov: bool | None
    augment: bool
    step_cost: float
    n_train: int | None
    seed: int
    init_seed: int
    device: str
    verbose: int
    pgd: EvalPlan | None
    margin: ReadOnlyDict | None
    track: ReadOnlyDict | None
    track_epochs: tuple
    distance: ReadOnlyDict | None = None

    @property
    def cell(self):
        """``(dataset, model, method)``."""
        return (self.dataset, self.model, self.method)

    @property
    def key(self):
        """The cell's name in ``results.json`` (:func:`~._common.cell_key`)."""
        return cell_key(self.dataset, self.model, self.method)


def _attack_chain(pgd_loss):
    """The attack names of a configuration's ``pgd_loss``: ``"auto"``, an attack name, or
    a list of names, where the older PGD losses ``"ce"`` and ``"margin"`` stand for
    ``"pgd"`` and ``"pgd-margin"``."""
    legacy = {"ce": "pgd", "margin": "pgd-margin"}
    return tuple(legacy.get(n, n) for n in ([pgd_loss] if isinstance(pgd_loss, str) else pgd_loss))


def _eval_plan(dataset, model, config):
    pgd = per_model(config.get("pgd"), model)
    if not pgd:
        return None
    grids = config.get("eps") or {}
    if dataset not in grids:
        raise ValueError(f"the configuration's eps has no grid for {dataset!r}.")
    return EvalPlan(
        n_points=pgd["n_points"],
        eps=tuple(float(e) for e in grids[dataset]),
        chain=_attack_chain(config.get("pgd_loss", ["pgd", "auto"])),
        steps=pgd["steps"],
        step_size=per_dataset(pgd["step_size"], dataset),
        batch_size=pgd.get("batch_size", 256),
    )


def _frozen(spec):
    return None if not spec else ReadOnlyDict(spec)


def track_epochs(config, model, max_epochs):
    """The epochs (within ``1..max_epochs``) at which ``model``'s margins are tracked."""
    track = per_model(config.get("track"), model) or {}
    epochs = per_model(track.get("epochs"), model)
    if epochs == "all":
        return list(range(1, max_epochs + 1))
    return sorted({int(e) for e in (epochs or []) if 1 <= int(e) <= max_epochs})


def plan_cell(dataset, model, method, config):
    """The frozen plan of one cell, read from the experiment's configuration once.

    Parameters
    ----------
    dataset, model, method : str
    config : dict
        The experiment's configuration (``default_config`` of table1, table2, figures).

    Returns
    -------
    plan : CellPlan

    Raises
    ------
    ValueError
        For a method that no record of :data:`METHODS` names.

    Examples
    --------
    >>> from amrlearn.experiments import table2
    >>> from amrlearn.experiments._recipe import plan_cell
    >>> plan = plan_cell("mnist", "LeNetSmall", "MMR", table2.default_config("quick"))
    >>> plan.optimizer, plan.batch_size, plan.epochs, plan.params["lam"]
    ('Adam', 128, 6, 3.0)
    >>> plan.pgd.eps, plan.pgd.attack
    ((0.5, 1.0, 1.5, 2.0), ['pgd', 'auto'])
    """
    record = get_method(method)
    inputs = record.inputs(dataset, model, config)
    params = record.params(inputs)
    epochs = int(record.epochs(inputs))
    training = {
        "optimizer": "SGD",
        "lr": per_model(config["lr"], model),
        "batch_size": per_model(config["batch_size"], model),
        "momentum": config["momentum"],
        "nesterov": config["nesterov"],
        "augment": bool(config.get("augment", {}).get(f"{dataset}/{model}")),
        **record.training(inputs),
    }
    return CellPlan(
        dataset=dataset,
        model=model,
        method=method,
        params=ReadOnlyDict(params),
        settings=ReadOnlyDict(inputs.settings),
        epochs=epochs,
        plain_epochs=int(record.plain_epochs(inputs)),
        **training,
        step_cost=float(record.step_cost(params, training["batch_size"])),
        n_train=config.get("n_train"),
        seed=config["seed"],
        init_seed=config.get("init_seed", config["seed"]),
        device=config["device"],
        verbose=config.get("verbose", 1),
        pgd=_eval_plan(dataset, model, config),
        margin=_frozen(per_model(config.get("margin"), model)),
        track=_frozen(per_model(config.get("track"), model)),
        track_epochs=tuple(track_epochs(config, model, epochs)),
        distance=_frozen(per_model(config.get("distance"), model)),
    )


def method_params(method, dataset, model, config):
    """The estimator's hyperparameters of ``method`` for this model, from the configuration.

    Examples
    --------
    >>> from amrlearn.experiments._recipe import method_params
    >>> method_params("LCR", "mnist", "MLP", {"lam": 0.1, "beta": 1e-3})
    {'lam': 0.0, 'beta': 0.001, 'tau': 5.0}
    >>> method_params("GloRo", "mnist", "MLP", {"epochs": 30})
    {'eps': 1.58, 'warmup_epochs': 15, 'lipschitz': 'power'}
    """
    record = get_method(method)
    return record.params(record.inputs(dataset, model, config))


def n_epochs(config, model, method=None):
    """The number of training epochs of ``model`` (with ``method``: that cell's, DD's
    Std epochs plus its fine-tuning, MMR's own)."""
    if method is None:
        return int(per_model(config["epochs"], model))
    record = get_method(method)
    return int(record.epochs(record.inputs(None, model, config)))


def bound_params(spec, seed, device):
    """Theorem 3's budget of a ``margin`` or ``track`` setting (the paper's by default)."""
    return {
        **{key: spec.get(key, value) for key, value in BOUND_BUDGET.items()},
        "random_state": seed,
        "device": device,
        "verbose": 0,
    }


def module_kwargs(model, dataset):
    """The module's arguments: the input size of a flat model, else the dataset."""
    if model in _FLAT_MODELS:
        return {"in_features": math.prod(INPUT_SHAPES[dataset])}
    return {"dataset": dataset}


def make_net(plan, data, device, *, callbacks):
    """The unfitted net of a cell's plan.

    Parameters
    ----------
    plan : CellPlan
    data : dict
        ``X_test`` and ``y_test``: watched as the validation set (never used to choose).
    device : torch.device or str
    callbacks : list of (str, Callback)

    Returns
    -------
    net : the estimator of the method's record (:mod:`amrlearn.neural`)
    """
    import torch
    from skorch.callbacks import EpochScoring
    from skorch.dataset import Dataset
    from skorch.helper import predefined_split

    from .. import neural
    from ..neural import models

    valid = Dataset(torch.as_tensor(data["X_test"]), torch.as_tensor(data["y_test"]))
    train_acc = EpochScoring("accuracy", on_train=True, name="train_acc", lower_is_better=False)
    common = dict(
        module=getattr(models, plan.model),
        max_epochs=plan.epochs,
        lr=plan.lr,
        batch_size=plan.batch_size,
        optimizer=getattr(torch.optim, plan.optimizer),
        device=str(device),
        # The paper trains on the whole training set; the test subset is only watched
        # (Figure 5's test error), never used to choose anything.
        train_split=predefined_split(valid),
        data_on_device=True,
        callbacks=[("train_acc", train_acc), *callbacks],
        iterator_train__shuffle=True,
        verbose=0,
    )
    if plan.momentum is not None:
        common["optimizer__momentum"] = plan.momentum
    if plan.nesterov is not None:
        common["optimizer__nesterov"] = plan.nesterov
    for key, value in module_kwargs(plan.model, plan.dataset).items():
        common[f"module__{key}"] = value
    if plan.augment:
        # Appendix F's crop and flip, on the training batches only.
        common["iterator_train__transform"] = neural.random_crop_flip
    record = get_method(plan.method)
    return record.build(getattr(neural, record.estimator), plan, common)


def build_net(dataset, model, method, config, data, device, *, callbacks, max_epochs):
    """The unfitted net of one cell, and the method's hyperparameters.

    :func:`plan_cell` then :func:`make_net`, with ``max_epochs`` in place of the cell's
    epochs.

    Parameters
    ----------
    dataset, model, method : str
    config : dict
        The experiment's configuration.
    data : dict
        ``X_test`` and ``y_test``: watched as the validation set (never used to choose).
    device : torch.device or str
    callbacks : list of (str, Callback)
    max_epochs : int

    Returns
    -------
    net : the estimator of the method's record (:mod:`amrlearn.neural`)
    params : dict
        From :func:`method_params`.
    """
    plan = dataclasses.replace(plan_cell(dataset, model, method, config), epochs=max_epochs)
    return make_net(plan, data, device, callbacks=callbacks), dict(plan.params)
