"""The cost-robustness frontier: robustness against training cost, the Pareto front drawn."""

__all__ = ["pareto_front", "plot_frontier"]

_LABELS = {"mean_distance": "mean distance to the boundary", "robust": "robust accuracy (%)"}


def pareto_front(pts, key):
    """The methods on the Pareto front of ``pts``: no other point is at most as costly
    and at least as robust (``key``), with one of the two strict.

    Examples
    --------
    >>> from amrlearn.plotting._frontier import pareto_front
    >>> pts = [{"method": "a", "cost": 1, "r": 1}, {"method": "b", "cost": 2, "r": 3},
    ...        {"method": "c", "cost": 3, "r": 2}]
    >>> [p["method"] for p in pareto_front(pts, "r")]
    ['a', 'b']
    """
    pts = [p for p in pts if p.get(key) is not None]

    def dominated(p):
        return any(
            q["cost"] <= p["cost"]
            and q[key] >= p[key]
            and (q["cost"] < p["cost"] or q[key] > p[key])
            for q in pts
        )

    return sorted((p for p in pts if not dominated(p)), key=lambda p: p["cost"])


def plot_frontier(points, *, keys=("mean_distance", "robust"), eps=None):
    """One panel per robustness measure against training cost; each method a point.

    Parameters
    ----------
    points : list of dict
        One per method: ``method``, ``cost`` (training time relative to standard
        training) and the measures named in ``keys`` (``None`` where not measured).
    keys : sequence of str, default=("mean_distance", "robust")
        The measures, one panel each.
    eps : float, default=None
        The radius of ``"robust"``, for its axis label.

    Returns
    -------
    fig : matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from amrlearn.plotting import plot_frontier
    >>> pts = [{"method": "Std", "cost": 1.0, "mean_distance": 1.2, "robust": 20.0},
    ...        {"method": "PGD-AT", "cost": 8.0, "mean_distance": 2.1, "robust": 70.0}]
    >>> len(plot_frontier(pts, eps=1.5).axes)
    2
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4.2), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        pts = [p for p in points if p.get(key) is not None]
        for i, p in enumerate(pts):
            ax.scatter(p["cost"], p[key], color=f"C{i % 10}", zorder=3)
            ax.annotate(
                p["method"],
                (p["cost"], p[key]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
        front = pareto_front(pts, key)
        ax.plot(
            [p["cost"] for p in front],
            [p[key] for p in front],
            "k--",
            lw=1,
            label="Pareto front",
            zorder=2,
        )
        ax.set_xscale("log")
        ax.set_xlabel("training cost (CPU time per epoch, x standard training)")
        label = _LABELS.get(key, key)
        if key == "robust" and eps is not None:
            label = f"robust accuracy at eps = {eps:g} (%)"
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
