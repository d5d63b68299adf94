"""
The margin bracket: lower and upper bounds per sample
=====================================================

The exact l2 margin of a neural network is intractable, but it can be bracketed.

* From below, Theorem 3: :math:`d(x) \\ge \\min\\{\\min_{k \\ne \\hat y}
  (f_{\\hat y}(x) - f_k(x)) / L^k_x, r\\}`, with the local Lipschitz constant
  :math:`L^k_x` estimated on the ball of radius :math:`r` around :math:`x`.
* From above, any adversarial point: a minimum-norm attack (DDN) finds a close one, and
  its distance is an upper bound.

:func:`~amrlearn.metrics.margin_bounds` computes both. Where the two are close the margin
is pinned down; where they are far apart, at least one of them is loose. The plot shows
each test sample's bracket, sorted by the upper bound.

``AMRLEARN_EXAMPLE_QUICK=1`` trains on fewer images and brackets fewer samples.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
import torch

from amrlearn.datasets import DatasetNotFoundError, load_mnist
from amrlearn.metrics import margin_bounds
from amrlearn.neural import AMRNeuralNetClassifier, models

QUICK = os.environ.get("AMRLEARN_EXAMPLE_QUICK") == "1"
n_train, n_show, epochs = (1000, 40, 3) if QUICK else (3000, 100, 6)
torch.manual_seed(0)

try:
    X, y = load_mnist(subset="train", return_X_y=True)
    X_test, y_test = load_mnist(subset="test", return_X_y=True)
except DatasetNotFoundError:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X, X_test, y, y_test = train_test_split(
        X, y, test_size=0.3, random_state=0
    )
rng = np.random.default_rng(0)
train = rng.choice(len(X), size=min(n_train, len(X)), replace=False)
show = rng.choice(len(X_test), size=min(n_show, len(X_test)), replace=False)
X, y, X_test, y_test = X[train], y[train], X_test[show], y_test[show]

# %%
# A small MLP trained with AMR
# ----------------------------
net = AMRNeuralNetClassifier(
    models.MLP,
    module__in_features=X.shape[1],
    module__hidden=256,
    lam=0.1,
    tau=5.0,
    beta=1e-3,
    max_epochs=epochs,
    lr=0.05,
    batch_size=64,
    iterator_train__shuffle=True,
    data_on_device=True,
    verbose=0,
)
net.fit(X, y)

# %%
# Both bounds for every shown test sample
# ---------------------------------------
# A cheap budget: 256 points in the ball of radius 5 for the Lipschitz estimate (the
# paper uses 50 x 1024), 100 DDN steps. With ``y`` given, the margins are signed:
# negative where the net is wrong.
bounds = margin_bounds(
    net, X_test, y_test, n_batches=1, batch_size=256, attack_steps=100
)
# ``lower`` and ``upper`` bracket the signed margin: for a misclassified sample the
# interval is negative, ``[-upper distance, -lower distance]``. As distances:
assert np.all(bounds["lower"] <= bounds["upper"])
lower = np.minimum(np.abs(bounds["lower"]), np.abs(bounds["upper"]))
upper = np.maximum(np.abs(bounds["lower"]), np.abs(bounds["upper"]))
print(
    f"average margin: lower bound {lower.mean():.3f}, "
    f"upper bound {upper.mean():.3f}"
)
print(f"median ratio lower/upper: {np.median(lower / upper):.2f}")

# %%
# The bracket of each sample
# --------------------------
order = np.argsort(upper)
wrong = bounds["y_pred"][order] != y_test[order]
fig, ax = plt.subplots(figsize=(8, 4))
ax.vlines(np.arange(len(order)), lower[order], upper[order], color="0.6", lw=1)
ax.plot(lower[order], "^", ms=4, label="lower bound (Theorem 3)")
ax.plot(upper[order], "v", ms=4, label="upper bound (DDN attack)")
ax.plot(
    np.flatnonzero(wrong),
    upper[order][wrong],
    "x",
    color="k",
    label="misclassified",
)
ax.set_xlabel("test sample (sorted by the upper bound)")
ax.set_ylabel("l2 distance to the decision boundary")
ax.set_title("Each sample's margin lies between the two bounds")
ax.legend()
fig.tight_layout()
plt.show()
