"""The paper's model zoo (Appendix F). Every model returns ``(logits, features)``.

``features`` is ``Phi(x)``, the input of the last linear layer, which every model names
``last_linear``: the feature-space margin (14) is measured there. Inputs follow MNIST
(1 x 28 x 28) and CIFAR-10 (3 x 32 x 32); every model also accepts flat input of shape
``(n, C * H * W)``, as the loaders return with ``flatten=True``, and reshapes it itself.

Weights use PyTorch's default initialization (the paper does not state one). Fashion-MNIST
(``dataset="fashion-mnist"``, not in the paper) gets MNIST's architectures.
"""

import math

import torch
from torch import nn

from .._paper import INPUT_SHAPES

__all__ = ["CNN", "LR", "MLP", "ConvNet", "LeNet", "LeNetSmall"]


def _input_shape(dataset):
    if dataset not in INPUT_SHAPES:
        raise ValueError(f"dataset must be one of {sorted(INPUT_SHAPES)}, got {dataset!r}.")
    return INPUT_SHAPES[dataset]


def _as_images(x, shape):
    """Reshape flat ``(n, C*H*W)`` input to ``(n, C, H, W)``; check image input."""
    if x.dim() == 2:
        if x.shape[1] != math.prod(shape):
            raise ValueError(
                f"Flat input must have {math.prod(shape)} features (an image of shape "
                f"{shape}), got {x.shape[1]}."
            )
        return x.reshape(-1, *shape)
    if x.dim() == 4 and tuple(x.shape[1:]) == tuple(shape):
        return x
    raise ValueError(
        f"Expected input of shape (n, {math.prod(shape)}) or (n, *{shape}), got {tuple(x.shape)}."
    )


class _ImageModel(nn.Module):
    """A net whose ``features`` (a module on images) give ``Phi(x)`` and ``last_linear``
    the logits; flat input is reshaped to ``input_shape`` first."""

    def forward(self, x):
        features = self.features(_as_images(x, self.input_shape))
        return self.last_linear(features), features


class LR(nn.Module):
    """Multiclass logistic regression (MNIST-LR, CIFAR-LR).

    The features are the (flattened) input itself, so the feature-space margin is the
    input-space margin.

    Parameters
    ----------
    in_features : int
        Number of input features (784 for MNIST, 3072 for CIFAR-10).
    n_classes : int, default=10

    Examples
    --------
    >>> import torch
    >>> from amrlearn.neural.models import LR
    >>> logits, features = LR(784)(torch.zeros(2, 1, 28, 28))
    >>> tuple(logits.shape), tuple(features.shape)
    ((2, 10), (2, 784))
    """

    #: Its logits are affine in its input: margins take the closed form (eq. (6)); see
    #: :func:`amrlearn.utils.is_affine_module`.
    amrlearn_affine = True

    def __init__(self, in_features, n_classes=10):
        super().__init__()
        self.last_linear = nn.Linear(in_features, n_classes)

    def forward(self, x):
        features = x.flatten(1)
        return self.last_linear(features), features


class MLP(nn.Module):
    """One hidden ReLU layer of ``hidden`` units (MNIST-MLP, CIFAR-MLP: 1024).

    Parameters
    ----------
    in_features : int
        Number of input features (784 for MNIST, 3072 for CIFAR-10).
    hidden : int, default=1024
    n_classes : int, default=10

    Examples
    --------
    >>> import torch
    >>> from amrlearn.neural.models import MLP
    >>> logits, features = MLP(784, hidden=32)(torch.zeros(2, 784))
    >>> tuple(logits.shape), tuple(features.shape)
    ((2, 10), (2, 32))
    """

    def __init__(self, in_features, hidden=1024, n_classes=10):
        super().__init__()
        self.hidden_layer = nn.Linear(in_features, hidden)
        self.last_linear = nn.Linear(hidden, n_classes)

    def forward(self, x):
        features = torch.relu(self.hidden_layer(x.flatten(1)))
        return self.last_linear(features), features


