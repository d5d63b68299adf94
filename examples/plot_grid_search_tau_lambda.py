"""
Choosing tau and lambda with GridSearchCV and margin_report
===========================================================

:func:`~amrlearn.metrics.margin_report` is a multi-metric scorer: it returns the accuracy
and the margin statistics of a fitted classifier as one dict, so that
:class:`~sklearn.model_selection.GridSearchCV` records all of them for every candidate.
``refit`` then decides which candidate is refitted on the whole data.

``refit="avg_margin"`` is not a safe choice. The paper's average margin is the mean of
:math:`|m|` over all samples, misclassified ones included, and a large ``tau`` with a
large ``lam`` can push many samples far to the wrong side of the boundary: the grid below
has such a candidate, with the largest average margin and a far lower accuracy.
:func:`~amrlearn.metrics.make_margin_refit` is the safe rule: the largest average margin
among the candidates whose mean accuracy is within ``max_accuracy_drop`` (one point by
default) of the best.

The grid spans the truncation ``tau`` and the weight ``lam`` of objective (11). The data
are MNIST 0 vs 1 (or digits 0 vs 1); ``AMRLEARN_EXAMPLE_QUICK=1`` uses fewer samples.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import GridSearchCV

from amrlearn import AMRLogisticRegression
from amrlearn.datasets import DatasetNotFoundError, load_mnist
from amrlearn.metrics import make_margin_refit, margin_report

QUICK = os.environ.get("AMRLEARN_EXAMPLE_QUICK") == "1"

try:
    X, y = load_mnist(subset="train", classes=(0, 1), return_X_y=True)
except DatasetNotFoundError:
    from sklearn.datasets import load_digits

    X, y = load_digits(n_class=2, return_X_y=True)
    X = (X / 16.0).astype(np.float32)
idx = np.random.default_rng(0).choice(
    len(X), size=min(600 if QUICK else 2000, len(X)), replace=False
)
X, y = X[idx], y[idx]

# %%
# The search, refitted by the widest margin among the most accurate
# -----------------------------------------------------------------
drop = 0.01
taus = [1.0, 5.0, 10.0] if QUICK else [1.0, 2.0, 5.0, 10.0]
lams = [0.0, 0.1, 1.0] if QUICK else [0.0, 0.03, 0.1, 0.3, 1.0]
search = GridSearchCV(
    AMRLogisticRegression(max_iter=30),
    {"tau": taus, "lam": lams},
    scoring=margin_report,
    refit=make_margin_refit("avg_margin", max_accuracy_drop=drop),
    cv=3,
)
search.fit(X, y)
res = search.cv_results_
best = search.best_index_
naive = int(
    np.argmax(res["mean_test_avg_margin"])
)  # what refit="avg_margin" takes
for name, i in (("make_margin_refit", best), ('refit="avg_margin"', naive)):
    print(
        f"{name}: {res['params'][i]}, mean CV accuracy "
        f"{res['mean_test_accuracy'][i]:.4f}, average margin "
        f"{res['mean_test_avg_margin'][i]:.3f}, min margin "
        f"{res['mean_test_min_margin'][i]:.3f}"
    )

# %%
# Every metric of every candidate is in ``cv_results_``
# -----------------------------------------------------
# ``lam=0`` is plain logistic regression on the unit sphere; the average margin grows
# with ``lam`` and with ``tau`` while the accuracy holds, until it drops. The left map
# colours only the candidates within one point of the best accuracy, the ones the rule
# chooses from (the others are grey, their values still written); the right map's scale
# stops a few points below the best accuracy, so that one poor candidate does not flatten
# it. The white frame is the refitted candidate.
shape = (len(taus), len(lams))
order = np.lexsort((res["param_lam"], res["param_tau"]))
avg = np.asarray(res["mean_test_avg_margin"])[order].reshape(shape)
acc = np.asarray(res["mean_test_accuracy"])[order].reshape(shape)
eligible = acc >= acc.max() - drop
chosen = np.unravel_index(np.flatnonzero(order == best)[0], shape)

fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
panels = (
    (axes[0], np.ma.masked_where(~eligible, avg), avg, "{:.2f}", {}),
    (
        axes[1],
        100 * acc,
        100 * acc,
        "{:.1f}",
        {"vmin": max(100 * acc.min(), 100 * acc.max() - 3)},
    ),
)
titles = (
    f"mean CV average margin\n(grey: accuracy more than {100 * drop:g} point below the best)",
    "mean CV accuracy (%)",
)
for (ax, shown, values, fmt, scale), title in zip(panels, titles):
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.85")
    im = ax.imshow(shown, cmap=cmap, aspect="auto", **scale)
    ax.set_xticks(range(len(lams)), [str(v) for v in lams])
    ax.set_yticks(range(len(taus)), [str(v) for v in taus])
    ax.set_xlabel("lam")
    ax.set_ylabel("tau")
    ax.set_title(title, fontsize="medium")
    for i in range(shape[0]):
        for j in range(shape[1]):
            # dark text on light cells, white on dark ones
            masked = np.ma.is_masked(shown[i, j])
            r, g, b, _ = (
                (0.85,) * 3 + (1,) if masked else cmap(im.norm(values[i, j]))
            )
            light = 0.299 * r + 0.587 * g + 0.114 * b > 0.5
            ax.text(
                j,
                i,
                fmt.format(values[i, j]),
                ha="center",
                va="center",
                color="k" if light else "w",
            )
    ax.add_patch(
        plt.Rectangle(
            (chosen[1] - 0.5, chosen[0] - 0.5), 1, 1, fill=False, ec="w", lw=3
        )
    )
    ax.add_patch(
        plt.Rectangle(
            (chosen[1] - 0.5, chosen[0] - 0.5), 1, 1, fill=False, ec="k", lw=1
        )
    )
    fig.colorbar(im, ax=ax, extend="min" if "vmin" in scale else "neither")
fig.suptitle(
    "GridSearchCV over tau and lam; make_margin_refit chose "
    f"tau={search.best_params_['tau']:g}, lam={search.best_params_['lam']:g}"
)
fig.tight_layout()
plt.show()
