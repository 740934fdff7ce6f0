"""core.compare: per-network scores whose mean is the task's metric, and the paired bootstrap over clusters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.compare import paired_difference
from core.tasks import ClassifyTask, GeneralizationTask, TaskError


def test_identical_or_uniformly_shifted_scores_give_an_exact_interval() -> None:
    a = np.random.default_rng(0).integers(0, 2, 300).astype(float)
    same = paired_difference(a, a)
    assert (same.mean, same.low, same.high) == (0.0, 0.0, 0.0)
    shifted = paired_difference(a, a + 0.25, clusters=np.arange(300) // 3)
    assert shifted.mean == shifted.low == shifted.high == pytest.approx(0.25)
    assert shifted.clusters == 100


def test_the_interval_has_the_normal_width_for_independent_networks() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2, 2000).astype(float)
    b = np.where(rng.random(2000) < 0.8, a, 1 - a)  # b disagrees with a on a fifth of the networks
    d = paired_difference(a, b, resamples=4000, seed=3)
    assert d.mean == pytest.approx((b - a).mean())
    assert d.low < d.mean < d.high
    normal = 2 * 1.96 * (b - a).std() / np.sqrt(2000)
    assert d.high - d.low == pytest.approx(normal, rel=0.15)


def test_clusters_resample_whole_images() -> None:
    """Two identical INRs of each image carry no more information than one: clustering them by image gives the
    interval of the single copies (the same resamples), treating them as independent a narrower, wrong one."""
    rng = np.random.default_rng(2)
    a, b = rng.random(400), rng.random(400)
    single = paired_difference(a, b, seed=5)
    twice = paired_difference(np.repeat(a, 2), np.repeat(b, 2), clusters=np.repeat(np.arange(400), 2), seed=5)
    assert (twice.mean, twice.low, twice.high) == pytest.approx((single.mean, single.low, single.high), abs=1e-12)
    naive = paired_difference(np.repeat(a, 2), np.repeat(b, 2), seed=5)
    assert naive.high - naive.low < 0.8 * (single.high - single.low)


def test_clusters_of_unequal_size_weigh_by_their_networks() -> None:
    a = np.zeros(4)
    b = np.array([1.0, 1.0, 1.0, 0.0])
    d = paired_difference(a, b, clusters=np.array([0, 0, 0, 1]))
    assert d.mean == pytest.approx(0.75) and d.clusters == 2
    assert 0.0 <= d.low <= d.high <= 1.0


@pytest.mark.parametrize("a,b,kwargs,match", [
    (np.zeros(3), np.zeros(4), {}, "equal-length"),
    (np.zeros(0), np.zeros(0), {}, "non-empty"),
    (np.zeros(3), np.ones(3), {"confidence": 1.5}, "between 0 and 1"),
])
def test_bad_input_is_refused(a, b, kwargs, match) -> None:
    with pytest.raises(TaskError, match=match):
        paired_difference(a, b, **kwargs)


def test_network_scores_average_to_the_task_metric() -> None:
    g = torch.Generator().manual_seed(0)
    probabilities = torch.rand(50, 10, generator=g).softmax(-1)
    labels = torch.randint(0, 10, (50,), generator=g)
    labels[:20] = probabilities[:20].argmax(-1)  # some right, some wrong
    task = ClassifyTask()
    assert task.network_scores(probabilities, labels).mean() == pytest.approx(
        task.metrics(probabilities, labels)["accuracy"])
    predicted, actual = torch.rand(40, generator=g), torch.rand(40, generator=g)
    regression = GeneralizationTask()
    assert regression.network_scores(predicted, actual).mean() == pytest.approx(
        regression.metrics(predicted, actual)["mse"], rel=1e-6)
    assert not regression.network_score_greater_is_better
