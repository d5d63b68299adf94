"""The base classes of the attacks: one ``__call__`` for all, ``run`` per attack.

``Attack.__call__(model, X, y)`` owns everything around the mathematics: it validates
the hyperparameters, adapts the model with :func:`amrlearn.utils.as_logit_fn`, puts it in
eval mode (and restores the previous mode afterwards; a model whose output is still random
then raises an :class:`~amrlearn.exceptions.EvaluationWarning`), moves each batch of
``batch_size`` samples to the device, seeds the randomness and shows a progress bar.
Subclasses implement ``run(fn, x, y)`` on tensors already on the device, nothing more.

Two families, as in foolbox: a :class:`FixedEpsilonAttack` answers "is the sample
robust at eps?" and returns adversarial inputs; a :class:`MinimizationAttack` answers
"how far is the boundary?" and returns ``(x_adv, distances)``.
"""

from contextlib import contextmanager
from numbers import Integral

from sklearn.base import BaseEstimator

from ..utils import as_logit_fn, progress
from ..utils._alarms import warn_if_stochastic
from ..utils._compat import Interval
from ..utils._inputs import as_input_tensor, check_box, torch_generator
from ..utils._math import flat_norm

__all__ = ["Attack", "FixedEpsilonAttack", "MinimizationAttack"]

#: A point counts inside the ball of radius eps up to this relative rounding.
EPS_RTOL = 1e-6


@contextmanager
def _session(model, X, y, device, clip, name):
    """Adapt the model and the data; yield ``(fn, X_t, y_t)`` with the model in eval mode.

    ``fn`` is :func:`amrlearn.utils.as_logit_fn` of ``model``; ``X_t`` and ``y_t`` are
    tensors (class indices for ``y_t``) still where they came from. ``X_t`` must lie in
    the box ``clip``; a model whose output is random in eval mode warns, naming ``name``.
    The model's mode is restored on exit.
    """
    fn = as_logit_fn(model, device)
    X_t = as_input_tensor(X, fn.dtype)
    y_t = fn.targets(y, X_t)
    check_box(X_t, clip)
    with fn.eval_mode():
        warn_if_stochastic(fn, X_t[:8].to(fn.device), name)
        yield fn, X_t, y_t


def _slices(fn, X_t, y_t, batch_size, index=None, *, verbose=0, desc=None):
    """Yield ``(sel, x_batch, y_batch)``, batches of at most ``batch_size`` on ``fn.device``.

    ``index`` (a tensor of sample indices) picks the samples; ``None`` takes them all, and
    ``sel`` is then a slice.
    """
    n = X_t.shape[0] if index is None else len(index)
    for s in progress(range(0, n, batch_size), verbose=verbose, desc=desc):
        sel = slice(s, s + batch_size) if index is None else index[s : s + batch_size]
        yield sel, X_t[sel].to(fn.device), y_t[sel].to(fn.device)


class Attack(BaseEstimator):
    """Base class of the attacks: batching, eval mode, device, seeding and progress.

    Subclasses implement ``run(fn, x, y, *, generator=None)``. Hyperparameters are
    keyword arguments stored unchanged, so that ``get_params``, ``set_params`` and
    ``clone`` work.

    Parameters
    ----------
    batch_size : int, default=256
        Samples per call of ``run``: the memory budget of the attack.
    device : str, torch.device or None, default=None
        Where to run. ``None`` keeps the model where it is.
    verbose : int, default=0
        0 silences the progress bar.
    random_state : int, RandomState instance or None, default=None
        Seeds the attack's randomness (random starts, random directions).
    """

    _parameter_constraints: dict = {
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": "no_validation",
        "verbose": ["verbose"],
        "random_state": ["random_state"],
    }

    def run(self, fn, x, y, *, generator=None):
        """Attack a batch; ``x`` and ``y`` are tensors already on ``fn.device``.

        Does no batching and no switching of the module's mode: the caller owns both.
        """
        raise NotImplementedError

    def _batches(self, model, X, y):
        """Yield ``(fn, x_batch, y_batch, generator)`` in eval mode; restore the mode after."""
        self._validate_params()
        name = type(self).__name__
        with _session(model, X, y, self.device, getattr(self, "clip", None), name) as session:
            fn, X_t, y_t = session
            generator = torch_generator(self.random_state, fn.device)
            batches = _slices(fn, X_t, y_t, self.batch_size, verbose=self.verbose, desc=name)
            for _, xb, yb in batches:
                yield fn, xb, yb, generator

    @staticmethod
    def _like_input(t, X):
        """Return ``t`` as ``X`` came: a tensor on X's device, else a numpy array."""
        import torch

        if torch.is_tensor(X):
            return t.to(X.device)
        return t.cpu().numpy()


