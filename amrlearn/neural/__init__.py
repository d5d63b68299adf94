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

A regularizer is a part: a :class:`Penalty` (``AMRMarginPenalty``,
``OrthogonalityPenalty``, ``DeepDefensePenalty``, ``MMRPenalty``; beyond the paper, the
margin-distribution penalties ``SoftMinMarginPenalty``, ``MarginSpreadPenalty``,
``InputMarginPenalty`` and ``CleanMarginPenalty``) given as ``penalty=`` to
``RegularizedNeuralNetClassifier`` or to any of the nets above; the AMR, Deep Defense and
MMR nets are that net with their penalties set from their parameters.
"""

from . import models
from ._amrpenalty import AMRMarginPenalty, OrthogonalityPenalty
from ._callbacks import MarginTracker
from ._certified import GloRoNeuralNetClassifier, gloro_logits
from ._checkpoint import CheckpointError, load_checkpoint
from ._data import BatchLoader, random_crop_flip
from ._ddpenalty import DeepDefensePenalty
from ._deepdefense import DeepDefenseNeuralNetClassifier
from ._distribution import (
    CleanMarginPenalty,
    InputMarginPenalty,
    MarginSpreadPenalty,
    SoftMinMarginPenalty,
)
from ._mmr import MMRNeuralNetClassifier
from ._net import AdversarialNeuralNetClassifier, AMRNeuralNetClassifier
from ._penalties import feature_margin, orthogonality_penalty
from ._penalty import Penalty
from ._regions import MMRPenalty
from ._regularized import RegularizedNeuralNetClassifier

__all__ = [
    "AMRMarginPenalty",
    "AMRNeuralNetClassifier",
    "AdversarialNeuralNetClassifier",
    "BatchLoader",
    "CheckpointError",
    "CleanMarginPenalty",
    "DeepDefenseNeuralNetClassifier",
    "DeepDefensePenalty",
    "GloRoNeuralNetClassifier",
    "InputMarginPenalty",
    "MMRNeuralNetClassifier",
    "MMRPenalty",
    "MarginSpreadPenalty",
    "MarginTracker",
    "OrthogonalityPenalty",
    "Penalty",
    "RegularizedNeuralNetClassifier",
    "SoftMinMarginPenalty",
    "feature_margin",
    "gloro_logits",
    "load_checkpoint",
    "models",
    "orthogonality_penalty",
    "random_crop_flip",
]
