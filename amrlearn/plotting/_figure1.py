"""Figure 1 (b, c) and Figure 4 of Wu & Yu: histograms from counts, adversarial images, curves."""

import numpy as np

__all__ = ["plot_adversarial_grid", "plot_histogram_counts", "plot_training_curves"]


def plot_histogram_counts(edges, counts, titles, *, ncols=None):
    """A row of margin histograms given as counts over shared bin edges (Figure 1b).

    Parameters
    ----------
    edges : array-like of shape (n_bins + 1,)
    counts : list of array-like of shape (n_bins,)
        One histogram per panel.
    titles : list of str
    ncols : int, default=None
        Panels per row; all in one row when None.

    Returns
    -------
    fig : matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from amrlearn.plotting import plot_histogram_counts
    >>> fig = plot_histogram_counts([0, 1, 2], [[3, 1], [1, 3]], ["epoch 1", "SVM"])
    >>> len(fig.axes)
    2
    """
    import matplotlib.pyplot as plt

    n = len(counts)
    ncols = ncols or n
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(3.0 * ncols, 2.5 * nrows), squeeze=False, sharex=True
    )
    for ax, c, t in zip(axes.ravel(), counts, titles):
        ax.stairs(np.asarray(c, float), np.asarray(edges, float), fill=True, alpha=0.85)
        ax.axvline(0.0, color="k", lw=0.8, ls=":")
        ax.set_title(t)
        ax.set_xlabel("margin")
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    axes[0, 0].set_ylabel("count")
    fig.tight_layout()
    return fig


def plot_adversarial_grid(images, row_labels, col_labels, *, image_shape, col_values=None):
    """Images in a grid: one row per sample, one column per epoch (Figure 1c).

    Parameters
    ----------
    images : array-like of shape (n_rows, n_cols, n_pixels)
    row_labels : list of str
    col_labels : list of str
    image_shape : tuple of int
        Shape of one image, e.g. (28, 28).
    col_values : list of str, default=None
        A second line under each column title (e.g. the average margin).

    Returns
    -------
    fig : matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from amrlearn.plotting import plot_adversarial_grid
    >>> fig = plot_adversarial_grid(np.zeros((2, 3, 4)), ["0", "1"], ["a", "b", "c"],
    ...                             image_shape=(2, 2))
    >>> len(fig.axes)
    6
    """
    import matplotlib.pyplot as plt

    images = np.asarray(images, dtype=float)
    n_rows, n_cols = images.shape[:2]
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.6 * n_cols, 1.8 * n_rows), squeeze=False)
    for i in range(n_rows):
        for j in range(n_cols):
            ax = axes[i, j]
            ax.imshow(images[i, j].reshape(image_shape), cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                title = col_labels[j]
                if col_values is not None:
                    title += "\n" + col_values[j]
                ax.set_title(title, fontsize="small")
            if j == 0:
                ax.set_ylabel(row_labels[i], fontsize="small")
    fig.tight_layout()
    return fig


def plot_training_curves(epochs, loss, train_error, test_error):
    """Training loss, training error and test error against epochs, log x (Figure 4).

    Parameters
    ----------
    epochs : array-like of shape (n_points,)
    loss, train_error, test_error : array-like of shape (n_points,)

    Returns
    -------
    fig : matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from amrlearn.plotting import plot_training_curves
    >>> fig = plot_training_curves([1, 2, 4], [0.5, 0.3, 0.2], [0.1, 0.0, 0.0], [0.1, 0.05, 0.0])
    >>> [ax.get_title() for ax in fig.axes]
    ['training loss', 'training error', 'test error']
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(10, 2.8))
    for ax, values, title in zip(
        axes, (loss, train_error, test_error), ("training loss", "training error", "test error")
    ):
        ax.plot(epochs, values)
        ax.set_xscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(title)
    fig.tight_layout()
    return fig