class FixedEpsilonAttack(Attack):
    """Base class of the attacks that search a ball of radius ``eps``.

    ``attack(model, X, y)`` returns the adversarial inputs; ``run`` returns a tensor and
    ``broken`` which samples the attack breaks. Subclasses hold an ``eps`` parameter.
    """

    def broken(self, fn, x, y, *, generator=None):
        """Which samples of one batch the attack breaks (tensor-level, like ``run``).

        A sample is broken when the attack finds a point within ``eps`` of it (up to a
        relative rounding of 1e-6) that ``fn`` misclassifies, including samples that are
        already misclassified. This default checks the points of ``run`` by one forward
        pass; an attack that knows the answer along the way (:class:`L2PGD`,
        :class:`APGD`) overrides it.

        Parameters
        ----------
        fn : callable
            ``fn(x) -> logits``; its mode is the caller's business.
        x : tensor of shape (n, ...)
        y : tensor of shape (n,) of int64
        generator : torch.Generator, default=None

        Returns
        -------
        broken : bool tensor of shape (n,)
        """
        import torch

        self._validate_params()
        x_adv = self.run(fn, x, y, generator=generator).detach()
        within = flat_norm(x_adv - x).flatten() <= float(self.eps) * (1 + EPS_RTOL)
        with torch.no_grad():
            return within & (fn(x_adv).argmax(1) != y)

    def __call__(self, model, X, y):
        """Attack ``X`` with labels ``y``; return the adversarial inputs, shaped like X.

        Parameters
        ----------
        model : torch.nn.Module, skorch net or fitted linear estimator
            See :func:`amrlearn.utils.as_logit_fn`.
        X : array-like or tensor of shape (n_samples, ...)
            Inputs, flat vectors or images.
        y : array-like of shape (n_samples,)
            True labels (class labels of the estimator, or indices for a bare module).

        Returns
        -------
        X_adv : ndarray or tensor, like ``X``
        """
        import torch

        batches = self._batches(model, X, y)
        out = [self.run(fn, xb, yb, generator=g).detach() for fn, xb, yb, g in batches]
        return self._like_input(torch.cat(out), X)


class MinimizationAttack(Attack):
    """Base class of the attacks that look for the closest adversarial point.

    ``attack(model, X, y)`` and ``run`` return ``(x_adv, distances)``: ``distances`` is
    the l2 norm of ``x_adv - x``, an upper bound on the distance to the decision
    boundary, ``inf`` where no adversarial point was found and ``0`` where ``x`` is
    already misclassified.

    Attributes
    ----------
    accepts_x_init : bool
        Class attribute: whether ``run`` takes ``x_init=``, starting points found
        elsewhere (a warm start). :class:`MinimumNormEnsemble` hands the best points so
        far to the members that declare it.
    """

    accepts_x_init = False

    def __call__(self, model, X, y):
        """Attack ``X`` with labels ``y``.

        Parameters
        ----------
        model : torch.nn.Module, skorch net or fitted linear estimator
            See :func:`amrlearn.utils.as_logit_fn`.
        X : array-like or tensor of shape (n_samples, ...)
        y : array-like of shape (n_samples,)

        Returns
        -------
        X_adv : ndarray or tensor, like ``X``
            The closest adversarial point found (``x`` itself where none was found).
        distances : ndarray of shape (n_samples,)
        """
        import torch

        advs, dists = [], []
        for fn, xb, yb, g in self._batches(model, X, y):
            x_adv, d = self.run(fn, xb, yb, generator=g)
            advs.append(x_adv.detach())
            dists.append(d.detach().double().cpu())
        return self._like_input(torch.cat(advs), X), torch.cat(dists).numpy()
