"""INR-editing baselines: edits that only remap output intensity, and the best change of the last layer alone.

An editor's score is the test MSE of its edited renderings against edit(rendering), divided by the unedited INR's
(the identity edit). On blurry INR renderings a grey erosion mostly darkens, so a large part of that ratio needs no
spatial understanding at all. These baselines measure that part, and what the last layer alone can do:

- `output-affine`: one intensity map a·f + b for the whole zoo, fitted by least squares on the train split and
  written into each INR's weights (`affine_output_edit`: last layer scaled, bias shifted), i.e. an edit an editor
  could output; scored by rendering the edited INRs.
- `per-image-affine`: the best a·f + b for each test image against its own target (an oracle that reads the
  target): a lower bound for every edit of the output layer's scale and bias.
- `pointwise-map`: the best shared map g(f) of a pixel's rendered value (binned), fitted on the train split. Not a
  weight edit (the output layer is linear): a bound for edits that look at one pixel's value only.
- `last-layer`: each INR's best change of its last layer alone (weights and bias, least squares on its hidden
  features against its own target: an oracle): how much of the edit the INR's own hidden features can express.

All return the test split's MSE ratio to the identity edit.
"""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Callable
from typing import Any

import torch

from core.bench.inr_baselines import rendered_split, zoo_resolution
from core.errors import ArchitectureError
from core.network.execute import forward_many
from core.network.spec import Architecture, Offset
from core.tasks.edit import EDITS, apply_edit, best_affine_per_image, render
from core.zoo.inr import coordinate_grid


@functools.lru_cache(maxsize=4)  # every baseline and edit reads the same two splits: render each once
def _split_images(zoo: Any, split: str) -> torch.Tensor:
    return rendered_split(zoo, split)[0]


