"""Neural estimators of section 4.2: AMR (objective 15), the Std/LCR/Adv baselines, the model zoo.

``AMRNeuralNetClassifier`` (with ``lam=0, beta=0`` for standard training and ``lam=0,
beta>0`` for Lipschitz constant regularization), ``AdversarialNeuralNetClassifier`` (PGD
adversarial training), the margin baselines of Table 2
``DeepDefenseNeuralNetClassifier`` (Deep Defense) and ``MMRNeuralNetClassifier`` (the
maximum margin regularizer), the certified baseline ``GloRoNeuralNetClassifier`` (with
``gloro_logits``; AMR trains certified margins with ``margin="certified"``), the models
of Appendix F in :mod:`amrlearn.neural.models`, the ``MarginTracker`` callback, the pure
functions ``feature_margin`` (eq. 14) and ``orthogonality_penalty``, the nets' batch
iterator ``BatchLoader`` with the training-batch augmentation ``random_crop_flip``, and
``load_checkpoint``, which loads a trained module from the files people save.
"""

from . import models
from ._callbacks import MarginTracker
from ._certified import GloRoNeuralNetClassifier, gloro_logits
from ._checkpoint import CheckpointError, load_checkpoint
from ._data import BatchLoader, random_crop_flip
from ._deepdefense import DeepDefenseNeuralNetClassifier
from ._mmr import MMRNeuralNetClassifier
from ._net import AdversarialNeuralNetClassifier, AMRNeuralNetClassifier
from ._penalties import feature_margin, orthogonality_penalty

__all__ = [
    "AMRNeuralNetClassifier",
    "AdversarialNeuralNetClassifier",
    "BatchLoader",
    "CheckpointError",
    "DeepDefenseNeuralNetClassifier",
    "GloRoNeuralNetClassifier",
    "MMRNeuralNetClassifier",
    "MarginTracker",
    "feature_margin",
    "gloro_logits",
    "load_checkpoint",
    "models",
    "orthogonality_penalty",
    "random_crop_flip",
]
