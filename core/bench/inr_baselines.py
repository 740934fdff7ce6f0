"""INR-classification baselines a user tries first (render-and-classify, pixels, raw weights, layer statistics).

- `render_and_classify`: render every INR on its image grid and train a small CNN on the pixels (the ceiling a
  metanetwork is measured against: it sees the function, not the weights).
- `pixel_logistic_regression`: logistic regression on the rendered pixels.
- `flat_weight_logistic_regression`: logistic regression on the raw flattened weights (symmetry-blind; strong only
  when every INR starts from the same initialisation, e.g. `--init shared`).
- `layer_statistics_classifier`: per-layer weight statistics (`statnn`'s features, permutation invariant) →
  logistic regression (10-class gradient-boosted trees took several minutes on a busy 2-core CPU, so the
  baseline uses the linear model).
- `pixel_nearest_neighbour`: leave-one-out 1-NN label accuracy of the test split's renderings (Euclidean): the
  reference for `embed`'s `knn_accuracy`, which scores the test embeddings the same way. No training, no labels
  except for scoring.

Every other function trains on the zoo's train split; all return a test-split accuracy, of `test_zoo`'s test split
where one is given (e.g. a `zoo refit` of the test images: other INRs of the same held-out images).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from core.baselines.statnn import weight_statistics
from core.tasks.edit import DEFAULT_RESOLUTION, fitted_resolution, render


def zoo_resolution(zoo: Any) -> int:
    """Side of the images an INR zoo was fitted to (28 for MNIST, 8 for scikit-learn digits)."""
    return fitted_resolution(zoo) or DEFAULT_RESOLUTION


def rendered_split(zoo: Any, split: str, resolution: int | None = None) -> tuple[torch.Tensor, np.ndarray]:
    """Renderings [n, r, r] of a split's INRs and their labels [n]."""
    res = resolution or zoo_resolution(zoo)
    rows = zoo.split_indices(split)
    arch, flat = zoo.flat(rows)
    with torch.no_grad():
        images = torch.cat([render(arch, flat[i:i + 512].float(), res) for i in range(0, len(rows), 512)])
    return images.view(-1, res, res), zoo.table["label"].to_numpy()[rows]


def _weights_split(zoo: Any, split: str) -> tuple[Any, torch.Tensor, np.ndarray]:
    rows = zoo.split_indices(split)
    arch, flat = zoo.flat(rows)
    return arch, flat, zoo.table["label"].to_numpy()[rows]


def _scored(zoo: Any, test_zoo: Any) -> Any:
    """The zoo whose test split a baseline scores: `test_zoo` where given (not by truth value: a Zoo has a length)."""
    return zoo if test_zoo is None else test_zoo


def _logistic(seed: int) -> Any:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1, random_state=seed))


def pixel_logistic_regression(zoo: Any, seed: int = 0, test_zoo: Any = None) -> float:
    """Test accuracy of logistic regression on the INRs' renderings."""
    (xtr, ytr), (xte, yte) = rendered_split(zoo, "train"), rendered_split(_scored(zoo, test_zoo), "test")
    model = _logistic(seed).fit(xtr.flatten(1).numpy(), ytr)
    return float(accuracy_score(yte, model.predict(xte.flatten(1).numpy())))


def flat_weight_logistic_regression(zoo: Any, seed: int = 0, test_zoo: Any = None) -> float:
    """Test accuracy of logistic regression on the flattened weights (no symmetry handling)."""
    _, ftr, ytr = _weights_split(zoo, "train")
    _, fte, yte = _weights_split(_scored(zoo, test_zoo), "test")
    model = _logistic(seed).fit(ftr.double().numpy(), ytr)
    return float(accuracy_score(yte, model.predict(fte.double().numpy())))


