"""Every matplotlib function of amrlearn (margin paths, histograms, adversarial images, curves).

Split by figure into private modules so that each experiment owns its drawing code;
this package re-exports them. Each function takes numbers (never an estimator) and
returns the matplotlib Axes or Figure it drew.
"""

from ._margins import plot_margin_histogram, plot_margin_histograms, plot_margin_path

__all__ = ["plot_margin_histogram", "plot_margin_histograms", "plot_margin_path"]
