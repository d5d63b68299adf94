"""Load a trained model from the files people save: ``load_checkpoint(spec, path)``.

A *spec* names the architecture: a model of the zoo with its options (``"CNN"``,
``"MLP:hidden=256"``, ``"CNN:dataset=cifar10"``) or an import path
(``"package.module:Class"``, ``"package.module:Class:width=64"``). The file may hold a
bare state dict, a dict holding one (``state_dict``, ``model_state_dict`` or ``model``),
keys under a ``module.``, ``net.`` or ``model.`` prefix, a whole pickled module
(``torch.save(module)``) or a TorchScript module (``torch.jit.save``). Where the names of
the file differ from the model's, the tensors are matched by order and shape, and a file
that cannot be matched unambiguously is refused, naming the first mismatch. Entries of a
kind that the model has no slot for (``net.inverse``) are dropped, with a warning, where
the rest then matches; a surplus weight is refused.

Only a whole pickled module needs Python's unpickler, which runs code from the file; it
is used only when the caller says the file is trusted (``trust_pickle=True``). State dicts
load with ``torch.load(weights_only=True)`` and TorchScript with ``torch.jit.load``.
"""

import ast
import hashlib
import importlib
import math
import pickle
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

from .._paper import INPUT_SHAPES
from ..exceptions import CheckpointError

__all__ = ["CheckpointError", "build_model", "load_checkpoint", "parse_model_spec"]

#: The models of :mod:`amrlearn.neural.models` that a spec may name.
ZOO = ("LR", "MLP", "CNN", "ConvNet", "LeNet", "LeNetSmall")
#: The zoo models whose first argument is the number of input features.
_FLAT = ("LR", "MLP")
#: The keys under which checkpoint dicts keep the state dict (or the module), in order.
_STATE_KEYS = ("state_dict", "model_state_dict", "model")
#: Prefixes that wrappers add to every key (DataParallel, skorch-style and Lightning-style
#: holders), stripped while every key carries one.
_PREFIXES = ("module.", "net.", "model.")