def layer_statistics_classifier(zoo: Any, seed: int = 0, test_zoo: Any = None) -> float:
    """Test accuracy of logistic regression on per-layer weight statistics."""
    arch, ftr, ytr = _weights_split(zoo, "train")
    _, fte, yte = _weights_split(_scored(zoo, test_zoo), "test")
    model = _logistic(seed).fit(weight_statistics(arch, ftr), ytr)
    return float(accuracy_score(yte, model.predict(weight_statistics(arch, fte))))


def pixel_nearest_neighbour(zoo: Any, seed: int = 0, test_zoo: Any = None) -> float:
    """Leave-one-out 1-NN label accuracy among the test split's renderings (`seed` unused: deterministic)."""
    from sklearn.neighbors import NearestNeighbors

    images, labels = rendered_split(_scored(zoo, test_zoo), "test")
    x = images.flatten(1).double().numpy()
    _, idx = NearestNeighbors(n_neighbors=2).fit(x).kneighbors(x)
    # the nearest point is normally the image itself; take the other one (a duplicate may come first)
    other = np.where(idx[:, 0] == np.arange(len(x)), idx[:, 1], idx[:, 0])
    return float(accuracy_score(labels, labels[other]))


def render_and_classify(zoo: Any, seed: int = 0, test_zoo: Any = None, epochs: int = 15,
                        batch_size: int = 64) -> float:
    """Test accuracy of a small CNN trained for `epochs` on the training INRs' renderings."""
    import torch.nn.functional as F
    from torch import nn

    (xtr, ytr), (xte, yte) = rendered_split(zoo, "train"), rendered_split(_scored(zoo, test_zoo), "test")
    xtr, xte = xtr.unsqueeze(1), xte.unsqueeze(1)
    ytr_t = torch.as_tensor(ytr)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(128, int(zoo.table["label"].max()) + 1))
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(xtr), generator=g).split(batch_size):
            opt.zero_grad()
            F.cross_entropy(net(xtr[idx]), ytr_t[idx]).backward()
            opt.step()
    with torch.no_grad():
        return float(accuracy_score(yte, net(xte).argmax(1).numpy()))


INR_CLASSIFICATION_BASELINES = {
    "render-and-classify": render_and_classify,
    "pixel-logistic": pixel_logistic_regression,
    "flat-weight-logistic": flat_weight_logistic_regression,
    "layer-statistics": layer_statistics_classifier,
    "pixel-1nn": pixel_nearest_neighbour,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m core bench inr-baselines`."""
    parser.add_argument("--zoo", default="assets/zoos/mnist5k-inr", help="INR zoo (default the bundled MNIST-5k)")
    parser.add_argument("--baselines", nargs="+", choices=list(INR_CLASSIFICATION_BASELINES),
                        default=list(INR_CLASSIFICATION_BASELINES))
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 (mean ± std over them)")
    parser.add_argument("--test-zoo", default=None,
                        help="score on this zoo's test split instead of --zoo's (e.g. `zoo refit --split test` of it)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    """Train each baseline on the zoo's train split and print its test accuracy (mean ± std over seeds)."""
    from core.zoo import Zoo, ZooError

    zoo = Zoo.open(args.zoo)
    test_zoo = Zoo.open(args.test_zoo) if args.test_zoo else None
    for z in (zoo, _scored(zoo, test_zoo)):
        if not len(z.split_indices("test")):
            raise ZooError(f"{z.dir} has no test split to score (a `zoo refit` for this needs --split test)")
    result = {}
    for name in args.baselines:
        scores = [INR_CLASSIFICATION_BASELINES[name](zoo, seed, test_zoo) for seed in range(max(1, args.seeds))]
        result[name] = {"mean": float(np.mean(scores)), "std": float(np.std(scores)), "seeds": scores}
        if not args.json:
            print(f"{name:22s} test accuracy {result[name]['mean']:.3f} ± {result[name]['std']:.3f} "
                  f"({len(scores)} seed{'s' if len(scores) > 1 else ''})", flush=True)
    if args.json:
        print(json.dumps({"benchmark": "inr-baselines", "zoo": str(args.zoo), "test_zoo": args.test_zoo,
                          "results": result}))
    return 0
