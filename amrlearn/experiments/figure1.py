"""Figure 1 and Figure 4 of Wu & Yu: margins of logistic regression during training.

Binary logistic regression on MNIST 0 vs 1 (sklearn's digits 0 vs 1 when MNIST is absent),
trained by gradient descent. A callback records, at every epoch (``full``) or at log-spaced
epochs (``quick``), the exact minimum and average margins on train and test, the training
loss and the train and test errors. The hard-margin SVM (the limit of Theorem 1) and
:class:`~amrlearn.linear_model.AMRLogisticRegression` are fitted on the same data for
comparison, together with the "sphere only" ablation (``lam=0``: unit-norm logistic
regression without the regularizer), so that the gain in average margin is credited to its
cause.

Choices the paper leaves open, stated here:

* The paper's model has no bias; this one has a free bias, as a user's model would.
* The optimizer. Section 3 says "gradient descent"; Appendix F trains LR with SGD
  (learning rate 0.01, momentum 0.9, Nesterov, batch 128, 1000 epochs). Both are here:
  ``optimizer="sgd"`` (the default) follows Appendix F; ``optimizer="gd"`` is plain
  full-batch gradient descent, one step per epoch. Measured on MNIST 0 vs 1 after the
  paper's 1000 epochs, the average train margin is 2.14 with SGD (about 99 updates per
  epoch) and 2.79 with GD (a single update per epoch, still far from the SVM's 1.71): the
  trend is the same, SGD is further along it. Theorem 1 covers both.
* ``optimizer="gd"``: the step size is ``lr_scale / L`` with ``L = ||[X, 1]||_2^2 / (4 n)``
  the smoothness constant of the mean logistic loss (largest singular value by power
  iteration). The default ``lr_scale=20`` is above the classical ``2 / L``: on separable
  data gradient descent on the logistic loss converges for any constant step size (the
  loss may rise for a few early steps), and with ``1 / L`` the 1000 epochs of the paper
  barely move the margins. Larger steps do not help (200 / L and 2000 / L end at 2.94 and
  2.97). The gradient is taken on mean-centred inputs. With a free bias this is a change
  of variables only (``b`` absorbs ``w . mean``): the classifier, its margins and the
  recorded bias are those of the raw pixels, but the step is not dominated by the mean
  image.
* ``optimizer="sgd"``: raw pixels, zero initialization, a seeded shuffle every epoch; the
  recorded training loss of an epoch is the mean of its minibatch losses.
"""

import numpy as np

from .._paper import APPENDIX_F, LR_EPOCHS, MARGIN_RATIO, TAU
from ..metrics import sample_margins
from ._common import ResultStore
from ._logistic_path import GradientDescentLR, MarginRecorder
from ._summaries import simple_table, verdict_line

__all__ = [
    "GradientDescentLR",
    "MarginRecorder",
    "default_config",
    "plot",
    "run",
    "summarize",
    "verdicts",
]


def default_config(mode="quick"):
    """The configuration of ``amrlearn reproduce figure1 [--quick|--full]``.

    Examples
    --------
    >>> from amrlearn.experiments.figure1 import default_config
    >>> default_config("full")["n_epochs"]
    1000
    """
    if mode not in ("quick", "full"):
        raise ValueError(f"mode must be 'quick' or 'full', got {mode!r}.")
    return {
        "mode": mode,
        "n_epochs": LR_EPOCHS,  # the paper's; quick records fewer epochs
        # None: every epoch; else this many log-spaced epochs (plus the first and last).
        "n_snapshots": None if mode == "full" else 40,
        "optimizer": "sgd",  # Appendix F; "gd": full-batch gradient descent
        "lr_scale": 20.0,  # gd: step lr_scale / L
        "learning_rate": APPENDIX_F["lr"],  # sgd
        "momentum": APPENDIX_F["momentum"],  # sgd, Nesterov
        "batch_size": APPENDIX_F["batch_size"],  # sgd
        "n_train": None,  # a seeded subsample of the training set (tests), None for all
        "tau": TAU["mnist", "LR"],
        "lam": APPENDIX_F["lam"],
        "n_hist": 5,  # margin histograms at this many log-spaced epochs (Figure 1, middle)
        "n_adv": 6,  # closest boundary points at this many epochs (Figure 1, right)
        "seed": 0,
        "device": "cpu",
        "data_home": None,
        "verbose": 1,
    }


