"""The model checks behind :class:`~amrlearn.exceptions.EvaluationWarning`, written once.

Attacks and bounds call these on the way in: :func:`warn_if_training` where the caller
owns the module's mode (``attack.run`` on tensors), :func:`warn_if_stochastic` where the
library put the module in eval mode itself (a model whose output still changes between
two passes has a random layer that eval mode does not switch off).
"""

import warnings

from ..exceptions import EvaluationWarning

__all__ = ["warn", "warn_if_stochastic", "warn_if_training"]

#: Samples of the first batch that the randomness check passes twice through the model.
_N_CHECK = 8


def warn(message, stacklevel=3):
    """Emit an :class:`~amrlearn.exceptions.EvaluationWarning`."""
    warnings.warn(message, EvaluationWarning, stacklevel=stacklevel)


def _module(fn):
    import torch

    module = getattr(fn, "module", fn)
    return module if isinstance(module, torch.nn.Module) else None


def warn_if_training(fn, where):
    """Warn if dropout or batch normalization of ``fn``'s module is in training mode.

    A module in training mode without such layers computes the same function as in
    eval mode, so it raises no alarm.

    Parameters
    ----------
    fn : callable
        A :class:`~amrlearn.utils.LogitFunction`, a ``torch.nn.Module`` or any callable
        (which is not checked).
    where : str
        The attack or bound, for the message.

    Examples
    --------
    >>> import warnings, torch
    >>> from amrlearn.utils._alarms import warn_if_training
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5))
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_if_training(net, "L2PGD.run")
    ...     warn_if_training(net.eval(), "L2PGD.run")
    >>> len(caught)
    1
    """
    import torch

    module = _module(fn)
    if module is None:
        return
    acting = sorted(
        {
            type(m).__name__
            for m in module.modules()
            if m.training
            and isinstance(
                m, (torch.nn.modules.dropout._DropoutNd, torch.nn.modules.batchnorm._NormBase)
            )
        }
    )
    if acting:
        warn(
            f"{where}: {', '.join(acting)} in training mode act during the attack: dropout "
            "draws a new mask at each pass and batch normalization uses (and updates) the "
            "batch statistics. Put the model in eval mode (attack(model, X, y) does).",
            stacklevel=4,
        )


def warn_if_stochastic(fn, x, where):
    """Warn if two forward passes of ``fn`` on the first samples of ``x`` differ.

    Called in eval mode: a difference means a layer that eval mode does not switch off
    (``F.dropout(x, training=True)``, noise injection), so attacks chase noise and bounds
    are not reproducible.

    Parameters
    ----------
    fn : callable
        ``fn(x) -> logits``.
    x : tensor of shape (n, ...)
        Inputs on ``fn``'s device.
    where : str
        The attack or bound, for the message.

    Examples
    --------
    >>> import warnings, torch
    >>> from amrlearn.utils._alarms import warn_if_stochastic
    >>> class Noisy(torch.nn.Module):
    ...     def forward(self, x):
    ...         return x + torch.randn_like(x)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_if_stochastic(Noisy(), torch.zeros(4, 3), "robust_accuracy")
    ...     warn_if_stochastic(torch.nn.Linear(3, 3), torch.zeros(4, 3), "robust_accuracy")
    >>> len(caught)
    1
    """
    import torch

    x = x[:_N_CHECK]
    if x.shape[0] == 0:
        return
    with torch.no_grad():
        a, b = fn(x), fn(x)
    if isinstance(a, (tuple, list)):
        a, b = a[0], b[0]
    if not torch.allclose(a, b, rtol=1e-4, atol=1e-5):
        warn(
            f"{where}: the model's output changes between two passes on the same input in "
            "eval mode (a random layer, such as F.dropout(training=True), stays active): "
            "attacks and bounds then measure a random function.",
            stacklevel=4,
        )
