"""Logistic regression trained step by step, and a callback that records its margins.

The training path of Figures 1 and 4: :class:`GradientDescentLR` (full-batch gradient
descent or Appendix F's SGD) calls :class:`MarginRecorder` after every epoch.
"""

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator

from .._paper import APPENDIX_F, LR_EPOCHS
from ..metrics import closest_boundary_point, sample_margins, summarize_margins
from ..utils import progress
from ..utils._compat import LinearClassifierMixin

__all__ = ["GradientDescentLR", "MarginRecorder"]

#: Power iterations at most, and their tolerance, for the smoothness constant of "gd".
_POWER_ITERATIONS = 100
_POWER_TOL = 1e-8


class GradientDescentLR(LinearClassifierMixin, BaseEstimator):
    """Binary logistic regression trained by full-batch gradient descent or by SGD.

    The model of section 3 (with a bias). After every epoch each callback is called as
    ``callback(epoch, model, loss)``, where ``model`` holds the current ``coef_`` and
    ``intercept_``; a callback observes and does not change them.

    Parameters
    ----------
    n_epochs : int, default=1000
    optimizer : {"gd", "sgd"}, default="gd"
        ``"gd"``: one full-batch gradient step per epoch, on mean-centred inputs, with
        step ``lr_scale / L``. ``"sgd"``: minibatch SGD with Nesterov momentum over a
        seeded shuffle (the protocol of the paper's Appendix F).
    lr_scale : float, default=20.0
        ``"gd"``: step size in units of ``1 / L``, ``L`` the smoothness constant of the
        mean logistic loss.
    learning_rate : float, default=0.01
        ``"sgd"``: step size.
    momentum : float, default=0.9
        ``"sgd"``: Nesterov momentum (PyTorch's convention).
    batch_size : int, default=128
        ``"sgd"``: minibatch size.
    random_state : int, default=0
        ``"sgd"``: seed of the shuffles.
    callbacks : list of callable, default=None
    verbose : int, default=0

    Attributes
    ----------
    classes_, coef_, intercept_, lr_, loss_
        ``loss_`` is the mean logistic loss on the training set after the last epoch
        (``"gd"``), or the mean of the last epoch's minibatch losses (``"sgd"``).

    Examples
    --------
    >>> import numpy as np
    >>> from amrlearn.experiments._logistic_path import GradientDescentLR
    >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [2.0, 0.0], [2.0, 1.0]]); y = [0, 0, 1, 1]
    >>> seen = []
    >>> clf = GradientDescentLR(n_epochs=50, callbacks=[lambda e, m, l: seen.append(e)])
    >>> clf.fit(X, y).score(X, y), len(seen)
    (1.0, 50)
    >>> GradientDescentLR(n_epochs=50, optimizer="sgd", batch_size=2).fit(X, y).score(X, y)
    1.0
    """

    def __init__(
        self,
        *,
        n_epochs=LR_EPOCHS,
        optimizer="gd",
        lr_scale=20.0,
        learning_rate=APPENDIX_F["lr"],
        momentum=APPENDIX_F["momentum"],
        batch_size=APPENDIX_F["batch_size"],
        random_state=0,
        callbacks=None,
        verbose=0,
    ):
        self.n_epochs = n_epochs
        self.optimizer = optimizer
        self.lr_scale = lr_scale
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.batch_size = batch_size
        self.random_state = random_state
        self.callbacks = callbacks
        self.verbose = verbose

    def fit(self, X, y):
        """Train, calling the callbacks after every epoch.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Exactly two classes.

        Returns
        -------
        self : object
        """
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) != 2:
            raise ValueError("GradientDescentLR is binary: y must have exactly 2 classes.")
        if self.optimizer not in ("gd", "sgd"):
            raise ValueError(f"optimizer must be 'gd' or 'sgd', got {self.optimizer!r}.")
        t = np.where(y == self.classes_[1], 1.0, -1.0)
        if self.optimizer == "gd":
            return self._fit_gd(X, t)
        return self._fit_sgd(X, t)

    def _epochs(self):
        desc = "GD" if self.optimizer == "gd" else "SGD"
        return progress(range(1, self.n_epochs + 1), verbose=self.verbose, desc=desc)

    def _fit_gd(self, X, t):
        n, d = X.shape
        mean = X.mean(axis=0)
        Xc = X - mean
        # L = sigma_max([Xc, 1])^2 / (4 n), by power iteration.
        v = np.ones(d + 1) / np.sqrt(d + 1)
        for _ in range(_POWER_ITERATIONS):
            u = Xc @ v[:d] + v[d]
            v_new = np.append(Xc.T @ u, u.sum())
            s2 = np.linalg.norm(v_new)
            v_new /= s2
            if np.linalg.norm(v_new - v) < _POWER_TOL:
                break
            v = v_new
        self.lr_ = self.lr_scale / (s2 / (4.0 * n))
        w, c = np.zeros(d), 0.0  # score = w . (x - mean) + c
        for epoch in self._epochs():
            m = t * (Xc @ w + c)
            r = -expit(-m) * t / n
            w = w - self.lr_ * (Xc.T @ r)
            c = c - self.lr_ * r.sum()
            self.coef_ = w[None, :].copy()
            self.intercept_ = np.array([c - w @ mean])
            self.loss_ = float(np.logaddexp(0.0, -t * (Xc @ w + c)).mean())
            for cb in self.callbacks or ():
                cb(epoch, self, self.loss_)
        return self

    def _fit_sgd(self, X, t):
        n, d = X.shape
        rng = np.random.default_rng(self.random_state)
        lr, mu, bs = float(self.learning_rate), float(self.momentum), int(self.batch_size)
        self.lr_ = lr
        w, b = np.zeros(d), 0.0
        vw, vb = np.zeros(d), 0.0  # momentum buffers
        for epoch in self._epochs():
            perm = rng.permutation(n)
            total = 0.0
            for start in range(0, n, bs):
                idx = perm[start : start + bs]
                Xb, tb = X[idx], t[idx]
                m = tb * (Xb @ w + b)
                total += float(np.logaddexp(0.0, -m).sum())
                r = -expit(-m) * tb / len(idx)
                gw, gb = Xb.T @ r, r.sum()
                # PyTorch's Nesterov SGD: v <- mu v + g; step along g + mu v.
                vw = mu * vw + gw
                vb = mu * vb + gb
                w = w - lr * (gw + mu * vw)
                b = b - lr * (gb + mu * vb)
            self.coef_ = w[None, :].copy()
            self.intercept_ = np.array([b])
            self.loss_ = total / n
            for cb in self.callbacks or ():
                cb(epoch, self, self.loss_)
        return self


