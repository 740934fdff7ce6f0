"""`embed`: self-supervised graph-level embeddings for comparing zoos.

Contrastive (supervised-contrastive form of NT-Xent): each network appears twice in a batch, as two
independently transformed copies; positives are the two copies and any networks that share a
`positive_column` value (e.g. INRs fitted to the same image from different seeds). No labels needed.
The second copy is a random symmetry transform. A metanetwork invariant to that transform maps both copies to
the same point, so with one network per image that alone makes the task trivial (nothing pulls two different
sevens together); one equivariant to only some of the kinds drawn (ng-gnn: permutations, not SIREN sign flips)
sees copies that differ in ways unrelated to the image.
`views` adds function-changing INR weight transforms (`core.zoo.inr_augment`, e.g. `ng`: translation, rotation,
scale, noise, weight dropout), drawn independently for each copy, SimCLR-style: the embedding must then ignore
what those transforms change and keep what they leave, such as the digit.
`objective="function"` (INR zoos) replaces the contrastive loss with function-similarity matching: the cosine
similarities of a batch's embeddings are regressed onto the Pearson correlations of the INRs' renderings (at the
resolution they were fitted at), ‖Ẑ Ẑᵀ − C‖² over pairs, so the embedding is a learned low-rank map of the
functions' geometry, read from the weights (no labels, no views; one forward pass per batch). Pixel 1-NN on the
renderings (`bench inr-baselines --baselines pixel-1nn`) is its natural reference. It takes the trainer's
function-changing weight transforms (`train --augment ng`): the targets are the transformed INRs' own renderings.
Evaluation also reports leave-one-out 1-NN accuracy of the `label` column when the zoo has one, and
otherwise (CNN zoos) the Kendall τ between each network's `test_accuracy` and the mean test accuracy of
its 5 nearest neighbours in embedding space: how well the embedding orders networks by quality.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from core.options import Option
from core.tasks.base import Task, TaskError, register_task

if TYPE_CHECKING:
    from core.data import GraphBatch


OBJECTIVES = ("contrastive", "function")
VIEW_KINDS = ("permutation", "sign", "scale")  # symmetry kinds of the contrastive second copy (no phase shifts)


def function_similarity_loss(z: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Mean over pairs i ≠ j of (cos(z_i, z_j) − corr(f_i, f_j))² for embeddings z [M, d] and renderings [M, pixels]."""
    z = F.normalize(z.float(), dim=-1)
    f = images.float()
    f = F.normalize(f - f.mean(1, keepdim=True), dim=-1)  # a constant image correlates with nothing (norm 0 → 0)
    off = ~torch.eye(len(z), dtype=torch.bool, device=z.device)
    return ((z @ z.T - f @ f.T)[off] ** 2).mean()