def _snapshot_epochs(n_epochs, n_snapshots):
    if n_snapshots is None:
        return np.arange(1, n_epochs + 1)
    e = np.unique(np.round(np.geomspace(1, n_epochs, n_snapshots)).astype(int))
    return np.union1d(e, [1, n_epochs])


def _pick(epochs, k):
    """``k`` log-spaced members of ``epochs`` (sorted), the first and last included."""
    targets = np.geomspace(epochs[0], epochs[-1], k)
    idx = np.unique([int(np.argmin(np.abs(np.log(epochs) - np.log(t)))) for t in targets])
    return [int(epochs[i]) for i in idx]


def _load(config):
    from ..datasets import load_mnist_or_digits

    Xtr, ytr, Xte, yte, name = load_mnist_or_digits(config.get("data_home"), classes=(0, 1))
    n_train = config.get("n_train")
    if n_train is not None and n_train < len(ytr):
        rng = np.random.default_rng(config.get("seed", 0))
        idx = np.sort(rng.choice(len(ytr), n_train, replace=False))
        Xtr, ytr = Xtr[idx], ytr[idx]
    return (
        np.asarray(Xtr, np.float64),
        np.asarray(ytr),
        np.asarray(Xte, np.float64),
        np.asarray(yte),
        name,
    )


def run(config, out_dir):
    """Train logistic regression with margin tracking; fit the SVM, AMR and "sphere only".

    Every finished cell is saved to ``out_dir / "results.json"`` at once; a rerun with the
    same configuration resumes from the finished cells.

    Returns
    -------
    results : dict
        The ``results.json`` content: ``config``, ``environment`` and ``cells``: ``data``,
        ``svm`` (:class:`~amrlearn.svm.HardMarginSVC`), ``amr``
        (:class:`~amrlearn.linear_model.AMRLogisticRegression` with the configured ``lam``
        and ``tau``), ``sphere`` (the same with ``lam=0``) and ``lr`` (the training path
        of logistic regression).
    """
    from pathlib import Path

    from ..linear_model import AMRLogisticRegression
    from ..metrics import margin_report
    from ..svm import HardMarginSVC

    out_dir = Path(out_dir)
    store = ResultStore(out_dir / "results.json", config)
    Xtr, ytr, Xte, yte, name = _load(config)
    verbose = config.get("verbose", 1)
    side = int(round(np.sqrt(Xtr.shape[1])))
    if "data" not in store:
        store.put(
            "data",
            {
                "name": name,
                "n_train": len(ytr),
                "n_test": len(yte),
                "n_features": Xtr.shape[1],
                "image_shape": [side, side],
            },
        )

    if "svm" not in store:
        svm = HardMarginSVC().fit(Xtr, ytr)
        store.put(
            "svm",
            {
                "train": margin_report(svm, Xtr, ytr),
                "test": margin_report(svm, Xte, yte),
                "train_margins": sample_margins(svm, Xtr, ytr)["margin"],
            },
        )
    # AMR, and the ablation that separates its two parts: the unit-norm constraint alone
    # (lam=0, "sphere only") and the regularizer on top of it.
    for cell, lam in (("amr", config["lam"]), ("sphere", 0.0)):
        if cell not in store:
            amr = AMRLogisticRegression(tau=config["tau"], lam=lam).fit(Xtr, ytr)
            store.put(
                cell,
                {
                    "lam": lam,
                    "tau": config["tau"],
                    "train": margin_report(amr, Xtr, ytr),
                    "test": margin_report(amr, Xte, yte),
                    "n_iter": amr.n_iter_,
                    "objective_path": amr.objective_path_,
                },
            )

    if "lr" not in store:
        epochs = _snapshot_epochs(config["n_epochs"], config["n_snapshots"])
        hist_epochs = _pick(epochs, config["n_hist"])
        adv_epochs = _pick(epochs, config["n_adv"])
        adv_index = [int(np.flatnonzero(ytr == c)[0]) for c in np.unique(ytr)]
        rec = MarginRecorder(
            {"train": (Xtr, ytr), "test": (Xte, yte)},
            epochs,
            keep_epochs=hist_epochs,
            adv_epochs=adv_epochs,
            X_adv=Xtr[adv_index],
        )
        gd = GradientDescentLR(
            n_epochs=config["n_epochs"],
            optimizer=config["optimizer"],
            lr_scale=config["lr_scale"],
            learning_rate=config["learning_rate"],
            momentum=config["momentum"],
            batch_size=config["batch_size"],
            random_state=config["seed"],
            callbacks=[rec],
            verbose=verbose,
        ).fit(Xtr, ytr)
        svm_m = np.asarray(store.get("svm")["train_margins"])
        sets = [rec.kept[e] for e in hist_epochs] + [svm_m]
        allm = np.concatenate(sets)
        edges = np.linspace(allm.min(), allm.max(), 51)
        store.put(
            "lr",
            {
                "optimizer": config["optimizer"],
                "step": gd.lr_,
                "history": rec.history,
                "histograms": {
                    "epochs": hist_epochs,
                    "edges": edges,
                    "counts": [np.histogram(m, edges)[0] for m in sets],
                },
                "adversarial": {
                    "epochs": adv_epochs,
                    "index": adv_index,
                    "labels": [int(ytr[i]) for i in adv_index],
                    "clean": Xtr[adv_index],
                    "images": [
                        [rec.adversarial[e][k] for e in adv_epochs] for k in range(len(adv_index))
                    ],
                },
            },
        )
    return store.data


