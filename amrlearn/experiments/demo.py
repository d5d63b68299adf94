"""``make demo``: the Figure 1 experiment (quick mode) and an exact-margin report.

Runs ``amrlearn reproduce figure1 --quick`` into ``out`` (printing where the pictures
are), then the margin report of a hard-margin SVM, a logistic regression and
AMRLogisticRegression on train and test.

Runs on MNIST 0-vs-1 when the data home has MNIST, else on scikit-learn's bundled digits
(0 vs 1), so that it works on a fresh machine without a network
(:func:`amrlearn.datasets.load_mnist_or_digits`).
"""

from ._run import run_experiment
from ._summaries import simple_table

__all__ = ["main"]

#: The statistics of ``margin_report`` that the demo prints.
_KEYS = ("accuracy", "min_margin", "avg_margin", "median_margin")


def main(out="amrlearn_output/demo", data_home=None):
    """Run Figure 1's quick mode, then print the margin reports on train and test."""
    from sklearn.linear_model import LogisticRegression

    from .._paper import APPENDIX_F, TAU
    from ..datasets import load_mnist_or_digits
    from ..linear_model import AMRLogisticRegression
    from ..metrics import margin_report
    from ..svm import HardMarginSVC

    run_experiment("figure1", mode="quick", out=out, data_home=data_home)
    Xtr, ytr, Xte, yte, name = load_mnist_or_digits(data_home, classes=(0, 1))
    print(f"data: {name}, {Xtr.shape[0]} train / {Xte.shape[0]} test, {Xtr.shape[1]} features")
    models = [
        ("HardMarginSVC", HardMarginSVC()),
        ("LogisticRegression", LogisticRegression(max_iter=1000)),
        (
            "AMRLogisticRegression",
            AMRLogisticRegression(tau=TAU["mnist", "LR"], lam=APPENDIX_F["lam"]),
        ),
    ]
    for split, X, y in (("train", Xtr, ytr), ("test", Xte, yte)):
        rows = []
        for mname, model in models:
            if split == "train":
                model.fit(Xtr, ytr)
            rep = margin_report(model, X, y)
            rows.append((mname, *(rep[k] for k in _KEYS)))
        print(f"\nexact l2 margins on {split}:")
        print("\n".join(simple_table(["model", *_KEYS], rows)))
