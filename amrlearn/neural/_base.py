"""The base of the nets of section 4.2: the paper's settings, data, labels and features.

The data handling lives in :mod:`amrlearn.neural._data` and the feature capture in
:mod:`amrlearn.neural._features`; this class wires them into skorch's documented extension
points (``initialize_*``, ``check_data``, ``get_dataset``, ``infer``, ``get_loss``,
``iterator_train``) and never touches ``fit`` or the training loop.
"""

from functools import partial
from numbers import Integral

import numpy as np
import torch
from sklearn.utils.multiclass import check_classification_targets
from skorch import NeuralNetClassifier
from skorch.callbacks import EpochScoring
from skorch.utils import is_dataset, to_numpy
from torch.utils.data import DataLoader

from ..utils._compat import Interval, validate_parameter_constraints
from ..utils._labels import check_classes
from ._data import BatchLoader, check_input, check_shape, label_array
from ._data import encode_labels as _encode_labels
from ._features import bare_module, find_feature_layer, forward_with_features, logits_of
from ._penalties import feature_margin, last_linear_layer

__all__ = ["NET_PARAMS_DOC", "FeatureMarginNet", "logits_of", "validate_constraints"]


def validate_constraints(estimator, constraints, params):
    validate_parameter_constraints(constraints, params, caller_name=type(estimator).__name__)


def _check_classes(classes):
    """skorch's ``classes=``: the label of each output column, sorted and distinct as
    ``np.unique`` gives them (the order of the codes the module is trained on)."""
    if classes is None or not len(classes):
        return
    check_classes(classes)


