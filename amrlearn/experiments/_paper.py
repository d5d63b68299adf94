"""The numbers that Wu & Yu report in Tables 1 and 2, as data.

The protocol that produced them (Appendix F) is in :mod:`amrlearn._paper`.

Accuracies are in percent, as printed in the paper; ``robust`` lists the l2 PGD robust
accuracies on the eps grid of :data:`EPS` (1000 steps of size 0.01). ``avg_margin`` is
Table 1's last column (the Theorem 3 estimate, r = 5, on 500 points).

A row that the paper does not report (the ablations that amrlearn adds, such as AMR with
beta = 0) has no entry: :func:`paper_row` returns ``None`` for it.
"""

__all__ = ["EPS", "EPS_GRIDS", "NOT_IMPLEMENTED", "TABLE1", "TABLE2", "paper_row"]

#: The l2 eps grid of Tables 1 and 2, per dataset.
EPS = {"mnist": (0.5, 1.0, 1.5, 2.0), "cifar10": (0.1, 0.2, 0.3, 0.4)}
#: The grid of every dataset amrlearn runs: the paper's, and MNIST's for Fashion-MNIST
#: (the same images' size and range), which the paper does not use.
EPS_GRIDS = {**EPS, "fashion-mnist": EPS["mnist"]}


def _row(clean, robust, avg_margin=None):
    row = {"clean": clean, "robust": list(robust)}
    if avg_margin is not None:
        row["avg_margin"] = avg_margin
    return row


#: Table 1: AMR vs Lipschitz constant regularization (LCR), keyed dataset -> model -> method.
TABLE1 = {
    "mnist": {
        "MLP": {
            "Std": _row(98.24, (89.26, 49.23, 15.78, 5.06), 0.80),
            "LCR": _row(95.99, (91.12, 80.62, 60.56, 34.07), 1.36),
            "AMR": _row(96.01, (91.18, 81.01, 62.93, 38.44), 1.41),
        },
        "CNN": {
            "Std": _row(99.14, (95.95, 90.48, 88.72, 87.52), 1.01),
            "LCR": _row(99.29, (97.21, 87.83, 58.30, 26.96), 1.34),
            "AMR": _row(99.25, (97.90, 97.60, 97.51, 97.33), 1.40),
        },
    },
    "cifar10": {
        "MLP": {
            "Std": _row(54.04, (39.77, 26.67, 16.77, 9.95), 0.17),
            "LCR": _row(50.09, (46.23, 41.65, 37.09, 32.62), 0.45),
            "AMR": _row(50.36, (46.28, 42.81, 39.06, 35.67), 0.54),
        },
        "CNN": {
            "Std": _row(78.77, (54.32, 39.81, 37.14, 36.27), 0.09),
            "LCR": _row(80.54, (70.84, 58.72, 44.82, 32.54), 0.26),
            "AMR": _row(78.12, (69.59, 59.84, 49.02, 38.65), 0.31),
        },
    },
}

#: Table 2: Std, DD (deep defense), Adv (PGD training), MMR and AMR, keyed like TABLE1.
TABLE2 = {
    "mnist": {
        "LeNet": {
            "Std": _row(98.98, (95.75, 80.59, 44.36, 22.64)),
            "DD": _row(99.34, (97.64, 92.09, 83.53, 79.35)),
            "Adv": _row(99.48, (97.45, 91.99, 88.88, 87.51)),
            "AMR": _row(99.01, (96.80, 94.03, 93.61, 93.12)),
        },
        "LeNetSmall": {
            "MMR": _row(97.43, (89.90, 58.86, 23.95, 6.80)),
            "AMR": _row(97.83, (91.94, 73.70, 32.56, 8.79)),
        },
    },
    "cifar10": {
        "ConvNet": {
            "Std": _row(76.61, (56.47, 37.37, 30.17, 28.89)),
            "DD": _row(79.10, (68.95, 59.51, 56.84, 56.38)),
            "Adv": _row(75.27, (68.79, 61.79, 54.35, 47.00)),
            "AMR": _row(76.77, (68.00, 57.87, 52.38, 50.03)),
        },
        "LeNetSmall": {
            "MMR": _row(59.07, (49.01, 39.42, 30.41, 22.53)),
            "AMR": _row(68.40, (61.33, 53.84, 46.03, 39.05)),
        },
    },
}

#: Methods of Table 2 that amrlearn does not implement yet: their rows say so (none: DD
#: and MMR are :class:`~amrlearn.neural.DeepDefenseNeuralNetClassifier` and
#: :class:`~amrlearn.neural.MMRNeuralNetClassifier`).
NOT_IMPLEMENTED = ()


def paper_row(table, dataset, model, method):
    """The paper's row for one cell, or ``None`` where the paper has none.

    Parameters
    ----------
    table : {"table1", "table2"}
    dataset : {"mnist", "cifar10"}
    model : str
        ``"MLP"``, ``"CNN"`` (Table 1), ``"LeNet"``, ``"LeNetSmall"``, ``"ConvNet"`` (Table 2).
    method : str
        ``"Std"``, ``"LCR"``, ``"AMR"``, ``"Adv"``, ``"DD"``, ``"MMR"`` (or an ablation).

    Returns
    -------
    row : dict or None
        ``clean`` and ``robust`` (percent), and ``avg_margin`` in Table 1.

    Examples
    --------
    >>> from amrlearn.experiments._paper import paper_row
    >>> paper_row("table1", "mnist", "MLP", "AMR")["avg_margin"]
    1.41
    >>> paper_row("table1", "mnist", "MLP", "AMR (beta=0)") is None
    True
    """
    tables = {"table1": TABLE1, "table2": TABLE2}
    if table not in tables:
        raise ValueError(f"table must be 'table1' or 'table2', got {table!r}.")
    return tables[table].get(dataset, {}).get(model, {}).get(method)
