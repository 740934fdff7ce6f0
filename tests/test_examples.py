"""The bundled example INRs are held-out members of the bundled MNIST-5k zoo: the recipe the bundled INR
metanetworks learned from, and networks none of them trained on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.examples import MNIST_ZOO, example_inr
from core.io import load_network
from core.io.atomic import save_torch
from core.runs import load_run
from core.zoo import Zoo

EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"
DIGITS = (3, 8)


@pytest.mark.parametrize("digit", DIGITS)
def test_example_inr_is_the_zoos_first_test_network_of_its_digit(digit: int, tmp_path: Path) -> None:
    path = EXAMPLES / f"siren-mnist-{digit}.pth"
    member = example_inr(digit)
    save_torch(member.state_dict(), tmp_path / path.name)  # as `python -m core examples` writes it
    assert (tmp_path / path.name).read_bytes() == path.read_bytes()
    assert torch.equal(load_network(path).flat(), member.flat())
    zoo = Zoo.open(MNIST_ZOO)
    test = zoo.split_indices("test")
    first = int(test[zoo.labels(indices=test) == digit][0])
    assert torch.equal(zoo.network(first).flat(), member.flat())
    assert member.meta["split"] == "test" and member.meta["label"] == digit


@pytest.mark.parametrize("run", ["inr-classify-mnist5k-scalegmn", "inr-classify-mnist5k-ng-t"])
def test_bundled_mnist_classifiers_name_the_example_digits(run: str) -> None:
    """The two probe-reading MNIST-5k classifiers (test accuracy 0.93 / 0.85) read both examples right: the
    examples are in their training distribution (the old `siren`-init examples were not)."""
    networks = [load_network(EXAMPLES / f"siren-mnist-{d}.pth") for d in DIGITS]
    probabilities = load_run(EXAMPLES.parent / "models" / run).predict(networks, "cpu")
    assert probabilities.argmax(1).tolist() == list(DIGITS)


def test_a_digit_the_zoo_lacks_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no test-split network of digit 11"):
        example_inr(11)
