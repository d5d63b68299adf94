"""skorch estimator of Deep Defense (Yan, Guo & Zhang, NeurIPS 2018).

The maths (DeepFool unrolled in the loss) and the penalty,
:class:`~amrlearn.neural.DeepDefensePenalty`, live in :mod:`amrlearn.neural._ddpenalty`;
this class sets that penalty from its parameters.
"""

from numbers import Integral

from ..utils._compat import Interval
from ._base import NET_INPUT_NOTES, NET_PARAMS_DOC
from ._ddpenalty import DeepDefensePenalty
from ._regularized import RegularizedNeuralNetClassifier

__all__ = ["DeepDefenseNeuralNetClassifier"]


class DeepDefenseNeuralNetClassifier(RegularizedNeuralNetClassifier):
    __doc__ = f"""Deep Defense: a penalty on the DeepFool distance of every training sample.

    The training loss of a batch of ``n`` samples is

    ``CE(logits, y) + lam * (1/n) [sum_{{k correct}} exp(-c rho_k)
    + sum_{{k wrong}} exp(d rho_k)]``,

    with ``rho_k = ||dx_k|| / ||x_k||`` and ``dx_k`` the DeepFool perturbation of ``x_k``
    (``max_iter`` iterations, overshoot ``overshoot``): away from its class when ``x_k``
    is classified correctly, towards its true class when not. DeepFool's iterations are
    unrolled and differentiated in the weights (the logits at every iterate and every
    linearization's gradients), as in the authors' code; the ReLU masks, max-pool indices,
    chosen classes and ``||x_k||`` are constants. The penalty enters the training loss
    only; ``valid_loss`` is the cross-entropy.

    Deep Defense fine-tunes a trained standard model. Either pass the trained module
    (``DeepDefenseNeuralNetClassifier(copy.deepcopy(std.module_), ...)``, which skorch
    uses as it is), or set ``warm_start=True`` on a net whose ``module_`` holds the trained
    weights (``dd.initialize(); dd.module_.load_state_dict(std.module_.state_dict())``),
    or train both phases in one fit with ``pretrain_epochs``.

    Parameters
    ----------
    lam : float, default=15.0
        Weight ``lambda`` of the penalty (the authors' LeNet/MNIST value; ``0`` is
        standard training).
    c : float, default=25.0
        Decay ``c`` of ``exp(-c rho)`` on correctly classified samples (LeNet/MNIST).
    d : float, default=5.0
        Growth ``d`` of ``exp(d rho)`` on misclassified samples (LeNet/MNIST).
    max_iter : int, default=5
        DeepFool iterations unrolled in the loss (the authors' default, also used for
        their test-time ``rho``).
    overshoot : float, default=0.02
        DeepFool's overshoot ``eta``: ``dx = (1 + eta) sum_i r_i``.
    pretrain_epochs : int, default=0
        Epochs of standard training (the penalty off) at the start of a fit, then Deep
        Defense epochs: a standard model and its fine-tuning in one fit. ``max_epochs``
        counts both.
    reg_batch_size : int or None, default=None
        The penalty is computed on the first ``reg_batch_size`` samples of each
        (shuffled) batch and averaged over them, an unbiased estimate of the batch's;
        ``None``: the whole batch (the authors'). It costs tens of forward-backward
        passes per sample.
    penalty : Penalty class or instance, list of them, or None, default=None
        More penalties, added after Deep Defense's (named ``"deepdefense"``), with
        ``penalty__*`` as in :class:`~amrlearn.neural.RegularizedNeuralNetClassifier`.
{NET_PARAMS_DOC}
    Attributes
    ----------
    module_ : torch.nn.Module
        The trained module.
    classes_ : ndarray of shape (n_classes,)
        Class labels seen in ``fit``, sorted.
    penalties_ : dict of str to Penalty
        ``"deepdefense"`` (:class:`~amrlearn.neural.DeepDefensePenalty`) and those of
        ``penalty``.

    See Also
    --------
    AMRNeuralNetClassifier : The average margin regularizer (Wu & Yu).
    MMRNeuralNetClassifier : The maximum margin regularizer (Croce et al.).
    amrlearn.attacks.DeepFool : The DeepFool attack (evaluation).

    Notes
    -----
    The authors' LeNet/MNIST settings (their code's defaults): ``lam=15, c=25, d=5,
    max_iter=5, overshoot=0.02``, batches of 100, ``optimizer__momentum=0.9,
    optimizer__nesterov=False, optimizer__weight_decay=5e-4, lr=5e-4`` for 5 epochs of
    fine-tuning, the learning rate halved in the last one; the biases are not decayed
    (``optimizer__param_groups=[("*bias", {{"weight_decay": 0.0}})]``). Their inputs are
    0-255 pixels minus the training mean, so ``rho`` there is relative to those norms. No
    values for the CIFAR-10 ConvNet could be retrieved; the LeNet values are the defaults.

    Each training step costs ``max_iter + 1`` batched Jacobians of the logits and their
    second-order backward pass: tens of standard steps.

    Differences from the authors' code: the iterates carry the overshoot
    (``x + (1 + eta) sum r``, theirs ``x + sum r``, the overshoot only in the stopping
    test and the result); a misclassified sample's gaps are taken against its prediction
    at ``x`` throughout; zero-gradient classes are skipped rather than stabilized by a
    constant added to the gradients.
{NET_INPUT_NOTES}
    References
    ----------
    Z. Yan, Y. Guo and C. Zhang, "Deep Defense: training DNNs with improved adversarial
    robustness", NeurIPS 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from amrlearn.neural import DeepDefenseNeuralNetClassifier, models
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(64, 5)).astype(np.float32)
    >>> y = (X[:, 0] > 0).astype(np.int64)
    >>> net = DeepDefenseNeuralNetClassifier(models.MLP, module__in_features=5,
    ...                                      module__hidden=16, module__n_classes=2,
    ...                                      lam=1.0, pretrain_epochs=2, max_epochs=3,
    ...                                      random_state=0, verbose=0)
    >>> net.fit(X, y).predict(X).shape
    (64,)
    """

    _parameter_constraints = {
        **RegularizedNeuralNetClassifier._parameter_constraints,
        # The penalty's own constraints (``lam`` is its ``weight``), declared once there.
        "lam": DeepDefensePenalty._parameter_constraints["weight"],
        **{
            key: DeepDefensePenalty._parameter_constraints[key]
            for key in ("c", "d", "max_iter", "overshoot", "reg_batch_size")
        },
        "pretrain_epochs": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(
        self,
        module,
        *args,
        lam=15.0,
        c=25.0,
        d=5.0,
        max_iter=5,
        overshoot=0.02,
        pretrain_epochs=0,
        reg_batch_size=None,
        penalty=None,
        **kwargs,
    ):
        super().__init__(module, *args, penalty=penalty, **kwargs)
        self.lam = lam
        self.c = c
        self.d = d
        self.max_iter = max_iter
        self.overshoot = overshoot
        self.pretrain_epochs = pretrain_epochs
        self.reg_batch_size = reg_batch_size

    def _own_penalties(self):
        return {
            "deepdefense": DeepDefensePenalty(
                self.lam,
                c=self.c,
                d=self.d,
                max_iter=self.max_iter,
                overshoot=self.overshoot,
                start_epoch=self.pretrain_epochs + 1,
                reg_batch_size=self.reg_batch_size,
            )
        }
