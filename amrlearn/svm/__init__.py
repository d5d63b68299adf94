"""Support vector machines: the hard-margin SVM, the paper's maximum minimum-margin reference."""

from ._hard_margin import HardMarginSVC

__all__ = ["HardMarginSVC"]
