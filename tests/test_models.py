"""The model zoo of Appendix F: shapes, the (logits, features) contract, flat input."""

import math

import pytest
import torch

from amrlearn.neural import models

CASES = [
    (lambda: models.LR(784), (1, 28, 28), 784),
    (lambda: models.LR(3072), (3, 32, 32), 3072),
    (lambda: models.MLP(784), (1, 28, 28), 1024),
    (lambda: models.MLP(3072, hidden=64), (3, 32, 32), 64),
    (lambda: models.CNN(dataset="mnist"), (1, 28, 28), 200),
    (lambda: models.CNN(dataset="cifar10"), (3, 32, 32), 256),
    (lambda: models.ConvNet(), (3, 32, 32), 64),
    (lambda: models.LeNet(), (1, 28, 28), 500),
    (lambda: models.LeNet(dataset="cifar10"), (3, 32, 32), 500),
    (lambda: models.LeNetSmall(dataset="mnist"), (1, 28, 28), 100),
    (lambda: models.LeNetSmall(dataset="cifar10"), (3, 32, 32), 100),
]


@pytest.mark.parametrize("make, shape, n_features", CASES)
def test_output_shapes_flat_and_image_input(make, shape, n_features):
    torch.manual_seed(0)
    model = make().eval()
    x = torch.rand(3, *shape)
    logits, features = model(x)
    assert logits.shape == (3, 10)
    assert features.shape == (3, n_features)
    # features are the input of the last linear layer
    torch.testing.assert_close(model.last_linear(features), logits)
    # flat input gives the same outputs
    logits_flat, features_flat = model(x.reshape(3, -1))
    torch.testing.assert_close(logits_flat, logits)
    torch.testing.assert_close(features_flat, features)


def test_n_classes_and_hidden_are_routed():
    assert models.MLP(10, hidden=7, n_classes=3)(torch.zeros(2, 10))[0].shape == (2, 3)
    assert models.LeNetSmall(n_classes=4)(torch.zeros(2, 784))[0].shape == (2, 4)


@pytest.mark.parametrize(
    "make", [lambda: models.CNN(), lambda: models.LeNet(), lambda: models.LeNetSmall()]
)
def test_wrong_input_size_raises(make):
    with pytest.raises(ValueError, match="features|shape"):
        make()(torch.zeros(2, 100))
    with pytest.raises(ValueError, match="shape"):
        make()(torch.zeros(2, 3, 32, 32))


def test_dataset_argument_is_checked():
    with pytest.raises(ValueError, match="dataset"):
        models.CNN(dataset="svhn")
    with pytest.raises(ValueError, match="CIFAR-10"):
        models.ConvNet(dataset="mnist")


def test_cnn_dropout_only_on_cifar_by_default():
    def rates(model):
        return [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]

    assert rates(models.CNN("cifar10")) == [0.5]
    assert rates(models.CNN("mnist")) == [0.0]
    assert rates(models.CNN("mnist", dropout=0.3)) == [0.3]


def test_architectures_match_the_cited_papers():
    # Carlini & Wagner MNIST: 32-32-pool-64-64-pool, fc 200-200
    cw = models.CNN("mnist")
    convs = [m for m in cw.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64]
    lins = [m for m in cw.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in lins] == [(1024, 200), (200, 200), (200, 10)]
    # Deep Defense ConvNet: five convolutions (the last written as a linear layer)
    cn = models.ConvNet()
    convs = [m for m in cn.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64]
    assert cn.last_linear.in_features == 64
    # MMR's LeNetSmall: conv16(4x4, s2) - conv32(4x4, s2) - fc100 - out
    ls = models.LeNetSmall("mnist")
    convs = [m for m in ls.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (16, (4, 4), (2, 2)),
        (32, (4, 4), (2, 2)),
    ]
    lins = [m for m in ls.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in lins] == [(32 * 7 * 7, 100), (100, 10)]
    # LeNet: conv20 - conv50 - fc500 - out
    ln = models.LeNet()
    convs = [m for m in ln.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [20, 50]
    n_params = sum(p.numel() for p in ln.parameters())
    assert n_params == 20 * 25 + 20 + 50 * 20 * 25 + 50 + 800 * 500 + 500 + 500 * 10 + 10
    assert math.prod(models.INPUT_SHAPES["cifar10"]) == 3072


def test_fashion_mnist_models_are_the_mnist_ones():
    """Fashion-MNIST has MNIST's images: the same architectures, the same weights' shapes."""
    for make in (models.CNN, models.LeNet, models.LeNetSmall):
        fashion, mnist = make("fashion-mnist"), make("mnist")
        assert [p.shape for p in fashion.parameters()] == [p.shape for p in mnist.parameters()]
    rates = [m.p for m in models.CNN("fashion-mnist").modules() if isinstance(m, torch.nn.Dropout)]
    assert rates == [0.0]
    assert models.CNN("fashion-mnist")(torch.zeros(2, 784))[0].shape == (2, 10)
