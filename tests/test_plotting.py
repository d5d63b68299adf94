"""The plotting functions refuse what they cannot draw instead of dropping it silently."""

import matplotlib

matplotlib.use("Agg")  # a test process, not the library, picks the backend

import numpy as np
import pytest

from amrlearn.plotting import plot_margin_histogram, plot_margin_histograms


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_margin_histogram_refuses_non_finite_margins(bad):
    margins = np.array([0.5, 1.0, bad, -0.2])
    with pytest.raises(ValueError, match="NaN and .* infinite values out of 4"):
        plot_margin_histogram(margins)
    with pytest.raises(ValueError, match="'epoch 2'"):
        plot_margin_histograms([[1.0, 2.0], margins], ["epoch 1", "epoch 2"])


def test_margin_histogram_counts_every_margin():
    import matplotlib.pyplot as plt

    margins = np.array([0.5, 1.0, 1.5, -0.2, 0.7])
    ax = plot_margin_histogram(margins, bins=5)
    heights = [patch.get_height() for patch in ax.patches]
    assert sum(heights) == len(margins)
    plt.close("all")
