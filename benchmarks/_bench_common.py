"""What the PGD and margin-bound benchmarks share: the data and the MLP they attack."""

import json
from pathlib import Path

import numpy as np
import torch


def load_data(n_train, n_test):
    """MNIST, or scikit-learn's digits without it: ``(name, Xtr, ytr, Xte, yte)``."""
    from amrlearn.datasets import DatasetNotFoundError, load_mnist

    try:
        Xtr, ytr = load_mnist(subset="train", return_X_y=True)
        Xte, yte = load_mnist(subset="test", return_X_y=True)
        name = "mnist"
    except DatasetNotFoundError:  # no MNIST here: the 8x8 digits of scikit-learn
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X = (X / 16.0).astype(np.float32)
        Xtr, ytr, Xte, yte = X[:1200], y[:1200], X[1200:], y[1200:]
        name = "digits"
    return name, Xtr[:n_train], ytr[:n_train].astype(np.int64), Xte[:n_test], yte[:n_test]


def train_mlp(X, y, epochs=5, seed=0):
    """A 256-unit MLP trained with Adam: the model both benchmarks attack."""
    torch.manual_seed(seed)
    d = X.shape[1]
    net = torch.nn.Sequential(
        torch.nn.Linear(d, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10)
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    for _ in range(epochs):
        perm = torch.randperm(len(Xt))
        for s in range(0, len(Xt), 128):
            idx = perm[s : s + 128]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(Xt[idx]), yt[idx]).backward()
            opt.step()
    return net.eval()


def write_result(out, path, name, device):
    """Write ``out`` as JSON to ``path``, else to ``results/<name>_<device type>.json``."""
    path = Path(path) if path else Path(__file__).parent / "results" / f"{name}_{device.type}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")
    return path
