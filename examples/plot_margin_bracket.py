"""
The margin bracket: the certificate, the Theorem 3 estimate and the minimum-norm ensemble
=========================================================================================

The exact l2 margin of a neural network is intractable, but it can be bracketed.

* From above, by a bound: any adversarial point proves that the margin is at most its
  distance. The minimum-norm ensemble (:class:`~amrlearn.attacks.MinimumNormEnsemble`:
  DeepFool, FMN and DDN, each point verified, the closest kept) looks for the closest one.
* From below, by an estimate: Theorem 3, :math:`d(x) \\ge \\min\\{\\min_{k \\ne \\hat y}
  (f_{\\hat y}(x) - f_k(x)) / L^k_x, r\\}`, holds with the true local Lipschitz constant
  :math:`L^k_x`. The paper, and :func:`~amrlearn.metrics.lipschitz_margin_bound`, estimate
  :math:`L^k_x` from gradients sampled in the ball of radius :math:`r`, and a sampled
  constant can fall short: the **Theorem 3 estimate** is not a guaranteed bound.
* From below, by a proof: the **certified margin**
  (:func:`~amrlearn.metrics.certified_margins`) divides each logit gap by a *proven*
  bound on the global Lipschitz constant, so no point closer is classified otherwise.
  It holds, and is smaller: the true lower end.

:func:`~amrlearn.metrics.margin_bounds` computes both. It also tightens the estimate with
the ensemble's points (the secant slope to each point is a sample of the constant too), so
that its interval is ordered. The plot shows each test sample's raw Theorem 3 estimate, the
tightened lower end and the ensemble's distance; where the raw estimate lies above the
ensemble's distance, it is visibly no bound; the certified margin never is.

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
# The bracket of every shown test sample
# --------------------------------------
# A cheap budget: 256 points in the ball of radius 5 for the Lipschitz estimate (the
# paper uses 50 x 1024), 100 steps of the ensemble's FMN and DDN. With ``y`` given, the
# margins are signed: negative where the net is wrong. Where the raw estimate exceeds an
# adversarial distance, ``margin_bounds`` says so with an ``EvaluationWarning``.
bounds = margin_bounds(
    net, X_test, y_test, n_batches=1, batch_size=256, attack_steps=100
)
# ``lower`` and ``upper`` bracket the signed margin: for a misclassified sample the
# interval is negative, ``[-upper distance, -lower distance]``. As distances:
assert np.all(bounds["lower"] <= bounds["upper"])
lower = np.minimum(np.abs(bounds["lower"]), np.abs(bounds["upper"]))
upper = np.maximum(np.abs(bounds["lower"]), np.abs(bounds["upper"]))
raw = np.abs(bounds["lipschitz"])  # the paper's estimator, never tightened
broken = raw > upper * (1 + 1e-5)
print(
    f"average margin: Theorem 3 estimate {raw.mean():.3f}, tightened {lower.mean():.3f}, "
    f"minimum-norm ensemble {upper.mean():.3f}"
)
print(
    f"the raw estimate exceeds the ensemble's distance on {broken.sum()} of "
    f"{len(raw)} samples"
)
print(f"median ratio tightened / ensemble: {np.median(lower / upper):.2f}")
cert = np.abs(bounds["certified"])  # proven: |certified| <= the true distance
assert np.all(cert <= upper * (1 + 1e-5))
print(
    f"certified margin: average {cert.mean():.3f}, median ratio certified / ensemble "
    f"{np.median(cert / upper):.2f}"
)

# %%
# The bracket of each sample
# --------------------------
# Left: the three numbers of each sample, sorted by the ensemble's distance; grey bars
# join the certified margin (the proven lower end) to the ensemble's distance. Right: the
# same numbers divided by the ensemble's distance, which makes a tight bracket visible. A
# raw Theorem 3 estimate above 1 (red) is no bound: only the tightening brings the lower
# end under the upper one there.
order = np.argsort(upper)
x = np.arange(len(order))
wrong = bounds["y_pred"][order] != y_test[order]
ok, bad = ~broken[order], broken[order]
fig, (ax, ax_ratio) = plt.subplots(1, 2, figsize=(11, 4.5))
ax.vlines(x, cert[order], upper[order], color="0.7", lw=1)
ax.plot(
    x,
    upper[order],
    "v",
    ms=4,
    color="C0",
    label="minimum-norm ensemble (bound)",
)
ax.plot(x, lower[order], "^", ms=4, color="C2", label="tightened lower end")
ax.plot(x, cert[order], "s", ms=3, color="C4", label="certified (proven)")
ax.plot(
    x[ok],
    raw[order][ok],
    "_",
    ms=7,
    color="C1",
    label="Theorem 3 estimate (raw)",
)
ax.plot(
    x[bad],
    raw[order][bad],
    "o",
    ms=4,
    color="C3",
    label="raw estimate: no bound",
)
ax.plot(x[wrong], upper[order][wrong], "x", color="k", label="misclassified")
ax.set_xlabel("test sample (sorted by the ensemble's distance)")
ax.set_ylabel("l2 distance to the decision boundary")
ax.legend(fontsize="small")

ratio_raw, ratio_low = raw[order] / upper[order], lower[order] / upper[order]
ax_ratio.axhline(1.0, color="C0", lw=1, label="minimum-norm ensemble (bound)")
ax_ratio.plot(x, ratio_low, "^", ms=4, color="C2", label="tightened lower end")
ax_ratio.plot(
    x,
    cert[order] / upper[order],
    "s",
    ms=3,
    color="C4",
    label="certified (proven)",
)
ax_ratio.plot(
    x[ok], ratio_raw[ok], "_", ms=7, color="C1", label="Theorem 3 estimate"
)
ax_ratio.plot(
    x[bad],
    ratio_raw[bad],
    "o",
    ms=4,
    color="C3",
    label="estimate above: no bound",
)
ax_ratio.set_xlabel("test sample (same order)")
ax_ratio.set_ylabel("divided by the ensemble's distance")
ax_ratio.legend(fontsize="small", loc="lower right")
fig.suptitle(
    f"The raw Theorem 3 estimate exceeds the ensemble's distance on {broken.sum()} of "
    f"{len(raw)} samples: an estimate, not a bound"
)
fig.tight_layout()
plt.show()
