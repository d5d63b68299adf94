"""Figures of the deep-model experiments: margin paths per model (Figures 2, 3, 6), training
curves (Figure 5) and robust accuracy against eps (Tables 1 and 2 drawn as curves).

Every function takes plain numbers (never an estimator) and returns the Figure it drew.
"""

import numpy as np

__all__ = ["plot_margin_paths", "plot_robust_accuracy", "plot_training_curves_grid"]


def _grid(n_panels, ncols, width=3.4, height=2.7):
    import matplotlib.pyplot as plt

    ncols = max(1, min(ncols, n_panels))
    nrows = int(np.ceil(n_panels / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    for ax in axes.ravel()[n_panels:]:
        ax.set_visible(False)
    return fig, axes.ravel()


def plot_margin_paths(panels, *, ylabel="margin", logx=True, ncols=3, suptitle=None):
    """One panel per model, several margin lines against epochs (Figures 2, 3 and 6).

    Parameters
    ----------
    panels : dict of str to dict
        ``{title: {"epochs": [...], "series": {label: [...]}}}``: one panel per entry, one
        line per series (e.g. ``"min (train)"``, ``"avg (test)"``, or one per method).
    ylabel : str, default="margin"
    logx : bool, default=True
        Log-scaled epochs, as in the paper.
    ncols : int, default=3
        Panels per row.
    suptitle : str, default=None

    Returns
    -------
    fig : matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from amrlearn.plotting import plot_margin_paths
    >>> fig = plot_margin_paths({"MNIST-MLP": {"epochs": [1, 2, 4],
    ...                                        "series": {"Std": [1.0, 0.9, 0.8],
    ...                                                   "AMR": [1.0, 1.2, 1.3]}}})
    >>> len(fig.axes[0].lines)
    2
    """
    from ._margins import plot_margin_path

    fig, axes = _grid(len(panels), ncols)
    for ax, (title, panel) in zip(axes, panels.items()):
        plot_margin_path(
            panel["epochs"], panel["series"], ax=ax, logx=logx, ylabel=ylabel, title=title
        )
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_training_curves_grid(curves, *, ncols=3, logx=True):
    """Training loss, training error and test error against epochs, one panel per model
    (Figure 5).

    Parameters
    ----------
    curves : dict of str to dict
        ``{title: {"epochs": [...], "train_loss": [...], "train_error": [...],
        "test_error": [...]}}``; missing or ``None`` entries are left out.
    ncols : int, default=3
    logx : bool, default=True

    Returns
    -------
    fig : matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from amrlearn.plotting import plot_training_curves_grid
    >>> fig = plot_training_curves_grid({"MNIST-MLP": {"epochs": [1, 2], "train_loss": [0.5, 0.3],
    ...                                           "train_error": [0.1, 0.05],
    ...                                           "test_error": [0.12, 0.08]}})
    >>> len(fig.axes)
    2
    """
    fig, axes = _grid(len(curves), ncols)
    for ax, (title, c) in zip(axes, curves.items()):
        epochs = np.asarray(c["epochs"])
        if c.get("train_loss") is not None:
            ax.plot(epochs, c["train_loss"], color="C0", label="train loss")
        ax.set_ylabel("loss")
        ax2 = ax.twinx()
        for key, color in (("train_error", "C1"), ("test_error", "C2")):
            if c.get(key) is not None:
                ax2.plot(epochs, c[key], color=color, label=key.replace("_", " "))
        ax2.set_ylabel("error")
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        lines = ax.get_lines() + ax2.get_lines()
        ax.legend(lines, [ln.get_label() for ln in lines], fontsize="small")
    fig.tight_layout()
    return fig


def plot_robust_accuracy(panels, *, ncols=4):
    """Robust accuracy against the l2 budget eps, one panel per model, one line per method.

    Parameters
    ----------
    panels : dict of str to dict
        ``{title: {"eps": [...], "series": {method: [...]}, "paper": {method: [...]}}}``:
        accuracies in percent at ``eps`` (``0`` gives the clean accuracy). The optional
        ``"paper"`` lines are drawn dashed in the same colour.
    ncols : int, default=4

    Returns
    -------
    fig : matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from amrlearn.plotting import plot_robust_accuracy
    >>> fig = plot_robust_accuracy({"MNIST-MLP": {"eps": [0, 1, 2],
    ...                                           "series": {"Std": [98, 50, 5]},
    ...                                           "paper": {"Std": [98.2, 49.2, 5.1]}}})
    >>> len(fig.axes[0].lines)
    2
    """
    fig, axes = _grid(len(panels), ncols)
    for ax, (title, p) in zip(axes, panels.items()):
        for i, (name, acc) in enumerate(p["series"].items()):
            ax.plot(p["eps"], acc, marker="o", color=f"C{i}", label=name)
            ref = (p.get("paper") or {}).get(name)
            if ref is not None:
                ax.plot(p["eps"], ref, ls="--", color=f"C{i}", alpha=0.6, label=f"{name} (paper)")
        ax.set_xlabel("l2 eps")
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 100)
        ax.set_title(title)
        ax.legend(fontsize="x-small")
    fig.tight_layout()
    return fig
