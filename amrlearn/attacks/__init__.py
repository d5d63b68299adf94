"""Adversarial attacks: l2 PGD (fixed radius) and DDN (minimum norm), and robust accuracy.

Every attack is called as ``attack(model, X, y)`` on a torch module, a skorch net or a
fitted linear estimator; ``attack.run(fn, x, y)`` is the tensor-level step.
"""

from ._base import Attack, FixedEpsilonAttack, MinimizationAttack
from ._ddn import DDN
from ._pgd import L2PGD, attack_loss, robust_accuracy, uniform_l2_ball

__all__ = [
    "DDN",
    "Attack",
    "FixedEpsilonAttack",
    "L2PGD",
    "MinimizationAttack",
    "attack_loss",
    "robust_accuracy",
    "uniform_l2_ball",
]
