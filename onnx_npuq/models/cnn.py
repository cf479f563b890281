"""Convolutional built-in models: a small CNN trained on scikit-learn's bundled handwritten
digits (real data, no download), and a ResNet-style network with random weights (for its
structure: a 3-channel stem, BatchNorm, depthwise + pointwise convs, residual adds).

    model, (x_test, y_test) = train_digits()     # fixed seed: the same weights every time
    accuracy(model(x_test), y_test)               # ~0.97 top-1
    resnet = ResNetTiny()                         # (batch, 3, 32, 32) -> 10 logits
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

DIGITS_SHAPE = (1, 8, 8)  # load_digits: 8x8 grey images, pixel values 0..16
RESNET_SHAPE = (3, 32, 32)
CLASSES = 10


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    # bias-free conv + BatchNorm: the usual CNN pattern, BN exported as BatchNormalization
    return [nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout)]


class DigitsCNN(nn.Module):
    """(batch, 1, 8, 8) pixels in [0, 1] -> (batch, 10) logits: three conv3x3-BN-ReLU, one
    max pool, a Linear head. 19k weights, trains in a couple of seconds on a CPU."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            *_conv_bn(1, width, 3), nn.ReLU(),
            *_conv_bn(width, 2 * width, 3), nn.ReLU(), nn.MaxPool2d(2),  # -> 4x4
            *_conv_bn(2 * width, 2 * width, 3), nn.ReLU(),
        )
        self.head = nn.Linear(2 * width * 4 * 4, CLASSES)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


class Block(nn.Module):
    """Depthwise 3x3 -> BN -> ReLU -> pointwise 1x1 -> BN, plus the shortcut (a strided
    1x1 conv + BN when the shape changes), then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(*_conv_bn(cin, cin, 3, stride, groups=cin), nn.ReLU(), *_conv_bn(cin, cout, 1))
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(*_conv_bn(cin, cout, 1, stride))
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


class ResNetTiny(nn.Module):
    """(batch, 3, 32, 32) -> (batch, 10): 7x7 stride-2 stem, three residual blocks (the
    middle one downsampling, with a projection shortcut), global average pool, Linear head.
    Three blocks show every pattern; more would only slow the demo's exports."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.stem = nn.Sequential(*_conv_bn(3, width, 7, stride=2), nn.ReLU())  # -> 16x16
        self.blocks = nn.Sequential(Block(width, width), Block(width, 2 * width, stride=2),
                                    Block(2 * width, 2 * width))  # -> 8x8
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(2 * width, CLASSES)

    def forward(self, x):
        return self.head(self.pool(self.blocks(self.stem(x))).flatten(1))


@torch.no_grad()
def randomize_batchnorm(model: nn.Module) -> nn.Module:
    """Random BN statistics and affine terms (from torch's current seed): fresh BN layers are
    the identity in eval mode, which would hide them from a numerical check."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.2, 0.2)
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return model


def resnet_tiny() -> ResNetTiny:
    return randomize_batchnorm(ResNetTiny())


def load_digits_split(test_fraction: float = 0.2):
    """scikit-learn's 1797 digits as ((x_train, y_train), (x_test, y_test)), pixels scaled to
    [0, 1]; a stratified split with a fixed random_state, the same on every machine."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as err:
        raise ImportError("the digits data set needs scikit-learn: pip install scikit-learn") from err
    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target, dtype=torch.int64)
    idx_train, idx_test = train_test_split(range(len(y)), test_size=test_fraction, random_state=0,
                                           stratify=data.target)
    return (x[idx_train], y[idx_train]), (x[idx_test], y[idx_test])


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy."""
    return (logits.argmax(-1) == labels).float().mean().item()


@contextlib.contextmanager
def _one_thread():
    """Train on one thread: on these tiny batches threads only add overhead (2-6x slower on
    2 busy cores), and the sums then run in the same order on every machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def train_digits(epochs: int = 8, batch: int = 32, lr: float = 3e-3, seed: int = 0
                 ) -> tuple[DigitsCNN, tuple[torch.Tensor, torch.Tensor]]:
    """A DigitsCNN trained on the training split: (model in eval mode, (x_test, y_test)).
    Deterministic: the seed fixes the initial weights and the batch order, and torch's
    global RNG is left as it was."""
    (x, y), test = load_digits_split()
    with torch.random.fork_rng(devices=[]), _one_thread():
        torch.manual_seed(seed)
        model = DigitsCNN()
        order = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        model.train()
        for _ in range(epochs):
            for idx in torch.randperm(len(y), generator=order).split(batch):
                opt.zero_grad()
                nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
                opt.step()
    return model.eval(), test


def example_images(shape: tuple[int, ...], batch: int = 2, seed: int = 0) -> tuple[torch.Tensor]:
    """Random images in [0, 1] of `shape` (channels, height, width), for export and checks."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, *shape, generator=g),)


__all__ = ["DigitsCNN", "ResNetTiny", "accuracy", "example_images", "load_digits_split", "resnet_tiny",
           "train_digits"]
