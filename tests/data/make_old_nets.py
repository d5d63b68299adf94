"""How ``old_nets.pkl`` was made: nets pickled by the code before penalties were parts.

Run once, on the tree of commit 9b1e0af (before ``amrlearn.neural.Penalty``)::

    git archive 9b1e0af | tar -x -C /tmp/old-pen
    PYTHONPATH=/tmp/old-pen OMP_NUM_THREADS=1 python tests/data/make_old_nets.py

It writes ``tests/data/old_nets.pkl``: a dict with the inputs ``X``, the labels ``y``,
three fitted nets (AMR on the MLP of the model zoo, Deep Defense and MMR on an
``nn.Sequential``) and their ``predict_proba`` on ``X``. ``tests/test_penalty.py`` checks
that today's code loads them and predicts the same.
"""

import pickle
from pathlib import Path

import numpy as np
import torch


def main():
    from amrlearn.neural import (
        AMRNeuralNetClassifier,
        DeepDefenseNeuralNetClassifier,
        MMRNeuralNetClassifier,
        models,
    )

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(12, 4)).astype(np.float32)
    y = np.array(["a", "b", "c"] * 4)
    common = {"max_epochs": 2, "batch_size": 6, "random_state": 0, "verbose": 0}

    def seq():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))

    nets = {
        "amr": AMRNeuralNetClassifier(
            models.MLP, module__in_features=4, module__hidden=6, module__n_classes=3,
            lam=0.5, tau=2.0, beta=1e-2, **common,
        ),
        "dd": DeepDefenseNeuralNetClassifier(
            seq(), lam=0.1, c=5.0, d=0.01, max_iter=2, **common
        ),
        "mmr": MMRNeuralNetClassifier(seq(), lam=1.0, lam_warmup_epochs=2, **common),
    }  # fmt: skip
    out = {"X": X, "y": y}
    for name, net in nets.items():
        out[name] = net.fit(X, y)
        out[f"{name}_proba"] = net.predict_proba(X)
    path = Path(__file__).with_name("old_nets.pkl")
    path.write_bytes(pickle.dumps(out))
    print(path, path.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
