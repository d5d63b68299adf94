"""The net whose loss is the criterion plus pluggable penalties (:class:`~._penalty.Penalty`).

``penalty=`` is a part, as skorch's ``criterion``: a class or an instance, or a list of
them, built in :meth:`RegularizedNeuralNetClassifier.initialize_penalty` with the
``penalty__*`` parameters, and added to the loss in ``get_loss`` after
``super().get_loss``. The net owns the one clock every penalty's schedule reads: the
epoch (the length of ``history``) and the training steps taken since ``initialize``.
"""

import inspect

from sklearn.base import clone

from ._base import NET_INPUT_NOTES, NET_PARAMS_DOC, FeatureMarginNet
from ._certified import LipschitzBoundMixin
from ._lazy import _ForwardCounter
from ._penalty import Clock, Penalty

__all__ = ["RegularizedNeuralNetClassifier"]


def _is_penalty(item):
    return isinstance(item, Penalty) or (isinstance(item, type) and issubclass(item, Penalty))


class RegularizedNeuralNetClassifier(LipschitzBoundMixin, FeatureMarginNet):
    __doc__ = f"""Neural net trained with the cross-entropy plus one or several penalties.

    The loss of a batch is ``criterion(logits, y) + sum_p scale_p * weight_p * term_p``,
    with ``term_p`` the batch mean of penalty ``p`` (:class:`~amrlearn.neural.Penalty`) and
    ``scale_p`` its schedule (start epoch, warm-up ramp, lazy steps). The penalties enter
    training and validation losses alike, except those that declare themselves
    training-only (Deep Defense, MMR).

    Parameters
    ----------
    penalty : Penalty class or instance, list of them, or None, default=None
        The regularizers. A class is built with the ``penalty__*`` parameters, an
        instance is cloned and given them. A single penalty takes
        ``penalty__<param>`` (``penalty__weight=0.1``, as skorch's ``criterion__*``); in a
        list, each is named by its ``name`` (``"margin"``, ``"ortho"``, ``"deepdefense"``,
        ``"mmr"``) or by a pair ``(name, penalty)``, and takes
        ``penalty__<name>__<param>`` (``penalty__mmr__weight=1.0``, as skorch's
        ``callbacks__<name>__*``). ``None``: standard training.
{NET_PARAMS_DOC}
    Attributes
    ----------
    module_ : torch.nn.Module
        The trained module.
    classes_ : ndarray of shape (n_classes,)
        Class labels seen in ``fit``, sorted.
    penalties_ : dict of str to Penalty
        The penalties in use, by name, in the order they are added to the loss.
    n_train_steps_ : int
        Training steps taken since the last ``initialize`` (``fit`` restarts the count,
        ``partial_fit`` continues it): the clock of the lazy schedules.

    See Also
    --------
    AMRNeuralNetClassifier : This net with AMR's two penalties, objective (15).
    Penalty : The base of the penalties, and how to write one.

    Notes
    -----
    Writing a penalty: subclass :class:`~amrlearn.neural.Penalty`, implement
    ``compute(net, batch, clock)`` and pass the class as ``penalty=`` (user guide,
    "Writing a penalty").
{NET_INPUT_NOTES}
    Examples
    --------
    AMR's margin term with MMR, on any module that returns logits:

    >>> import numpy as np, torch
    >>> from amrlearn.neural import (AMRMarginPenalty, MMRPenalty,
    ...                              RegularizedNeuralNetClassifier)
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(32, 5)).astype(np.float32)
    >>> y = (X[:, 0] > 0).astype(np.int64)
    >>> mlp = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> net = RegularizedNeuralNetClassifier(
    ...     mlp, penalty=[AMRMarginPenalty(tau=2.0), MMRPenalty], penalty__mmr__weight=0.5,
    ...     max_epochs=2, random_state=0, verbose=0).fit(X, y)
    >>> list(net.penalties_), net.penalties_["mmr"].weight
    (['margin', 'mmr'], 0.5)
    """

    prefixes_ = [*FeatureMarginNet.prefixes_, "penalty"]

    _parameter_constraints = {
        **FeatureMarginNet._parameter_constraints,
        "penalty": "no_validation",  # checked, with clear errors, in initialize_penalty
    }

    _in_train_step = False
    _forward_counter = None

    def __init__(self, module, *args, penalty=None, **kwargs):
        super().__init__(module, *args, **kwargs)
        self.penalty = penalty

    # ---------------------------------------------------------------- penalties
    def _own_penalties(self):
        """The penalties that a subclass's own parameters define, ``{name: Penalty}``."""
        return {}

    def _penalty_specs(self):
        """``[(name, class or instance, kwargs)]`` from ``penalty`` and ``penalty__*``."""
        if self.penalty is None:
            return []
        single = not isinstance(self.penalty, list | tuple) or (
            len(self.penalty) == 2 and isinstance(self.penalty[0], str)
        )
        items = [self.penalty] if single else list(self.penalty)
        specs = []
        for item in items:
            name, part = item if isinstance(item, tuple) and len(item) == 2 else (None, item)
            if not _is_penalty(part) or not (name is None or isinstance(name, str)):
                raise TypeError(
                    "penalty takes Penalty classes or instances, or (name, penalty) pairs, "
                    f"got {item!r}."
                )
            specs.append([part.name if name is None else name, part])
        params = self.get_params_for("penalty")
        if single:
            return [(specs[0][0], specs[0][1], params)]
        names = [name for name, _ in specs]
        unknown = {key.split("__")[0] for key in params} - set(names)
        if unknown:
            raise ValueError(
                f"penalty__{sorted(unknown)[0]}__...: no penalty of that name; with a list, "
                f"the parameters go in penalty__<name>__<param>, names {names}."
            )
        return [(name, part, self.get_params_for(f"penalty__{name}")) for name, part in specs]

    def initialize_penalty(self):
        """Build ``penalties_`` from the subclass's own and from ``penalty``/``penalty__*``."""
        penalties = dict(self._own_penalties())
        for name, part, kwargs in self._penalty_specs():
            if name in penalties:
                raise ValueError(
                    f"Two penalties are named {name!r}; name them with (name, penalty) pairs."
                )
            penalties[name] = part(**kwargs) if isinstance(part, type) else clone(part)
            if not isinstance(part, type):
                penalties[name].set_params(**kwargs)
        for part in penalties.values():
            part.initialize(self)
        self.penalties_ = penalties
        return self

    def _finish_initialize(self):
        super()._finish_initialize()
        self.n_train_steps_ = 0
        return self.initialize_penalty()

    def set_params(self, **kwargs):
        if not self.initialized_:
            return super().set_params(**kwargs)
        # skorch re-initializes its torch parts only: the penalties are rebuilt here,
        # from penalty/penalty__* and from a subclass's own parameters (lam, tau, ...).
        parts = {k: v for k, v in kwargs.items() if k.split("__")[0] == "penalty"}
        rest = {k: v for k, v in kwargs.items() if k not in parts}
        if rest:
            super().set_params(**rest)
        for key, value in parts.items():
            setattr(self, key, value)
            if "__" in key:
                self._params_to_validate.add(key)
        own = set(inspect.signature(type(self).__init__).parameters)
        own -= set(inspect.signature(RegularizedNeuralNetClassifier.__init__).parameters)
        if parts or own.intersection(rest):
            self.initialize_penalty()
        return self

    # -------------------------------------------------------- the clock, the loss
    def train_step(self, batch, **fit_params):
        if any(part.every_ is None for part in self.penalties_.values()):
            # a penalty with every="auto" chooses from this step's forward pass
            self._forward_counter = _ForwardCounter(self.bare_module_)
        self._in_train_step = True
        try:
            return super().train_step(batch, **fit_params)
        finally:
            self._in_train_step = False
            if self._forward_counter is not None:
                self._forward_counter.remove()
                self._forward_counter = None
            self.n_train_steps_ += 1

    def clock(self, training=False):
        """The :class:`~amrlearn.neural._penalty.Clock` the penalties' schedules read now."""
        counter = self._forward_counter
        return Clock(
            epoch=max(len(self.history or ()), 1),
            step=self.n_train_steps_,
            training=bool(training),
            in_step=self._in_train_step,
            max_epochs=self.max_epochs,
            step_macs=None if counter is None else counter.macs,
        )

    def penalty_loss(self, y_pred, y_true, X=None, training=False):
        """The sum of the penalties' terms on a batch, or ``None`` where all are off.

        Parameters
        ----------
        y_pred : tensor or tuple
            The module's output (``self.infer(X)``).
        y_true : tensor or ndarray of shape (n,)
            Class codes.
        X : tensor or ndarray, default=None
            The batch's inputs (needed by penalties that run their own forward).
        training : bool, default=False

        Returns
        -------
        term : scalar tensor or None
        """
        clock = self.clock(training)
        total = None
        for part in self.penalties_.values():
            term = part(self, y_pred, y_true, X, clock)
            if term is not None:
                total = term if total is None else total + term
        return total

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """The criterion's loss plus :meth:`penalty_loss`."""
        loss = super().get_loss(y_pred, y_true, X=X, training=training)
        term = self.penalty_loss(y_pred, y_true, X=X, training=training)
        return loss if term is None else loss + term

    # ---------------------------------------------------------------- pickles
    def __setstate__(self, state):
        # Nets pickled before penalties were parts (amrlearn 9b1e0af and earlier) have no
        # ``penalty`` and keep their penalties' fitted state (``ortho_every_``,
        # ``n_hidden_``) on the net, where properties now stand: rebuild the penalties
        # from the subclass's parameters and hand them that state.
        cls = type(self)
        moved = {
            key: state.pop(key)
            for key in list(state)
            if isinstance(key, str) and isinstance(getattr(cls, key, None), property)
        }
        super().__setstate__(state)
        if "penalty" not in state:
            self.penalty = None
            self.__dict__.setdefault("n_train_steps_", 0)
            if self.initialized_:
                self.initialize_penalty()
                for key, value in moved.items():
                    setattr(self, key, value)
