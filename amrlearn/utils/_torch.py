"""Torch adapters: any supported model becomes a function ``tensor -> logits``.

Attacks and margin bounds are written once, against :class:`LogitFunction`. The
adapter knows the device, the module whose train/eval mode must be switched, the
mapping from logit columns to class labels and whether the model is affine (then
margins have a closed form). Torch is imported inside the functions.
"""

import contextlib
import sys

import numpy as np

from ._affine import pipeline_affine
from ._inputs import as_labels
from ._labels import label_index

__all__ = ["LogitFunction", "as_logit_fn", "eval_mode", "is_affine_module"]


@contextlib.contextmanager
def eval_mode(module):
    """Put ``module`` in eval mode for the block, then give every submodule its mode back.

    ``module.train(mode)`` would set one mode for the whole tree: a submodule frozen in
    eval mode under a root in train mode (a frozen batch norm in fine-tuning) would come
    back in train mode. The mode of every submodule is recorded and restored instead.
    The one helper of the attacks, the bounds and the nets.

    Parameters
    ----------
    module : torch.nn.Module

    Examples
    --------
    >>> import torch
    >>> from amrlearn.utils._torch import eval_mode
    >>> net = torch.nn.Sequential(torch.nn.Dropout(), torch.nn.BatchNorm1d(2).eval())
    >>> with eval_mode(net):
    ...     net.training, net[1].training
    (False, False)
    >>> net.training, net[0].training, net[1].training
    (True, True, False)
    """
    modes = [(m, m.training) for m in module.modules()]  # parents before children
    module.eval()
    try:
        yield module
    finally:
        for m, mode in modes:
            if m.training != mode:
                m.train(mode)  # through train(), which a module may override


