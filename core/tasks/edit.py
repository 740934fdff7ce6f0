"""`inr-edit`: an equivariant model predicts a parameter update so that the edited INR renders the edited image.

Edits act on the INR's own rendering at `resolution` (as in the papers): `dilate` = 3×3 grey dilation
(max filter), `erode` = 3×3 grey erosion (min filter), `blur` = 3×3 box blur. Pixels outside the image
are ignored by the filters. Metric: MSE of the edited INR's rendering vs the target, next to the identity
baseline (the unedited INR vs the target); `bench inr-edit-baselines` gives the edits that only remap intensity
(on smooth INR renderings erosion is mostly one: compare an editor's erode ratio with them).

Function-changing weight transforms (`train --augment ng`: translation, rotation, scale, noise, dropout) are
allowed: a transformed INR is a new training pair whose target is edit(render(transformed θ)), drawn afresh for
every such batch (the stored targets belong to the untransformed networks). Symmetry transforms keep the function,
so their batches keep the stored targets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from core.graph.layout import layout_for
from core.network.execute import forward_many
from core.network.spec import Architecture, Network
from core.options import Option
from core.tasks.base import Task, TaskError, register_task

if TYPE_CHECKING:
    from core.data import GraphBatch

EDITS = ("dilate", "erode", "blur")


def edit_mse(images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image [B] between renderings [B, ...] and the edit's target images [B, ...]."""
    return ((images - target) ** 2).flatten(1).mean(1)


