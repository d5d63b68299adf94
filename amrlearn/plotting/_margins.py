"""Margin histograms and margin paths (Figures 1a, 1b, 2, 3, 6, 7, 8)."""

import numpy as np

__all__ = ["plot_margin_histogram", "plot_margin_histograms", "plot_margin_path"]


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(4, 3))
    return ax


def _check_margins(margins, name="margins"):
    """``margins`` as a 1-D float array; a clear error where a value is NaN or infinite."""
    m = np.asarray(margins, dtype=float).ravel()
    bad = ~np.isfinite(m)
    if bad.any():
        n_nan = int(np.isnan(m).sum())
        raise ValueError(
            f"{name} hold {n_nan} NaN and {int(bad.sum()) - n_nan} infinite values out of "
            f"{m.size}; a histogram would leave them out without a word. Drop or replace "
            "them explicitly (e.g. m[np.isfinite(m)]) if that is what you mean."
        )
    return m


def plot_margin_histogram(
    margins, *, ax=None, bins=50, label=None, title=None, color=None, range=None
):
    """Histogram of signed margins, in the style of Figure 1b.

    Parameters
    ----------
    margins : array-like of shape (n_samples,)
        Signed margins (see :func:`amrlearn.metrics.linear_margins`).
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.
    bins : int, default=50
    label, title : str, default=None
    color : matplotlib color, default=None
    range : tuple of float, default=None
        Histogram range, shared across panels for comparison.

    Returns
    -------
    ax : matplotlib Axes

    Raises
    ------
    ValueError
        If a margin is NaN or infinite: it would be left out of the picture silently.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from amrlearn.plotting import plot_margin_histogram
    >>> ax = plot_margin_histogram([0.5, 1.0, 1.5, -0.2], bins=4, title="epoch 1")
    >>> ax.get_title()
    'epoch 1'
    """
    m = _check_margins(margins)
    ax = _axes(ax)
    ax.hist(m, bins=bins, color=color, label=label, range=range, alpha=0.85)
    ax.axvline(0.0, color="k", lw=0.8, ls=":")
    ax.set_xlabel("margin")
    ax.set_ylabel("count")
    if title is not None:
        ax.set_title(title)
    if label is not None:
        ax.legend()
    return ax


def plot_margin_histograms(margin_sets, titles, *, bins=50, sharex=True, ncols=None):
    """A row of margin histograms on a shared range (Figures 1b, 7, 8).

    Parameters
    ----------
    margin_sets : list of array-like
        One array of signed margins per panel.
    titles : list of str
        One title per panel.
    bins : int, default=50
    sharex : bool, default=True
        Use one histogram range for every panel.
    ncols : int, default=None
        Panels per row; all in one row when None.

    Returns
    -------
    fig : matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from amrlearn.plotting import plot_margin_histograms
    >>> fig = plot_margin_histograms([[1, 2, 3], [0.5, 1, 1.5]], ["epoch 1", "SVM"])
    >>> len(fig.axes)
    2
    """
    import matplotlib.pyplot as plt

    n = len(margin_sets)
    ncols = ncols or n
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.6 * nrows), squeeze=False)
    rng = None
    if sharex:
        allm = np.concatenate(
            [_check_margins(m, f"margins of {t!r}") for m, t in zip(margin_sets, titles)]
        )
        if allm.size:
            rng = (float(allm.min()), float(allm.max()))
    for ax, m, t in zip(axes.ravel(), margin_sets, titles):
        plot_margin_histogram(m, ax=ax, bins=bins, title=t, range=rng)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def plot_margin_path(
    epochs, series, *, ax=None, logx=True, hlines=None, ylabel="margin", title=None
):
    """Margins against epochs, in the style of Figures 1a, 2, 3 and 6.

    Parameters
    ----------
    epochs : array-like of shape (n_points,)
    series : dict of str to array-like of shape (n_points,)
        One line per entry, e.g. ``{"min (train)": ..., "avg (train)": ...}``.
    ax : matplotlib Axes, default=None
    logx : bool, default=True
        Log-scaled epochs, as in the paper.
    hlines : dict of str to float, default=None
        Horizontal reference lines, e.g. ``{"SVM min margin": 0.31}``.
    ylabel, title : str

    Returns
    -------
    ax : matplotlib Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from amrlearn.plotting import plot_margin_path
    >>> ax = plot_margin_path([1, 2, 4], {"min": [0.1, 0.2, 0.3]}, hlines={"SVM": 0.35})
    >>> len(ax.lines)
    2
    """
    ax = _axes(ax)
    for name, values in series.items():
        ax.plot(epochs, values, label=name, marker="." if len(epochs) < 30 else None)
    for name, value in (hlines or {}).items():
        ax.axhline(value, ls="--", color="gray", lw=1, label=name)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    return ax
