"""Paired comparison of runs on one zoo split: every network's score under each run, and a bootstrap interval for
the difference between two groups of runs (two recipes, a few seeds each).

Pairing takes the networks' shared difficulty out of the comparison: two recipes scored on the same 1,000 INRs
differ by far less noise than two accuracies measured apart. The INRs of one image are not independent (a refit
zoo holds several INRs of each image), so the bootstrap resamples source images (the table's `image_index`) with
all their INRs, where the zoo has that column, and single networks otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.runs import Run, run_split
from core.tasks import TaskError


@dataclass
class GroupScores:
    """The per-network scores of a group of runs (e.g. the seeds of one recipe) on one split."""

    name: str
    paths: list[str]
    scores: np.ndarray  # [runs, networks], networks in table-row order

    @property
    def per_network(self) -> np.ndarray:
        """Each network's score averaged over the group's runs: its mean is the runs' mean metric."""
        return self.scores.mean(0)

    @property
    def run_means(self) -> np.ndarray:
        """Each run's metric (the mean of its scores)."""
        return self.scores.mean(1)


@dataclass
class PairedDifference:
    """`mean` = mean score of `b` − mean score of `a`, with a bootstrap interval over `clusters` resamples."""

    a: str
    b: str
    mean: float
    low: float
    high: float
    confidence: float
    clusters: int
    resamples: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return dict(self.__dict__)


def network_scores(run: Run, zoo: Any, split: str | None, device: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """(table rows, per-network scores) of one run on a zoo split, sorted by row."""
    if run.task.network_score is None:
        raise TaskError(f"{run.path}: {run.config.task} has no per-network score to compare runs on "
                        f"(inr-classify: accuracy; generalization: squared error)")
    data = run_split(run, zoo, split)
    predictions = run.trainer(device).predict(data)
    scores = run.task.network_scores(predictions, data.targets())
    rows = torch.cat([g.index for g in data.groups]).numpy()
    order = np.argsort(rows, kind="stable")
    return rows[order], scores[order]


def score_groups(groups: dict[str, list[Run]], zoo: Any, split: str | None,
                 device: str = "auto", progress: bool = False) -> tuple[np.ndarray, list[GroupScores]]:
    """(table rows, the scores of each group) for groups of runs of one task on the same split."""
    from tqdm.auto import tqdm

    runs = [run for members in groups.values() for run in members]
    if not runs:
        raise TaskError("compare needs at least one run")
    first = runs[0]
    for run in runs:
        if run.config.task != first.config.task:
            raise TaskError(f"{run.path}: its task is {run.config.task}, the first run's is {first.config.task}; "
                            f"compare scores runs of one task")
    rows, out, scored = None, [], {}
    bar = tqdm(total=len({r.path.resolve() for r in runs}), desc="scoring runs", unit="run", disable=not progress)
    for name, members in groups.items():
        scores = []
        for run in members:
            key = run.path.resolve()  # a run named in several groups is scored once
            if key not in scored:
                scored[key] = network_scores(run, zoo, split, device)
                bar.update()
            run_rows, run_scores = scored[key]
            if rows is None:
                rows = run_rows
            elif not np.array_equal(rows, run_rows):  # guards the pairing: every run scored the same networks
                raise TaskError(f"{run.path} read other networks of the split than {first.path}")
            scores.append(run_scores)
        out.append(GroupScores(name, [str(r.path) for r in members], np.stack(scores)))
    bar.close()
    return rows, out


def paired_difference(a: np.ndarray, b: np.ndarray, clusters: np.ndarray | None = None, *,
                      confidence: float = 0.95, resamples: int = 10_000, seed: int = 0,
                      names: tuple[str, str] = ("a", "b")) -> PairedDifference:
    """mean(b) − mean(a) over paired per-network scores, with a percentile bootstrap interval that resamples whole
    clusters (e.g. source images; None: each network alone). The statistic of a resample is the ratio of its
    clusters' summed differences to their network count, so clusters of unequal size weigh by their size."""
    from scipy.stats import bootstrap

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise TaskError(f"paired scores need two equal-length, non-empty vectors (got {a.shape} and {b.shape})")
    if not 0 < confidence < 1:
        raise TaskError(f"confidence must lie between 0 and 1 (got {confidence})")
    clusters = np.arange(len(a)) if clusters is None else np.asarray(clusters)
    _, which = np.unique(clusters, return_inverse=True)
    sums = np.bincount(which, weights=b - a)
    counts = np.bincount(which).astype(np.float64)
    mean = float(sums.sum() / counts.sum())
    if np.allclose(sums / counts, mean, rtol=0, atol=1e-12) or len(sums) < 2:
        low = high = mean  # every cluster differs by the same amount: no resample can differ
    else:
        result = bootstrap((sums, counts), lambda s, c, axis=-1: s.sum(axis) / c.sum(axis), paired=True,
                           vectorized=True, n_resamples=resamples, batch=1000, confidence_level=confidence,
                           method="percentile", rng=np.random.default_rng(seed))
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return PairedDifference(names[0], names[1], mean, low, high, confidence, len(sums), resamples)


def source_clusters(zoo: Any, rows: np.ndarray) -> tuple[np.ndarray, str]:
    """The bootstrap's clusters for these table rows: their source image where the zoo records it, else the row."""
    table = zoo.table
    if "image_index" in table:
        return table["image_index"].to_numpy()[rows], "source image"
    return np.asarray(rows), "network"
