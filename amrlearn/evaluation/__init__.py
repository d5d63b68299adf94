"""Any trained model, one call: clean accuracy, the paper's PGD and the strong ``"auto"``
robust accuracy with the gradient-masking alarm, and the robustness curve with its bracket.

:func:`evaluate` takes a model and data; :func:`evaluate_checkpoint` (what ``amrlearn
evaluate`` runs) first loads a checkpoint file (:func:`amrlearn.neural.load_checkpoint`)
and a test set, then writes ``results.json``, ``summary.md`` and
``robustness_curve.png``. Both print a time estimate before they start, extrapolated from
a timed forward-backward pass of the model.
"""

from ._evaluate import estimate_seconds, evaluate
from ._files import evaluate_checkpoint, load_test_data
from ._report import EvaluationReport

__all__ = [
    "EvaluationReport",
    "estimate_seconds",
    "evaluate",
    "evaluate_checkpoint",
    "load_test_data",
]
