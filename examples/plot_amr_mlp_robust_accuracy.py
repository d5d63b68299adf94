"""
AMR vs standard training of an MLP: robust accuracy
===================================================

Objective (15) adds two terms to the cross-entropy of a network: the truncated
feature-space margin of correctly classified samples, weighted by ``lam`` and capped at
``tau``, and the orthogonality penalty weighted by ``beta``, which keeps the network's
Lipschitz constant near one so that a wide feature-space margin means a wide input-space
margin. :class:`~amrlearn.neural.AMRNeuralNetClassifier` is a skorch net with that loss;
``lam=0, beta=0`` is standard training.

We train both on a few thousand MNIST digits (all ten classes; digits 8x8 as the
fallback) for a few epochs, then compare their accuracy under an l2 PGD attack of growing
radius :math:`\\epsilon` (:func:`~amrlearn.attacks.robust_accuracy`). The attack ascends
the cross-entropy and, for each survivor, the logit margin too, so that a saturated
softmax cannot hide a weak model (see :ref:`robustness`).

The sizes are tiny next to the paper's (60,000 images, 200 epochs, 1,000 PGD steps), so
the numbers are only indicative. ``AMRLEARN_EXAMPLE_QUICK=1`` shrinks them further.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
import torch

from amrlearn.attacks import robust_accuracy
from amrlearn.datasets import DatasetNotFoundError, load_mnist
from amrlearn.neural import AMRNeuralNetClassifier, models
from amrlearn.plotting import plot_robust_accuracy

QUICK = os.environ.get("AMRLEARN_EXAMPLE_QUICK") == "1"
n_train, n_test, epochs, pgd_steps = (
    (1000, 100, 3, 20) if QUICK else (3000, 300, 6, 50)
)
torch.manual_seed(0)

try:
    X, y = load_mnist(subset="train", return_X_y=True)
    X_test, y_test = load_mnist(subset="test", return_X_y=True)
    eps = [0.0, 0.5, 1.0, 1.5, 2.0]  # the paper's MNIST grid
except DatasetNotFoundError:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X, X_test, y, y_test = train_test_split(
        X, y, test_size=0.3, random_state=0
    )
    eps = [0.0, 0.25, 0.5, 0.75, 1.0]  # 8x8 images: a smaller scale
rng = np.random.default_rng(0)
train = rng.choice(len(X), size=min(n_train, len(X)), replace=False)
test = rng.choice(len(X_test), size=min(n_test, len(X_test)), replace=False)
X, y, X_test, y_test = X[train], y[train], X_test[test], y_test[test]

# %%
# Standard training and AMR, otherwise identical
# ----------------------------------------------
common = dict(
    module=models.MLP,
    module__in_features=X.shape[1],
    module__hidden=256,
    max_epochs=epochs,
    lr=0.05,
    batch_size=64,
    iterator_train__shuffle=True,
    data_on_device=True,
    verbose=0,
)
nets = {
    "Std": AMRNeuralNetClassifier(lam=0.0, beta=0.0, **common),
    "AMR": AMRNeuralNetClassifier(lam=0.1, tau=5.0, beta=1e-3, **common),
}
for net in nets.values():
    net.fit(X, y)

# %%
# Robust accuracy on held-out images
# ----------------------------------
curves = {}
for name, net in nets.items():
    acc = robust_accuracy(
        net,
        X_test,
        y_test,
        eps=eps,
        steps=pgd_steps,
        step_size=0.1,
        attack=["pgd", "pgd-margin"],
        random_state=0,
    )
    curves[name] = 100 * acc
    print(
        f"{name}: "
        + ", ".join(f"eps={e}: {a:.1f}%" for e, a in zip(eps, curves[name]))
    )

fig = plot_robust_accuracy({"MLP": {"eps": eps, "series": curves}})
fig.set_size_inches(6, 4)
fig.tight_layout()
plt.show()