def _value(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word: dataset=cifar10


def parse_model_spec(spec):
    """Split a model spec into ``(kind, target, kwargs)``.

    Parameters
    ----------
    spec : str
        ``NAME[:key=value,...]`` for a model of the zoo (``"CNN"``, ``"MLP:hidden=256"``),
        or ``module.path:Attribute[:key=value,...]`` for any class or function that
        returns a ``torch.nn.Module``. Values are Python literals (``256``, ``0.5``,
        ``None``) or bare words (``cifar10``).

    Returns
    -------
    kind : {"zoo", "import"}
    target : str
        The zoo name, or ``"module.path:Attribute"``.
    kwargs : dict

    Examples
    --------
    >>> from amrlearn.neural._checkpoint import parse_model_spec
    >>> parse_model_spec("MLP:hidden=256,n_classes=10")
    ('zoo', 'MLP', {'hidden': 256, 'n_classes': 10})
    >>> parse_model_spec("CNN:dataset=cifar10")
    ('zoo', 'CNN', {'dataset': 'cifar10'})
    >>> parse_model_spec("mypackage.nets:WideNet:width=4")
    ('import', 'mypackage.nets:WideNet', {'width': 4})
    """
    if not isinstance(spec, str) or not spec.strip():
        raise CheckpointError(f"A model spec is a non-empty string, got {spec!r}.")
    parts = spec.strip().split(":")
    if parts[0] in ZOO:
        kind, target, options = "zoo", parts[0], parts[1:]
    elif len(parts) >= 2 and all(p.isidentifier() for p in parts[0].split(".") + [parts[1]]):
        kind, target, options = "import", f"{parts[0]}:{parts[1]}", parts[2:]
    else:
        raise CheckpointError(
            f"Unknown model {spec!r}: give a model of the zoo ({', '.join(ZOO)}), with "
            "options as in 'MLP:hidden=256', or an import path 'package.module:Class'."
        )
    if len(options) > 1:
        raise CheckpointError(f"Model spec {spec!r}: options go after one colon, 'k=v,k2=v2'.")
    kwargs = {}
    for item in filter(None, (options[0].split(",") if options else [])):
        key, sep, text = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise CheckpointError(f"Model spec {spec!r}: option {item!r} is not 'name=value'.")
        kwargs[key.strip()] = _value(text.strip())
    return kind, target, kwargs


def _zoo_defaults(name, kwargs, input_shape):
    """The zoo model's size arguments, from the data's shape where not given."""
    if input_shape is None:
        if name in _FLAT and "in_features" not in kwargs:
            kwargs["in_features"] = math.prod(INPUT_SHAPES["mnist"])
        return kwargs
    shape = tuple(int(s) for s in input_shape)
    if name in _FLAT:
        kwargs.setdefault("in_features", math.prod(shape))
    elif "dataset" not in kwargs:
        for dataset in ("mnist", "cifar10"):  # Fashion-MNIST's shape is MNIST's
            if shape in (INPUT_SHAPES[dataset], (math.prod(INPUT_SHAPES[dataset]),)):
                kwargs["dataset"] = dataset
                break
        else:
            raise CheckpointError(
                f"{name} is built for MNIST (1, 28, 28) or CIFAR-10 (3, 32, 32) inputs; the "
                f"data's shape is {shape}."
            )
    return kwargs


def build_model(spec, input_shape=None):
    """The untrained module that a spec names (see :func:`parse_model_spec`).

    Parameters
    ----------
    spec : str
    input_shape : tuple of int, default=None
        The shape of one input, ``(C, H, W)`` or ``(n_features,)``: it fills in the zoo's
        ``in_features`` (LR, MLP) and ``dataset`` (the others) where the spec does not
        give them. ``None``: MNIST's.

    Returns
    -------
    module : torch.nn.Module

    Examples
    --------
    >>> from amrlearn.neural._checkpoint import build_model
    >>> build_model("MLP:hidden=32").hidden_layer
    Linear(in_features=784, out_features=32, bias=True)
    >>> build_model("LeNetSmall", input_shape=(3, 32, 32)).input_shape
    (3, 32, 32)
    """
    from torch import nn

    from . import models

    kind, target, kwargs = parse_model_spec(spec)
    if kind == "zoo":
        factory = getattr(models, target)
        kwargs = _zoo_defaults(target, kwargs, input_shape)
    else:
        module_name, attr = target.split(":")
        try:
            factory = importlib.import_module(module_name)
        except ImportError as exc:
            raise CheckpointError(f"Cannot import {module_name!r} for {spec!r}: {exc}") from exc
        for name in attr.split("."):
            if not hasattr(factory, name):
                raise CheckpointError(f"{module_name} has no attribute {attr!r} ({spec!r}).")
            factory = getattr(factory, name)
    try:
        module = factory(**kwargs)
    except TypeError as exc:
        raise CheckpointError(f"Cannot build {spec!r}: {exc}") from exc
    if not isinstance(module, nn.Module):
        raise CheckpointError(f"{spec!r} gave a {type(module).__name__}, not a torch.nn.Module.")
    return module


def _is_torchscript(path):
    """Whether ``path`` is a TorchScript archive (a zip holding ``code/`` and constants)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(n.endswith("constants.pkl") or "/code/" in n for n in names)


def _is_torch_archive(path):
    """Whether ``path`` is what ``torch.save`` writes: a zip holding ``data.pkl``."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith("/data.pkl") or n == "data.pkl" for n in archive.namelist())


def _read(path, trust_pickle):
    """What the file holds, and its format: ``"torchscript"``, ``"module"`` or ``"state"``."""
    import torch

    if _is_torchscript(path):
        with warnings.catch_warnings():  # TorchScript is the file's format, not our choice
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(path), map_location="cpu"), "torchscript"
    try:
        return torch.load(path, map_location="cpu", weights_only=True), "state"
    except pickle.UnpicklingError as exc:
        # A refused class ("Unsupported global") needs the unpickler; anything else is
        # not a file torch.save wrote.
        if "global" not in str(exc).lower() and not _is_torch_archive(path):
            raise CheckpointError(f"{path} is not a PyTorch checkpoint: {exc}") from exc
        if not trust_pickle:
            raise CheckpointError(
                f"{path} holds Python objects other than tensors and containers (a whole "
                "module saved with torch.save(model)?). Unpickling them runs code from the "
                "file: load it only if "
                "you trust where it comes from, with trust_pickle=True (amrlearn evaluate "
                "--trust-pickle), or save model.state_dict() instead."
            ) from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a PyTorch checkpoint: {exc}") from exc
    try:
        return torch.load(path, map_location="cpu", weights_only=False), "module"
    except (AttributeError, ImportError) as exc:
        raise CheckpointError(
            f"{path} holds a pickled object whose class cannot be imported here ({exc}); "
            "import the module that defines it, or load a state dict with a model spec."
        ) from exc


