"""skorch estimators of section 4.2: the AMR objective (15) and the PGD adversarial baseline.

The maths lives in :mod:`amrlearn.neural._penalties`; these classes only wire it into
skorch's documented extension points (``get_loss``, ``train_step_single``,
``get_dataset``, ``get_iterator``) and never touch ``fit`` or the training loop.
"""

from numbers import Integral, Real

import numpy as np
import torch
from skorch import NeuralNetClassifier
from skorch.dataset import Dataset, unpack_data
from skorch.utils import is_dataset, to_numpy, to_tensor

from ..utils._compat import Interval, StrOptions, validate_parameter_constraints
from ._lazy import LazyPenaltyMixin
from ._penalties import amr_margin_loss, feature_margin, last_linear_layer, orthogonality_penalty

__all__ = ["AMRNeuralNetClassifier", "AdversarialNeuralNetClassifier"]


def _logits(y_pred):
    """The first output of a module that returns ``(logits, features)``."""
    return y_pred[0] if isinstance(y_pred, tuple | list) else y_pred


def _split_output(y_pred):
    if not (isinstance(y_pred, tuple | list) and len(y_pred) >= 2):
        raise ValueError(
            "The module must return a tuple (logits, features), where features is the input "
            "of its last linear layer; see amrlearn.neural.models."
        )
    return y_pred[0], y_pred[1]


