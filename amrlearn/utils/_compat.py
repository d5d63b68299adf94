"""One door to scikit-learn's private validation machinery.

``Interval``, ``StrOptions`` and ``_fit_context`` are private in scikit-learn. Every
module of amrlearn imports them from here, so that a change in scikit-learn is mended in
one place.
"""

from sklearn.base import _fit_context
from sklearn.linear_model._base import LinearClassifierMixin
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils.validation import validate_data

__all__ = [
    "HasMethods",
    "Interval",
    "LinearClassifierMixin",
    "StrOptions",
    "_fit_context",
    "validate_data",
    "validate_parameter_constraints",
]
