"""The method recipe of the deep-model experiments: which net, which settings, and training.

The methods (objective (15) with its parts switched on and off, and PGD training):

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

DD and MMR follow their authors' code (:data:`DD_DEFAULTS`, :data:`MMR_DEFAULTS`), which
a configuration's ``"dd"`` and ``"mmr"`` entries override; certified AMR and GloRo take
:data:`CERTIFIED_DEFAULTS` and :data:`GLORO_DEFAULTS`, overridden by ``"certified"`` and
``"gloro"``.

Every training and measuring setting of a configuration may be given per model
(:func:`per_model`); the numbers of the paper's protocol come from :mod:`amrlearn._paper`.
"""

import math

from .._paper import ADV_EPS, ADV_STEP_SIZE, ADV_STEPS, BOUND_BUDGET, INPUT_SHAPES, TAU

__all__ = ["METHODS", "build_net", "method_params", "per_model"]

#: lambda and beta of each method of objective (15); "Adv" is PGD training.
METHODS = {
    "Std": {"lam": 0.0, "beta": 0.0},
    "LCR": {"lam": 0.0, "beta": None},  # None: the configuration's beta
    "AMR (beta=0)": {"lam": None, "beta": 0.0},  # None: the configuration's lambda
    "AMR": {"lam": None, "beta": None},
    "Adv": {"adversarial": True},
    "DD": {"deep_defense": True},
    "MMR": {"mmr": True},
    "certified AMR": {"certified": True},
    "GloRo": {"gloro": True},
}

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

#: Parameters that Deep Defense's fine-tuning does not decay (the authors' bias group).
_NO_DECAY = "*bias"

#: Models that take flat vectors (they flatten images themselves).
_FLAT_MODELS = ("LR", "MLP")

#: Madry et al.'s step rule for PGD training with ``step_size="auto"``: the path
#: ``steps * step_size`` is this many times eps, enough to reach the sphere and move on it.
_AUTO_STEP_PATH = 2.5


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
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; choose from {sorted(METHODS)}.")
    spec = METHODS[method]
    if spec.get("deep_defense"):
        dd = {**DD_DEFAULTS, **config.get("dd", {})}
        keys = ("lam", "c", "d", "max_iter", "overshoot", "reg_batch_size")
        return {**{k: dd[k] for k in keys}, "pretrain_epochs": n_epochs(config, model)}
    if spec.get("mmr"):
        mmr = {**MMR_DEFAULTS, **config.get("mmr", {})}
        epochs = n_epochs(config, model, method)
        return {
            "lam": float(per_dataset(mmr["lam"], dataset)),
            "gamma_B": float(per_dataset(mmr["gamma"], dataset)),
            "gamma_D": float(per_dataset(mmr["gamma"], dataset)),
            "k_B": tuple(mmr["k_B"]),
            "lam_warmup_epochs": math.ceil(mmr["warmup_fraction"] * epochs),
            "reg_batch_size": mmr["reg_batch_size"],
        }
    if spec.get("gloro"):
        gloro = {**GLORO_DEFAULTS, **config.get("gloro", {})}
        epochs = n_epochs(config, model, method)
        return {
            "eps": float(per_dataset(gloro["eps"], dataset)),
            "warmup_epochs": math.ceil(gloro["warmup_fraction"] * epochs),
            "lipschitz": gloro["lipschitz"],
        }
    if spec.get("certified"):
        cert = {**CERTIFIED_DEFAULTS, **config.get("certified", {})}
        return {
            "lam": float(cert["lam"]),
            "beta": float(config["beta"] if cert["beta"] is None else cert["beta"]),
            "tau": float(per_dataset(cert["tau"], dataset)),
            "margin": "certified",
            "lipschitz": cert["lipschitz"],
        }
    if spec.get("adversarial"):
        adv = config.get("adv", {})
        eps = ADV_EPS[dataset]
        steps = adv.get("steps", ADV_STEPS)
        step_size = adv.get("step_size", ADV_STEP_SIZE)
        if step_size == "auto":
            step_size = _AUTO_STEP_PATH * eps / steps
        return {"eps": eps, "steps": steps, "step_size": step_size}
    lam = config["lam"] if spec["lam"] is None else spec["lam"]
    beta = config["beta"] if spec["beta"] is None else spec["beta"]
    tau = config.get("tau", {}).get(f"{dataset}/{model}", TAU[(dataset, model)])
    params = {"lam": float(lam), "beta": float(beta), "tau": float(tau)}
    if config.get("ortho_every") is not None:
        # The orthogonality penalty's schedule; absent: the estimator's default (lazy).
        # ``1`` is the exact every-step penalty of objective (15).
        params["ortho_every"] = int(config["ortho_every"])
    return params


