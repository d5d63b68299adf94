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


def test_robustness_curve_band_runs_from_the_certified_curve():
    import matplotlib.pyplot as plt

    from amrlearn.metrics import RobustnessCurve
    from amrlearn.plotting import plot_robustness_curve

    eps = np.linspace(0, 2, 5)
    curve = RobustnessCurve(
        eps=eps, accuracy=np.array([1, 0.8, 0.5, 0.2, 0]),
        accuracy_lower=np.array([1, 0.6, 0.3, 0, 0]), lower=np.zeros(4), upper=np.ones(4),
    )  # fmt: skip
    ax = plot_robustness_curve(curve)
    band = ax.collections[0].get_paths()[0]
    assert band.contains_point((0.75, 70)) and not band.contains_point((0.75, 50))
    plt.close(ax.figure)
    curve.accuracy_certified = np.array([1, 0.2, 0, 0, 0])
    ax = plot_robustness_curve(curve)
    band = ax.collections[0].get_paths()[0]
    assert band.contains_point((0.75, 30)) and band.contains_point((0.75, 70))
    assert not band.contains_point((0.75, 10))
    labels = [line.get_label() for line in ax.lines]
    assert labels == ["minimum-norm attack", "certified", "Theorem 3 estimate"]
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), 100 * curve.accuracy_certified)
    plt.close(ax.figure)
