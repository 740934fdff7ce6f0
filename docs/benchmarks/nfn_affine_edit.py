"""Can an editor's params head output the two-number erosion edit when it is supervised in parameter space?

    OMP_NUM_THREADS=1 python docs/benchmarks/nfn_affine_edit.py [--model nfn-hnp] [--epochs 6]
    OMP_NUM_THREADS=1 python docs/benchmarks/nfn_affine_edit.py --loss rendering [--last-layer-only] [--model ng-gnn]

The erosion edit a·f + b fitted on the bundled MNIST-5k zoo's training renderings (`bench inr-edit-baselines`,
"output-affine") is a change of the last layer only. This trains a fresh params head (hidden 32, 3 layers, as the
editor recipe) on 2,000 training INRs to output exactly that Δθ (squared error in parameter space, Adam 3e-3,
batch 64) and prints, per epoch, the test split's MSE ratio to the identity edit after rendering the edited INRs.
It separates "cannot express the edit" from "does not find it through the rendering loss". `--loss rendering`
trains the same way through the editors' own loss (MSE of the edited rendering against the eroded one);
`--last-layer-only` then zeroes the head's update of every other layer, to see whether those updates are what
keeps the rendering loss from finding the edit.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere: the repository's `core`

from core.bench.inr_edit_baselines import affine_output_edit, edit_pairs, fit_affine
from core.data import graph_set_from_networks
from core.models.registry import build_model, model_class
from core.network.spec import Network
from core.tasks.edit import EditTask, params_update, render
from core.zoo import Zoo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="nfn-hnp")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--loss", choices=["parameters", "rendering"], default="parameters")
    parser.add_argument("--last-layer-only", action="store_true", help="zero the update of every layer but the last")
    args = parser.parse_args()
    torch.manual_seed(0)
    zoo = Zoo.open("assets/zoos/mnist5k-inr")
    a, b = fit_affine(*edit_pairs(zoo, "train", "erode"))
    arch, train_flat = zoo.flat(zoo.split_indices("train"))
    _, test_flat = zoo.flat(zoo.split_indices("test"))
    task = EditTask("erode", 28)
    train = graph_set_from_networks([Network.from_flat(arch, f) for f in train_flat[:2000]], task, 1)
    test = graph_set_from_networks([Network.from_flat(arch, f) for f in test_flat], task, 1)
    # the NFN and MLP baselines are built for one architecture; the graph models read any
    fixed = "architecture" in {f.name for f in dataclasses.fields(model_class(args.model).config_class)}
    model = build_model(args.model, out_dim=1, head="params", hidden=32, layers=3,
                        **({"architecture": arch} if fixed else {}))
    model.fit_normalisation(next(iter(train.batches(512))).graph)
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    keep = torch.ones(arch.num_parameters)
    if args.last_layer_only:
        last = arch.ops[arch.weight_layers()[-1]].name
        sizes = [(name, torch.Size(shape).numel()) for name, shape in arch.parameter_shapes()]
        keep = torch.cat([torch.full((n,), float(name.startswith(last + "."))) for name, n in sizes])

    def update(batch) -> torch.Tensor:
        return params_update(arch, model(batch.graph), batch.flat.shape[0], 1) * keep

    def test_ratio() -> float:
        edited_error = identity_error = 0.0
        with torch.no_grad():
            for batch in test.batches(250):
                delta = update(batch)
                images = render(arch, batch.flat + delta, 28)
                source, target = batch.extras["source"], batch.extras["target"]
                edited_error += float(((images - target) ** 2).sum())
                identity_error += float(((source - target) ** 2).sum())
        return edited_error / identity_error

    print(f"{args.model}: target edit a = {a:.4f}, b = {b:.4f}; untrained test ratio {test_ratio():.3f}")
    start = time.time()
    for epoch in range(args.epochs):
        total = 0.0
        for batch in train.batches(64, shuffle=True, generator=torch.Generator().manual_seed(epoch)):
            delta = update(batch)
            if args.loss == "parameters":
                loss = ((delta - (affine_output_edit(arch, batch.flat, a, b) - batch.flat)) ** 2).sum(1).mean()
            else:
                loss = ((render(arch, batch.flat + delta, 28) - batch.extras["target"]) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
        print(f"epoch {epoch + 1}: {args.loss} loss {total:.4g}, test ratio {test_ratio():.3f} "
              f"({time.time() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
