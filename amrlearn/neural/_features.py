"""Any torch module on the nets: where the features of eq. (14) come from, and eval mode.

The features ``Phi(x)`` of eq. (14) are the input of the linear layer that produces the
logits. A module may return them itself, as ``(logits, features)`` (the models of
:mod:`amrlearn.neural.models` do); for any other module they are captured by a forward
hook on that layer during the net's own forward pass: no second pass, and the hook lives
only for the duration of that pass.
"""

import torch

from ..utils._torch import eval_mode  # the one helper, shared with the attacks

__all__ = [
    "bare_module",
    "eval_mode",
    "find_feature_layer",
    "forward_with_features",
    "logits_of",
]

#: The wrappers that hold the user's module as ``.module`` (torch's data parallelism; what
#: ``accelerate`` makes of ``module_`` under several processes).
_PARALLEL_WRAPPERS = (
    torch.nn.parallel.DistributedDataParallel,
    torch.nn.DataParallel,
)


def logits_of(y_pred):
    """The first output of a module that returns ``(logits, features)``."""
    return y_pred[0] if isinstance(y_pred, tuple | list) else y_pred


def bare_module(module):
    """The user's module inside a data-parallel wrapper, or ``module`` itself.

    Under :class:`skorch.hf.AccelerateMixin` with several processes, ``module_`` is a
    :class:`torch.nn.parallel.DistributedDataParallel` whose submodules are named
    ``module.xxx`` and which hides attributes such as ``last_linear``. Whatever looks at
    the module's structure (the feature layer, the last linear layer, the weights of the
    orthogonality penalty) looks at the module this returns. It shares its parameters
    with the wrapper, so gradients taken through it are still synchronized by the wrapper.

    Parameters
    ----------
    module : torch.nn.Module

    Returns
    -------
    module : torch.nn.Module
        ``module.module`` (recursively) for a ``DistributedDataParallel`` or
        ``DataParallel``; ``module`` otherwise.

    Examples
    --------
    >>> import torch
    >>> from amrlearn.neural._features import bare_module
    >>> net = torch.nn.Linear(3, 2)
    >>> bare_module(torch.nn.DataParallel(net)) is net, bare_module(net) is net
    (True, True)
    """
    while isinstance(module, _PARALLEL_WRAPPERS):
        module = module.module
    return module


def find_feature_layer(module, name=None):
    """The qualified name of the layer whose input is ``Phi(x)``, or ``None``.

    Parameters
    ----------
    module : torch.nn.Module
    name : str or None, default=None
        A submodule's qualified name (``"fc"``, ``"head.2"``), which must be a
        :class:`torch.nn.Linear`. ``None`` takes the submodule named ``last_linear`` if
        there is one, else the last registered ``nn.Linear``.

    Returns
    -------
    name : str or None
        ``None`` when ``module`` has no ``nn.Linear`` at all.

    Examples
    --------
    >>> import torch
    >>> from amrlearn.neural._features import find_feature_layer
    >>> net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    >>> find_feature_layer(net)
    '2'
    """
    if name is not None:
        try:
            layer = module.get_submodule(name)
        except AttributeError as exc:
            raise ValueError(
                f"feature_layer={name!r}: {type(module).__name__} has no submodule of that "
                f"name; its linear layers are {_linear_names(module)}."
            ) from exc
        if not isinstance(layer, torch.nn.Linear):
            raise ValueError(
                f"feature_layer={name!r} is a {type(layer).__name__}; it must be the "
                "torch.nn.Linear layer that produces the logits."
            )
        return name
    if isinstance(getattr(module, "last_linear", None), torch.nn.Linear):
        return "last_linear"
    names = _linear_names(module)
    return names[-1] if names else None


def _linear_names(module):
    return [n for n, m in module.named_modules() if isinstance(m, torch.nn.Linear)]


def forward_with_features(forward, layer, x):
    """``forward(x)``, as ``(logits, features)`` where ``layer`` produces the logits.

    A module that returns a tuple keeps its own. Otherwise a forward hook on ``layer``
    records its input and output during the one forward pass; the input is ``Phi(x)`` if
    the output is the module's output (the same tensor, or equal values). If it is not,
    or ``layer`` is ``None``, the logits are returned alone.

    Parameters
    ----------
    forward : callable
        ``forward(x) -> logits`` or ``(logits, features, ...)``.
    layer : torch.nn.Linear or None
    x : input of ``forward``

    Returns
    -------
    tuple (logits, features) or Tensor (the logits alone)
    """
    if layer is None:
        return forward(x)
    seen = {}

    def hook(_, inputs, output):
        seen["features"], seen["output"] = inputs[0], output

    handle = layer.register_forward_hook(hook)
    try:
        out = forward(x)
    finally:
        handle.remove()
    if isinstance(out, tuple | list) or "output" not in seen:
        return out
    produced = seen["output"]
    if produced is out or (produced.shape == out.shape and torch.equal(produced, out)):
        return out, seen["features"]
    return out
