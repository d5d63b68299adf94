"""Shared fixtures: the 8x8 digits and the small torch nets of the attack and bound tests.

The nets are trained once per session, on the same 600 digits (X / 16, float32).
"""

import numpy as np
import pytest


def train_module(module, X, y, steps=100, lr=2e-2):
    """Full-batch Adam on the cross-entropy, from seed 0; returns ``module`` in train mode."""
    import torch

    torch.manual_seed(0)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    module.train()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(module(Xt), yt).backward()
        opt.step()
    return module


@pytest.fixture(scope="session")
def train():
    """The training helper, for tests that train a net of their own."""
    return train_module


@pytest.fixture(scope="session")
def digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32)[:600], y[:600].astype(np.int64)


@pytest.fixture(scope="session")
def mlp(digits):
    """A plain ReLU MLP, in eval mode."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    return train_module(net, *digits).eval()


@pytest.fixture(scope="session")
def bn_mlp(digits):
    """An MLP with dropout and batch norm, left in train mode: its modes differ."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(64, 64),
        torch.nn.BatchNorm1d(64),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.5),
        torch.nn.Linear(64, 10),
    )
    return train_module(net, *digits)


@pytest.fixture(scope="session")
def cnn(digits):
    """A conv-pool-linear net trained on the digits as 1 x 8 x 8 images, in eval mode."""
    import torch

    X, y = digits
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 4 * 4, 10),
    )
    return train_module(net, X.reshape(-1, 1, 8, 8), y).eval()
