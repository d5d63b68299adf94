"""
Choosing tau and lambda with GridSearchCV and margin_report
===========================================================

:func:`~amrlearn.metrics.margin_report` is a multi-metric scorer: it returns the accuracy
and the margin statistics of a fitted classifier as one dict, so that
:class:`~sklearn.model_selection.GridSearchCV` records all of them for every candidate.
``refit`` then decides which candidate is refitted on the whole data. A string picks the
best mean score of one metric; a callable can encode a trade-off, here: the largest
average margin among the candidates whose accuracy is within half a point of the best.

The grid spans the truncation ``tau`` and the weight ``lam`` of objective (11). The data
are MNIST 0 vs 1 (or digits 0 vs 1); ``AMRLEARN_EXAMPLE_QUICK=1`` uses fewer samples.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import GridSearchCV

from amrlearn import AMRLogisticRegression
from amrlearn.datasets import DatasetNotFoundError, load_mnist
from amrlearn.metrics import margin_report

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
# A refit rule: the widest margin among the (nearly) most accurate
# -----------------------------------------------------------------
def widest_accurate(cv_results, slack=0.005):
    """Index of the widest mean average margin among the candidates whose
    mean accuracy is within ``slack`` of the best."""
    acc = cv_results["mean_test_accuracy"]
    avg = np.where(
        acc >= acc.max() - slack, cv_results["mean_test_avg_margin"], -np.inf
    )
    return int(np.argmax(avg))


taus = [1.0, 5.0, 10.0] if QUICK else [1.0, 2.0, 5.0, 10.0]
lams = [0.0, 0.1, 1.0] if QUICK else [0.0, 0.03, 0.1, 0.3, 1.0]
search = GridSearchCV(
    AMRLogisticRegression(max_iter=30),
    {"tau": taus, "lam": lams},
    scoring=margin_report,
    refit=widest_accurate,
    cv=3,
)
search.fit(X, y)
print("best parameters:", search.best_params_)
best = margin_report(search.best_estimator_, X, y)
print(
    f"refitted model: accuracy {best['accuracy']:.4f}, "
    f"average margin {best['avg_margin']:.3f}"
)

# %%
# Every metric of every candidate is in ``cv_results_``
# -----------------------------------------------------
# ``lam=0`` is plain logistic regression on the unit sphere; the average margin grows with
# ``lam`` and with ``tau``, while the accuracy first holds and then drops.
shape = (len(taus), len(lams))
order = np.lexsort(
    (search.cv_results_["param_lam"], search.cv_results_["param_tau"])
)
avg = np.asarray(search.cv_results_["mean_test_avg_margin"])[order].reshape(
    shape
)
acc = np.asarray(search.cv_results_["mean_test_accuracy"])[order].reshape(
    shape
)

fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for ax, values, title, fmt in (
    (axes[0], avg, "mean CV average margin", "{:.2f}"),
    (axes[1], 100 * acc, "mean CV accuracy (%)", "{:.1f}"),
):
    im = ax.imshow(values, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(lams)), [str(v) for v in lams])
    ax.set_yticks(range(len(taus)), [str(v) for v in taus])
    ax.set_xlabel("lam")
    ax.set_ylabel("tau")
    ax.set_title(title)
    for i in range(shape[0]):
        for j in range(shape[1]):
            ax.text(
                j,
                i,
                fmt.format(values[i, j]),
                ha="center",
                va="center",
                color="w",
            )
    fig.colorbar(im, ax=ax)
fig.suptitle(
    f"GridSearchCV over tau and lam; refit chose {search.best_params_}"
)
fig.tight_layout()
plt.show()