class _DeviceBatches:
    """Mini-batches sliced from tensors that already live on the device.

    A stand-in for ``torch.utils.data.DataLoader`` when the whole data set fits on the
    device: one ``randperm`` and one ``index_select`` per batch, instead of indexing and
    collating ``batch_size`` single samples.
    """

    def __init__(self, X, y, batch_size, shuffle=False):
        self.X = X
        self.y = y
        self.batch_size = batch_size
        self.shuffle = shuffle

    def __len__(self):
        return (len(self.X) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        n = len(self.X)
        order = torch.randperm(n, device=self.X.device) if self.shuffle else None
        for start in range(0, n, self.batch_size):
            if order is None:
                sl = slice(start, start + self.batch_size)
                xb = self.X[sl]
                yb = self.y[sl] if self.y is not None else None
            else:
                idx = order[start : start + self.batch_size]
                xb = self.X.index_select(0, idx)
                yb = self.y.index_select(0, idx) if self.y is not None else None
            if yb is None:  # skorch's placeholder target when predicting
                yb = torch.zeros(len(xb), device=xb.device)
            yield xb, yb


class _FeatureMarginNet(NeuralNetClassifier):
    """Shared base: the paper's training settings, data handling and ``feature_margins``."""

    _parameter_constraints = {"data_on_device": ["boolean"]}

    def __init__(
        self,
        module,
        *args,
        criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.SGD,
        lr=0.01,
        batch_size=128,
        train_split=None,
        data_on_device=False,
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
            **kwargs,
        )
        self.data_on_device = data_on_device

    # ---------------------------------------------------------------- validation
    def _validate_params(self):
        super()._validate_params()
        constraints = {}
        for klass in reversed(type(self).__mro__):
            constraints.update(getattr(klass, "_parameter_constraints", {}))
        validate_parameter_constraints(
            constraints,
            {name: getattr(self, name) for name in constraints},
            caller_name=type(self).__name__,
        )

    def check_data(self, X, y):
        super().check_data(X, y)
        if is_dataset(X):
            return
        if isinstance(X, np.ndarray | torch.Tensor):
            finite = (
                torch.isfinite(X).all().item()
                if isinstance(X, torch.Tensor)
                else np.isfinite(X).all()
            )
            if not finite:
                raise ValueError("Input X contains NaN or infinity.")
        if y is not None:
            y_arr = to_numpy(y) if isinstance(y, torch.Tensor) else np.asarray(y)
            if y_arr.ndim != 1:
                raise ValueError(f"y must be 1-dimensional, got shape {y_arr.shape}.")
            if len(np.unique(y_arr)) < 2:
                raise ValueError("The training data contain a single class; need at least two.")

    # ------------------------------------------------------------------ data
    def _prepare_array(self, A, dtype):
        """Cast numpy input to the dtype torch layers expect; move it if asked."""
        if isinstance(A, np.ndarray):
            if dtype is np.float32 and np.issubdtype(A.dtype, np.floating):
                A = A.astype(np.float32, copy=False)
            elif dtype is np.int64 and np.issubdtype(A.dtype, np.integer):
                A = A.astype(np.int64, copy=False)
        if self.data_on_device and isinstance(A, np.ndarray | torch.Tensor):
            A = torch.as_tensor(A, device=self.device)
        return A

    def get_dataset(self, X, y=None):
        if not is_dataset(X):
            X = self._prepare_array(X, np.float32)
            if y is not None:
                y = self._prepare_array(y, np.int64)
        return super().get_dataset(X, y)

    def get_iterator(self, dataset, training=False):
        if (
            self.data_on_device
            and type(dataset) is Dataset
            and isinstance(dataset.X, torch.Tensor)
            and (dataset.y is None or isinstance(dataset.y, torch.Tensor))
        ):
            kwargs = self.get_params_for("iterator_train" if training else "iterator_valid")
            batch_size = kwargs.get("batch_size", self.batch_size)
            if batch_size == -1:
                batch_size = len(dataset)
            return _DeviceBatches(
                dataset.X, dataset.y, batch_size, shuffle=bool(kwargs.get("shuffle", False))
            )
        return super().get_iterator(dataset, training=training)

    # ------------------------------------------------------------------ loss
    def get_loss(self, y_pred, y_true, X=None, training=False):
        # The module returns (logits, features): the criterion sees the logits.
        return super().get_loss(_logits(y_pred), y_true, X=X, training=training)

    # --------------------------------------------------------------- margins
    def feature_margins(self, X, y=None):
        """Signed feature-space margins of eq. (14), one per sample.

        The distance in feature space from ``Phi(x)`` to the boundary of the predicted
        class's region (always normalized by ``||w_c - w_k||``, whatever ``margin`` the
        net was trained with), negated where the prediction differs from ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, *input_shape)
        y : array-like of shape (n_samples,), default=None
            True labels (class indices). ``None`` gives unsigned distances.

        Returns
        -------
        margins : ndarray of shape (n_samples,)
        """
        self.check_is_fitted()
        layer = None
        margins, preds = [], []
        for y_pred in self.forward_iter(X, training=False, device=self.device):
            logits, features = _split_output(y_pred)
            if layer is None:
                layer = last_linear_layer(self.module_, features.shape[1], logits.shape[1])
            with torch.no_grad():
                margins.append(feature_margin(features, layer.weight, layer.bias).cpu())
                preds.append(logits.argmax(dim=1).cpu())  # what predict returns
        margins = torch.cat(margins).numpy().astype(np.float64)
        if y is not None:
            y = to_numpy(y) if isinstance(y, torch.Tensor) else np.asarray(y)
            if y.shape != margins.shape:
                raise ValueError(f"y has shape {y.shape}, expected {margins.shape}.")
            margins = np.where(torch.cat(preds).numpy() == y, margins, -margins)
        return margins


_NET_PARAMS = """
    module : torch module class or instance
        A module that returns ``(logits, features)``, with ``features`` the input of its
        last linear layer (see :mod:`amrlearn.neural.models`); constructor arguments go
        in ``module__...`` (``module__in_features=784``).
    criterion : torch criterion class, default=torch.nn.CrossEntropyLoss
    optimizer : torch optimizer class, default=torch.optim.SGD
        With ``torch.optim.SGD``, ``optimizer__momentum=0.9`` and
        ``optimizer__nesterov=True`` are the defaults (Appendix F).
    lr : float, default=0.01
    batch_size : int, default=128
    train_split : callable or None, default=None
        The paper trains on the full training set: no validation split is held out
        (skorch's own default holds out 20%).
    data_on_device : bool, default=False
        Move numpy or tensor ``X`` and ``y`` to ``device`` once per ``fit``/``predict``
        and slice mini-batches there, instead of going through a ``DataLoader``. For data
        sets that fit in device memory (MNIST, CIFAR-10 on a GPU); it also makes CPU
        epochs faster. Shuffling follows ``iterator_train__shuffle``.
    **kwargs
        Every other parameter of :class:`skorch.NeuralNetClassifier` (``max_epochs``,
        ``device``, ``callbacks``, ``verbose``, ``iterator_train__shuffle``...).
"""


class AMRNeuralNetClassifier(LazyPenaltyMixin, _FeatureMarginNet):
    __doc__ = f"""Neural net trained with the average margin regularizer, objective (15).

    The loss of a batch of ``n`` samples is

    ``CE(logits, y) - lam * (1/n) sum_i 1[y_i = yhat_i] [m_i]_0^tau
    + beta * sum_l ||W_l W_l^T - I||_F^2``,

    with ``m_i`` the feature-space margin of eq. (14) (see
    :func:`~amrlearn.neural.feature_margin`) and the sum running over every linear and
    convolutional layer (:func:`~amrlearn.neural.orthogonality_penalty`). The margin term
    is averaged over the whole batch, misclassified samples contributing zero, so that its
    scale does not depend on the accuracy. The regularizers are part of the loss in
    training and validation alike.

    Standard training is ``lam=0, beta=0``; Lipschitz constant regularization (LCR) is
    ``lam=0, beta>0``.

    Parameters
    ----------
    lam : float, default=0.1
        Weight ``lambda`` of the average margin term (Appendix F: 0.1 for all models).
    tau : float, default=5.0
        Truncation ``tau`` of the margin. Appendix F uses 5 for MNIST-LR, MNIST-MLP and
        CIFAR-LR; 10 for MNIST-CNN, CIFAR-MLP and CIFAR-CNN; 40 for LeNet and LeNetSmall;
        50 for ConvNet.
    beta : float, default=1e-3
        Weight ``beta`` of the orthogonality penalty (Appendix F: 1e-3, also for LCR).
    margin : {{"feature", "logit"}}, default="feature"
        ``"feature"``: the distance of eq. (14), each logit gap divided by
        ``||w_y - w_k||``. ``"logit"``: the raw logit gap ``min_k z_y - z_k``, as in the
        authors' released code.
    gram : {{"auto", "output", "input"}}, default="auto"
        Gram matrix of the orthogonality penalty: ``W W^T`` ("output", as written in the
        paper), ``W^T W`` ("input") or the smaller one ("auto"). Value and gradient are the
        same (see :func:`~amrlearn.neural.orthogonality_penalty`); "auto" is cheapest.
    ortho_every : int, default=64
        Lazy regularization: in training, the orthogonality penalty enters the loss of
        one step in ``ortho_every`` (the first of a fit included) with weight
        ``ortho_every * beta``, and 0 on the others. At fixed weights the gradients over
        ``ortho_every`` consecutive steps sum to the every-step penalty's, and its cost,
        ``O(out * in * min(out, in))`` per evaluation whatever the batch size, is divided
        by ``ortho_every``. ``1`` is the exact every-step penalty. Validation losses and
        calls of ``get_loss`` outside a training step use weight ``beta``; the per-batch
        ``train_loss`` jumps on the steps that carry the penalty.
    ortho_probes : int or None, default=None
        ``None``: the exact penalty. An integer ``k``: Hutchinson's unbiased estimate from
        ``k`` random sign vectors for layers wider than ``2 k`` (see
        :func:`~amrlearn.neural.orthogonality_penalty`). Its backward pass still writes a
        dense gradient for every weight, so on a CPU, for a 1024-unit MLP, it costs about
        half a standard step; the lazy ``ortho_every`` is cheaper. Both can be combined.
{_NET_PARAMS}
    Attributes
    ----------
    module_ : torch.nn.Module
        The trained module.
    classes_ : ndarray
        Class labels seen in ``fit``.
    history : skorch.History
        Per-epoch and per-batch records (``train_loss``, and what callbacks such as
        :class:`~amrlearn.neural.MarginTracker` add).
    n_train_steps_ : int
        Training steps since the last ``initialize`` (``fit`` resets it, ``partial_fit``
        does not); it schedules the lazy penalty.

    See Also
    --------
    AdversarialNeuralNetClassifier : The PGD adversarial training baseline.
    MarginTracker : Records the min and average margin during training.

    Notes
    -----
    Eq. (14) calls the weights "normalized": the margin is the exact distance in feature
    space to the nearest decision boundary only after dividing by ``||w_y - w_k||``,
    which ``margin="feature"`` does. The authors' code maximizes the raw gap
    (``margin="logit"``), which the network can also increase by scaling up the last
    layer; the orthogonality penalty limits that. The authors' code also penalizes each
    layer a second time through its bias; here each layer's weight is penalized once and
    biases are not.

    References
    ----------
    K. Wu and Y. Yu, "Understanding adversarial robustness: the trade-off between minimum
    and average margin", 2019, section 4.2 and Appendix F.

    Examples
    --------
    >>> import numpy as np
    >>> from amrlearn.neural import AMRNeuralNetClassifier, models
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(64, 5)).astype(np.float32)
    >>> y = (X[:, 0] > 0).astype(np.int64)
    >>> net = AMRNeuralNetClassifier(models.MLP, module__in_features=5, module__hidden=16,
    ...                              module__n_classes=2, max_epochs=3, verbose=0)
    >>> net.fit(X, y).predict(X).shape
    (64,)
    >>> net.feature_margins(X, y).shape
    (64,)
    """

    _parameter_constraints = {
        "lam": [Interval(Real, 0, None, closed="left")],
        "tau": [Interval(Real, 0, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left")],
        "margin": [StrOptions({"feature", "logit"})],
        "gram": [StrOptions({"auto", "output", "input"})],
        "ortho_every": [Interval(Integral, 1, None, closed="left")],
        "ortho_probes": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(
        self,
        module,
        *args,
        lam=0.1,
        tau=5.0,
        beta=1e-3,
        margin="feature",
        gram="auto",
        ortho_every=64,
        ortho_probes=None,
        **kwargs,
    ):
        super().__init__(module, *args, **kwargs)
        self.lam = lam
        self.tau = tau
        self.beta = beta
        self.margin = margin
        self.gram = gram
        self.ortho_every = ortho_every
        self.ortho_probes = ortho_probes

    def get_loss(self, y_pred, y_true, X=None, training=False):
        logits, features = _split_output(y_pred)
        loss = super().get_loss(logits, y_true, X=X, training=training)
        if self.lam > 0:
            y_true = to_tensor(y_true, device=logits.device).long()
            layer = last_linear_layer(self.module_, features.shape[1], logits.shape[1])
            # logits == layer(features): the margin of eq. (14) from them, in one piece
            m_term = amr_margin_loss(
                logits, layer.weight, y_true, self.tau, normalize=self.margin == "feature"
            )
            loss = loss - self.lam * m_term
        scale = self.lazy_penalty_scale(training)  # ortho_every, 0, or 1 (issue 11)
        if self.beta > 0 and scale:
            loss = loss + (scale * self.beta) * orthogonality_penalty(
                self.module_, gram=self.gram, n_probes=self.ortho_probes
            )
        return loss


class AdversarialNeuralNetClassifier(_FeatureMarginNet):
    __doc__ = f"""PGD adversarial training (Madry et al.) with an l2 budget, the paper's Adv.

    Each training batch is replaced by its l2 PGD adversarial examples (Appendix F: 40
    steps of size 0.01, ``eps=2.0`` on MNIST and ``eps=0.4`` on CIFAR-10, random start),
    computed by :class:`amrlearn.attacks.L2PGD` with the module in eval mode, and the
    cross-entropy of those is minimized. Prediction and validation use clean inputs.

    Parameters
    ----------
    eps : float, default=2.0
        l2 budget of the attack (2.0 for MNIST; use 0.4 for CIFAR-10).
    steps : int, default=40
        PGD iterations per batch.
    step_size : float, default=0.01
        l2 length of each PGD step.
    random_start : bool, default=True
        Start from a uniform random point of the eps-ball.
    clip : tuple of (float, float) or None, default=(0.0, 1.0)
        Box of valid inputs (pixels in [0, 1]); ``None`` for no box.
{_NET_PARAMS}
    Attributes
    ----------
    module_ : torch.nn.Module
        The trained module.
    classes_ : ndarray
        Class labels seen in ``fit``.

    See Also
    --------
    AMRNeuralNetClassifier : The average margin regularizer, and the Std/LCR baselines.

    Notes
    -----
    Each training step costs about ``steps + 1`` forward-backward passes.

    References
    ----------
    A. Madry, A. Makelov, L. Schmidt, D. Tsipras and A. Vladu, "Towards deep learning
    models resistant to adversarial attacks", ICLR 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from amrlearn.neural import AdversarialNeuralNetClassifier, models
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(size=(32, 5)).astype(np.float32)
    >>> y = (X[:, 0] > 0.5).astype(np.int64)
    >>> net = AdversarialNeuralNetClassifier(models.LR, module__in_features=5,
    ...                                      module__n_classes=2, eps=0.1, steps=3,
    ...                                      max_epochs=2, verbose=0)
    >>> net.fit(X, y).predict(X).shape
    (32,)
    """

    _parameter_constraints = {
        "eps": [Interval(Real, 0, None, closed="left")],
        "steps": [Interval(Integral, 0, None, closed="left")],
        "step_size": [Interval(Real, 0, None, closed="left")],
        "random_start": ["boolean"],
        "clip": [tuple, None],
    }

    def __init__(
        self,
        module,
        *args,
        eps=2.0,
        steps=40,
        step_size=0.01,
        random_start=True,
        clip=(0.0, 1.0),
        **kwargs,
    ):
        super().__init__(module, *args, **kwargs)
        self.eps = eps
        self.steps = steps
        self.step_size = step_size
        self.random_start = random_start
        self.clip = clip

    def _attack(self):
        from ..attacks import L2PGD

        return L2PGD(
            eps=self.eps,
            steps=self.steps,
            step_size=self.step_size,
            random_start=self.random_start,
            clip=self.clip,
            early_stop=False,  # Madry: run every step, train on the strongest iterate
        )

    def train_step_single(self, batch, **fit_params):
        Xi, yi = unpack_data(batch)
        if not isinstance(Xi, torch.Tensor | np.ndarray):
            raise TypeError(
                "AdversarialNeuralNetClassifier needs array or tensor input, got "
                f"{type(Xi).__name__}."
            )
        x = to_tensor(Xi, device=self.device)
        y = to_tensor(yi, device=self.device).long()

        def logit_fn(inp):
            return _logits(self.infer(inp, **fit_params))

        # The attack sees the deterministic network (no dropout, frozen batch-norm
        # statistics); gradients it may leave on the parameters are cleared.
        self._set_training(False)
        x_adv = self._attack().run(logit_fn, x, y).detach()
        self.module_.zero_grad(set_to_none=True)
        return super().train_step_single((x_adv, y), **fit_params)