def _label(results):
    return {"gd": "GD-LR", "sgd": "SGD-LR"}[results["cells"]["lr"]["optimizer"]]


def plot(results, out_dir):
    """Draw margin_path.png, margin_histograms.png, adversarial_examples.png, training_curves.png.

    Returns
    -------
    paths : list of Path
    """
    from pathlib import Path

    import matplotlib.pyplot as plt

    from ..plotting import (
        plot_adversarial_grid,
        plot_histogram_counts,
        plot_margin_path,
        plot_training_curves,
    )

    out_dir = Path(out_dir)
    cells = results["cells"]
    h = cells["lr"]["history"]
    svm, amr, sphere = cells["svm"], cells["amr"], cells["sphere"]
    label = _label(results)
    paths = []

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, split in zip(axes, ("train", "test")):
        plot_margin_path(
            h["epoch"],
            {f"{label} min": h[f"{split}_min_margin"], f"{label} avg": h[f"{split}_avg_margin"]},
            ax=ax,
            hlines={"SVM min": svm[split]["min_margin"]},
            title=f"margins on {split} ({cells['data']['name']})",
        )
        for run, ls, color, label in (
            (amr, "-.", "tab:green", f"AMR avg (lam={amr['lam']:g})"),
            (sphere, ":", "tab:olive", "sphere only avg (lam=0)"),
        ):
            ax.axhline(run[split]["avg_margin"], ls=ls, color=color, lw=1, label=label)
        ax.legend(fontsize="small")
    fig.tight_layout()
    paths.append(out_dir / "margin_path.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    hs = cells["lr"]["histograms"]
    titles = [f"epoch {e}" for e in hs["epochs"]] + ["SVM"]
    fig = plot_histogram_counts(hs["edges"], hs["counts"], titles)
    paths.append(out_dir / "margin_histograms.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    adv = cells["lr"]["adversarial"]
    epochs = list(h["epoch"])
    col_values = []
    for e in adv["epochs"]:
        i = epochs.index(e)
        col_values.append(f"avg {h['train_avg_margin'][i]:.2f} min {h['train_min_margin'][i]:.2f}")
    images = [[c] + row for c, row in zip(adv["clean"], adv["images"])]
    fig = plot_adversarial_grid(
        np.clip(np.asarray(images, float), 0.0, 1.0),
        [f"digit {lab}" for lab in adv["labels"]],
        ["original"] + [f"epoch {e}" for e in adv["epochs"]],
        image_shape=tuple(cells["data"]["image_shape"]),
        col_values=[""] + col_values,
    )
    paths.append(out_dir / "adversarial_examples.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    fig = plot_training_curves(h["epoch"], h["loss"], h["train_error"], h["test_error"])
    paths.append(out_dir / "training_curves.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    return paths


def verdicts(results):
    """The three claims of Figure 1, measured on the training set.

    Returns
    -------
    verdicts : dict of str to (bool, str)
        ``min_margin_rises``, ``avg_margin_falls`` and ``amr_avg_well_above``: whether the
        claim holds, and the numbers behind it.
    """
    cells = results["cells"]
    h = cells["lr"]["history"]
    label = _label(results)
    svm_min = cells["svm"]["train"]["min_margin"]
    mins, avgs = np.asarray(h["train_min_margin"]), np.asarray(h["train_avg_margin"])
    first_epochs = slice(0, min(5, len(avgs)))
    peak = int(np.argmax(avgs[first_epochs]))
    rises = bool(mins[-1] > mins[0] and abs(svm_min - mins[-1]) < abs(svm_min - mins[0]))
    falls = bool(avgs[-1] < avgs[peak] and avgs[-1] <= avgs[peak:].min() + 1e-3)
    n_rises = int(np.sum(np.diff(avgs[peak:]) > 0))
    amr, sphere = cells["amr"]["train"]["avg_margin"], cells["sphere"]["train"]["avg_margin"]
    ratio, sphere_ratio = amr / avgs[-1], sphere / avgs[-1]
    return {
        "min_margin_rises": (
            rises,
            f"{label} min margin {mins[0]:.3f} (epoch {h['epoch'][0]})"
            f" -> {mins[-1]:.3f} (epoch {h['epoch'][-1]}); SVM {svm_min:.3f}",
        ),
        "avg_margin_falls": (
            falls,
            f"{label} average margin {avgs[peak]:.3f} (epoch "
            f"{h['epoch'][peak]}) -> {avgs[-1]:.3f} (epoch "
            f"{h['epoch'][-1]}); it rose between {n_rises} of "
            f"{len(avgs) - peak - 1} consecutive snapshots in between",
        ),
        "amr_avg_well_above": (
            bool(ratio >= MARGIN_RATIO),
            f"AMR / {label} average margin {ratio:.2f}x (paper: 2-3x, "
            f"'well above' taken as >= {MARGIN_RATIO}x); sphere only (lam=0) "
            f"/ {label} {sphere_ratio:.2f}x, so the unit-norm constraint "
            f"alone gives {sphere_ratio:.2f}x and the regularizer adds "
            f"{100 * (amr / sphere - 1):+.1f}% on top of it",
        ),
    }


def summarize(results):
    """A Markdown table (LR at its first and last recorded epochs, the SVM, AMR, sphere only)
    and the verdict on each claim of Figure 1."""
    cells = results["cells"]
    h = cells["lr"]["history"]
    label = _label(results)
    rows = []
    for i in (0, -1):
        rows.append(
            (
                f"{label} epoch {h['epoch'][i]}",
                h["train_min_margin"][i],
                h["train_avg_margin"][i],
                h["test_min_margin"][i],
                h["test_avg_margin"][i],
                h["test_error"][i],
            )
        )
    names = {
        "svm": "HardMarginSVC",
        "amr": f"AMRLogisticRegression (lam={cells['amr']['lam']:g}, tau={cells['amr']['tau']:g})",
        "sphere": "sphere only (AMR with lam=0)",
    }
    for name, title in names.items():
        c = cells[name]
        rows.append(
            (
                title,
                c["train"]["min_margin"],
                c["train"]["avg_margin"],
                c["test"]["min_margin"],
                c["test"]["avg_margin"],
                1.0 - c["test"]["accuracy"],
            )
        )
    head = ["model", "train min", "train avg", "test min", "test avg", "test error"]
    lines = [
        f"Figure 1 on {cells['data']['name']} ({cells['data']['n_train']} train, "
        f"{cells['data']['n_test']} test), {label} for {h['epoch'][-1]} epochs",
        "",
        *simple_table(head, rows),
    ]
    ratio = cells["amr"]["train"]["avg_margin"] / h["train_avg_margin"][-1]
    test_ratio = cells["amr"]["test"]["avg_margin"] / h["test_avg_margin"][-1]
    lines.append(
        f"\nAMR / {label} average margin at the end: {ratio:.2f}x on train, "
        f"{test_ratio:.2f}x on test"
    )
    for key, (holds, text) in verdicts(results).items():
        lines.append(verdict_line(holds, f"{key}: {text}"))
    return "\n".join(lines)
