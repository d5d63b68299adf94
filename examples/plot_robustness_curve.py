"""
Robustness curves: robust accuracy at every radius from one minimum-norm run
============================================================================

A sample is robust at radius :math:`\\epsilon` exactly when its signed margin exceeds
:math:`\\epsilon`. So one estimate of each sample's margin gives the whole curve of robust
accuracy against :math:`\\epsilon`, instead of one PGD run per radius.
:func:`~amrlearn.metrics.robustness_curve` brackets each margin
(:func:`~amrlearn.metrics.margin_bounds`) and turns the ends into curves:

* the **minimum-norm ensemble's** curve: a sample found adversarial at distance
  :math:`\\delta` is broken at every :math:`\\epsilon \\ge \\delta`. Like PGD's, this
  curve bounds the true robust accuracy from above;
* the **certified** curve (:func:`~amrlearn.metrics.certified_margins`): a sample whose
  certified margin exceeds :math:`\\epsilon` is proven robust there, so this curve
  bounds the true robust accuracy from below (verified robust accuracy);
* the **Theorem 3 estimate's** curve (dashed), the paper's estimate from below, as far
  as the sampled Lipschitz constant can be trusted (not a guarantee: see :ref:`bounds`).

The true robust accuracy lies in the shaded band between the certified curve and the
ensemble's. :func:`~amrlearn.plotting.plot_robustness_curve` draws them, and marks
fixed-radius PGD runs (:func:`~amrlearn.attacks.robust_accuracy`, the paper's attack) on
top: PGD should never read below the ensemble's curve by more than its own weakness.

We train a standard MLP, an AMR one and one trained for certified margins (AMR's term on
the certified margins, ``margin="certified"``) on a few thousand MNIST digits (digits
8x8 as the fallback). ``AMRLEARN_EXAMPLE_QUICK=1`` trains on fewer images and evaluates
fewer samples.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
import torch

from amrlearn.attacks import robust_accuracy
from amrlearn.datasets import DatasetNotFoundError, load_mnist
from amrlearn.metrics import robustness_curve
from amrlearn.neural import AMRNeuralNetClassifier, models
from amrlearn.plotting import plot_robustness_curve

QUICK = os.environ.get("AMRLEARN_EXAMPLE_QUICK") == "1"
n_train, n_test, epochs, steps = (
    (1000, 40, 3, 20) if QUICK else (3000, 150, 6, 50)
)
torch.manual_seed(0)

try:
    X, y = load_mnist(subset="train", return_X_y=True)
    X_test, y_test = load_mnist(subset="test", return_X_y=True)
    grid = [0.5, 1.0, 1.5, 2.0]  # the paper's MNIST radii
    tau_certified = 2.0
except DatasetNotFoundError:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X, X_test, y, y_test = train_test_split(
        X, y, test_size=0.3, random_state=0
    )
    grid = [0.25, 0.5, 0.75, 1.0]  # 8x8 images: a smaller scale
    tau_certified = 1.0
rng = np.random.default_rng(0)
train = rng.choice(len(X), size=min(n_train, len(X)), replace=False)
test = rng.choice(len(X_test), size=min(n_test, len(X_test)), replace=False)
X, y, X_test, y_test = X[train], y[train], X_test[test], y_test[test]

# %%
# Standard training, AMR and certified AMR, otherwise identical
# -------------------------------------------------------------
# Certified AMR divides eq. (14)'s feature margin by a bound on the Lipschitz constant of
# the features (here a power-iteration estimate in training; the certificate below
# proves its own bound), so its ``tau`` is in input units.
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
    random_state=0,
)
nets = {
    "Std": AMRNeuralNetClassifier(lam=0.0, beta=0.0, **common),
    "AMR": AMRNeuralNetClassifier(lam=0.1, tau=5.0, beta=1e-3, **common),
    "certified AMR": AMRNeuralNetClassifier(
        lam=1.0, tau=tau_certified, beta=1e-3, margin="certified", **common
    ),
}
for net in nets.values():
    net.fit(X, y)

# %%
# One curve per net, and PGD at the paper's radii
# -----------------------------------------------
# ``robustness_curve`` runs the ensemble once per sample (100 steps of FMN and DDN), the
# Theorem 3 estimate on a cheap budget (128 points in the ball per sample) and the
# certificate (one proven Lipschitz bound per net). The curves are then known at every
# radius; ``accuracy_at`` and ``accuracy_certified_at`` read them anywhere.
eps = np.linspace(0.0, 2.5 * grid[-1] / 2.0, 101)
fig, axes = plt.subplots(1, len(nets), figsize=(12, 4.2), sharey=True)
for (name, net), color, ax in zip(nets.items(), ("C0", "C1", "C2"), axes):
    curve = robustness_curve(net, X_test, y_test, eps=eps)
    pgd = robust_accuracy(
        net,
        X_test,
        y_test,
        eps=grid,
        steps=steps,
        step_size=2.5 * grid[-1] / steps,
        attack="pgd",
        random_state=0,
    )
    at_grid = curve.accuracy_at(grid)
    print(
        f"{name}: ensemble "
        + ", ".join(f"{a:.0%}" for a in at_grid)
        + " | PGD "
        + ", ".join(f"{a:.0%}" for a in pgd)
        + " | certified "
        + ", ".join(f"{a:.0%}" for a in curve.accuracy_certified_at(grid))
        + f" at eps = {grid}"
    )
    plot_robustness_curve(
        curve,
        pgd={"PGD (the paper's attack)": (grid, pgd)},
        ax=ax,
        label="minimum-norm ensemble",
        color=color,
    )
    ax.set_title(name, fontsize="medium")
fig.suptitle(
    "Robust accuracy: between the certified curve (proven, from below) and the "
    "ensemble's (from above)",
    fontsize="medium",
)
fig.tight_layout()
plt.show()

# %%
# Reading the curves
# ------------------
# The AMR nets' curves lie above the standard net's at the larger radii: a wider average
# margin is more samples that survive a given perturbation. Where a PGD marker sits
# above its net's ensemble curve, PGD missed adversarial points that the ensemble found.
# The band's width is what is not known: above the certified curve, robustness is only
# not disproved. Training for it (certified AMR) raises the certified curve, which is
# what a guarantee needs; the Theorem 3 estimate (dashed) is no guarantee, and it can
# lie anywhere in the band. A one-hidden-layer MLP is certified well by its global
# Lipschitz bound; deep convolutional nets much less (see :ref:`certified`).
