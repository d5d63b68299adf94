"""Small torch nets shared by the attack and bound tests (8x8 digits, 10 classes)."""

import torch


def train(module, X, y, steps=100, lr=2e-2):
    """Full-batch Adam on the cross-entropy, from seed 0; returns ``module`` in train mode."""
    torch.manual_seed(0)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    module.train()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(module(Xt), yt).backward()
        opt.step()
    return module


def trained_cnn(X, y):
    """A conv-pool-linear net trained on 8x8 images; returned in eval mode."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 4 * 4, 10),
    )
    return train(net, X.reshape(-1, 1, 8, 8), y).eval()
