"""Lazy regularization for skorch nets: a training-step counter and the penalty's weight.

A mixin, placed before the skorch net in the bases, that counts training steps in
``n_train_steps_`` and tells ``get_loss`` by how much to multiply a costly penalty on the
current step: ``every`` on one step in ``every``, ``0`` on the others (so that, at fixed
weights, the penalty's gradients over ``every`` consecutive steps sum to those of the
every-step penalty), and ``1`` outside a training step (validation, direct calls).
"""

__all__ = ["LazyPenaltyMixin"]


class LazyPenaltyMixin:
    """Counts training steps; :meth:`lazy_penalty_scale` gives the lazy penalty's weight.

    The net must have an integer parameter ``ortho_every`` (>= 1).

    Attributes
    ----------
    n_train_steps_ : int
        Training steps taken since the last ``initialize``.

    Examples
    --------
    >>> import numpy as np
    >>> from amrlearn.neural import AMRNeuralNetClassifier, models
    >>> X = np.random.default_rng(0).uniform(size=(20, 4)).astype(np.float32)
    >>> y = np.arange(20) % 2
    >>> net = AMRNeuralNetClassifier(models.MLP, module__in_features=4, module__hidden=8,
    ...                              module__n_classes=2, batch_size=5, max_epochs=2,
    ...                              ortho_every=3, verbose=0).fit(X, y)
    >>> net.n_train_steps_
    8
    >>> net.lazy_penalty_scale(training=False)
    1
    """

    _ortho_scale = None

    def _finish_initialize(self):
        # The nets' set-up step that both skorch's and AccelerateMixin's initialize() run.
        out = super()._finish_initialize()
        self.n_train_steps_ = 0
        return out

    def train_step(self, batch, **fit_params):
        every = self.ortho_every
        self._ortho_scale = every if self.n_train_steps_ % every == 0 else 0
        try:
            return super().train_step(batch, **fit_params)
        finally:
            self._ortho_scale = None
            self.n_train_steps_ += 1

    def lazy_penalty_scale(self, training):
        """Weight multiplier of the lazy penalty for the loss being computed.

        Parameters
        ----------
        training : bool
            The ``training`` flag of ``get_loss``.

        Returns
        -------
        scale : int
            ``ortho_every`` or ``0`` inside a training step, else ``1``.
        """
        if training and self._ortho_scale is not None:
            return self._ortho_scale
        return 1