class LogitFunction:
    """A model seen as a differentiable function of a float tensor that returns logits.

    Build it with :func:`as_logit_fn`; the attributes below are what attacks and bounds
    read.

    Parameters
    ----------
    forward : callable
        ``forward(x) -> logits`` on a tensor already on ``device``; logits have shape
        ``(n_samples, n_classes)``. A tuple output keeps its first element.
    device : torch.device
        Where inputs must live.
    module : torch.nn.Module or None
        The module whose mode :meth:`eval_mode` switches (``None`` for linear estimators).
    classes : ndarray of shape (n_classes,) or None
        Label of each logit column, sorted (an estimator's ``classes_``). ``None`` means
        the labels are the column indices.
    linear : tuple of ndarray or None
        ``(coef, intercept)`` in the logit form (one row per logit column, float64), when
        they are known in advance (linear estimators).
    affine : bool, default=False
        The logits are an affine function of the (flattened) input; implied by ``linear``.
    dtype : torch.dtype
        The floating dtype in which inputs are given to the model.
    """

    def __init__(
        self, forward, device, *, module=None, classes=None, linear=None, affine=False, dtype=None
    ):
        import torch

        self._forward = forward
        self.device = device
        self.module = module
        self.classes = None if classes is None else np.asarray(classes)
        self.linear = linear
        self.affine = bool(affine) or linear is not None
        self.dtype = torch.float32 if dtype is None else dtype
        self._weights = {}
        self._n_outputs = {}

    def __call__(self, x):
        out = self._forward(x)
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out

    @contextlib.contextmanager
    def eval_mode(self):
        """Put the module in eval mode for the block, then give every submodule its mode
        back (see :func:`eval_mode`)."""
        if self.module is None:
            yield self
            return
        with eval_mode(self.module):
            yield self

    def n_outputs(self, X):
        """The number of logit columns, from one forward pass of a sample of ``X`` in
        eval mode (read off the weights of a linear model); cached per input shape."""
        import torch

        if self.linear is not None:
            return self.linear[0].shape[0]
        shape = tuple(X.shape[1:])
        if shape not in self._n_outputs:
            with self.eval_mode(), torch.no_grad():
                out = self(X[:1].to(self.device, self.dtype))
            self._n_outputs[shape] = int(out.shape[-1])
        return self._n_outputs[shape]

    def targets(self, y, X):
        """The column index of each label of ``y``, checked against the model's outputs.

        The one way from labels to targets of attacks and bounds: labels are mapped
        through ``classes`` (:meth:`label_index`; without ``classes``, they must be the
        integers ``0..n_outputs-1``), and an index beyond the model's last output is
        refused before any loss indexes the logits with it.

        Parameters
        ----------
        y : array-like or tensor of shape (n_samples,)
        X : tensor of shape (n_samples, ...)
            The inputs; a sample gives the number of outputs (:meth:`n_outputs`).

        Returns
        -------
        y_index : tensor of int64 of shape (n_samples,), on the CPU

        Raises
        ------
        ValueError
            If ``y`` has the wrong shape, holds a label the model does not know, or a
            label whose column index is not below the number of outputs.

        Examples
        --------
        >>> import numpy as np, torch
        >>> from amrlearn.utils import as_logit_fn
        >>> fn = as_logit_fn(torch.nn.Linear(3, 2))
        >>> fn.targets([1, 0], torch.zeros(2, 3)).tolist()
        [1, 0]
        >>> fn.targets([2, 0], torch.zeros(2, 3))
        Traceback (most recent call last):
        ...
        ValueError: y holds the labels [2], but the model has 2 outputs: ...
        """
        import torch

        y = as_labels(y, X.shape[0])
        idx = self.label_index(y)
        n_out = self.n_outputs(X)
        bad = idx >= n_out
        if np.any(bad):
            labels = np.unique(y[bad])[:5].tolist()
            if self.classes is None:
                why = (
                    f"without classes, a label is the index of an output, 0..{n_out - 1} "
                    "(for other labels, give as_logit_fn(module, classes=[...]))."
                )
            else:
                why = (
                    f"their columns in classes {self.classes.tolist()[:10]} are "
                    f"{sorted(set(idx[bad].tolist()))[:5]}; give the module one output per "
                    f"class ({len(self.classes)})."
                )
            raise ValueError(
                f"y holds the labels {labels}, but the model has {n_out} outputs: {why}"
            )
        return torch.as_tensor(idx)

    def affine_weights(self, X):
        """``(coef, intercept)`` (float64) with ``logits(x) == x.flatten() @ coef.T + intercept``.

        For an affine module they are read off exactly, in eval mode, as the Jacobian at
        ``0`` and the logits at ``0``; then checked on a few samples of ``X`` (a module
        that declares ``amrlearn_affine`` but is not affine is refused).

        Parameters
        ----------
        X : tensor of shape (n_samples, ...)
            Inputs of the shape the model takes (a few are used for the check).

        Returns
        -------
        coef : ndarray of shape (n_classes, n_features)
        intercept : ndarray of shape (n_classes,)
        """
        import torch
        from torch.func import jacrev

        if self.linear is not None:
            return self.linear
        if not self.affine:
            raise ValueError("This model is not known to be affine.")
        shape = tuple(X.shape[1:])
        if shape not in self._weights:
            zero = torch.zeros((1, *shape), dtype=self.dtype, device=self.device)
            with self.eval_mode():
                J = jacrev(lambda v: self(v.unsqueeze(0)).squeeze(0))(zero[0]).detach()
                with torch.no_grad():
                    b = self(zero)[0]
                    x = X[:8].to(self.device, self.dtype)
                    out = self(x).double()
            coef = J.flatten(1).double()
            pred = x.flatten(1).double() @ coef.T + b.double()
            tol = 1e-4 * (1.0 + out.abs().max())
            if not torch.allclose(pred, out, rtol=0.0, atol=float(tol)):
                raise ValueError(
                    "The module is declared affine but its logits are not an affine "
                    "function of its input."
                )
            self._weights[shape] = (coef.cpu().numpy(), b.double().cpu().numpy())
        return self._weights[shape]

    def label_index(self, y):
        """Column index of each label of ``y`` (ndarray of int64); see ``label_index``."""
        return label_index(self.classes, y)

    def index_label(self, idx):
        """Class label of each column index (the inverse of :meth:`label_index`)."""
        idx = np.asarray(idx)
        return idx if self.classes is None else self.classes[idx]


