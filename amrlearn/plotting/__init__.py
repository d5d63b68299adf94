"""Every matplotlib function of amrlearn (margin paths, histograms, adversarial images, curves).

Split by figure into private modules so that each experiment owns its drawing code;
this package re-exports them. Each function takes numbers (never an estimator) and
returns the matplotlib Axes or Figure it drew.
"""

from ._curves import plot_robustness_curve
from ._figure1 import plot_adversarial_grid, plot_histogram_counts, plot_training_curves
from ._frontier import plot_frontier
from ._margins import plot_margin_histogram, plot_margin_histograms, plot_margin_path
from ._neural import plot_margin_paths, plot_robust_accuracy, plot_training_curves_grid

__all__ = [
    "plot_adversarial_grid",
    "plot_frontier",
    "plot_histogram_counts",
    "plot_margin_histogram",
    "plot_margin_histograms",
    "plot_margin_path",
    "plot_margin_paths",
    "plot_robust_accuracy",
    "plot_robustness_curve",
    "plot_training_curves",
    "plot_training_curves_grid",
]
