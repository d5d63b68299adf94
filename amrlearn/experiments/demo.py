"""``make demo``: the Figure 1 experiment (quick mode) and an exact-margin report.

Runs ``amrlearn reproduce figure1 --quick`` into ``out`` (printing where the pictures
are), then the margin report of a hard-margin SVM, a logistic regression and
AMRLogisticRegression on train and test.

Runs on MNIST 0-vs-1 when the data home has MNIST, else on scikit-learn's bundled digits
(0 vs 1), so that it works on a fresh machine without a network.
"""

import numpy as np


def load_demo_data(data_home=None):
    """MNIST 0-vs-1 (train, test) if available, else sklearn's digits 0-vs-1 split in two.

    Returns
    -------
    (X_train, y_train, X_test, y_test, name)
    """
    from ..datasets import DatasetNotFoundError, load_mnist

    try:
        Xtr, ytr = load_mnist(data_home, subset="train", classes=(0, 1), return_X_y=True)
        Xte, yte = load_mnist(data_home, subset="test", classes=(0, 1), return_X_y=True)
        return Xtr, ytr, Xte, yte, "MNIST 0 vs 1"
    except DatasetNotFoundError as exc:
        print(f"MNIST not found ({exc}); falling back to scikit-learn's digits (0 vs 1).")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(n_class=2, return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    return Xtr, ytr, Xte, yte, "digits 0 vs 1 (scikit-learn)"


def _table(rows, keys):
    head = "| model | " + " | ".join(keys) + " |"
    sep = "|---|" + "---|" * len(keys)
    lines = [head, sep]
    for name, rep in rows:
        lines.append(f"| {name} | " + " | ".join(f"{rep[k]:.4f}" for k in keys) + " |")
    return "\n".join(lines)


def main(out="amrlearn_output/demo", data_home=None):
    """Run Figure 1's quick mode, then print the margin reports on train and test."""
    from sklearn.linear_model import LogisticRegression

    from ..cli import run_experiment
    from ..linear_model import AMRLogisticRegression
    from ..metrics import margin_report
    from ..svm import HardMarginSVC

    run_experiment("figure1", mode="quick", out=out, data_home=data_home)
    Xtr, ytr, Xte, yte, name = load_demo_data(data_home)
    print(f"data: {name}, {Xtr.shape[0]} train / {Xte.shape[0]} test, {Xtr.shape[1]} features")
    models = [
        ("HardMarginSVC", HardMarginSVC()),
        ("LogisticRegression", LogisticRegression(max_iter=1000)),
        ("AMRLogisticRegression", AMRLogisticRegression(tau=5.0, lam=0.1)),
    ]
    keys = ["accuracy", "min_margin", "avg_margin", "median_margin"]
    for split, X, y in (("train", Xtr, ytr), ("test", Xte, yte)):
        rows = []
        for mname, model in models:
            if split == "train":
                model.fit(Xtr, ytr)
            rows.append((mname, margin_report(model, X, y)))
        print(f"\nexact l2 margins on {split}:")
        print(_table(rows, keys))
