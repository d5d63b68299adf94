"""A custom model class that the checkpoint tests load by import path
(``evaluate_helpers:TinyNet``) and pickle whole: tests/ is on the path under pytest."""

import torch
from torch import nn


class TinyNet(nn.Module):
    """A small ReLU net on flat input, its names unlike the zoo's."""

    def __init__(self, n_in=16, width=8, n_out=10):
        super().__init__()
        self.fc_in = nn.Linear(n_in, width)
        self.fc_out = nn.Linear(width, n_out)

    def forward(self, x):
        return self.fc_out(torch.relu(self.fc_in(x.flatten(1))))


def tiny_net(width=8):
    """A factory function, also accepted by a spec."""
    return TinyNet(width=width)