def _affine_layer_types():
    from torch import nn

    return (
        nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Flatten, nn.Unflatten, nn.Identity,
        nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
        nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    )  # fmt: skip


def is_affine_module(module):
    """True when ``module``'s output is known to be an affine function of its input in eval mode.

    Known affine: a module whose class sets ``amrlearn_affine = True`` (an explicit
    opt-in, as :class:`amrlearn.neural.models.LR` does); ``nn.Linear``, convolutions,
    average pools, ``Flatten``, ``Unflatten``, ``Identity``, dropout (the identity in
    eval mode) and batch norm with running statistics; an ``nn.Sequential`` made only of
    these. A custom module's ``forward`` is not read, so it is affine only by opting in.

    Examples
    --------
    >>> import torch
    >>> from amrlearn.utils._torch import is_affine_module
    >>> is_affine_module(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)))
    True
    >>> is_affine_module(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU()))
    False
    """
    from torch import nn

    if getattr(module, "amrlearn_affine", False) is True:
        return True
    if type(module) is nn.Sequential:
        return all(is_affine_module(m) for m in module)
    if type(module) in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d):
        return module.track_running_stats and module.running_mean is not None
    return type(module) in _affine_layer_types()


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
    return LogitFunction(
        module,
        device,
        module=module,
        classes=classes,
        affine=is_affine_module(module),
        dtype=_module_dtype(module),
    )


def _estimator_fn(estimator, device):
    """Logits of a fitted linear estimator, computed in float64 for exactness."""
    coef = np.atleast_2d(np.asarray(estimator.coef_, dtype=np.float64))
    intercept = np.asarray(getattr(estimator, "intercept_", 0.0), dtype=np.float64)
    intercept = np.broadcast_to(np.atleast_1d(intercept), (coef.shape[0],)).copy()
    if coef.shape[0] == 1:
        # Binary: logits [0, w.x + b], so that argmax agrees with predict.
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    return _linear_fn(coef, intercept, getattr(estimator, "classes_", None), device)


def _linear_fn(coef, intercept, classes, device):
    import torch

    from ._device import resolve_device

    device = resolve_device(device)
    w = torch.as_tensor(coef, device=device)
    b = torch.as_tensor(intercept, device=device)

    def forward(x):
        return x.reshape(x.shape[0], -1).to(torch.float64) @ w.T + b

    return LogitFunction(
        forward, device, classes=classes, linear=(coef, intercept), dtype=torch.float32
    )


def _pipeline_fn(pipeline, device):
    """A Pipeline as one function of the RAW input: affine scalers, then the final step."""
    import torch

    scale, shift, bad = pipeline_affine(pipeline)
    if bad is not None:
        raise TypeError(
            f"Cannot attack or bound this Pipeline in its input space: its step "
            f"{type(bad).__name__} is not a known affine scaler (StandardScaler, "
            "MinMaxScaler without clip, MaxAbsScaler). Working in the space of the final "
            "step would change what eps and the margins mean."
        )
    inner = as_logit_fn(pipeline.steps[-1][1], device)
    if scale is None:
        return inner
    if inner.linear is not None:  # fold exactly, in float64
        coef, intercept = inner.linear
        return _linear_fn(coef * scale, intercept + coef @ shift, inner.classes, inner.device)
    s = torch.as_tensor(scale, dtype=inner.dtype, device=inner.device)
    t = torch.as_tensor(shift, dtype=inner.dtype, device=inner.device)

    def forward(x):
        return inner(((x.reshape(x.shape[0], -1) * s) + t).reshape(x.shape))

    return LogitFunction(
        forward,
        inner.device,
        module=inner.module,
        classes=inner.classes,
        affine=inner.affine,
        dtype=inner.dtype,
    )


