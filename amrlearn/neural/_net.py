"""skorch estimators of section 4.2: the AMR objective (15) and the PGD adversarial baseline.

The maths lives in :mod:`amrlearn.neural._penalties`, objective (15)'s two terms as
penalties in :mod:`amrlearn.neural._amrpenalty`, and the net that adds penalties to its
loss in :mod:`amrlearn.neural._regularized`. ``AMRNeuralNetClassifier`` only sets those
two penalties from its parameters; ``AdversarialNeuralNetClassifier`` adds the
adversarial training step (``train_step``, with an ``attack`` built in
``initialize_attack``), through skorch's documented extension points.
"""

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import clone
from skorch.dataset import unpack_data
from skorch.utils import to_tensor

from ..attacks import L2PGD
from ..utils._compat import HasMethods, Interval, StrOptions
from ._amrpenalty import AMRMarginPenalty, OrthogonalityPenalty
from ._base import NET_INPUT_NOTES, NET_PARAMS_DOC, logits_of, validate_constraints
from ._certified import LIPSCHITZ_PARAM_DOC
from ._features import eval_mode
from ._regularized import RegularizedNeuralNetClassifier

__all__ = ["AMRNeuralNetClassifier", "AdversarialNeuralNetClassifier"]


class AMRNeuralNetClassifier(RegularizedNeuralNetClassifier):
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
    margin : {{"feature", "logit", "certified"}}, default="feature"
        ``"feature"``: the distance of eq. (14), each logit gap divided by
        ``||w_y - w_k||``. ``"logit"``: the raw logit gap ``min_k z_y - z_k``, as in the
        authors' released code. ``"certified"``: the certified input margin, eq. (14)
        divided by ``P``, the Lipschitz constant of the feature map (``lipschitz``):
        ``min_k (z_y - z_k) / (||w_y - w_k|| P)``, the margin that
        :func:`~amrlearn.metrics.certified_margins` proves, so ``tau`` is in input units,
        on the scale of the radii to certify. It needs a module that
        ``certified_margins`` reads, ending in the layer that produces the logits.
{LIPSCHITZ_PARAM_DOC.rstrip()}
        Used with ``margin="certified"`` only.
    gram : {{"auto", "output", "input"}}, default="auto"
        Gram matrix of the orthogonality penalty: ``W W^T`` ("output", as written in the
        paper), ``W^T W`` ("input") or the smaller one ("auto"). Value and gradient are the
        same (see :func:`~amrlearn.neural.orthogonality_penalty`); "auto" is cheapest.
    ortho_every : int or "auto", default="auto"
        Lazy regularization: in training, the orthogonality penalty enters the loss of
        one step in ``ortho_every`` (the first of a fit included) with weight
        ``ortho_every * beta``, and 0 on the others. At fixed weights the gradients over
        ``ortho_every`` consecutive steps sum to the every-step penalty's, and its cost,
        ``O(out * in * min(out, in))`` per evaluation whatever the batch size, is divided
        by ``ortho_every``. ``1`` is the exact every-step penalty. ``"auto"`` picks, at
        the first training step of a fit, from the multiply-adds of that step's forward
        pass: the exact penalty where it costs at most 15 % of a step (the MNIST CNN at
        batch 32 or 128), else the smallest value that brings it within 5 %, at most 64
        (the MLP-1024 at batch 128: 64). The lazy step is a kick of weight
        ``ortho_every * beta``. On the MLP-1024, 64 learns what the exact penalty
        learns (average margin within 2 %, ``docs/reproduction.md``); where the exact
        penalty is affordable, ``"auto"`` approximates nothing.
        ``ortho_every_`` holds the value in use. Validation losses and calls of
        ``get_loss`` outside a training step use weight ``beta``; the per-batch
        ``train_loss`` jumps on the steps that carry the penalty. The cost of each choice
        is measured in ``benchmarks/bench_training_cost.py``.
    ortho_probes : int or None, default=None
        ``None``: the exact penalty. An integer ``k``: Hutchinson's unbiased estimate from
        ``k`` random sign vectors for layers wider than ``2 k`` (see
        :func:`~amrlearn.neural.orthogonality_penalty`). Its backward pass still writes a
        dense gradient for every weight, so on a CPU it is dearer than the lazy
        ``ortho_every``. Both can be combined.
    penalty : Penalty class or instance, list of them, or None, default=None
        More penalties, added after objective (15)'s two (named ``"margin"`` and
        ``"ortho"``), with ``penalty__*`` as in
        :class:`~amrlearn.neural.RegularizedNeuralNetClassifier` (AMR with MMR:
        ``penalty=MMRPenalty``).
{NET_PARAMS_DOC}
    Attributes
    ----------
    module_ : torch.nn.Module
        The trained module.
    classes_ : ndarray of shape (n_classes,)
        Class labels seen in ``fit``, sorted; logit ``k`` is the class ``classes_[k]``.
    feature_layer_ : str or None
        Name of the linear layer whose input is ``Phi(x)`` (``None``: no ``nn.Linear``).
    history : skorch.History
        Per-epoch and per-batch records (``train_loss``, and what callbacks such as
        :class:`~amrlearn.neural.MarginTracker` add).
    n_train_steps_ : int
        Training steps taken since the last ``initialize`` (``fit`` restarts the count,
        ``partial_fit`` continues it); it schedules the lazy penalty.
    ortho_every_ : int or None
        The lazy penalty's schedule in use (``ortho_every``, or what ``"auto"`` picked at
        the first training step; ``None`` before it).
    penalties_ : dict of str to Penalty
        ``"margin"`` (:class:`~amrlearn.neural.AMRMarginPenalty`), ``"ortho"``
        (:class:`~amrlearn.neural.OrthogonalityPenalty`) and those of ``penalty``.

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

    Several GPUs: ``class Net(skorch.hf.AccelerateMixin, AMRNeuralNetClassifier)``,
    built with ``accelerator=Accelerator(), device=None`` and run with
    ``accelerate launch --num_processes 2 script.py`` (user guide, "Training beyond one
    GPU"); the regularizers see the module inside the DDP wrapper.
{NET_INPUT_NOTES}
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

    Any module that returns logits, here an ``nn.Sequential``, and any labels:

    >>> import torch
    >>> mlp = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    >>> labels = np.where(y == 1, "cat", "dog")
    >>> net = AMRNeuralNetClassifier(mlp, max_epochs=3, random_state=0, verbose=0)
    >>> net.fit(X, labels).classes_.tolist(), net.feature_layer_
    (['cat', 'dog'], '2')
    >>> set(net.predict(X)) <= set(labels)
    True

    Training for certified margins, and what is certified after training:

    >>> from amrlearn.metrics import certified_margins
    >>> net = AMRNeuralNetClassifier(models.MLP, module__in_features=5, module__hidden=16,
    ...                              module__n_classes=2, margin="certified", tau=1.0,
    ...                              max_epochs=3, random_state=0, verbose=0).fit(X, y)
    >>> certified_margins(net, X, y).shape
    (64,)
    """

    _parameter_constraints = {
        **RegularizedNeuralNetClassifier._parameter_constraints,
        "lam": [Interval(Real, 0, None, closed="left")],
        "tau": [Interval(Real, 0, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left")],
        "margin": [StrOptions({"feature", "logit", "certified"})],
        "lipschitz": [StrOptions({"power", "bound"})],
        "gram": [StrOptions({"auto", "output", "input"})],
        "ortho_every": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
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
        lipschitz="power",
        gram="auto",
        ortho_every="auto",
        ortho_probes=None,
        penalty=None,
        **kwargs,
    ):
        super().__init__(module, *args, penalty=penalty, **kwargs)
        self.lam = lam
        self.tau = tau
        self.beta = beta
        self.margin = margin
        self.lipschitz = lipschitz
        self.gram = gram
        self.ortho_every = ortho_every
        self.ortho_probes = ortho_probes

    def _own_penalties(self):
        """Objective (15)'s two terms, from ``lam, tau, margin, lipschitz`` and ``beta,
        gram, ortho_every, ortho_probes``."""
        return {
            "margin": AMRMarginPenalty(
                self.lam, tau=self.tau, margin=self.margin, lipschitz=self.lipschitz
            ),
            "ortho": OrthogonalityPenalty(
                self.beta, gram=self.gram, n_probes=self.ortho_probes, every=self.ortho_every
            ),
        }

    @property
    def ortho_every_(self):
        """The lazy schedule of the orthogonality penalty in use (``None`` before the
        first training step with ``ortho_every="auto"``)."""
        return self.penalties_["ortho"].every_

    @ortho_every_.setter
    def ortho_every_(self, value):
        self.penalties_["ortho"].every_ = value


#: Appendix F's PGD training attack: 40 steps of 0.01 in an l2 ball of radius 2 (MNIST),
#: from a random start, every step run (Madry et al. train on the last iterate's best).
L2PGD_TRAINING_DEFAULTS = {
    "eps": 2.0,
    "steps": 40,
    "step_size": 0.01,
    "random_start": True,
    "clip": (0.0, 1.0),
    "early_stop": False,
}


class AdversarialNeuralNetClassifier(RegularizedNeuralNetClassifier):
    __doc__ = f"""PGD adversarial training (Madry et al.) with an l2 budget, the paper's Adv.

    Each training batch is replaced by its adversarial examples, computed by ``attack_``
    with the module in eval mode, and the cross-entropy of those is minimized. Prediction
    and validation use clean inputs. The default attack is Appendix F's:
    :class:`amrlearn.attacks.L2PGD` with 40 steps of size 0.01, ``eps=2.0`` (MNIST; use
    ``attack__eps=0.4`` on CIFAR-10), a random start, every step run, and the box
    ``clip=(0, 1)``.

    Parameters
    ----------
    attack : attack class or instance, default=L2PGD
        Anything with ``run(fn, x, y) -> x_adv`` on tensors (an
        :class:`amrlearn.attacks.FixedEpsilonAttack`). Its parameters go in
        ``attack__...`` (``attack__eps=0.4``, ``attack__steps=10``); with ``L2PGD`` the
        defaults are ``attack__eps=2.0``, ``attack__steps=40``, ``attack__step_size=0.01``,
        ``attack__random_start=True``, ``attack__clip=(0.0, 1.0)`` and
        ``attack__early_stop=False``. Inputs outside the attack's ``clip`` box are
        refused: rescale them (``X / 255``) or pass ``attack__clip=None``.
    penalty : Penalty class or instance, list of them, or None, default=None
        Penalties added to the loss of the adversarial examples, with ``penalty__*`` as
        in :class:`~amrlearn.neural.RegularizedNeuralNetClassifier` (AMR with PGD
        training: ``penalty=AMRMarginPenalty``).
{NET_PARAMS_DOC}
    Attributes
    ----------
    module_ : torch.nn.Module
        The trained module.
    attack_ : attack
        The attack built from ``attack`` and ``attack__*`` by :meth:`initialize_attack`.
    classes_ : ndarray of shape (n_classes,)
        Class labels seen in ``fit``, sorted.

    See Also
    --------
    AMRNeuralNetClassifier : The average margin regularizer, and the Std/LCR baselines.

    Notes
    -----
    Each training step costs about ``steps + 1`` forward-backward passes.

    Several GPUs: ``class Net(skorch.hf.AccelerateMixin, AdversarialNeuralNetClassifier)``
    with ``accelerator=Accelerator(), device=None``, launched with ``accelerate launch
    --num_processes 2 script.py``; each process attacks its share of the batch.
{NET_INPUT_NOTES}
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
    ...                                      module__n_classes=2, attack__eps=0.1,
    ...                                      attack__steps=3, max_epochs=2, verbose=0)
    >>> net.fit(X, y).predict(X).shape
    (32,)
    >>> net.attack_.eps, net.attack_.steps
    (0.1, 3)
    """

    prefixes_ = [*RegularizedNeuralNetClassifier.prefixes_, "attack"]

    _parameter_constraints = {
        **RegularizedNeuralNetClassifier._parameter_constraints,
        "attack": [HasMethods(["run"])],
    }

    def __init__(self, module, *args, attack=L2PGD, penalty=None, **kwargs):
        if attack is L2PGD:
            for key, value in L2PGD_TRAINING_DEFAULTS.items():
                kwargs.setdefault(f"attack__{key}", value)
        super().__init__(module, *args, penalty=penalty, **kwargs)
        self.attack = attack

    def _finish_initialize(self):
        super()._finish_initialize()
        return self.initialize_attack()

    def initialize_attack(self):
        """Build ``attack_`` from ``attack`` and the ``attack__*`` parameters."""
        kwargs = self.get_params_for("attack")
        if isinstance(self.attack, type):
            attack = self.attack(**kwargs)
        else:
            attack = clone(self.attack).set_params(**kwargs)
        constraints = getattr(attack, "_parameter_constraints", None)
        if constraints is not None:
            validate_constraints(attack, constraints, attack.get_params(deep=False))
        self.attack_ = attack
        return self

    def set_params(self, **kwargs):
        attack = {k: v for k, v in kwargs.items() if k.split("__")[0] == "attack"}
        rest = {k: v for k, v in kwargs.items() if k not in attack}
        if rest or not self.initialized_:
            super().set_params(**(rest if self.initialized_ else kwargs))
        if attack and self.initialized_:
            # skorch re-initializes torch parts only; the attack is rebuilt here.
            for key, value in attack.items():
                setattr(self, key, value)
            self.initialize_attack()
        return self

    def _check_box(self, x):
        clip = getattr(self.attack_, "clip", None)
        if clip is None:
            return
        lo, hi = torch.aminmax(x.detach())
        if lo < clip[0] or hi > clip[1]:
            raise ValueError(
                f"X has values in [{float(lo):g}, {float(hi):g}], outside the attack's box "
                f"clip={tuple(clip)}: clipping would make the perturbations larger than eps. "
                "Rescale X into the box (e.g. X / 255) or pass attack__clip=None."
            )

    def train_step(self, batch, **fit_params):
        """One step on the adversarial examples of ``batch``.

        The attack runs here, once per batch, rather than in ``train_step_single``,
        which :class:`skorch.hf.AccelerateMixin` replaces without calling super().
        It attacks the bare module (each process its own shard of the batch): a
        ``DistributedDataParallel`` wrapper would expect its gradients synchronized.
        """
        Xi, yi = unpack_data(batch)
        if not isinstance(Xi, torch.Tensor | np.ndarray):
            raise TypeError(
                "AdversarialNeuralNetClassifier needs array or tensor input, got "
                f"{type(Xi).__name__}."
            )
        x = to_tensor(Xi, device=self.device)
        y = to_tensor(yi, device=self.device).long()
        self._check_box(x)

        module = self.bare_module_

        def logit_fn(inp):
            logits = logits_of(module(inp, **fit_params))
            self._check_n_outputs(logits.shape[1])  # before the attack's loss indexes it
            return logits

        # The attack sees the deterministic network (no dropout, frozen batch-norm
        # statistics); gradients it may leave on the parameters are cleared.
        with eval_mode(module):
            x_adv = self.attack_.run(logit_fn, x, y).detach()
        module.zero_grad(set_to_none=True)
        # The clean batch, for penalties that read it (CleanMarginPenalty).
        self._clean_batch = (x, y)
        try:
            return super().train_step((x_adv, y), **fit_params)
        finally:
            self._clean_batch = None
