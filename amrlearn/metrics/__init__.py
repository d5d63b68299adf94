"""Margins: exact for linear models, bounded for neural nets, the ``margin_report`` scorer,
and robustness curves."""

from ._curve import RobustnessCurve, robustness_curve
from ._dispatch import is_linear_model, is_torch_model, sample_margins
from ._linear import closest_boundary_point, linear_margins, margins_from_scores, summarize_margins
from ._report import (
    avg_margin_scorer,
    make_margin_refit,
    make_margin_report,
    margin_report,
    min_margin_scorer,
)

__all__ = [
    "RobustnessCurve",
    "robustness_curve",
    "avg_margin_scorer",
    "certified_margins",
    "closest_boundary_point",
    "is_linear_model",
    "is_torch_model",
    "layerwise_lipschitz",
    "linear_margins",
    "lipschitz_margin_bound",
    "make_margin_refit",
    "make_margin_report",
    "margin_bounds",
    "margin_report",
    "margins_from_scores",
    "min_margin_scorer",
    "sample_margins",
    "summarize_margins",
]


def __getattr__(name):
    # The neural bounds need torch: import them on first use only.
    if name in ("lipschitz_margin_bound", "margin_bounds"):
        from . import _bounds

        return getattr(_bounds, name)
    if name in ("certified_margins", "layerwise_lipschitz"):
        from . import _certified

        return getattr(_certified, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
