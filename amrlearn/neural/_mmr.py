"""skorch estimator of the maximum margin regularizer, MMR-l2 (Croce, Andriushchenko & Hein).

The maths (the linear region's distances, the hinge) and the penalty,
:class:`~amrlearn.neural.MMRPenalty`, live in :mod:`amrlearn.neural._regions`; this class
sets that penalty from its parameters.
"""

from ._base import NET_INPUT_NOTES, NET_PARAMS_DOC
from ._regions import MMRPenalty
from ._regularized import RegularizedNeuralNetClassifier

__all__ = ["MMRNeuralNetClassifier"]


class MMRNeuralNetClassifier(RegularizedNeuralNetClassifier):
    __doc__ = f"""Maximum margin regularizer (MMR-l2) for ReLU networks.

    The training loss of a batch is ``mean_i [CE_i + lam_t * MMR_i]`` with

    ``MMR = (1/k_B) sum_{{i<=k_B}} max(0, 1 - d_B^(i) / gamma_B)
    + (1/k_D) sum_{{i<=k_D}} max(0, 1 - d_D^(i) / gamma_D)``,

    where ``d_B^(i)`` is the i-th smallest l2 distance from ``x`` to a hyperplane
    ``z_j = 0`` of a hidden unit on ``x``'s linear region (a boundary of the region), and
    ``d_D^(i)`` the i-th smallest signed distance to a decision hyperplane
    ``f_k = f_y`` of the region's affine map (:func:`~amrlearn.neural._regions.region_distances`,
    exact). MMR pushes both the region's boundaries and the decision boundary away from
    the training points, which makes the region's robustness certificates larger.

    Parameters
    ----------
    lam : float, default=3.0
        Final weight ``lambda`` (the authors' MNIST l2 LeNetSmall: 3.0; CIFAR-10: 1.5).
    gamma_B : float, default=0.45
        Margin ``gamma_B`` of the region boundaries (MNIST: 0.45; CIFAR-10: 0.2).
    gamma_D : float, default=0.45
        Margin ``gamma_D`` of the decision boundaries (MNIST: 0.45; CIFAR-10: 0.2).
    k_B : int, float or tuple of two floats, default=(0.10, 0.02)
        Region hyperplanes counted: an int; a float in (0, 1], that fraction of the
        hidden units; a pair ``(start, end)`` of fractions, the authors' schedule
        ``floor(start N_h) + (floor(end N_h) - floor(start N_h)) * epoch / max_epochs``,
        truncated to an int (480 -> 96 for LeNetSmall on MNIST, N_h = 4804).
    k_D : int or None, default=None
        Decision hyperplanes counted; ``None``: every other class.
    lam_warmup_epochs : int, default=10
        ``lam_t = lam * min(epoch / lam_warmup_epochs, 1)``, epochs from 1 (the authors'
        ramp); ``0``: no ramp.
    reg_batch_size : int or None, default=None
        The regularizer is computed on the first ``reg_batch_size`` samples of each
        (shuffled) batch and averaged over them; ``None``: the whole batch (the authors').
        Its cost is about ``input size`` forward passes per sample.
    penalty : Penalty class or instance, list of them, or None, default=None
        More penalties, added after MMR's (named ``"mmr"``), with ``penalty__*`` as in
        :class:`~amrlearn.neural.RegularizedNeuralNetClassifier`.
{NET_PARAMS_DOC}
    Attributes
    ----------
    module_ : torch.nn.Module
        The trained module.
    classes_ : ndarray of shape (n_classes,)
        Class labels seen in ``fit``, sorted.
    n_hidden_ : int
        Hidden units (ReLU inputs) of the module, known after the first training step.
    penalties_ : dict of str to Penalty
        ``"mmr"`` (:class:`~amrlearn.neural.MMRPenalty`) and those of ``penalty``.

    See Also
    --------
    AMRNeuralNetClassifier : The average margin regularizer (Wu & Yu).
    DeepDefenseNeuralNetClassifier : Deep Defense (Yan et al.).

    Notes
    -----
    The module must be a ReLU network of linear and convolutional layers with ``nn.ReLU``
    modules (:func:`~amrlearn.neural._regions.check_piecewise_linear`, checked when the
    net is initialized with ``lam > 0``; in-place ones are fine). An activation applied
    in ``forward`` (``torch.relu``) is refused at the first training step, where the
    region's affine map does not give the module's logits. The authors' l2 settings for
    LeNetSmall: Adam (``optimizer=torch.optim.Adam``), ``lr=1e-4`` on MNIST (``1e-3`` on
    CIFAR-10), divided by 10 from 90% of training, 100 epochs, batches of 128, no weight
    decay.

    The gradients are exact, also at padded borders (the authors use the whole filter's
    norm in the first layer). As in the authors' code, the norm of a decision
    hyperplane's normal is at least ``1e-5 sqrt(D)``: a sample that another class beats
    everywhere on its region (a flat one) gets a large penalty. The decision term is
    averaged over the ``k_D`` classes it sums (the authors divide by 10 with the true
    class counting zero: a factor 0.9). The regularizer runs in eval mode.
{NET_INPUT_NOTES}
    References
    ----------
    F. Croce, M. Andriushchenko and M. Hein, "Provable robustness of ReLU networks via
    maximization of linear regions", AISTATS 2019.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from amrlearn.neural import MMRNeuralNetClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(64, 5)).astype(np.float32)
    >>> y = (X[:, 0] > 0).astype(np.int64)
    >>> mlp = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    >>> net = MMRNeuralNetClassifier(mlp, lam=1.0, max_epochs=3, random_state=0, verbose=0)
    >>> net.fit(X, y).predict(X).shape
    (64,)
    >>> net.n_hidden_, net.current_k_B()
    (16, 1)
    """

    _parameter_constraints = {
        **RegularizedNeuralNetClassifier._parameter_constraints,
        # The penalty's own constraints (``lam`` is its ``weight``), declared once there.
        "lam": MMRPenalty._parameter_constraints["weight"],
        **{
            key: MMRPenalty._parameter_constraints[key]
            for key in ("gamma_B", "gamma_D", "k_B", "k_D", "reg_batch_size")
        },
        "lam_warmup_epochs": MMRPenalty._parameter_constraints["warmup_epochs"],
    }

    def __init__(
        self,
        module,
        *args,
        lam=3.0,
        gamma_B=0.45,
        gamma_D=0.45,
        k_B=(0.10, 0.02),
        k_D=None,
        lam_warmup_epochs=10,
        reg_batch_size=None,
        penalty=None,
        **kwargs,
    ):
        super().__init__(module, *args, penalty=penalty, **kwargs)
        self.lam = lam
        self.gamma_B = gamma_B
        self.gamma_D = gamma_D
        self.k_B = k_B
        self.k_D = k_D
        self.lam_warmup_epochs = lam_warmup_epochs
        self.reg_batch_size = reg_batch_size

    def _own_penalties(self):
        return {
            "mmr": MMRPenalty(
                self.lam,
                gamma_B=self.gamma_B,
                gamma_D=self.gamma_D,
                k_B=self.k_B,
                k_D=self.k_D,
                warmup_epochs=self.lam_warmup_epochs,
                reg_batch_size=self.reg_batch_size,
            )
        }

    @property
    def n_hidden_(self):
        """Hidden units (ReLU inputs) of the module, known after the first training step."""
        return self.penalties_["mmr"].n_hidden_

    @n_hidden_.setter
    def n_hidden_(self, value):
        self.penalties_["mmr"].n_hidden_ = value

    def current_lam(self):
        """``lam_t`` of the current epoch (the ramp of ``lam_warmup_epochs``)."""
        mmr = self.penalties_["mmr"]
        return float(mmr.weight) * mmr.scale(self, self.clock(training=True))

    def current_k_B(self):
        """``k_B`` of the current epoch, in hidden units (needs ``n_hidden_``)."""
        clock = self.clock()
        return self.penalties_["mmr"].current_k_B(clock.epoch, clock.max_epochs)
