"""``MarginTracker``: the min and average margin during training (Figures 2, 3 and 6)."""

from numbers import Integral

import numpy as np
from skorch.callbacks import Callback
from skorch.utils import to_numpy

from .._paper import TRACK_EPOCHS

__all__ = ["MarginTracker"]


def _labels(y):
    return to_numpy(y) if hasattr(y, "detach") else np.asarray(y)


def _subset(X, y, n_points, seed):
    """A fixed random subset of ``n_points`` rows (all rows if there are fewer)."""
    n = len(X)
    if n_points is None or n_points >= n:
        return X, y
    idx = np.sort(np.random.default_rng(seed).choice(n, size=n_points, replace=False))
    return X[idx], (None if y is None else y[idx])


class MarginTracker(Callback):
    """Record the minimum and average margin on fixed subsets during training.

    At the chosen epochs, the margins of a fixed subset of the training data (and of a
    test set, if given) are measured through :func:`amrlearn.metrics.sample_margins`,
    the one margin dispatcher, and written into ``net.history``:
    ``train_min_margin``, ``train_avg_margin`` (and ``..._test``), as
    :func:`~amrlearn.metrics.summarize_margins` defines them (signed minimum, mean of
    ``|m|``). Epochs that are not measured get no entry.

    Parameters
    ----------
    X_train, y_train : array-like, default=None
        Training data to measure on. ``None`` uses the data given to ``fit``.
    X_test, y_test : array-like, default=None
        Test data to measure on; ``None`` records no test margins.
    n_points : int or None, default=500
        Size of each subset, drawn once with ``random_state`` (Appendix F: 500). ``None``
        uses all the data.
    epochs : sequence of int, default=(1, 10, 20, 30, 40, 50, 80, 120, 160, 200)
        Epochs (counted from 1) at which to measure: Appendix F's schedule. Epochs past
        ``max_epochs`` are simply never reached.
    every : int or None, default=None
        Measure at every ``every``-th epoch instead of ``epochs`` (``every=1``: each
        epoch, as the paper does for linear models).
    kind : {"feature", "bound"}, default="feature"
        ``"feature"``: the feature-space margin of eq. (14), cheap. ``"bound"``: the
        input-space margin by the Theorem 3 estimate, as the paper's figures show.
    bound_params : dict, default=None
        Budget of the bound (``radius``, ``n_batches``...), for ``kind="bound"``.
    random_state : int, default=0
        Seed of the subsets.
    keep_margins : bool, default=False
        Also record the per-sample margins (``train_margins``, ``test_margins``: lists of
        floats rounded to 5 decimals) at each measured epoch, for histograms such as the
        paper's Figures 7 and 8.

    See Also
    --------
    amrlearn.metrics.sample_margins : How a margin is measured.

    Examples
    --------
    >>> import numpy as np
    >>> from amrlearn.neural import AMRNeuralNetClassifier, MarginTracker, models
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(64, 5)).astype(np.float32)
    >>> y = (X[:, 0] > 0).astype(np.int64)
    >>> net = AMRNeuralNetClassifier(
    ...     models.MLP, module__in_features=5, module__hidden=8, module__n_classes=2,
    ...     max_epochs=2, verbose=0, callbacks=[MarginTracker(every=1, n_points=32)])
    >>> h = net.fit(X, y).history
    >>> len(h[:, "train_avg_margin"])
    2
    >>> net = AMRNeuralNetClassifier(
    ...     models.MLP, module__in_features=5, module__hidden=8, module__n_classes=2,
    ...     max_epochs=2, verbose=0,
    ...     callbacks=[MarginTracker(epochs=[2], n_points=32, keep_margins=True)])
    >>> [len(m) for m in net.fit(X, y).history[:, "train_margins"]]
    [32]
    """

    def __init__(
        self,
        X_train=None,
        y_train=None,
        X_test=None,
        y_test=None,
        *,
        n_points=500,
        epochs=TRACK_EPOCHS,
        every=None,
        kind="feature",
        bound_params=None,
        random_state=0,
        keep_margins=False,
    ):
        self.X_train = X_train
        self.y_train = y_train
        self.X_test = X_test
        self.y_test = y_test
        self.n_points = n_points
        self.epochs = epochs
        self.every = every
        self.kind = kind
        self.bound_params = bound_params
        self.random_state = random_state
        self.keep_margins = keep_margins

    def initialize(self):
        if self.kind not in ("feature", "bound"):
            raise ValueError(f"kind must be 'feature' or 'bound', got {self.kind!r}.")
        if self.every is not None and (not isinstance(self.every, Integral) or self.every < 1):
            raise ValueError(f"every must be a positive integer or None, got {self.every!r}.")
        if (self.X_test is None) != (self.y_test is None):
            raise ValueError("Give both X_test and y_test, or neither.")
        self.subsets_ = {}
        if self.X_test is not None:
            self.subsets_["test"] = _subset(
                self.X_test, _labels(self.y_test), self.n_points, self.random_state
            )
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        if self.X_train is not None:
            X, y = self.X_train, self.y_train
        if X is not None and y is not None:
            self.subsets_["train"] = _subset(X, _labels(y), self.n_points, self.random_state)

    def _due(self, epoch):
        if self.every is not None:
            return epoch % self.every == 0
        return epoch in set(self.epochs)

    def on_epoch_end(self, net, **kwargs):
        from ..metrics import sample_margins, summarize_margins

        epoch = len(net.history)
        if not self._due(epoch):
            return
        for name in ("train", "test"):
            if name not in self.subsets_:
                continue
            X, y = self.subsets_[name]
            if self.kind == "feature":
                m = sample_margins(net, X, y, kind="feature")["feature"]
            else:
                m = sample_margins(net, X, y, bound_params=self.bound_params)["margin"]
            stats = summarize_margins(m, quantiles=())
            net.history.record(f"{name}_min_margin", stats["min_margin"])
            net.history.record(f"{name}_avg_margin", stats["avg_margin"])
            if self.keep_margins:
                net.history.record(
                    f"{name}_margins", np.round(np.asarray(m, dtype=float), 5).tolist()
                )
