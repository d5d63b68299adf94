"""amrlearn: minimum vs. average margin, and the Average Margin Regularizer.

An implementation of Wu & Yu, "Understanding Adversarial Robustness: The Trade-off
between Minimum and Average Margin", as scikit-learn and skorch estimators.
"""

from ._version import __version__

__all__ = ["AMRLogisticRegression", "HardMarginSVC", "__version__", "evaluate", "margin_report"]


def __getattr__(name):
    # Lazy: `import amrlearn` stays cheap, and never imports torch.
    if name == "HardMarginSVC":
        from .svm import HardMarginSVC

        return HardMarginSVC
    if name == "AMRLogisticRegression":
        from .linear_model import AMRLogisticRegression

        return AMRLogisticRegression
    if name == "evaluate":
        from .evaluation import evaluate

        return evaluate
    if name == "margin_report":
        from .metrics import margin_report

        return margin_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