def per_dataset(value, dataset):
    """``value[dataset]`` where ``value`` is a dict, else ``value``."""
    return value[dataset] if isinstance(value, dict) else value


def n_epochs(config, model, method=None):
    """The number of training epochs of ``model`` (with ``method``: that cell's, DD's
    Std epochs plus its fine-tuning, MMR's own)."""
    if method == "DD":
        return int(per_model(config["epochs"], model)) + int(
            {**DD_DEFAULTS, **config.get("dd", {})}["epochs"]
        )
    if method == "MMR":
        return int({**MMR_DEFAULTS, **config.get("mmr", {})}["epochs"])
    return int(per_model(config["epochs"], model))


def track_epochs(config, model, max_epochs):
    """The epochs (within ``1..max_epochs``) at which ``model``'s margins are tracked."""
    track = per_model(config.get("track"), model) or {}
    epochs = per_model(track.get("epochs"), model)
    if epochs == "all":
        return list(range(1, max_epochs + 1))
    return sorted({int(e) for e in (epochs or []) if 1 <= int(e) <= max_epochs})


def bound_params(spec, config, device):
    """Theorem 3's budget of a ``margin`` or ``track`` setting (the paper's by default)."""
    return {
        **{key: spec.get(key, value) for key, value in BOUND_BUDGET.items()},
        "random_state": config["seed"],
        "device": device,
        "verbose": 0,
    }


def module_kwargs(model, dataset):
    """The module's arguments: the input size of a flat model, else the dataset."""
    if model in _FLAT_MODELS:
        return {"in_features": math.prod(INPUT_SHAPES[dataset])}
    return {"dataset": dataset}


def build_net(dataset, model, method, config, data, device, *, callbacks, max_epochs):
    """The unfitted net of one cell, and the method's hyperparameters.

    Parameters
    ----------
    dataset, model, method : str
    config : dict
        The experiment's configuration.
    data : dict
        ``X_test`` and ``y_test``: watched as the validation set (never used to choose).
    device : torch.device
    callbacks : list of (str, Callback)
    max_epochs : int

    Returns
    -------
    net : AMRNeuralNetClassifier, AdversarialNeuralNetClassifier,
        DeepDefenseNeuralNetClassifier, MMRNeuralNetClassifier or GloRoNeuralNetClassifier
    params : dict
        From :func:`method_params`.
    """
    import torch
    from skorch.callbacks import EpochScoring
    from skorch.dataset import Dataset
    from skorch.helper import predefined_split

    from .. import neural
    from ..neural import models

    params = method_params(method, dataset, model, config)
    valid = Dataset(torch.as_tensor(data["X_test"]), torch.as_tensor(data["y_test"]))
    train_acc = EpochScoring("accuracy", on_train=True, name="train_acc", lower_is_better=False)
    common = dict(
        module=getattr(models, model),
        max_epochs=max_epochs,
        lr=per_model(config["lr"], model),
        batch_size=per_model(config["batch_size"], model),
        optimizer=torch.optim.SGD,
        optimizer__momentum=config["momentum"],
        optimizer__nesterov=config["nesterov"],
        device=str(device),
        # The paper trains on the whole training set; the test subset is only watched
        # (Figure 5's test error), never used to choose anything.
        train_split=predefined_split(valid),
        data_on_device=True,
        callbacks=[("train_acc", train_acc), *callbacks],
        iterator_train__shuffle=True,
        verbose=0,
    )
    for key, value in module_kwargs(model, dataset).items():
        common[f"module__{key}"] = value
    if config.get("augment", {}).get(f"{dataset}/{model}"):
        # Appendix F's crop and flip, on the training batches only.
        common["iterator_train__transform"] = neural.random_crop_flip
    if method == "Adv":
        attack = {f"attack__{key}": value for key, value in params.items()}
        return neural.AdversarialNeuralNetClassifier(**common, **attack), params
    if method == "DD":
        dd = {**DD_DEFAULTS, **config.get("dd", {})}
        start = params["pretrain_epochs"]
        # The Std epochs with the Std settings, then the authors' fine-tuning optimizer.
        rule = _finetune_rule(start, dd["epochs"], dd["lr"], dd["momentum"], dd["weight_decay"])
        # The authors' SGD has a bias group that is never decayed.
        common["optimizer__param_groups"] = [(_NO_DECAY, {"weight_decay": 0.0})]
        schedule = optimizer_schedule(rule, no_decay=_NO_DECAY)
        common["callbacks"] = [*common["callbacks"], ("dd_schedule", schedule)]
        return neural.DeepDefenseNeuralNetClassifier(**common, **params), params
    if method == "MMR":
        mmr = {**MMR_DEFAULTS, **config.get("mmr", {})}
        lr = per_dataset(mmr["lr"], dataset)
        drop = mmr["lr_drop_at"] * max_epochs
        common.update(
            optimizer=torch.optim.Adam,
            lr=lr,
            batch_size=mmr["batch_size"],
            callbacks=[
                *common["callbacks"],
                ("mmr_lr", optimizer_schedule(lambda e: {"lr": lr / 10 if e >= drop else lr})),
            ],
        )
        for key in ("optimizer__momentum", "optimizer__nesterov", "iterator_train__transform"):
            common.pop(key, None)  # Adam; and the authors' default: no augmentation
        return neural.MMRNeuralNetClassifier(**common, **params), params
    if method == "GloRo":
        return neural.GloRoNeuralNetClassifier(**common, **params), params
    return neural.AMRNeuralNetClassifier(**common, **params), params


