"""Robustness curves: robust accuracy against eps from one minimum-norm run, bracketed."""

import numpy as np

__all__ = ["plot_robustness_curve"]


def plot_robustness_curve(curve, *, pgd=None, ax=None, label=None, color="C0"):
    """Robust accuracy against eps: the attack's curve, the certified one, and the band
    between; the Theorem 3 estimate dashed.

    The attack's curve bounds the true robust accuracy from above (each adversarial point
    is verified), the certified curve from below (a proof), so the shaded band between
    them holds it. For a model that is not certifiable the band runs down to the Theorem
    3 estimate instead, which is no guaranteed bound.

    Parameters
    ----------
    curve : RobustnessCurve
        From :func:`amrlearn.metrics.robustness_curve` (numbers only: ``eps``,
        ``accuracy``, ``accuracy_lower`` and ``accuracy_certified`` where not
        ``None``).
    pgd : dict of str to (sequence, sequence), default=None
        Fixed-radius evaluations to mark on the curve, e.g.
        ``{"auto": (eps, accuracies)}`` from :func:`amrlearn.attacks.robust_accuracy`
        (accuracies as fractions): hollow markers of ``color``, one shape per entry.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.
    label : str, default=None
        The curve's legend label (default ``"minimum-norm attack"``).
    color : str, default="C0"

    Returns
    -------
    ax : matplotlib Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from amrlearn.metrics import RobustnessCurve
    >>> from amrlearn.plotting import plot_robustness_curve
    >>> c = RobustnessCurve(eps=np.linspace(0, 2, 5), accuracy=np.array([1, .8, .5, .2, 0]),
    ...                     accuracy_lower=np.array([1, .4, .1, 0, 0]),
    ...                     lower=np.zeros(4), upper=np.ones(4))
    >>> ax = plot_robustness_curve(c, pgd={"pgd": ([0.5, 1.0], [0.85, 0.55])})
    >>> len(ax.lines)
    3
    >>> c.accuracy_certified = np.array([1, .2, 0, 0, 0])
    >>> ax = plot_robustness_curve(c)
    >>> [line.get_label() for line in ax.lines]
    ['minimum-norm attack', 'certified', 'Theorem 3 estimate']
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3.5))
    eps = np.asarray(curve.eps)
    up, lo = 100 * np.asarray(curve.accuracy), 100 * np.asarray(curve.accuracy_lower)
    cert = getattr(curve, "accuracy_certified", None)
    ax.plot(eps, up, drawstyle="steps-post", color=color, label=label or "minimum-norm attack")
    bottom = lo
    if cert is not None:
        bottom = 100 * np.asarray(cert)
        ax.plot(eps, bottom, drawstyle="steps-post", color=color, lw=2.5, label="certified")
    ax.plot(eps, lo, drawstyle="steps-post", color=color, ls="--", label="Theorem 3 estimate")
    ax.fill_between(eps, bottom, up, step="post", color=color, alpha=0.15)
    for i, (name, (e, acc)) in enumerate((pgd or {}).items()):
        ax.plot(e, 100 * np.asarray(acc), ls="none", marker="os^D"[i % 4], mfc="none",
                mec=color, mew=1.5, label=name)  # fmt: skip
    ax.set(xlabel="l2 eps", ylabel="robust accuracy (%)", ylim=(0, 100))
    ax.legend(fontsize="small")
    return ax
