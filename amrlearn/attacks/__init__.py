"""Adversarial attacks: l2 PGD, APGD and FGSM-RS (fixed radius), minimum-norm attacks
(DeepFool, FMN, DDN and the ensemble that keeps the closest verified point of each
sample), and robust accuracy (``attack="pgd"``, the paper's, or ``"auto"``, the strong
evaluation).

Every attack is called as ``attack(model, X, y)`` on a torch module, a skorch net or a
fitted linear estimator; ``attack.run(fn, x, y)`` is the tensor-level step.
"""

from ._apgd import APGD, dlr_loss
from ._base import Attack, FixedEpsilonAttack, MinimizationAttack
from ._ddn import DDN
from ._deepfool import DeepFool, class_gap_gradients, deepfool_perturbation, deepfool_step
from ._fgsm import FGSMRS
from ._fmn import FMN, logit_margin
from ._minnorm import MinimumNormEnsemble
from ._pgd import L2PGD, attack_loss, uniform_l2_ball
from ._robust import AUTO_ATTACKS, RobustAccuracyResult, robust_accuracy
from ._search import boundary_search

__all__ = [
    "APGD",
    "AUTO_ATTACKS",
    "RobustAccuracyResult",
    "dlr_loss",
    "DDN",
    "FGSMRS",
    "FMN",
    "DeepFool",
    "MinimumNormEnsemble",
    "boundary_search",
    "class_gap_gradients",
    "deepfool_perturbation",
    "deepfool_step",
    "logit_margin",
    "Attack",
    "FixedEpsilonAttack",
    "L2PGD",
    "MinimizationAttack",
    "attack_loss",
    "robust_accuracy",
    "uniform_l2_ball",
]
