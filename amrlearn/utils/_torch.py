"""Torch adapters: any supported model becomes a function ``tensor -> logits``.

Attacks and margin bounds are written once, against :class:`LogitFunction`. The
adapter knows the device, the module whose train/eval mode must be switched, and the
mapping from logit columns to class labels. Torch is imported inside the functions.
"""

import contextlib
import sys

import numpy as np

__all__ = ["LogitFunction", "as_logit_fn"]


class LogitFunction:
    """A model seen as a differentiable function of a float tensor that returns logits.

    Build it with :func:`as_logit_fn`; the attributes below are what attacks and bounds
    read.

    Parameters
    ----------
    forward : callable
        ``forward(x) -> logits`` on a tensor already on ``device``; logits have shape
        ``(n_samples, n_classes)``.
    device : torch.device
        Where inputs must live.
    module : torch.nn.Module or None
        The module whose mode :meth:`eval_mode` switches (``None`` for linear estimators).
    classes : ndarray of shape (n_classes,) or None
        Label of each logit column. ``None`` means the labels are the column indices.
    linear : tuple of ndarray or None
        ``(coef, intercept)`` in the logit form (one row per logit column) when the model
        is known to be affine, else ``None``.
    dtype : torch.dtype
        The floating dtype in which inputs are given to the model.
    """

    def __init__(self, forward, device, *, module=None, classes=None, linear=None, dtype=None):
        import torch

        self._forward = forward
        self.device = device
        self.module = module
        self.classes = None if classes is None else np.asarray(classes)
        self.linear = linear
        self.dtype = torch.float32 if dtype is None else dtype

    def __call__(self, x):
        out = self._forward(x)
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out

    @contextlib.contextmanager
    def eval_mode(self):
        """Put the module in eval mode for the block, then restore its previous mode."""
        module = self.module
        if module is None:
            yield self
            return
        was_training = module.training
        module.eval()
        try:
            yield self
        finally:
            module.train(was_training)

    def label_index(self, y):
        """Column index of each label of ``y`` (ndarray of int64)."""
        y = np.asarray(y)
        if self.classes is None:
            if y.dtype.kind not in "iu":
                raise ValueError(
                    "This model's outputs are indexed by class number: y must hold integer "
                    f"labels 0..n_classes-1, got dtype {y.dtype}."
                )
            return y.astype(np.int64)
        idx = np.clip(np.searchsorted(self.classes, y), 0, len(self.classes) - 1)
        bad = self.classes[idx] != y
        if np.any(bad):
            raise ValueError(f"y contains labels not seen during fit: {np.unique(y[bad])[:5]}")
        return idx.astype(np.int64)

    def index_label(self, idx):
        """Class label of each column index (the inverse of :meth:`label_index`)."""
        idx = np.asarray(idx)
        return idx if self.classes is None else self.classes[idx]


def _is_skorch_net(model):
    skorch = sys.modules.get("skorch")
    return skorch is not None and isinstance(model, skorch.NeuralNet)


def _module_device(module):
    import torch

    for p in module.parameters():
        return p.device
    for b in module.buffers():
        return b.device
    return torch.device("cpu")


def _module_dtype(module):
    import torch

    for p in module.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def _module_fn(module, device, classes=None):
    from ._device import resolve_device

    if device is None:
        device = _module_device(module)
    else:
        device = resolve_device(device)
        if _module_device(module) != device:
            module.to(device)
    linear = _linear_module_weights(module)
    return LogitFunction(
        module, device, module=module, classes=classes, linear=linear, dtype=_module_dtype(module)
    )


def _linear_module_weights(module):
    """``(coef, intercept)`` when ``module`` is one ``nn.Linear`` (optionally after a
    ``nn.Flatten`` inside an ``nn.Sequential``), else ``None``."""
    import torch

    layers = list(module) if isinstance(module, torch.nn.Sequential) else [module]
    layers = [m for m in layers if not isinstance(m, (torch.nn.Flatten, torch.nn.Identity))]
    if len(layers) != 1 or type(layers[0]) is not torch.nn.Linear:
        return None
    lin = layers[0]
    coef = lin.weight.detach().cpu().double().numpy()
    if lin.bias is None:
        intercept = np.zeros(coef.shape[0])
    else:
        intercept = lin.bias.detach().cpu().double().numpy()
    return coef, intercept


