"""
The closest adversarial examples of a linear model
==================================================

For a linear classifier the smallest l2 perturbation that reaches the decision boundary
has a closed form, eq. (7): :math:`x - \\frac{w^\\top x + b}{\\|w\\|^2} w`, computed by
:func:`~amrlearn.metrics.closest_boundary_point`. Its length is the sample's margin.

The images below are those boundary points for a few test images. Neither model is
fooled by an invisible change: on MNIST, logistic regression trained to (near)
separation needs the faint stroke of a 1 inside each 0, and blotches beside each 1, to
reach its boundary. AMR needs a larger change, spread over more pixels: the strokes of
the digit itself dim and a wider halo appears. The column headers give each model's
average margin on the whole test set, the length of an average such change: AMR's is
the larger one.

``AMRLEARN_EXAMPLE_QUICK=1`` uses fewer training samples.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import LogisticRegression

from amrlearn import AMRLogisticRegression
from amrlearn.datasets import DatasetNotFoundError, load_mnist
from amrlearn.metrics import closest_boundary_point, linear_margins
from amrlearn.plotting import plot_adversarial_grid

QUICK = os.environ.get("AMRLEARN_EXAMPLE_QUICK") == "1"

try:
    X, y = load_mnist(subset="train", classes=(0, 1), return_X_y=True)
    X_test, y_test = load_mnist(subset="test", classes=(0, 1), return_X_y=True)
except DatasetNotFoundError:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(n_class=2, return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X, X_test, y, y_test = train_test_split(
        X, y, test_size=0.3, random_state=0
    )
idx = np.random.default_rng(0).choice(
    len(X), size=min(1000 if QUICK else 3000, len(X)), replace=False
)
X, y = X[idx], y[idx]
side = int(round(np.sqrt(X.shape[1])))  # 28 for MNIST, 8 for digits

# %%
# Two models, and the boundary points of two zeros and two ones
# --------------------------------------------------------------
models = {
    "LR": LogisticRegression(C=1e4, max_iter=2000).fit(X, y),
    "AMR": AMRLogisticRegression(tau=5.0, lam=0.1).fit(X, y),
}
pick = np.concatenate([np.flatnonzero(y_test == c)[:2] for c in (0, 1)])
X_show, y_show = X_test[pick], y_test[pick]

columns, labels, values = [X_show], ["original"], [""]
for name, model in models.items():
    X_adv = closest_boundary_point(model, X_show)
    margins = linear_margins(model, X_show, y_show)
    assert np.allclose(
        np.linalg.norm(X_adv - X_show, axis=1), np.abs(margins), rtol=1e-4
    )
    columns.append(X_adv)
    labels.append(f"{name}: boundary point")
    values.append(
        f"avg |m| = {np.abs(linear_margins(model, X_test, y_test)).mean():.2f}"
    )
    print(f"{name}: margins of the shown images {np.round(margins, 2)}")

# %%
# The grid: one row per test image
# --------------------------------
# Pixel values outside [0, 1] are allowed here: eq. (7) is the unconstrained closest
# point. The column headers give each model's average margin on the whole test set.
images = np.stack(columns, axis=1)  # (n_rows, n_cols, n_pixels)
fig = plot_adversarial_grid(
    images,
    row_labels=[f"digit {c}" for c in y_show],
    col_labels=labels,
    image_shape=(side, side),
    col_values=values,
)
plt.show()