class MarginRecorder:
    """Callback that records exact margins, errors and the loss at chosen epochs.

    Works for any model that :func:`amrlearn.metrics.sample_margins` measures. Keeps the
    full margin vectors at ``keep_epochs`` (for histograms) and the closest boundary points
    (eq. (7)) of ``X_adv`` at ``adv_epochs``.

    Parameters
    ----------
    data : dict of str to (X, y)
        E.g. ``{"train": (X, y), "test": (X_test, y_test)}``.
    epochs : iterable of int
        When to record.
    keep_epochs, adv_epochs : iterable of int, default=()
    X_adv : ndarray, default=None

    Examples
    --------
    >>> import numpy as np
    >>> from amrlearn.experiments._logistic_path import GradientDescentLR, MarginRecorder
    >>> X = np.array([[0.0], [1.0], [3.0], [4.0]]); y = np.array([0, 0, 1, 1])
    >>> rec = MarginRecorder({"train": (X, y)}, epochs=[1, 5])
    >>> _ = GradientDescentLR(n_epochs=5, callbacks=[rec]).fit(X, y)
    >>> rec.history["epoch"], len(rec.history["train_min_margin"])
    ([1, 5], 2)
    """

    def __init__(self, data, epochs, *, keep_epochs=(), adv_epochs=(), X_adv=None):
        self.data = data
        self.epochs = set(int(e) for e in epochs)
        self.keep_epochs = set(int(e) for e in keep_epochs)
        self.adv_epochs = set(int(e) for e in adv_epochs)
        self.X_adv = X_adv
        self.history = {"epoch": [], "loss": []}
        self.kept = {}
        self.adversarial = {}

    def __call__(self, epoch, model, loss):
        if epoch in self.epochs:
            self.history["epoch"].append(int(epoch))
            self.history["loss"].append(float(loss))
            for name, (X, y) in self.data.items():
                res = sample_margins(model, X, y)
                s = summarize_margins(res["margin"], quantiles=())
                for key in ("min_margin", "avg_margin"):
                    self.history.setdefault(f"{name}_{key}", []).append(s[key])
                err = float(np.mean(np.asarray(res["y_pred"]) != y))
                self.history.setdefault(f"{name}_error", []).append(err)
                if name == "train" and epoch in self.keep_epochs:
                    self.kept[int(epoch)] = res["margin"]
        if epoch in self.adv_epochs and self.X_adv is not None:
            self.adversarial[int(epoch)] = closest_boundary_point(model, self.X_adv)