def _estimator_fn(estimator, device):
    """Logits of a fitted linear estimator, computed in float64 for exactness."""
    import torch

    from ._device import resolve_device

    device = resolve_device(device)
    coef = np.atleast_2d(np.asarray(estimator.coef_, dtype=np.float64))
    intercept = np.asarray(getattr(estimator, "intercept_", 0.0), dtype=np.float64)
    intercept = np.broadcast_to(np.atleast_1d(intercept), (coef.shape[0],)).copy()
    if coef.shape[0] == 1:
        # Binary: logits [0, w.x + b], so that argmax agrees with predict.
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    w = torch.as_tensor(coef, device=device)
    b = torch.as_tensor(intercept, device=device)

    def forward(x):
        return x.reshape(x.shape[0], -1).to(torch.float64) @ w.T + b

    classes = getattr(estimator, "classes_", None)
    return LogitFunction(
        forward, device, classes=classes, linear=(coef, intercept), dtype=torch.float32
    )


def as_logit_fn(model, device=None):
    """Turn a model into a function ``tensor -> logits`` for attacks and bounds.

    Parameters
    ----------
    model : torch.nn.Module, skorch net, fitted linear estimator or LogitFunction
        - a ``torch.nn.Module``: its output, or the first element when ``forward``
          returns a tuple such as ``(logits, features)``;
        - a fitted skorch net: its ``module_`` on ``net.device`` (reshaping the input is
          the module's job); logit column ``k`` is the label ``classes_[k]`` where the
          net has ``classes_``;
        - a fitted linear estimator with ``coef_`` and ``intercept_`` (scikit-learn or
          amrlearn): the logits ``X @ coef_.T + intercept_``, computed in float64. A
          binary ``coef_`` of shape (1, d) gives two logits ``[0, w.x + b]``, so that
          the argmax agrees with ``predict``. Pipelines are not accepted: fold the
          preprocessing into the data first;
        - a :class:`LogitFunction`, returned unchanged when ``device`` is None.
    device : str, torch.device or None, default=None
        ``None`` keeps the model where it is (the device of a module's parameters, the
        net's ``device``, the CPU for linear estimators). Otherwise a torch module is
        moved there in place (``module.to(device)``).

    Returns
    -------
    fn : LogitFunction
        Callable on a float tensor on ``fn.device``; also carries ``module`` (for
        :meth:`~LogitFunction.eval_mode`), ``classes`` and ``linear`` (the affine
        weights where the model is a linear estimator or a single ``nn.Linear``).

    Raises
    ------
    TypeError
        For any other kind of model.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sklearn.linear_model import LogisticRegression
    >>> from amrlearn.utils import as_logit_fn
    >>> X = np.array([[0.0], [1.0], [3.0], [4.0]]); y = np.array([0, 0, 1, 1])
    >>> fn = as_logit_fn(LogisticRegression().fit(X, y))
    >>> fn(torch.tensor([[0.0], [4.0]])).argmax(1).tolist()
    [0, 1]
    >>> as_logit_fn(torch.nn.Linear(3, 2)).device
    device(type='cpu')
    """
    import torch

    if isinstance(model, LogitFunction):
        if device is None:
            return model
        if model.module is not None:
            return _module_fn(model.module, device, classes=model.classes)
        raise TypeError("A LogitFunction without a module cannot be moved: rebuild it.")
    if isinstance(model, torch.nn.Module):
        return _module_fn(model, device)
    if _is_skorch_net(model):
        if not getattr(model, "initialized_", False) or not hasattr(model, "module_"):
            raise ValueError(f"This {type(model).__name__} is not initialized: fit it first.")
        try:
            classes = model.classes_
        except AttributeError:
            classes = None
        return _module_fn(model.module_, device if device is not None else model.device, classes)
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline):
        raise TypeError(
            "as_logit_fn does not accept a Pipeline: its preprocessing is not a torch "
            "function. Transform X with pipeline[:-1] and pass the final estimator."
        )
    if hasattr(model, "coef_"):
        return _estimator_fn(model, device)
    raise TypeError(
        f"Cannot make a logit function of {type(model).__name__}: expected a torch.nn.Module, "
        "a fitted skorch net or a fitted linear estimator (with coef_)."
    )
