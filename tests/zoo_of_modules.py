"""A matrix of small nn.Modules, one per supported layer feature, used by round-trip and executor tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.examples import LeNet5 as ExampleLeNet5

ACTIVATION_MODULES = {
    "relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU, "silu": nn.SiLU, "identity": nn.Identity,
}


class Sine(nn.Module):
    """sin(w0·x) written so torch.fx sees `mul` then `sin`."""

    def __init__(self, w0: float = 30.0):
        super().__init__()
        self.w0 = w0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.w0 * x)


class Siren(nn.Module):
    """DWSNets-style SIREN: keys seq.N.*, sine after hidden layers, output + 0.5."""

    def __init__(self, hidden=(32, 32), w0: float = 30.0):
        super().__init__()
        widths = [2, *hidden, 1]
        self.seq = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.w0 = w0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.seq[:-1]:
            x = torch.sin(self.w0 * layer(x))
        return self.seq[-1](x) + 0.5


def mlp(widths: list[int], activation: str) -> nn.Sequential:
    """nn.Sequential MLP with `activation` between layers."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(Sine() if activation == "sine" else ACTIVATION_MODULES[activation]())
    return nn.Sequential(*layers)


class LeNet5(ExampleLeNet5):
    """The bundled LeNet-5 with average pooling after the second conv (both pooling kinds in one net)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = F.avg_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))))


class ResBlockNet(nn.Module):
    """Conv stem, a residual block with BatchNorm, global average pooling, linear head."""

    def __init__(self, channels: int = 8, kernel: int = 3):
        super().__init__()
        self.stem = nn.Conv2d(3, channels, kernel, padding=kernel // 2)
        self.conv1 = nn.Conv2d(channels, channels, kernel, padding=kernel // 2)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel, padding=kernel // 2)
        self.head = nn.Linear(channels, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        y = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.conv2(y) + x)
        return self.head(x.mean((2, 3)))


class MlpWithNorms(nn.Module):
    """MLP with BatchNorm1d and LayerNorm and an identity skip."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 16)
        self.bn = nn.BatchNorm1d(16)
        self.fc2 = nn.Linear(16, 16)
        self.ln = nn.LayerNorm(16)
        self.out = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.bn(self.fc1(x)))
        h = torch.tanh(self.ln(self.fc2(h))) + h
        return self.out(h)


def conv_net(kernel: int, stride: int, dims: int = 2, pool: str | None = None, head: str = "gap") -> nn.Sequential:
    """Conv → act → conv (→ pool) → GAP or flatten → linear."""
    conv = nn.Conv2d if dims == 2 else nn.Conv1d
    layers: list[nn.Module] = [conv(2, 4, kernel, stride=stride, padding=kernel // 2), nn.ReLU(),
                               conv(4, 6, kernel, padding=kernel // 2), nn.Tanh()]
    if pool == "max":
        layers.append(nn.MaxPool2d(2) if dims == 2 else nn.MaxPool1d(2))
    elif pool == "avg":
        layers.append(nn.AvgPool2d(2) if dims == 2 else nn.AvgPool1d(2))
    size = 12
    out = (size + 2 * (kernel // 2) - kernel) // stride + 1
    if pool:
        out //= 2
    if head == "gap":
        layers += [nn.AdaptiveAvgPool2d(1) if dims == 2 else nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(6, 3)]
    else:
        layers += [nn.Flatten(), nn.Linear(6 * out ** dims, 3)]
    return nn.Sequential(*layers)


def randomise_batchnorm(module: nn.Module) -> nn.Module:
    """Give BatchNorm layers non-trivial running statistics and affine parameters."""
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.normal_()
            m.bias.data.normal_()
        if isinstance(m, nn.LayerNorm):
            m.weight.data.normal_()
            m.bias.data.normal_()
    return module


def cases() -> list[tuple[str, nn.Module, tuple[int, ...]]]:
    """(id, module, input_shape) for the round-trip / executor matrix."""
    out: list[tuple[str, nn.Module, tuple[int, ...]]] = []
    for widths in ([3, 5, 2], [4, 16, 16, 1], [2, 8, 8, 8, 8, 3]):
        out.append((f"mlp-{'-'.join(map(str, widths))}", mlp(widths, "relu"), (widths[0],)))
    for act in ["relu", "leaky_relu", "tanh", "sigmoid", "gelu", "silu", "identity", "sine"]:
        out.append((f"mlp-{act}", mlp([3, 7, 5, 2], act), (3,)))
    out.append(("siren", Siren(), (2,)))
    for kernel in (1, 3, 5, 7):
        for stride in (1, 2):
            out.append((f"cnn-k{kernel}-s{stride}-gap", conv_net(kernel, stride), (2, 12, 12)))
    out.append(("cnn-flatten", conv_net(3, 1, head="flatten"), (2, 12, 12)))
    out.append(("cnn-maxpool-flatten", conv_net(3, 2, pool="max", head="flatten"), (2, 12, 12)))
    out.append(("cnn-avgpool-gap", conv_net(5, 1, pool="avg"), (2, 12, 12)))
    out.append(("cnn1d-flatten", conv_net(3, 1, dims=1, head="flatten"), (2, 12)))
    out.append(("lenet5", LeNet5(), (1, 28, 28)))
    out.append(("resnet-bn", randomise_batchnorm(ResBlockNet()), (3, 10, 10)))
    out.append(("resnet-bn-k5", randomise_batchnorm(ResBlockNet(4, 5)), (3, 9, 9)))
    out.append(("mlp-bn-ln-skip", randomise_batchnorm(MlpWithNorms()), (6,)))
    return out