def _unwrap(obj, path):
    """A module, or a state dict (name -> tensor), from what the file holds."""
    import torch
    from torch import nn

    if isinstance(obj, nn.Module):
        return obj
    if isinstance(obj, Mapping):
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        for key in _STATE_KEYS:
            if key in obj:
                return _unwrap(obj[key], path)
    keys = list(obj)[:8] if isinstance(obj, Mapping) else None
    what = f"a dict with keys {keys}" if keys is not None else f"a {type(obj).__name__}"
    raise CheckpointError(
        f"{path} holds {what}: expected a state dict (names -> tensors), a dict holding "
        f"one under {', '.join(repr(k) for k in _STATE_KEYS)}, or a module."
    )


def _strip(state):
    """``state`` and its versions with a wrapper's prefix removed, least stripped first."""
    versions = [state]
    while True:
        prefix = next((p for p in _PREFIXES if all(k.startswith(p) for k in versions[-1])), None)
        if prefix is None:
            return versions
        versions.append({k[len(prefix) :]: v for k, v in versions[-1].items()})


def _shape(t):
    return tuple(t.shape)


def _first_mismatch(target, state):
    """The message naming the first pair, in order, whose shapes differ (or that is
    missing on one side)."""
    t_items, s_items = list(target.items()), list(state.items())
    for i in range(max(len(t_items), len(s_items))):
        if i >= len(t_items):
            name, t = s_items[i]
            return (
                f"the checkpoint's tensor {i} {name!r} {_shape(t)} has no counterpart in the model"
            )
        if i >= len(s_items):
            name, t = t_items[i]
            return (
                f"the model's tensor {i} {name!r} {_shape(t)} has no counterpart in the checkpoint"
            )
        (tn, tt), (sn, st) = t_items[i], s_items[i]
        if _shape(tt) != _shape(st):
            return (
                f"tensor {i}: the model's {tn!r} has shape {_shape(tt)}, the checkpoint's "
                f"{sn!r} {_shape(st)}"
            )
    return None


def _match(target, versions, path):
    """Map the checkpoint's tensors onto the model's names: ``(state, how)``."""
    for state in versions:
        if set(state) == set(target):
            for name, t in target.items():
                if _shape(state[name]) != _shape(t):
                    raise CheckpointError(
                        f"{path} does not fit the model: {name!r} has shape "
                        f"{_shape(state[name])} in the checkpoint, {_shape(t)} in the model."
                    )
            return state, "names"
    state = versions[-1]
    problem = _first_mismatch(target, state)
    if problem is None:
        return dict(zip(target, state.values())), "order"
    # Out of order, but each shape occurs once on both sides: the pairing is still unique.
    t_shapes = [_shape(t) for t in target.values()]
    by_shape = {_shape(v): v for v in state.values()}
    unique = len(set(t_shapes)) == len(t_shapes) == len(by_shape) == len(state)
    if unique and set(t_shapes) == set(by_shape):
        return {name: by_shape[_shape(t)] for name, t in target.items()}, "shape"
    raise CheckpointError(
        f"{path}: its names differ from the model's and its tensors cannot be matched by "
        f"order and shape: {problem}."
    )


def _surplus(target, state):
    """The checkpoint's entries of a kind the model has no slot for: the last part of
    their name (``inverse`` in ``net.inverse``) ends none of the model's names."""
    kinds = {name.rsplit(".", 1)[-1] for name in target}
    return [key for key in state if key.rsplit(".", 1)[-1] not in kinds]


def _match_or_drop(target, state, path):
    """:func:`_match`, else the same without the surplus entries: ``(state, how, dropped)``.

    An entry is dropped only when its kind has no slot in the model (as the ``inverse``
    buffers that the authors of the paper drop when they load their own checkpoints) and
    the rest then matches; a surplus weight or bias is never dropped (it is refused).
    """
    try:
        return (*_match(target, _strip(state), path), [])
    except CheckpointError:
        surplus = _surplus(target, state)
        if not surplus or len(surplus) == len(state):
            raise
        kept = {k: v for k, v in state.items() if k not in surplus}
        try:
            mapped, how = _match(target, _strip(kept), path)
        except CheckpointError:
            pass
        else:
            listed = ", ".join(f"{k!r} {_shape(state[k])}" for k in surplus)
            noun = "entry" if len(surplus) == 1 else "entries"
            warnings.warn(
                f"{path.name}: dropped {len(surplus)} {noun} that the model has no slot for "
                f"(none of its tensors is of that kind): {listed}.",
                UserWarning,
                stacklevel=3,
            )
            return mapped, how, surplus
        raise