class FeatureMarginNet(NeuralNetClassifier):
    """Shared base: the paper's training settings, data and labels, ``feature_margins``."""

    _parameter_constraints = {
        "classes": ["array-like", None],
        "data_on_device": ["boolean"],
        "feature_layer": [str, None],
        "random_state": [Interval(Integral, 0, None, closed="left"), None],
    }

    def __init__(
        self,
        module,
        *args,
        criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.SGD,
        lr=0.01,
        batch_size=128,
        train_split=None,
        iterator_train=BatchLoader,
        iterator_valid=BatchLoader,
        data_on_device=False,
        feature_layer=None,
        random_state=None,
        **kwargs,
    ):
        if optimizer is torch.optim.SGD:
            # Appendix F: SGD with Nesterov momentum 0.9. Only for SGD, so that another
            # optimizer does not receive arguments it does not know.
            kwargs.setdefault("optimizer__momentum", 0.9)
            kwargs.setdefault("optimizer__nesterov", True)
        super().__init__(
            module,
            *args,
            criterion=criterion,
            optimizer=optimizer,
            lr=lr,
            batch_size=batch_size,
            train_split=train_split,
            iterator_train=iterator_train,
            iterator_valid=iterator_valid,
            **kwargs,
        )
        self.data_on_device = data_on_device
        self.feature_layer = feature_layer
        self.random_state = random_state

    # ------------------------------------------------------------ initialization
    # ``initialize`` is not overridden: skorch.hf.AccelerateMixin replaces it without
    # calling super(). Both versions call ``_initialize_virtual_params`` first and
    # ``_initialize_history`` last before the accelerator wraps the parts; the nets'
    # own set-up hangs on these two steps so that it runs under either.
    def _initialize_virtual_params(self):
        """Validate the hyperparameters and seed torch, before any part is built."""
        validate_constraints(
            self,
            self._parameter_constraints,
            {name: getattr(self, name) for name in self._parameter_constraints},
        )
        _check_classes(self.classes)
        if self.random_state is not None:
            # Weights, shuffling, dropout and PGD starts all draw from torch's global
            # generator: seeding it here makes a fit reproducible (skorch's own advice).
            torch.manual_seed(self.random_state)
        return super()._initialize_virtual_params()

    def _initialize_history(self):
        super()._initialize_history()
        return self._finish_initialize()

    def _finish_initialize(self):
        """The net's own set-up once module, criterion and optimizer are built."""
        return self

    def initialize_module(self):
        """Build ``module_`` and find the layer whose input is ``Phi(x)`` (``feature_layer_``)."""
        super().initialize_module()
        self.feature_layer_ = find_feature_layer(self.bare_module_, self.feature_layer)
        self._features_checked = False  # logits == layer(features), at the first batch
        return self

    @property
    def bare_module_(self):
        """``module_`` without a data-parallel wrapper (see :func:`bare_module`)."""
        return bare_module(self.module_)

    def _feature_layer_module(self):
        layer = self.feature_layer_
        return None if layer is None else self.bare_module_.get_submodule(layer)

    def get_iterator(self, dataset, training=False):
        """skorch's iterator; under an ``accelerator``, a :class:`torch.utils.data.DataLoader`.

        accelerate shards only DataLoaders among processes, so the sliced batches of
        :class:`~amrlearn.neural._data.BatchLoader` give way to the DataLoader it wraps.
        """
        iterator = super().get_iterator(dataset, training=training)
        if getattr(self, "accelerator", None) is not None and isinstance(iterator, BatchLoader):
            if iterator.transform is not None:
                raise ValueError(
                    "iterator_train__transform is not supported under an accelerator; "
                    "transform the data in the Dataset instead."
                )
            iterator = DataLoader(
                iterator.dataset,
                batch_size=iterator.batch_size,
                shuffle=iterator.shuffle,
                drop_last=iterator.drop_last,
                **iterator.loader_kwargs,
            )
        return iterator

    def get_default_callbacks(self):
        # skorch's valid_acc compares predict's labels with the dataset's targets, which
        # are class codes here: map them back to labels.
        return [
            (
                name,
                EpochScoring(
                    "accuracy",
                    name="valid_acc",
                    lower_is_better=False,
                    target_extractor=self._codes_to_labels,
                )
                if name == "valid_acc"
                else cb,
            )
            for name, cb in super().get_default_callbacks()
        ]

    # ----------------------------------------------------------------- labels
    def encode_labels(self, y):
        """Class index of each label of ``y``: the codes ``0..n_classes-1`` of ``classes_``.

        The module is trained on these codes; column ``k`` of ``predict_proba`` (and of
        the logits) is the class ``classes_[k]``. ``classes_`` is sorted, so the code of
        ``y`` is ``np.searchsorted(classes_, y)``.

        Parameters
        ----------
        y : array-like of shape (n_samples,)
            Labels seen in ``fit``.

        Returns
        -------
        codes : ndarray of int64 of shape (n_samples,)

        Raises
        ------
        ValueError
            If ``y`` holds a label that is not in ``classes_``.
        """
        return _encode_labels(self.classes_, y)

    def _output_classes(self):
        """The label of each output column: ``classes_``, or ``None`` where the labels are
        the codes themselves (a net fitted on a Dataset whose targets skorch cannot read).

        Raises a ValueError where they are unknown: a net given parameters by
        ``load_params`` but neither fitted nor built with ``classes=`` would otherwise
        answer with the codes ``0..n_classes-1`` instead of the labels.
        """
        try:
            return np.asarray(self.classes_)
        except AttributeError:
            if self.__dict__.get("_labels_are_codes", False):
                return None
            raise ValueError(
                f"This {type(self).__name__} does not know its classes: it was not fitted, "
                "and the parameters of load_params do not hold the labels. Build it with "
                "the fitted net's labels, classes=[...] (its classes_), before initialize() "
                "and load_params, or pickle the fitted net instead."
            ) from None

    def _codes_to_labels(self, codes):
        codes = to_numpy(codes) if isinstance(codes, torch.Tensor) else np.asarray(codes)
        classes = self._output_classes()
        return codes if classes is None else classes[codes]

    def _check_n_outputs(self, n_outputs):
        """Refuse a module whose number of outputs is not the number of classes, before
        a loss indexes its logits with a class code (torch's "Target 2 is out of bounds")."""
        try:
            classes = self.classes_
        except AttributeError:  # a Dataset without known classes: nothing to check
            return
        if n_outputs != len(classes):
            raise ValueError(
                f"The module has {n_outputs} outputs but y has {len(classes)} classes "
                f"(classes_={np.asarray(classes).tolist()[:10]}); give the module one output "
                f"per class (e.g. module__n_classes={len(classes)})."
            )

    # ------------------------------------------------------------------- data
    def check_data(self, X, y):
        if not is_dataset(X):
            check_shape(X)
            if y is None:
                raise ValueError("y is required: pass the labels, or a Dataset holding them.")
        if y is not None:
            y = label_array(y)
            check_classification_targets(y)
            n_x = getattr(X, "shape", (None,))[0] if not is_dataset(X) else None
            if n_x is not None and n_x != len(y):
                raise ValueError(f"X has {n_x} samples but y has {len(y)}.")
        super().check_data(X, y)  # sets classes_ to np.unique(y)
        try:
            n_classes = len(self.classes_)
        except AttributeError:  # a Dataset of codes whose targets skorch cannot read
            self._labels_are_codes = True
            return
        self._labels_are_codes = False
        if y is not None and n_classes < 2:
            raise ValueError("The training data contain a single class; need at least two.")

    def get_dataset(self, X, y=None):
        if is_dataset(X):
            return super().get_dataset(X, y)
        X = check_input(X)
        if y is not None:
            y = self.encode_labels(y)
        if self.data_on_device:
            if isinstance(X, np.ndarray | torch.Tensor):
                X = torch.as_tensor(X, device=self.device)
            if y is not None:
                y = torch.as_tensor(y, device=self.device)
        return super().get_dataset(X, y)

    # --------------------------------------------------------- forward and loss
    def infer(self, x, **fit_params):
        """The module's output, as ``(logits, features)`` where the features are known.

        A module that returns ``(logits, features)`` keeps its own. For a module that
        returns logits alone, the features are the input of ``feature_layer_``, taken by
        a forward hook during this one forward pass, provided that layer's output is the
        module's output; otherwise the logits come back alone.
        """
        layer = self._feature_layer_module()
        return forward_with_features(partial(super().infer, **fit_params), layer, x)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        logits = logits_of(y_pred)
        self._check_n_outputs(logits.shape[1])
        return super().get_loss(logits, y_true, X=X, training=training)

    def _logits_features_layer(self, y_pred, alternative=""):
        """``(logits, features, last linear layer)`` of a forward output, or a clear error.

        ``alternative`` ends the error message (", or train with lam=0.").
        """
        if not (isinstance(y_pred, tuple | list) and len(y_pred) >= 2):
            where = (
                "the module has no torch.nn.Linear layer"
                if self.feature_layer_ is None
                else f"the output of its layer {self.feature_layer_!r} is not the module's output"
            )
            raise ValueError(
                f"{type(self).__name__} needs the features of eq. (14), the input of the "
                f"linear layer that produces the logits, but {where}. Name that layer with "
                f"feature_layer='...', or return (logits, features) from forward{alternative}."
            )
        logits, features = y_pred[0], y_pred[1]
        shape = (logits.shape[1], features.shape[1])
        layer = self._feature_layer_module()
        if layer is None or tuple(layer.weight.shape) != shape:
            layer = last_linear_layer(self.bare_module_, shape[1], shape[0])
        if not self.__dict__.get("_features_checked", False):
            self._check_layer_makes_logits(logits, features, layer)
            self._features_checked = True
        return logits, features, layer

    def _check_layer_makes_logits(self, logits, features, layer):
        """Refuse a layer whose output on the features is not the logits.

        The layer is found by name or by shape only; if it does not produce the logits
        (a second head of the same shape, logits scaled after the layer), eq. (14) would
        normalize by the wrong weights. Checked once, on the first batch, in float64 on
        the CPU: each logit must be within ``tol * sum_j |w_kj phi_j| + |b_k|`` of the
        layer's output, ``tol = max(2e-3, 4 eps)`` for the logits' dtype (rounding of a
        float32 or TF32 product, or of half precision).
        """
        with torch.no_grad(), torch.autocast("cpu", enabled=False):
            z = logits.detach().cpu().double()
            phi = features.detach().cpu().double().flatten(1)
            W = layer.weight.detach().cpu().double()
            b = torch.zeros(W.shape[0], dtype=W.dtype) if layer.bias is None else layer.bias
            b = b.detach().cpu().double()
            gap = (z - (phi @ W.T + b)).abs()
            scale = phi.abs() @ W.abs().T + b.abs()
        tol = max(2e-3, 4 * torch.finfo(logits.dtype).eps)
        if bool((gap <= tol * scale).all()):
            return
        name = next((n for n, m in self.bare_module_.named_modules() if m is layer), "?")
        how = (
            f"feature_layer={self.feature_layer!r}"
            if self.feature_layer == name
            else f"the layer {name!r}, found by its shape (feature_layer={self.feature_layer!r})"
        )
        linear = [n for n, m in self.bare_module_.named_modules() if isinstance(m, torch.nn.Linear)]
        raise ValueError(
            "The module returns (logits, features), but the logits are not the output, on "
            f"the features, of {how} (largest gap {float(gap.max()):.3g}): eq. (14) would "
            "normalize the margin by the wrong weights. Name the torch.nn.Linear layer that "
            f"produces the logits with feature_layer='...' (the linear layers are {linear}), "
            "or return the logits of that layer unchanged."
        )

    def feature_margins(self, X, y=None):
        """Signed feature-space margins of eq. (14), one per sample.

        The distance in feature space from ``Phi(x)`` to the boundary of the predicted
        class's region (always normalized by ``||w_c - w_k||``, whatever ``margin`` the
        net was trained with), negated where the prediction differs from ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, *input_shape)
        y : array-like of shape (n_samples,), default=None
            True labels (from ``classes_``). ``None`` gives unsigned distances.

        Returns
        -------
        margins : ndarray of shape (n_samples,)

        Raises
        ------
        ValueError
            If the features are unknown: the module has no ``nn.Linear`` that produces
            its logits, and does not return ``(logits, features)``.
        """
        self.check_is_fitted()
        margins, preds = [], []
        for y_pred in self.forward_iter(X, training=False, device=self.device):
            logits, features, layer = self._logits_features_layer(y_pred)
            with torch.no_grad():
                margins.append(feature_margin(features, layer.weight, layer.bias).cpu())
                preds.append(logits.argmax(dim=1).cpu())  # what predict returns
        margins = torch.cat(margins).numpy().astype(np.float64)
        if y is not None:
            codes = self.encode_labels(y)
            if codes.shape != margins.shape:
                raise ValueError(f"y has shape {codes.shape}, expected {margins.shape}.")
            margins = np.where(torch.cat(preds).numpy() == codes, margins, -margins)
        return margins

    def predict(self, X):
        """Class labels (from ``classes_``) of the samples of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, *input_shape)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        proba = self.predict_proba(X)
        classes = self._output_classes()
        if classes is not None:
            self._check_n_outputs(proba.shape[1])
        return self._codes_to_labels(proba.argmax(axis=1))


NET_PARAMS_DOC = """
    module : torch module class or instance
        Any module that returns logits, one per class (an ``nn.Sequential``, a
        ResNet-style module with an ``fc`` head, ...), or ``(logits, features)`` as the
        models of :mod:`amrlearn.neural.models` do; constructor arguments go in
        ``module__...`` (``module__in_features=784``). A class is built when the net is
        initialized, after ``random_state`` has seeded torch. An instance is used as it
        stands: it carries the weights it was built with (``random_state`` does not
        re-draw them; seed torch before building it, ``torch.manual_seed(0)``), ``fit``
        trains it in place, and a second ``fit`` starts from the trained weights.
    feature_layer : str or None, default=None
        Qualified name of the ``nn.Linear`` layer that produces the logits (``"fc"``);
        its input is ``Phi(x)`` of eq. (14), taken by a forward hook during the forward
        pass. ``None``: the submodule named ``last_linear`` if any, else the last
        ``nn.Linear``. Either way it must produce the module's output.
    criterion : torch criterion class, default=torch.nn.CrossEntropyLoss
    optimizer : torch optimizer class, default=torch.optim.SGD
        With ``torch.optim.SGD``, ``optimizer__momentum=0.9`` and
        ``optimizer__nesterov=True`` are the defaults (Appendix F).
    lr : float, default=0.01
    batch_size : int, default=128
    train_split : callable or None, default=None
        The paper trains on the full training set: no validation split is held out
        (skorch's own default holds out 20%).
    iterator_train, iterator_valid : class, default=BatchLoader
        A :class:`torch.utils.data.DataLoader` that slices tensors in place (see
        ``data_on_device``); ``iterator_train__*`` arguments (``shuffle``,
        ``num_workers``, ``transform=random_crop_flip``) reach it. A transform given to
        ``iterator_train`` augments the training batches only.
    data_on_device : bool, default=False
        Move numpy or tensor ``X`` and ``y`` to ``device`` once per ``fit``/``predict``;
        the batches are then sliced there. For data sets that fit in device memory
        (MNIST, CIFAR-10 on a GPU); it also makes CPU epochs faster.
    random_state : int or None, default=None
        Seeds torch's global generator (``torch.manual_seed``) when the net is
        initialized, so that two fits with the same seed give the same weights, the
        shuffling, dropout and attack starts included. The initial weights of a module
        passed as an instance are its own (see ``module``).
    classes : array-like or None, default=None
        skorch's: the label of each output column, sorted and distinct (a fitted net's
        ``classes_``). ``None`` takes them from ``y`` in ``fit``. ``save_params`` keeps
        the module's weights only, so a net that receives them by ``initialize()`` and
        ``load_params`` is built with ``classes=fitted.classes_``; without them its
        ``predict`` raises rather than answer with the codes ``0..n_classes-1``.
    **kwargs
        Every other parameter of :class:`skorch.NeuralNetClassifier` (``max_epochs``,
        ``device``, ``callbacks``, ``verbose``, ``iterator_train__shuffle``...).
"""

# The Notes paragraph of every net on its inputs. Not part of NET_PARAMS_DOC: numpydoc
# reads any "name: text" line of a Parameters section as one more parameter.
NET_INPUT_NOTES = """
    ``X`` may be a numpy array, a torch tensor, a pandas DataFrame or a scipy.sparse
    matrix (made dense); it is fed to torch as float32, and NaN or infinity is refused in
    ``fit`` and in ``predict``. ``y`` may hold any labels (ints, strings, floats with
    discrete values): the module is trained on their codes ``0..n_classes-1`` (see
    :meth:`encode_labels`) and ``predict`` returns the labels. A ``Dataset`` passed as
    ``X`` or through ``train_split`` must already hold the codes, and scoring callbacks
    other than the default ``valid_acc`` see the codes as targets.
"""
