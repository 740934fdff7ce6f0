"""Weight-space augmentations that change an INR's function in known ways (for training on INR zoos).

An INR whose first op is `Linear(d → h)` on the input coordinates (weight W [h, d], bias b) computes
f(x) = g(W x + b). An affine map of the coordinates folds exactly into that layer:

    f'(x) = f(A x + t)   with   W' = W A,   b' = b + W t,

so rendering f' on a grid equals rendering f on the transformed grid {A x + t}. `INRAugment` draws, per
network and independently:
    translate T   t ~ U(−T, T)^d                     (coordinates live on [−1, 1])
    rotate D      A = R(θ), θ ~ U(−D°, D°)           (2-D inputs only)
    scale S       A = s·I, s ~ U(1 − S, 1 + S)       (first-layer weights times s; the bias is unchanged)
combined as f'(x) = f(s R x + t). Then, on all parameters:
    noise σ       each parameter tensor + N(0, (σ·std)²), std over that tensor's entries in the network
                  (over the batch's networks for one-entry tensors, such as a single output bias)
    dropout p     each weight-matrix / kernel entry (not biases) set to 0 with probability p, without
                  rescaling the others (it models a missing weight, not activation dropout).
Training (`train --augment SPEC`) applies them only to tasks whose targets survive a change of function
(`Task.function_augmentation`): inr-classify, since a shifted or rotated digit is the same digit; inr-edit,
which redraws each augmented batch's target edit(render(θ')) from the transformed θ'; and embed's function
objective, which compares the transformed INRs' own renderings.
`parse_augment("ng")` gives the Neural Graphs settings (translate 0.25, rotate 45, scale 0.2, noise 0.1,
dropout 0.01). The symmetry-group augmentation (random permutations / sign flips, which leave the function
unchanged) is `core.symmetry.random_element` + `apply_to_flat`; it is not part of this module.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch

from core.errors import WeightSpaceError
from core.network.spec import Architecture, Conv, Linear


class AugmentError(WeightSpaceError, ValueError):
    """An augmentation setting is malformed, or the architecture does not admit the transform."""


def _first_layer(architecture: Architecture) -> tuple[slice, slice | None, int, int]:
    """(weight slice, bias slice or None, out features, in features) of the first layer in flat vectors."""
    op = architecture.ops[0] if architecture.ops else None
    d = architecture.input_shape
    if not isinstance(op, Linear) or len(d) != 1 or op.in_features != d[0]:
        raise AugmentError("coordinate transforms need an INR whose first op is a linear layer on the input "
                           f"coordinates; this architecture starts with {getattr(op, 'kind', 'nothing')}")
    w = slice(0, op.out_features * op.in_features)
    b = slice(w.stop, w.stop + op.out_features) if op.bias else None
    return w, b, op.out_features, op.in_features


def fold_input_transform(architecture: Architecture, flat: torch.Tensor, matrix: torch.Tensor,
                         shift: torch.Tensor) -> torch.Tensor:
    """Parameters of f'(x) = f(matrix·x + shift) per network: flat [B, P], matrix [B, d, d], shift [B, d]."""
    w_sl, b_sl, h, d = _first_layer(architecture)
    if matrix.shape != (flat.shape[0], d, d) or shift.shape != (flat.shape[0], d):
        raise AugmentError(f"need matrix [B, {d}, {d}] and shift [B, {d}] for {flat.shape[0]} networks")
    if b_sl is None and bool(shift.ne(0).any()):
        raise AugmentError("a translation needs a first-layer bias to fold into")
    out = flat.clone()
    w = flat[:, w_sl].view(-1, h, d)
    out[:, w_sl] = torch.bmm(w, matrix.to(flat)).reshape(flat.shape[0], -1)
    if b_sl is not None:
        out[:, b_sl] = flat[:, b_sl] + torch.bmm(w, shift.to(flat)[:, :, None])[:, :, 0]
    return out


def rotation_matrices(angles: torch.Tensor) -> torch.Tensor:
    """2-D rotation matrices [B, 2, 2] for angles [B] in radians."""
    c, s = torch.cos(angles), torch.sin(angles)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def _tensor_slices(architecture: Architecture) -> list[tuple[str, slice, bool]]:
    """(key, slice in the flat vector, whether it is a weight matrix / kernel) per parameter tensor."""
    weight_keys = {f"{op.name}.weight" for op in architecture.ops if isinstance(op, (Linear, Conv))}
    out, start = [], 0
    for key, shape in architecture.parameter_shapes():
        n = math.prod(shape)
        out.append((key, slice(start, start + n), key in weight_keys))
        start += n
    return out