def supervised_contrastive(z: torch.Tensor, groups: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean over anchors of −log Σ_pos exp(s/τ) / Σ_{≠anchor} exp(s/τ) on unit-norm embeddings z [M, d]."""
    z = F.normalize(z.float(), dim=-1)
    sim = z @ z.T / temperature
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(eye, float("-inf"))
    positive = (groups[:, None] == groups[None, :]) & ~eye
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    pos_log = torch.logsumexp(log_prob.masked_fill(~positive, float("-inf")), dim=1)
    return -pos_log[positive.any(1)].mean()


@register_task
class EmbedTask(Task):
    """Graph head of width `dim`; predictions are unit-norm embeddings."""

    name = "embed"
    primary_metric = "loss"
    greater_is_better = False
    summary_metrics = ("knn_accuracy", "knn_kendall_tau")
    cli_options = (Option("dim", int, "embedding size (default 32)"),
                   Option("views", str, "INR weight transforms drawn independently for each of the two views, e.g. "
                                        "`ng` or `translate=0.1,rotate=15` (default: symmetry transforms only)"),
                   Option("objective", str, "contrastive (default: symmetry copies and shared-image INRs are "
                                            "positives) or function (match the renderings' correlations; INR zoos)"))
    benchmark = False
    embedding = True

    def __init__(self, dim: int = 32, temperature: float = 0.1, positive_column: str | None = "image_index",
                 label_column: str = "label", views: str | None = None, objective: str = "contrastive",
                 resolution: int | None = None):
        from core.zoo.inr_augment import INRAugment, parse_augment

        if objective not in OBJECTIVES:
            raise TaskError(f"unknown embed objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
        if objective == "function" and views:
            raise TaskError("embed --objective function compares each INR's own rendering: it takes no --views")
        self.objective = objective
        self.resolution = resolution
        self.dim = dim
        self.views = views or None
        view_transform = parse_augment(views) if views else INRAugment()
        self._view_transform = view_transform if view_transform != INRAugment() else None
        self.temperature = temperature
        self.positive_column = positive_column
        self.label_column = label_column
        from core.data import symmetry_augment  # (imported here: listing the tasks stays light)

        # the second copy keeps ReLU positive scales, unlike training augmentation (core.data.AUGMENT_KINDS): a
        # ReLU network admits no sign flips, so without them the copy is a permutation, which every graph model is
        # invariant to, and the pair teaches nothing (cnn-digits, ng-gnn, 3 seeds: 1-NN Kendall τ 0.358 ± 0.081
        # with scales, 0.287 ± 0.206 without)
        self._augment = symmetry_augment(VIEW_KINDS)

    @property
    def function_augmentation(self) -> bool:  # type: ignore[override]
        """Weight transforms that change functions suit the function objective: it renders the transformed INRs."""
        return self.objective == "function"

    def options(self) -> dict[str, Any]:
        return {"dim": self.dim, "temperature": self.temperature, "positive_column": self.positive_column,
                "label_column": self.label_column, "views": self.views,
                "objective": self.objective, "resolution": self.resolution}

    def out_dim(self, table=None) -> int:
        return self.dim

    def adapt_to_zoo(self, zoo) -> None:
        """The function objective renders at the resolution the INRs were fitted at, when the zoo says."""
        from core.tasks.edit import fitted_resolution

        if self.objective == "function":
            self.resolution = self.resolution or fitted_resolution(zoo)

    def check_zoo(self, zoo) -> None:
        """`views` and the function objective need coordinate networks (INRs): refuse others now, not at a batch."""
        from core.tasks.edit import check_image_inr_zoo

        if self.objective == "function":
            check_image_inr_zoo(zoo, "embed --objective function")
        if self._view_transform is not None:
            for architecture, flat in zoo.first_of_each_group():
                self._view_transform(architecture, flat.double(), torch.Generator().manual_seed(0))

    def targets(self, table, rows: np.ndarray) -> torch.Tensor | None:
        if self.label_column in table:
            return torch.as_tensor(table[self.label_column].to_numpy()[rows], dtype=torch.long)
        if "test_accuracy" in table:  # CNN zoos: judged by how neighbours' accuracies agree
            return torch.as_tensor(table["test_accuracy"].to_numpy()[rows], dtype=torch.float64)
        return None

    def extras(self, architecture, flat: torch.Tensor, table, rows: np.ndarray) -> dict[str, torch.Tensor]:
        col = self.positive_column
        ids = table[col].to_numpy()[rows] if col and col in table else rows
        return {"positive_group": torch.as_tensor(ids, dtype=torch.long)}

    def loss(self, output: torch.Tensor, batch: GraphBatch) -> torch.Tensor:
        """Single-view loss: positives are networks sharing a positive group (`step` adds the second view)."""
        return supervised_contrastive(output, batch.extras["positive_group"].to(output.device), self.temperature)

    def step(self, model: torch.nn.Module, batch: GraphBatch) -> tuple[torch.Tensor, torch.Tensor]:
        from core.graph.neural_graph import to_graphs

        if self.objective == "function":
            from core.tasks.edit import DEFAULT_RESOLUTION, render

            z = model(batch.graph)
            with torch.no_grad():
                images = render(batch.architecture, batch.flat.float(), self.resolution or DEFAULT_RESOLUTION)
            return function_similarity_loss(z, images), self.embedding_of(z)

        # evaluation: the views depend on the networks only (reproducible metrics); training: fresh
        seed = int(batch.index.sum()) if not model.training else int(torch.randint(0, 2**31 - 1, (), device="cpu"))
        gen = torch.Generator().manual_seed(seed)
        grid = batch.graph.grid_size[0]
        with torch.device("cpu"):  # views are drawn (CPU generator) and converted on the CPU, as batches are
            flat = batch.flat.detach().cpu()
            view1 = batch.graph
            if self._view_transform is not None:
                first = self._view_transform(batch.architecture, flat.double(), gen).to(flat.dtype)
                first = self.model_input(batch.architecture, first)
                view1 = to_graphs(batch.architecture, first, grid).to(batch.flat.device)
                flat = self._view_transform(batch.architecture, flat.double(), gen).to(flat.dtype)
            second = self.model_input(batch.architecture, self._augment(batch.architecture, flat, gen))
            view2 = to_graphs(batch.architecture, second, grid).to(batch.flat.device)
        z1, z2 = model(view1), model(view2)
        groups = batch.extras["positive_group"].to(z1.device)
        loss = supervised_contrastive(torch.cat([z1, z2]), torch.cat([groups, groups]), self.temperature)
        # evaluation's k-NN metrics embed the untransformed networks (training uses its predictions only for the
        # networks' count, so it skips that extra forward pass)
        z = z1 if self._view_transform is None or model.training else model(batch.graph)
        return loss, self.embedding_of(z)

    def predict_step(self, model: torch.nn.Module, batch: GraphBatch) -> torch.Tensor:
        return self.embedding_of(model(batch.graph))

    def embedding_of(self, output: torch.Tensor) -> torch.Tensor:
        # unit vectors: the k-NN metrics and the objective compare embeddings by cosine similarity
        return F.normalize(output.detach().float(), dim=-1)

    def metrics(self, predictions: torch.Tensor, targets: torch.Tensor | None) -> dict[str, float]:
        out: dict[str, float] = {}
        if targets is None or len(targets) < 2:
            return out
        sim = predictions @ predictions.T
        sim.fill_diagonal_(-float("inf"))
        if targets.is_floating_point():
            from core.tasks.generalization import kendall_tau

            k = min(5, len(targets) - 1)
            neighbours = sim.topk(k, dim=1).indices  # [M, k], never the network itself
            out["knn_kendall_tau"] = kendall_tau(targets[neighbours].mean(1).numpy(), targets.numpy())
        else:
            out["knn_accuracy"] = float((targets[sim.argmax(1)] == targets).float().mean())
        return out

    def format_prediction(self, prediction: torch.Tensor) -> dict[str, Any]:
        return {"embedding": [float(v) for v in prediction]}