def load_checkpoint(spec, path, *, input_shape=None, trust_pickle=False, return_info=False):
    """A trained model from a checkpoint file, in eval mode on the CPU.

    Parameters
    ----------
    spec : str, torch.nn.Module, callable or None
        The architecture: a spec string (see :func:`parse_model_spec`: ``"CNN"``,
        ``"MLP:hidden=256"``, ``"package.module:Class"``), a module to load the weights
        into, or a callable that returns one. ``None``: the file must hold a whole module
        (pickled or TorchScript), which is returned as it is.
    path : str or path-like
        The file: a state dict; a dict holding one under ``state_dict``,
        ``model_state_dict`` or ``model``; keys under a ``module.``, ``net.`` or
        ``model.`` prefix; a whole pickled module (``torch.save(model)``); a TorchScript
        module (``torch.jit.save``). Given a spec, the weights of a whole module are
        loaded into the spec's model.
    input_shape : tuple of int, default=None
        The shape of one input; fills in the zoo's ``in_features`` and ``dataset`` (see
        :func:`build_model`).
    trust_pickle : bool, default=False
        Allow a whole pickled module, which ``torch.load(weights_only=False)`` unpickles:
        that runs code from the file, so only for files you trust. State dicts and
        TorchScript never need it.
    return_info : bool, default=False
        Also return a dict: ``format`` (``"state"``, ``"module"``, ``"torchscript"``),
        ``matched_by`` (``"names"``, ``"order"``, ``"shape"``, or ``None`` for a module
        used as it is), ``file`` (its name), ``sha256`` (of its bytes) and ``dropped``
        (the names of the entries left out, see Warns).

    Returns
    -------
    model : torch.nn.Module
    info : dict
        With ``return_info=True``.

    Warns
    -----
    UserWarning
        When entries of the file are dropped: only entries of a kind that the model has no
        slot for (the last part of the name ends none of the model's names, as the
        ``inverse`` entries that the paper's authors drop when they load their
        checkpoints), and only when the rest then matches the model.

    Raises
    ------
    FileNotFoundError
        When ``path`` is not a file.
    CheckpointError
        When the file is not a checkpoint, needs ``trust_pickle``, or does not fit the
        model: the message names the first tensor that does not match.

    Examples
    --------
    >>> import tempfile, torch
    >>> from amrlearn.neural import load_checkpoint
    >>> from amrlearn.neural.models import MLP
    >>> path = tempfile.mkdtemp() + "/mlp.pt"
    >>> trained = MLP(784, hidden=16)
    >>> torch.save({"epoch": 3, "state_dict": trained.state_dict()}, path)
    >>> model, info = load_checkpoint("MLP:hidden=16", path, return_info=True)
    >>> info["format"], info["matched_by"]
    ('state', 'names')
    >>> bool(torch.equal(model.last_linear.weight, trained.last_linear.weight))
    True
    """
    import torch
    from torch import nn

    if isinstance(spec, str):
        parse_model_spec(spec)  # a wrong spec is named before the file is read
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint not found: {path}")
    content, fmt = _read(path, trust_pickle)
    loaded = _unwrap(content, path)
    if isinstance(loaded, nn.Module) and fmt == "state":
        fmt = "module"  # a module inside a dict, unpickled with trust_pickle
    if spec is None:
        if not isinstance(loaded, nn.Module):
            raise CheckpointError(
                f"{path} holds a state dict: name its architecture (a model spec such as "
                "'CNN' or 'package.module:Class')."
            )
        model, how, dropped = loaded, None, []
    else:
        if isinstance(spec, nn.Module):
            model = spec
        elif isinstance(spec, str):
            model = build_model(spec, input_shape)
        else:
            model = spec()
        state = loaded.state_dict() if isinstance(loaded, nn.Module) else loaded
        mapped, how, dropped = _match_or_drop(model.state_dict(), state, path)
        with torch.no_grad():
            model.load_state_dict(mapped, strict=True)
    model = model.cpu().eval()
    if not return_info:
        return model
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    info = {"format": fmt, "matched_by": how, "file": path.name, "sha256": digest}
    return model, {**info, "dropped": dropped}