class CNN(nn.Module):
    """The MNIST and CIFAR-10 CNNs of Carlini & Wagner (2017), used by the paper.

    * ``"mnist"`` (and ``"fashion-mnist"``, MNIST's images):
      conv32-conv32-pool-conv64-conv64-pool-fc200-fc200-out;
    * ``"cifar10"``: conv64-conv64-pool-conv128-conv128-pool-fc256-fc256-out.

    Convolutions are 3x3 without padding, pools 2x2 max pools, every hidden layer is
    followed by a ReLU (Carlini & Wagner's ``train_models.py``). Dropout sits after the
    first fully connected layer's ReLU, where Carlini & Wagner put it; following the
    paper ("dropout is used to alleviate overfitting on CIFAR10") it is on for CIFAR-10
    only by default.

    Parameters
    ----------
    dataset : {"mnist", "fashion-mnist", "cifar10"}, default="mnist"
    dropout : float, default=None
        Dropout rate; ``None`` means 0.5 for CIFAR-10 and 0 for MNIST.
    n_classes : int, default=10

    References
    ----------
    N. Carlini and D. Wagner, "Towards evaluating the robustness of neural networks",
    IEEE S&P 2017.

    Examples
    --------
    >>> import torch
    >>> from amrlearn.neural.models import CNN
    >>> logits, features = CNN("cifar10")(torch.zeros(2, 3 * 32 * 32))
    >>> tuple(logits.shape), tuple(features.shape)
    ((2, 10), (2, 256))
    """

    def __init__(self, dataset="mnist", dropout=None, n_classes=10):
        super().__init__()
        self.input_shape = _input_shape(dataset)
        c, h, _ = self.input_shape
        f1, f2, d = (64, 128, 256) if dataset == "cifar10" else (32, 64, 200)
        if dropout is None:
            dropout = 0.5 if dataset == "cifar10" else 0.0
        self.features = nn.Sequential(
            nn.Conv2d(c, f1, 3), nn.ReLU(), nn.Conv2d(f1, f1, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(f1, f2, 3), nn.ReLU(), nn.Conv2d(f2, f2, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
        )  # fmt: skip
        side = ((h - 4) // 2 - 4) // 2
        self.head = nn.Sequential(
            nn.Linear(f2 * side * side, d), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(d, d), nn.ReLU(),
        )  # fmt: skip
        self.last_linear = nn.Linear(d, n_classes)

    def forward(self, x):
        features = self.head(self.features(_as_images(x, self.input_shape)))
        return self.last_linear(features), features


class ConvNet(_ImageModel):
    """The 5-convolution CIFAR-10 ConvNet of Deep Defense (Yan et al., 2018).

    As in Deep Defense's code (from MatConvNet's CIFAR example):
    conv32(5x5, pad 2)-maxpool-ReLU-conv32(5x5, pad 2)-ReLU-avgpool-conv64(5x5, pad 2)-
    ReLU-avgpool-conv64(4x4)-ReLU-conv10(1x1), with 2x2 pools of stride 2. The fourth
    convolution sees a 4x4 map and outputs 1x1, so the last 1x1 convolution is exactly a
    linear layer on 64 features; it is written as one (``last_linear``), which is what the
    feature-space margin needs.

    Parameters
    ----------
    dataset : {"cifar10"}, default="cifar10"
        Only CIFAR-10: the architecture's spatial sizes fit 32 x 32 inputs.
    n_classes : int, default=10

    References
    ----------
    Z. Yan, Y. Guo and C. Zhang, "Deep Defense: training DNNs with improved adversarial
    robustness", NeurIPS 2018.

    Examples
    --------
    >>> import torch
    >>> from amrlearn.neural.models import ConvNet
    >>> logits, features = ConvNet()(torch.zeros(2, 3, 32, 32))
    >>> tuple(logits.shape), tuple(features.shape)
    ((2, 10), (2, 64))
    """

    def __init__(self, dataset="cifar10", n_classes=10):
        super().__init__()
        if dataset != "cifar10":
            raise ValueError(f"ConvNet is a CIFAR-10 architecture; got dataset={dataset!r}.")
        self.input_shape = _input_shape(dataset)
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 5, padding=2), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(32, 32, 5, padding=2), nn.ReLU(), nn.AvgPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.AvgPool2d(2),
            nn.Conv2d(64, 64, 4), nn.ReLU(),
            nn.Flatten(),
        )  # fmt: skip
        self.last_linear = nn.Linear(64, n_classes)


class LeNet(_ImageModel):
    """LeNet: two convolutions and two fully connected layers (Caffe's / Deep Defense's).

    conv20(5x5)-maxpool-conv50(5x5)-maxpool-fc500-ReLU-out, with 2x2 max pools. As in
    Caffe's LeNet and Deep Defense's code, there is no ReLU after the convolutions (the
    max pools are the only nonlinearity there).

    Parameters
    ----------
    dataset : {"mnist", "fashion-mnist", "cifar10"}, default="mnist"
    n_classes : int, default=10

    References
    ----------
    Y. LeCun, L. Bottou, Y. Bengio and P. Haffner, "Gradient-based learning applied to
    document recognition", Proc. IEEE 1998; Yan et al., NeurIPS 2018 (Deep Defense).

    Examples
    --------
    >>> import torch
    >>> from amrlearn.neural.models import LeNet
    >>> logits, features = LeNet()(torch.zeros(2, 784))
    >>> tuple(logits.shape), tuple(features.shape)
    ((2, 10), (2, 500))
    """

    def __init__(self, dataset="mnist", n_classes=10):
        super().__init__()
        self.input_shape = _input_shape(dataset)
        c, h, _ = self.input_shape
        side = ((h - 4) // 2 - 4) // 2
        self.features = nn.Sequential(
            nn.Conv2d(c, 20, 5), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(50 * side * side, 500), nn.ReLU(),
        )  # fmt: skip
        self.last_linear = nn.Linear(500, n_classes)


class LeNetSmall(_ImageModel):
    """The small LeNet of Croce et al.'s MMR (maximum margin regularizer), used in Table 2.

    conv16(4x4, stride 2)-ReLU-conv32(4x4, stride 2)-ReLU-fc100-ReLU-out, as in MMR's
    code (``LeNetSmall``: TensorFlow ``SAME`` padding, which for these sizes is a padding
    of 1 on each side: 28 -> 14 -> 7 on MNIST, 32 -> 16 -> 8 on CIFAR-10).

    Parameters
    ----------
    dataset : {"mnist", "fashion-mnist", "cifar10"}, default="mnist"
    n_classes : int, default=10

    References
    ----------
    F. Croce, M. Andriushchenko and M. Hein, "Provable robustness of ReLU networks via
    maximization of linear regions", AISTATS 2019.

    Examples
    --------
    >>> import torch
    >>> from amrlearn.neural.models import LeNetSmall
    >>> logits, features = LeNetSmall("cifar10")(torch.zeros(2, 3, 32, 32))
    >>> tuple(logits.shape), tuple(features.shape)
    ((2, 10), (2, 100))
    """

    def __init__(self, dataset="mnist", n_classes=10):
        super().__init__()
        self.input_shape = _input_shape(dataset)
        c, h, _ = self.input_shape
        side = h // 4
        self.features = nn.Sequential(
            nn.Conv2d(c, 16, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(32 * side * side, 100), nn.ReLU(),
        )  # fmt: skip
        self.last_linear = nn.Linear(100, n_classes)