def _finetune_rule(start, epochs, lr, momentum, weight_decay):
    """Deep Defense's fine-tuning optimizer from epoch ``start + 1``; ``None`` before.

    The authors halve the learning rate when the fine-tuning epoch index (from 0) equals
    ``0.8 * epochs`` (the last epoch of 5), and keep it halved."""
    halve_from = 0.8 * epochs

    def rule(epoch):
        i = epoch - start - 1  # fine-tuning epoch index, from 0
        if i < 0:
            return None
        half = halve_from.is_integer() and i >= halve_from
        return {
            "lr": lr / 2 if half else lr,
            "momentum": momentum,
            "nesterov": False,
            "weight_decay": weight_decay,
        }

    return rule


def optimizer_schedule(rule, no_decay=None):
    """A skorch callback that sets the optimizer's settings (``lr``, ``momentum``...) at
    each epoch's start to ``rule(epoch)`` (epochs from 1; ``None``: unchanged).

    ``no_decay``: a pattern of parameter names (``fnmatch``) whose parameter groups keep
    ``weight_decay=0`` (the groups must hold those parameters alone:
    ``optimizer__param_groups``)."""
    from fnmatch import fnmatch

    from skorch.callbacks import Callback

    class OptimizerSchedule(Callback):
        def on_epoch_begin(self, net, **kwargs):
            settings = rule(len(net.history))
            if not settings:
                return
            exempt = {
                id(p)
                for name, p in net.module_.named_parameters()
                if no_decay is not None and fnmatch(name, no_decay)
            }
            for group in net.optimizer_.param_groups:
                group.update(settings)
                if exempt and all(id(p) in exempt for p in group["params"]):
                    group["weight_decay"] = 0.0

    return OptimizerSchedule()


def epoch_bar(desc, total, verbose):
    """A skorch callback that shows one tqdm bar per cell: which cell, and how far."""
    from skorch.callbacks import Callback

    from ..utils import progress

    class EpochBar(Callback):
        def initialize(self):
            self.bar_ = progress(total=total, desc=desc, verbose=verbose, leave=False)
            return self

        def on_epoch_end(self, net, **kwargs):
            h = net.history[-1]
            post = {k: f"{h[k]:.3f}" for k in ("train_loss", "train_acc", "valid_acc") if k in h}
            self.bar_.set_postfix(post, refresh=False)
            self.bar_.update(1)

        def on_train_end(self, net, **kwargs):
            self.bar_.close()

    return EpochBar()


def penalty_recorder():
    """A skorch callback that records the orthogonality penalty of eq. (15) after each
    epoch as ``ortho_penalty`` in the history: its curve shows whether it has levelled off.
    """
    from skorch.callbacks import Callback

    from ..neural import orthogonality_penalty

    class PenaltyRecorder(Callback):
        def on_epoch_end(self, net, **kwargs):
            import torch

            with torch.no_grad():
                value = orthogonality_penalty(net.module_)
            net.history.record("ortho_penalty", float(value.cpu()))

    return PenaltyRecorder()


def history(net):
    """Per-epoch curves of a fitted net (Figure 5)."""
    h = net.history
    out = {"epoch": [int(e) for e in h[:, "epoch"]]}
    for key in ("train_loss", "train_acc", "valid_loss", "valid_acc", "dur", "ortho_penalty"):
        try:
            out[key] = [float(v) for v in h[:, key]]
        except KeyError:
            pass
    return out
