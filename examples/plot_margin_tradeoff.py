"""
The trade-off between minimum and average margin
================================================

Gradient descent on the logistic loss of a linearly separable data set converges, in
direction, to the hard-margin SVM (Theorem 1 of the paper): it maximizes the **minimum**
margin. This example shows the price: while the minimum margin rises toward the SVM's,
the **average** margin falls, and with it the typical distance an adversary has to travel.
The Average Margin Regularizer (:class:`~amrlearn.AMRLogisticRegression`) keeps the
average margin high.

The data are MNIST 0 vs 1 (the paper's Figure 1a), or scikit-learn's digits 0 vs 1 when
MNIST is not in the data home. ``AMRLEARN_EXAMPLE_QUICK=1`` trains for fewer epochs.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import SGDClassifier

from amrlearn import AMRLogisticRegression, HardMarginSVC
from amrlearn.datasets import DatasetNotFoundError, load_mnist
from amrlearn.metrics import linear_margins, summarize_margins
from amrlearn.plotting import plot_margin_path

QUICK = os.environ.get("AMRLEARN_EXAMPLE_QUICK") == "1"

# %%
# Data: 2,000 training images of zeros and ones
# ---------------------------------------------
try:
    X, y = load_mnist(subset="train", classes=(0, 1), return_X_y=True)
    data_name = "MNIST 0 vs 1"
except DatasetNotFoundError:
    from sklearn.datasets import load_digits

    X, y = load_digits(n_class=2, return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    data_name = "digits 0 vs 1"
rng = np.random.default_rng(0)
idx = rng.choice(len(X), size=min(2000, len(X)), replace=False)
X, y = X[idx], y[idx]
print(f"{data_name}: {X.shape[0]} samples, {X.shape[1]} features")

# %%
# Train logistic regression by (stochastic) gradient descent
# ----------------------------------------------------------
# No penalty and a constant step, as in Theorem 1. After each recorded epoch we measure
# the exact l2 margins of every training point (eq. (6)) and summarize them.
n_epochs = 60 if QUICK else 500
record = np.unique(np.geomspace(1, n_epochs, 12).astype(int))
sgd = SGDClassifier(
    loss="log_loss",
    penalty=None,
    learning_rate="constant",
    eta0=0.01,
    random_state=0,
)
min_margin, avg_margin = [], []
for epoch in range(1, n_epochs + 1):
    sgd.partial_fit(X, y, classes=np.unique(y))
    if epoch in record:
        summary = summarize_margins(linear_margins(sgd, X, y))
        min_margin.append(summary["min_margin"])
        avg_margin.append(summary["avg_margin"])

# %%
# The references: the hard-margin SVM and AMR
# --------------------------------------------
svm = summarize_margins(linear_margins(HardMarginSVC().fit(X, y), X, y))
amr = summarize_margins(
    linear_margins(AMRLogisticRegression(tau=5.0, lam=0.1).fit(X, y), X, y)
)
for name, summary in (("SVM", svm), ("AMR", amr)):
    print(
        f"{name}: min margin {summary['min_margin']:.3f}, "
        f"average margin {summary['avg_margin']:.3f}"
    )
print(
    f"GD after {n_epochs} epochs: min margin {min_margin[-1]:.3f}, "
    f"average margin {avg_margin[-1]:.3f}"
)

# %%
# The picture
# -----------
# The minimum margin (left) climbs toward the SVM's; the average margin (right) falls
# toward the SVM's, far below what AMR keeps.
fig, (ax_min, ax_avg) = plt.subplots(1, 2, figsize=(10, 4))
plot_margin_path(
    record,
    {"gradient descent": min_margin},
    ax=ax_min,
    hlines={"hard-margin SVM": svm["min_margin"]},
    title="minimum margin",
)
plot_margin_path(
    record,
    {"gradient descent": avg_margin},
    ax=ax_avg,
    hlines={"hard-margin SVM": svm["avg_margin"]},
    title="average margin",
)
ax_avg.axhline(
    amr["avg_margin"], color="C2", ls="--", label="AMR (tau=5, lam=0.1)"
)
ax_avg.legend(loc="center right")
for ax in (ax_min, ax_avg):
    ax.set_xlabel("epoch")
fig.suptitle(f"{data_name}: minimum vs average margin during training")
fig.tight_layout()
plt.show()