def add_weight_noise(architecture: Architecture, flat: torch.Tensor, scale: float,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """flat + Gaussian noise with std `scale` × each parameter tensor's std (per network; see module doc)."""
    noise = torch.randn(flat.shape, generator=generator, dtype=flat.dtype).to(flat.device)
    out = flat.clone()
    for _, sl, _ in _tensor_slices(architecture):
        part = flat[:, sl]
        if part.shape[1] > 1:
            std = part.std(dim=1, keepdim=True)
        else:  # one entry per network: its spread over the batch
            std = part.std().expand(part.shape) if part.numel() > 1 else torch.zeros_like(part)
        out[:, sl] = part + scale * std * noise[:, sl]
    return out


def drop_weights(architecture: Architecture, flat: torch.Tensor, p: float,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Set each weight-matrix / kernel entry to 0 with probability p (biases and norms untouched)."""
    mask = torch.ones_like(flat, dtype=torch.bool)
    draw = torch.rand(flat.shape, generator=generator).to(flat.device) < p
    for _, sl, is_weight in _tensor_slices(architecture):
        if is_weight:
            mask[:, sl] = ~draw[:, sl]
    return flat * mask


@dataclass(frozen=True)
class INRAugment:
    """Random function-changing augmentation of INR weights; call as `aug(architecture, flat [B, P], generator)`."""

    translate: float = 0.0  # max |shift| per coordinate
    rotate: float = 0.0     # max |angle| in degrees
    scale: float = 0.0      # first-layer weight scale in [1 − scale, 1 + scale]
    noise: float = 0.0      # Gaussian noise std as a fraction of each tensor's std
    dropout: float = 0.0    # probability of zeroing each weight entry

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise AugmentError(f"augmentation {f.name} must be a finite number ≥ 0, got {value!r}")
        if self.scale >= 1:
            raise AugmentError(f"scale must be < 1 (weights scaled by 1 ± scale), got {self.scale}")
        if self.dropout >= 1:
            raise AugmentError(f"dropout must be < 1, got {self.dropout}")

    @property
    def moves_coordinates(self) -> bool:
        """Whether any coordinate transform (translate, rotate, scale) is on."""
        return bool(self.translate or self.rotate or self.scale)

    @property
    def keeps_function(self) -> bool:
        """Whether every transform is off (then the INR's function, and its renderings, stay as they were)."""
        return not any(asdict(self).values())

    def to_dict(self) -> dict[str, float]:
        """Settings as a JSON-ready dict (what a run's config records)."""
        return {k: float(v) for k, v in asdict(self).items()}

    def __call__(self, architecture: Architecture, flat: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        b = flat.shape[0]
        out = flat
        if self.moves_coordinates:
            d = _first_layer(architecture)[3]
            if self.rotate and d != 2:
                raise AugmentError(f"rotation needs 2-D input coordinates; this INR reads {d}")

            def uniform(*shape: int) -> torch.Tensor:
                return torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1

            matrix = torch.eye(d, dtype=torch.float64).expand(b, d, d)
            if self.rotate:
                matrix = rotation_matrices(uniform(b) * math.radians(self.rotate))
            if self.scale:
                matrix = matrix * (1 + self.scale * uniform(b))[:, None, None]
            shift = uniform(b, d) * self.translate
            out = fold_input_transform(architecture, out, matrix.to(out.device), shift.to(out.device))
        if self.noise:
            out = add_weight_noise(architecture, out, self.noise, generator)
        if self.dropout:
            out = drop_weights(architecture, out, self.dropout, generator)
        return out


NG_PRESET = INRAugment(translate=0.25, rotate=45.0, scale=0.2, noise=0.1, dropout=0.01)
PRESETS: dict[str, INRAugment] = {"ng": NG_PRESET, "none": INRAugment()}


def parse_augment(text: str) -> INRAugment:
    """`ng`, `none`, or `key=value,…` (keys translate, rotate, scale, noise, dropout); `ng,noise=0.05`
    starts from the preset and overrides one setting."""
    names = {f.name for f in fields(INRAugment)}
    settings: dict[str, Any] = {}
    for item in (t.strip() for t in str(text).split(",")):
        if not item:
            continue
        if "=" not in item:
            if item not in PRESETS:
                raise AugmentError(f"unknown augmentation preset {item!r}; presets: {', '.join(PRESETS)}")
            settings.update(PRESETS[item].to_dict())
            continue
        key, _, value = (s.strip() for s in item.partition("="))
        if key not in names:
            raise AugmentError(f"unknown augmentation {key!r}; choose from {', '.join(sorted(names))}")
        try:
            settings[key] = float(value)
        except ValueError:
            raise AugmentError(f"augmentation {key} needs a number, got {value!r}") from None
    return INRAugment(**settings)