def best_affine_per_image(images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Each image's least-squares a·f + b against its own target, [n, r²] (images, targets [n, r²])."""
    x = torch.stack([images.double(), torch.ones_like(images, dtype=torch.float64)], 2)  # [n, r², 2]
    coef = torch.linalg.lstsq(x, targets.double()[..., None]).solution                   # [n, 2, 1]
    return (x @ coef).squeeze(-1).to(images.dtype)


def intensity_only_mse(images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE per image [B] of the best edit of intensity alone (a·f + b, fitted against the target: an oracle), for
    renderings and targets [B, ...]: an editor under it changes shapes, not only brightness."""
    images, target = images.flatten(1), target.flatten(1)
    return edit_mse(best_affine_per_image(images, target), target)


def apply_edit(images: torch.Tensor, edit: str) -> torch.Tensor:
    """Edit a batch of images [B, H, W] with a 3×3 filter."""
    x = images[:, None]
    if edit == "dilate":
        out = F.max_pool2d(x, 3, 1, 1)
    elif edit == "erode":
        out = -F.max_pool2d(-x, 3, 1, 1)
    elif edit == "blur":
        out = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    else:
        raise TaskError(f"unknown edit {edit!r}; choose one of {', '.join(EDITS)}")
    return out[:, 0]


DEFAULT_RESOLUTION = 28  # MNIST's side: the rendering size when neither the zoo nor the run records one


def fitted_resolution(zoo: Any) -> int | None:
    """Side of the images an INR zoo was fitted to, as its manifest records (None when it does not say)."""
    shape = zoo.manifest.get("source", {}).get("image_shape")
    return int(shape[0]) if shape else None


def is_image_inr(architecture: Architecture) -> bool:
    """Whether the network maps 2-D coordinates to one value (an image INR that `render` can draw)."""
    return architecture.input_shape == (2,) and architecture.output_shape == (1,)


def check_image_inr_zoo(zoo: Any, what: str) -> None:
    """Refuse, naming `what`, a zoo with a group that is not 2-D image INRs (before training starts)."""
    for architecture, _ in zoo.first_of_each_group():
        if not is_image_inr(architecture):
            raise TaskError(f"{what} needs 2-D image INRs (2 inputs, 1 output)")


def render(architecture: Architecture, flat: torch.Tensor, resolution: int) -> torch.Tensor:
    """Render INRs (flat parameters [B, P]) on the [-1, 1] grid: [B, resolution²]."""
    from core.zoo.inr import coordinate_grid

    with torch.device(flat.device):  # made where the parameters are, not on the default device
        grid = coordinate_grid(resolution, resolution, dtype=flat.dtype)
    return forward_many(architecture, flat, grid).squeeze(-1)


def params_update(architecture: Architecture, output: Any, batch_size: int, grid_size: int) -> torch.Tensor:
    """Map an equivariant ParamsOutput (per node / per edge) to a flat parameter update [B, P]."""
    layout = layout_for(architecture, grid_size)
    x = output.x.reshape(batch_size, layout.num_nodes, -1)
    e = output.edge_attr.reshape(batch_size, layout.num_edges, -1)
    return layout.params_from_features(x, e)


@register_task
class EditTask(Task):
    """Learn Δθ with render(θ + Δθ) ≈ edit(render(θ))."""

    name = "inr-edit"
    head = "params"
    primary_metric = "mse"
    greater_is_better = False
    summary_metrics = ("mse", "identity_mse")
    cli_options = (Option("edit", str, "dilate, erode or blur (default dilate)", EDITS),)
    predict_command = "edit"
    function_augmentation = True  # the target is redrawn from the transformed INR (`source_and_target`)

    def __init__(self, edit: str = "dilate", resolution: int | None = None):
        if edit not in EDITS:
            raise TaskError(f"unknown edit {edit!r}; choose one of {', '.join(EDITS)}")
        self.edit = edit
        self.resolution = resolution

    def options(self) -> dict[str, Any]:
        return {"edit": self.edit, "resolution": self.resolution}

    def adapt_to_zoo(self, zoo: Any) -> None:
        """Edit at the resolution the INRs were fitted at (what they faithfully represent), when the zoo says."""
        self.resolution = self.resolution or fitted_resolution(zoo)

    def out_dim(self, table=None) -> int:
        if self.resolution is None and table is not None:
            self.resolution = int(table["resolution"].iloc[0]) if "resolution" in table else DEFAULT_RESOLUTION
        return 1

    @torch.no_grad()
    def _render_and_edit(self, architecture: Architecture, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Renderings of the INRs `flat` [B, P] and their edits, [B, resolution²] each (float32)."""
        res = self.resolution or DEFAULT_RESOLUTION
        images = torch.cat([render(architecture, flat[s:s + 512].float(), res) for s in range(0, len(flat), 512)])
        return images, apply_edit(images.view(-1, res, res), self.edit).reshape(len(flat), -1)

    def extras(self, architecture, flat: torch.Tensor, table, rows: np.ndarray) -> dict[str, torch.Tensor]:
        if not is_image_inr(architecture):
            raise TaskError("inr-edit needs 2-D image INRs (2 inputs, 1 output)")
        source, target = self._render_and_edit(architecture, flat)
        return {"source": source, "target": target}

    def source_and_target(self, batch: GraphBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's unedited renderings and edit targets: stored ones, redrawn when an augmentation changed the
        batch's functions (`GraphBatch.augmented`)."""
        if batch.augmented:
            return self._render_and_edit(batch.architecture, batch.flat)
        return batch.extras["source"], batch.extras["target"]

    def edited_images(self, output: Any, batch: GraphBatch) -> torch.Tensor:
        """Renderings of the edited INRs [B, resolution²]."""
        b = batch.flat.shape[0]
        delta = params_update(batch.architecture, output, b, batch.graph.grid_size[0])
        return render(batch.architecture, batch.flat.to(delta.dtype) + delta, self.resolution or DEFAULT_RESOLUTION)

    def loss(self, output: Any, batch: GraphBatch) -> torch.Tensor:
        return F.mse_loss(self.edited_images(output, batch).float(), self.source_and_target(batch)[1])

    def predictions(self, output: Any, batch: GraphBatch) -> torch.Tensor:
        with torch.no_grad():
            edited = self.edited_images(output, batch).float()
            source, target = self.source_and_target(batch)
            return torch.stack([edit_mse(edited, target), edit_mse(source, target)], 1)

    def metrics(self, predictions: torch.Tensor, targets: torch.Tensor | None) -> dict[str, float]:
        mse, identity = float(predictions[:, 0].mean()), float(predictions[:, 1].mean())
        return {"mse": mse, "identity_mse": identity, "mse_ratio": mse / identity if identity else float("nan")}

    @torch.no_grad()
    def edit_networks(self, model: torch.nn.Module, networks: list[Network], grid_size: int,
                      resolution: int | None = None) -> list[dict[str, Any]]:
        """Apply a trained editor: per network {"network": edited Network, "source", "edited", "target" images,
        "mse", "identity_mse", "intensity_only_mse"}, rendered at `resolution` (default: the task's training
        resolution)."""
        from core.data import graph_set_from_networks

        res = resolution or self.resolution or DEFAULT_RESOLUTION
        task = EditTask(self.edit, res)
        for net in networks:
            net.architecture.check_known_activations()
        data = graph_set_from_networks(networks, task, grid_size)
        model.eval()
        results: list[dict[str, Any]] = [{} for _ in networks]
        device = next(model.parameters()).device
        for batch in data.batches(64):
            batch = batch.to(device)
            out = model(batch.graph)
            delta = params_update(batch.architecture, out, batch.flat.shape[0], grid_size)
            edited = batch.flat + delta.to(batch.flat.dtype)
            images = render(batch.architecture, edited, res)
            source, target = batch.extras["source"], batch.extras["target"]
            mse, identity = edit_mse(images, target), edit_mse(source, target)
            intensity = intensity_only_mse(source, target)
            edited, images, source, target = (t.cpu() for t in (edited, images, source, target))  # results: CPU
            for k, i in enumerate(batch.index.tolist()):
                original = networks[i]
                net = Network.from_flat(batch.architecture, edited[k].to(original.dtype), dict(original.meta))
                results[i] = {"network": net, "source": source[k].view(res, res),
                              "edited": images[k].view(res, res), "target": target[k].view(res, res),
                              "mse": float(mse[k]), "identity_mse": float(identity[k]),
                              "intensity_only_mse": float(intensity[k])}
        return results
