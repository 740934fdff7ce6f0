"""Bundled example checkpoints (assets/examples), rebuilt by `python -m core examples --out assets/examples`.

Each shows one kind of file the app and CLI read:
    siren-mnist-<label>.pth           DWSNets-format SIREN state_dict (keys seq.N.*): the bundled MNIST-5k zoo's INR
                                      of the first test-split image of that digit, so it comes from the recipe every
                                      bundled INR metanetwork learned from, and none of them trained on it
    mlp-784-128-64-10.pt              bare state_dict of an MNIST-5k classifier (activation unknown: choose relu)
    mlp-digits-checkpoint.pth         training checkpoint {"model_state_dict", "optimizer_state_dict", "epoch"}
    cnn-digits-residual.safetensors   export format (architecture in metadata): conv + BatchNorm + residual + GAP
    lenet5-mnist.pt                   LeNet-5 state_dict (conv → flatten 16×5×5 → linear)

The INR examples are copied from the zoo, so they rebuild byte for byte anywhere. The others are trained here: on
one machine they rebuild to the same weights (the residual CNN's .safetensors bytes may still differ: safetensors
writes its metadata keys in a random order); across machines float rounding moves the weights (by up to 4e-5 for the
MLPs and LeNet-5 and by 0.13 for the residual CNN, between the bundled files and a rebuild on an AMD Zen 3 host,
2026-12-07).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from core.io import network_from_module, save_network
from core.io.atomic import save_torch
from core.network import Network
from core.paths import BUNDLED_ZOOS

MNIST_ZOO = BUNDLED_ZOOS / "mnist5k-inr"


class _ResidualCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = torch.relu(self.conv2(torch.relu(self.bn1(self.conv1(x)))) + x)
        return self.head(x.mean((2, 3)))


class LeNet5(nn.Module):
    """LeNet-5 on 1×28×28: conv5 pad2 → pool → conv5 → pool → flatten 16×5×5 = 400 → 120 → 84 → 10."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = F.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x.flatten(1))))))


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float = 3e-3) -> torch.optim.Optimizer:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(64):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    return opt


def example_inr(digit: int, zoo_dir: str | Path = MNIST_ZOO) -> Network:
    """The zoo's INR of the first test-split image showing `digit` (the table row rides along as metadata)."""
    from core.zoo import Zoo, ZooError

    zoo = Zoo.open(zoo_dir)
    test = zoo.split_indices("test")
    matches = test[zoo.labels(indices=test) == digit]
    if not len(matches):
        raise ZooError(f"the zoo {zoo_dir} has no test-split network of digit {digit}")
    return zoo.network(int(matches[0]))


def build_examples(out: str | Path) -> list[Path]:
    """Write the example checkpoints into `out`; returns their paths."""
    from core.zoo import load_images

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    written = []
    mnist, labels = load_images("mnist5k")
    digits, digit_labels = load_images("digits")

    for digit in (3, 8):
        path = out / f"siren-mnist-{digit}.pth"
        save_torch(example_inr(digit).state_dict(), path)
        written.append(path)

    x, y = mnist.reshape(len(mnist), -1), labels
    mlp = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
    _train(mlp, x, y, epochs=3)
    save_torch(mlp.state_dict(), out / "mlp-784-128-64-10.pt")
    written.append(out / "mlp-784-128-64-10.pt")

    xd = digits.reshape(len(digits), -1)
    small = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))
    opt = _train(small, xd, digit_labels, epochs=10)
    save_torch({"model_state_dict": small.state_dict(), "optimizer_state_dict": opt.state_dict(), "epoch": 10},
               out / "mlp-digits-checkpoint.pth")
    written.append(out / "mlp-digits-checkpoint.pth")

    cnn = _ResidualCNN()
    _train(cnn, digits[:, None], digit_labels, epochs=5)
    save_network(network_from_module(cnn, (1, 8, 8)), out / "cnn-digits-residual.safetensors")
    written.append(out / "cnn-digits-residual.safetensors")

    lenet = LeNet5()
    _train(lenet, mnist[:, None], labels, epochs=2)
    save_torch(lenet.state_dict(), out / "lenet5-mnist.pt")
    written.append(out / "lenet5-mnist.pt")
    return written
