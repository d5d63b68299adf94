"""Linear classifiers with the Average Margin Regularizer (section 4.1 of Wu & Yu)."""

from ._amr_logistic import AMRLogisticRegression

__all__ = ["AMRLogisticRegression"]