def as_logit_fn(model, device=None, *, classes=None):
    """Turn a model into a function ``tensor -> logits`` for attacks and bounds.

    Parameters
    ----------
    model : torch.nn.Module, skorch net, fitted linear estimator, Pipeline or LogitFunction
        - a ``torch.nn.Module``: its output, or the first element when ``forward``
          returns a tuple such as ``(logits, features)``;
        - a fitted skorch net: its ``module_`` on ``net.device`` (reshaping the input is
          the module's job); logit column ``k`` is the label ``classes_[k]`` where the
          net has ``classes_`` (an amrlearn net given its weights by ``load_params``
          without ``classes=`` is refused: its labels are unknown);
        - a fitted linear estimator with ``coef_`` and ``intercept_`` (scikit-learn or
          amrlearn): the logits ``X @ coef_.T + intercept_``, computed in float64. A
          binary ``coef_`` of shape (1, d) gives two logits ``[0, w.x + b]``, so that
          the argmax agrees with ``predict``;
        - a fitted ``Pipeline`` whose steps before the last are affine scalers
          (StandardScaler, MinMaxScaler without clip, MaxAbsScaler, 'passthrough') and
          whose last step is any of the above: one function of the raw input (the
          scalers are folded into a linear model's weights, or applied in torch before a
          net). Any other preprocessing is refused (TypeError): the attack or the bound
          would otherwise answer in another space;
        - a :class:`LogitFunction`, returned unchanged when ``device`` is None.
    device : str, torch.device or None, default=None
        ``None`` keeps the model where it is (the device of a module's parameters, the
        net's ``device``, the CPU for linear estimators). Otherwise a torch module is
        moved there in place (``module.to(device)``).
    classes : array-like of shape (n_classes,), default=None
        For a bare ``torch.nn.Module`` only: the sorted label of each output column
        (``None``: the labels are the column indices, and any other label is refused).
        Estimators use their ``classes_``.

    Returns
    -------
    fn : LogitFunction
        Callable on a float tensor on ``fn.device``; also carries ``module`` (for
        :meth:`~LogitFunction.eval_mode`), ``classes``, ``affine`` (the model is known
        to be affine, see :func:`is_affine_module`) and ``linear`` (a linear estimator's
        weights).

    Raises
    ------
    TypeError
        For any other kind of model, or a Pipeline with non-affine preprocessing.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sklearn.linear_model import LogisticRegression
    >>> from amrlearn.utils import as_logit_fn
    >>> X = np.array([[0.0], [1.0], [3.0], [4.0]]); y = np.array([3, 3, 7, 7])
    >>> fn = as_logit_fn(LogisticRegression().fit(X, y))
    >>> fn.index_label(fn(torch.tensor([[0.0], [4.0]])).argmax(1)).tolist()
    [3, 7]
    >>> as_logit_fn(torch.nn.Linear(3, 2)).affine
    True
    """
    import torch

    if classes is not None and not isinstance(model, torch.nn.Module):
        raise TypeError("classes= is for a bare torch.nn.Module; estimators use classes_.")
    if isinstance(model, LogitFunction):
        if device is None:
            return model
        if model.module is not None and model._forward is model.module:
            return _module_fn(model.module, device, classes=model.classes)
        raise TypeError("This LogitFunction cannot be moved: build it again on the device.")
    if isinstance(model, torch.nn.Module):
        return _module_fn(model, device, classes)
    if _is_skorch_net(model):
        if not getattr(model, "initialized_", False) or not hasattr(model, "module_"):
            raise ValueError(f"This {type(model).__name__} is not initialized: fit it first.")
        output_classes = getattr(model, "_output_classes", None)
        if output_classes is not None:  # amrlearn's nets: refuses unknown classes
            net_classes = output_classes()
        else:
            try:
                net_classes = model.classes_
            except AttributeError:
                net_classes = None
        dev = device if device is not None else model.device
        return _module_fn(model.module_, dev, net_classes)
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline):
        return _pipeline_fn(model, device)
    if hasattr(model, "coef_"):
        return _estimator_fn(model, device)
    raise TypeError(
        f"Cannot make a logit function of {type(model).__name__}: expected a torch.nn.Module, "
        "a fitted skorch net, a fitted linear estimator (with coef_) or a Pipeline of "
        "affine scalers ending in one of them."
    )
