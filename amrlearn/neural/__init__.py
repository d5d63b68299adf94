"""Neural estimators of section 4.2: AMR (objective 15), the Std/LCR/Adv baselines, the model zoo.

``AMRNeuralNetClassifier`` (with ``lam=0, beta=0`` for standard training and ``lam=0,
beta>0`` for Lipschitz constant regularization), ``AdversarialNeuralNetClassifier`` (PGD
adversarial training), the models of Appendix F in :mod:`amrlearn.neural.models`, the
``MarginTracker`` callback, and the pure functions ``feature_margin`` (eq. 14) and
``orthogonality_penalty``.
"""

from . import models
from ._callbacks import MarginTracker
from ._net import AdversarialNeuralNetClassifier, AMRNeuralNetClassifier
from ._penalties import feature_margin, orthogonality_penalty

__all__ = [
    "AMRNeuralNetClassifier",
    "AdversarialNeuralNetClassifier",
    "MarginTracker",
    "feature_margin",
    "models",
    "orthogonality_penalty",
]