def edit_pairs(zoo: Any, split: str, edit: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A split's renderings and their edits, [n, r²] each."""
    images = _split_images(zoo, split)
    return images.flatten(1), apply_edit(images, edit).flatten(1)


def fit_affine(images: torch.Tensor, targets: torch.Tensor) -> tuple[float, float]:
    """Least-squares (a, b) with a·images + b ≈ targets over every pixel of every image."""
    x = torch.stack([images.flatten().double(), torch.ones(images.numel(), dtype=torch.float64)], 1)
    a, b = torch.linalg.lstsq(x, targets.flatten().double()[:, None]).solution.flatten().tolist()
    return a, b


def affine_output_edit(architecture: Architecture, flat: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """Parameters [B, P] of INRs whose output is a·f + b, f the INRs `flat` [B, P] (last layer W, c → aW, ac + b +
    (a − 1)·offset, for an architecture that ends in a linear layer and constant offsets)."""
    ops, last = architecture.ops, architecture.weight_layers()[-1]
    if not all(isinstance(op, Offset) for op in ops[last + 1:]):
        raise ArchitectureError("an output-affine edit needs a network that ends in a linear layer (offsets allowed)")
    offset = sum(op.value for op in ops[last + 1:])
    shapes = architecture.parameter_shapes()
    name = ops[last].name
    if f"{name}.bias" not in dict(shapes):
        raise ArchitectureError("an output-affine edit needs a bias in the network's last layer")
    sizes = [int(torch.Size(shape).numel()) for _, shape in shapes]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    out = flat.clone()
    for (param, _), start, size in zip(shapes, starts, sizes, strict=True):
        if param == f"{name}.weight":
            out[:, start:start + size] *= a
        elif param == f"{name}.bias":
            out[:, start:start + size] = a * out[:, start:start + size] + b + (a - 1) * offset
    return out


def _ratio(edited: torch.Tensor, images: torch.Tensor, targets: torch.Tensor) -> float:
    return float(((edited - targets) ** 2).mean() / ((images - targets) ** 2).mean())


def output_affine(zoo: Any, edit: str) -> float:
    """Test MSE ratio of one a·f + b (fitted on the train split) applied as a weight edit to every test INR."""
    a, b = fit_affine(*edit_pairs(zoo, "train", edit))
    images, targets = edit_pairs(zoo, "test", edit)
    architecture, flat = zoo.flat(zoo.split_indices("test"))
    with torch.no_grad():
        edited = render(architecture, affine_output_edit(architecture, flat.double(), a, b), zoo_resolution(zoo))
    return _ratio(edited.float(), images, targets)


def per_image_affine(zoo: Any, edit: str) -> float:
    """Test MSE ratio of each image's own best a·f + b (fitted against its target: an oracle)."""
    images, targets = edit_pairs(zoo, "test", edit)
    return _ratio(best_affine_per_image(images, targets), images, targets)


def best_last_layer(architecture: Architecture, flat: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Each INR's renderings [B, r²] after the least-squares change of its last layer only (weights and bias) that
    best matches `targets` [B, r²] (an oracle: it reads the targets); float64."""
    last = architecture.weight_layers()[-1]
    body = Architecture(ops=architecture.ops[:last], input_shape=architecture.input_shape)
    side = int(targets.shape[1] ** 0.5)
    grid = coordinate_grid(side, side, dtype=torch.float64)
    # parameters are stored layer by layer, so the body's are the first ones
    hidden = forward_many(body, flat[:, :body.num_parameters].double(), grid).flatten(2)        # [B, r², H]
    x = torch.cat([hidden, torch.ones_like(hidden[..., :1])], 2)                               # [B, r², H + 1]
    return (x @ torch.linalg.lstsq(x, targets.double()[..., None]).solution).squeeze(-1)


def last_layer(zoo: Any, edit: str) -> float:
    """Test MSE ratio of each INR's best change of its last layer alone (fitted against its target: an oracle)."""
    images, targets = edit_pairs(zoo, "test", edit)
    architecture, flat = zoo.flat(zoo.split_indices("test"))
    return _ratio(best_last_layer(architecture, flat, targets).float(), images, targets)


def fit_pointwise_map(images: torch.Tensor, targets: torch.Tensor,
                      bins: int = 64) -> Callable[[torch.Tensor], torch.Tensor]:
    """The map of a pixel's value that best predicts its target (mean target per value bin over all pixels)."""
    images, targets = images.double().flatten(), targets.double().flatten()
    bounds = torch.linspace(float(images.min()), float(images.max()), bins + 1, dtype=torch.float64)
    inner = bounds[1:-1]
    which = torch.bucketize(images, inner)
    total = torch.zeros(bins, dtype=torch.float64).index_add_(0, which, targets)
    count = torch.bincount(which, minlength=bins).double()
    table = torch.where(count > 0, total / count.clamp(min=1), (bounds[:-1] + bounds[1:]) / 2)  # empty bin: identity
    return lambda x: table[torch.bucketize(x.double(), inner)].to(x.dtype)


def pointwise_map(zoo: Any, edit: str, bins: int = 64) -> float:
    """Test MSE ratio of the best shared map of a pixel's value, fitted on the train split."""
    mapping = fit_pointwise_map(*edit_pairs(zoo, "train", edit), bins=bins)
    images, targets = edit_pairs(zoo, "test", edit)
    return _ratio(mapping(images), images, targets)


INR_EDIT_BASELINES = {"output-affine": output_affine, "per-image-affine": per_image_affine,
                      "pointwise-map": pointwise_map, "last-layer": last_layer}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m core bench inr-edit-baselines`."""
    parser.add_argument("--zoo", default="assets/zoos/mnist5k-inr", help="INR zoo (default the bundled MNIST-5k)")
    parser.add_argument("--edits", nargs="+", choices=list(EDITS), default=["dilate", "erode"])
    parser.add_argument("--baselines", nargs="+", choices=list(INR_EDIT_BASELINES), default=list(INR_EDIT_BASELINES))
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    """Print each baseline's test MSE ratio to the identity edit, per edit."""
    from core.zoo import Zoo

    zoo = Zoo.open(args.zoo)
    result: dict[str, dict[str, float]] = {}
    for edit in args.edits:
        result[edit] = {name: INR_EDIT_BASELINES[name](zoo, edit) for name in args.baselines}
        if not args.json:
            print(f"{edit:7s} " + "  ".join(f"{name} {ratio:.3f}" for name, ratio in result[edit].items()), flush=True)
    if args.json:
        print(json.dumps({"benchmark": "inr-edit-baselines", "zoo": str(args.zoo), "mse_ratio": result}))
    return 0
