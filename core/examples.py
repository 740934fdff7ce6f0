"""Bundled example checkpoints (assets/examples), rebuilt exactly by `python -m core examples --out assets/examples`.

Each shows one kind of file the app and CLI read:
    siren-mnist-<label>.pth           DWSNets-format SIREN state_dict (keys seq.N.*) fitted to an MNIST-5k digit
    mlp-784-128-64-10.pt              bare state_dict of an MNIST-5k classifier (activation unknown: choose relu)
    mlp-digits-checkpoint.pth         training checkpoint {"model_state_dict", "optimizer_state_dict", "epoch"}
    cnn-digits-residual.safetensors   export format (architecture in metadata): conv + BatchNorm + residual + GAP
    lenet5-mnist.pt                   LeNet-5 state_dict (conv → flatten 16×5×5 → linear)
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from core.io import network_from_module, save_network
from core.io.atomic import atomic_path


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


def _save(obj: object, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def build_examples(out: str | Path) -> list[Path]:
    """Write the example checkpoints into `out`; returns their paths."""
    from core.zoo import load_images
    from core.zoo.inr import fit_inrs

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    written = []
    mnist, labels = load_images("mnist5k")
    digits, digit_labels = load_images("digits")

    from core.network import Network, siren_architecture

    for digit in (3, 8):
        i = int((labels == digit).nonzero()[0, 0])
        flat, _, _ = fit_inrs(mnist[i:i + 1], steps=1000, seeds=i)
        net = Network.from_flat(siren_architecture(), flat[0])
        path = out / f"siren-mnist-{int(labels[i])}.pth"
        _save(net.state_dict(), path)
        written.append(path)

    x, y = mnist.reshape(len(mnist), -1), labels
    mlp = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
    _train(mlp, x, y, epochs=3)
    _save(mlp.state_dict(), out / "mlp-784-128-64-10.pt")
    written.append(out / "mlp-784-128-64-10.pt")

    xd = digits.reshape(len(digits), -1)
    small = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))
    opt = _train(small, xd, digit_labels, epochs=10)
    _save({"model_state_dict": small.state_dict(), "optimizer_state_dict": opt.state_dict(), "epoch": 10},
          out / "mlp-digits-checkpoint.pth")
    written.append(out / "mlp-digits-checkpoint.pth")

    cnn = _ResidualCNN()
    _train(cnn, digits[:, None], digit_labels, epochs=5)
    save_network(network_from_module(cnn, (1, 8, 8)), out / "cnn-digits-residual.safetensors")
    written.append(out / "cnn-digits-residual.safetensors")

    lenet = LeNet5()
    _train(lenet, mnist[:, None], labels, epochs=2)
    _save(lenet.state_dict(), out / "lenet5-mnist.pt")
    written.append(out / "lenet5-mnist.pt")
    return written
