"""CNN zoos for generalisation prediction: many small CNNs trained at once with torch.func.vmap.

Two families:
  * Small-CNN-Zoo-like ("cnn"): 3 × (conv 3×3, 16 channels) → global average pooling → linear 10, one
    activation (relu or tanh) per network, and a hyperparameter sweep — learning rate, initialisation
    scale, weight decay, training-set fraction, optimiser (adam / sgd with momentum), activation, epochs —
    that spreads test accuracy from chance to the best the family reaches.
  * "wild": random architectures (2–5 conv layers, 4–32 channels, kernels 3/5/7, six activations,
    optional identity residuals); each sampled architecture is trained `nets_per_arch` times with
    different hyperparameters, so every architecture group is one vmapped batch.
Networks of one architecture group train as one program: per-network parameters stacked [B, P], a
vmapped gradient of `core.network.forward`, a functional Adam/SGD over the stack, per-network minibatches
drawn from each network's own training subset, and a mask that stops each network after its own number
of steps. Networks are chunked in order of (group, steps) so a chunk's networks need similar work.

`sweep="full"` is the Small CNN Zoo's sweep (Unterthiner et al. 2020), fitted to a budget of a few hundred steps
per run on one CPU core (`sample_hyperparameters` lists every range; deviations are marked there):
  optimiser adam / rmsprop / sgd (momentum 0.9), one third each;
  learning rate log-uniform in [5e-4, 5e-2] for adam and rmsprop (the zoo's range), [5e-3, 0.3] for sgd
    (deviation: sgd at 5e-4 learns nothing within a few hundred steps);
  L2 weight decay log-uniform in [1e-8, 1e-2] (the zoo's range);
  initialisation distribution normal / uniform / truncated normal (one variance), its std a log-uniform factor
    in [0.2, 3.2] of He's √(2/fan_in) (deviation: the zoo draws an absolute std in [1e-3, 0.5]; its smallest
    inits need its 86 epochs to leave chance);
  dropout after every hidden activation: none for half of the runs, else uniform in [0, 0.5] (deviation: the
    zoo draws [0, 0.7]);
  training fraction uniform in [0.1, 1.0] (the zoo's range);
  training length 1, 2 or 3 epochs of the whole training set (≤ `max_epochs`), whatever the fraction: a run on
    a fraction f makes the same number of steps over fewer images, i.e. 1/f times as many passes over its
    subset (deviation: the zoo trains every run 86 epochs; here a whole zoo gets a few CPU-core minutes).
  On mnist5k (4,000 training images, batch 32, --max-epochs 3) that is 125 / 250 / 375 steps per run, and
  test accuracies from chance to ≈ 0.9 (the zoo's best MNIST nets pass 0.98 after 86 epochs of 60,000 images).
`checkpoints=K` stores K snapshots of every training run (after 1/K, 2/K, …, all of its steps) as separate
networks with `run_id`, `checkpoint`, `step` and `epoch` columns; splits are drawn per run, so the
snapshots of one run never straddle two splits.
"""

from __future__ import annotations

import math
import os
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from core.network.execute import apply_op, forward, forward_many
from core.network.spec import Activation, Architecture, Conv, GlobalAvgPool, Linear, Residual, unflatten_params
from core.zoo.images import ZooError

WILD_ACTIVATIONS = ("relu", "tanh", "leaky_relu", "gelu", "silu", "sigmoid")
BATCH = 32
INIT_DISTRIBUTIONS = ("normal", "uniform", "truncated_normal")
SWEEPS = ("basic", "full")
EVAL_FLOATS = 2 ** 24  # activations held at once while evaluating a chunk (networks × images × first feature map)


def small_cnn_architecture(activation: str = "relu", image_size: int = 8, channels: int = 16, layers: int = 3,
                           classes: int = 10) -> Architecture:
    """3 × (conv 3×3 stride 2, 16 ch) → GAP → linear 10, as in the Small CNN Zoo (keys conv.N, fc)."""
    stride = 2
    ops: list = []
    cin = 1
    for i in range(layers):
        ops += [Conv(f"conv.{i}", cin, channels, (3, 3), (stride, stride), (1, 1)), Activation(activation)]
        cin = channels
    ops += [GlobalAvgPool(), Linear("fc", channels, classes)]
    return Architecture(tuple(ops), (1, image_size, image_size))


def wild_architecture(rng: np.random.Generator, image_size: int, classes: int = 10) -> Architecture:
    """A random CNN: depth 2–5, channels 4–32, kernels 3/5/7, one of six activations, optional residuals."""
    depth = int(rng.integers(2, 6))
    act = str(rng.choice(WILD_ACTIVATIONS))
    residual = bool(rng.random() < 0.5)
    ops: list = []
    cin, size = 1, image_size
    for i in range(depth):
        cout = int(rng.choice([4, 8, 16, 32]))
        k = int(rng.choice([3, 5, 7]))
        stride = 2 if (i < 2 and (size > 12 or i == 0)) else 1
        if residual and i > 0 and stride == 1 and rng.random() < 0.7:
            cout = cin
        block_input = len(ops) - 1  # value before this conv (-1: the image)
        ops.append(Conv(f"conv.{i}", cin, cout, (k, k), (stride, stride), (k // 2, k // 2)))
        ops.append(Activation(act))
        if residual and i > 0 and stride == 1 and cout == cin:
            ops.append(Residual(block_input))
        size = (size + 2 * (k // 2) - k) // stride + 1
        cin = cout
    ops += [GlobalAvgPool(), Linear("fc", cin, classes)]
    return Architecture(tuple(ops), (1, image_size, image_size))


def _init_weights(n: int, std: float, distribution: str, g: torch.Generator) -> torch.Tensor:
    """n weights of standard deviation `std` from one of INIT_DISTRIBUTIONS."""
    if distribution == "normal":
        return torch.randn(n, generator=g) * std
    if distribution == "uniform":  # U(±√3·std) has variance std²
        return (torch.rand(n, generator=g) * 2 - 1) * (math.sqrt(3.0) * std)
    if distribution == "truncated_normal":  # N(0, 1) cut at ±2 has std 0.8796: rescale to std
        z = torch.nn.init.trunc_normal_(torch.empty(n), 0.0, 1.0, -2.0, 2.0, generator=g)
        return z * (std / 0.87962566)
    raise ZooError(f"unknown initialisation distribution {distribution!r}; use one of {', '.join(INIT_DISTRIBUTIONS)}")


def init_cnn(arch: Architecture, seed: int, scale: float, distribution: str = "normal") -> torch.Tensor:
    """Flat parameters: weights of std scale·√(2/fan_in) (He-style times `scale`) from `distribution`, biases 0."""
    g = torch.Generator().manual_seed(int(seed))
    parts = []
    for key, shape in arch.parameter_shapes():
        if key.endswith(".weight"):
            fan_in = math.prod(shape[1:])
            parts.append(_init_weights(math.prod(shape), scale * math.sqrt(2.0 / fan_in), distribution, g))
        else:
            parts.append(torch.zeros(math.prod(shape)))
    return torch.cat(parts)


def _sample_full(rng: np.random.Generator, n_train: int, max_epochs: int) -> dict[str, Any]:
    """One draw of the full (Small CNN Zoo) sweep; the ranges and their deviations are in the module docstring."""
    optimiser = str(rng.choice(["adam", "rmsprop", "sgd"]))
    lr = float(10 ** rng.uniform(math.log10(5e-3), math.log10(0.3)) if optimiser == "sgd"
               else 10 ** rng.uniform(math.log10(5e-4), math.log10(5e-2)))
    weight_decay = float(10 ** rng.uniform(-8.0, -2.0))
    train_fraction = round(float(rng.uniform(0.1, 1.0)), 3)
    epochs = int(rng.choice([e for e in (1, 2, 3) if e <= max_epochs] or [1]))
    init_scale = float(10 ** rng.uniform(math.log10(0.2), math.log10(3.2)))
    init_distribution = str(rng.choice(INIT_DISTRIBUTIONS))
    dropout = 0.0 if rng.random() < 0.5 else round(float(rng.uniform(0.0, 0.5)), 3)
    train_size = max(BATCH, int(round(train_fraction * n_train)))
    return dict(optimiser=optimiser, lr=lr, weight_decay=weight_decay, train_fraction=train_fraction, epochs=epochs,
                init_scale=init_scale, batch_size=BATCH, train_size=train_size,
                train_steps=max(1, int(math.ceil(epochs * n_train / BATCH))),
                init_distribution=init_distribution, dropout=dropout)


def sample_hyperparameters(rng: np.random.Generator, n_train: int, max_epochs: int,
                           sweep: str = "basic") -> dict[str, Any]:
    """One draw of the sweep: "basic" (the bundled digits zoos) or "full" (the Small CNN Zoo's, `_sample_full`)."""
    if sweep == "full":
        return _sample_full(rng, n_train, max_epochs)
    optimiser = str(rng.choice(["adam", "sgd"]))
    lr = float(10 ** rng.uniform(-3.0, -0.3)) if optimiser == "sgd" else float(10 ** rng.uniform(-4.0, -1.5))
    weight_decay = 0.0 if rng.random() < 0.25 else float(10 ** rng.uniform(-6.0, -2.0))
    train_fraction = float(rng.choice([0.05, 0.1, 0.25, 0.5, 1.0]))
    epochs = int(rng.choice([e for e in (1, 2, 4, 8, 16) if e <= max_epochs] or [1]))
    init_scale = float(10 ** rng.uniform(-1.0, 0.5))
    train_size = max(BATCH, int(round(train_fraction * n_train)))
    return dict(optimiser=optimiser, lr=lr, weight_decay=weight_decay, train_fraction=train_fraction, epochs=epochs,
                init_scale=init_scale, batch_size=BATCH, train_size=train_size,
                train_steps=max(1, int(math.ceil(epochs * train_size / BATCH))))


def _forward_dropout(arch: Architecture, params: dict[str, torch.Tensor], x: torch.Tensor,
                     dropout: torch.Tensor) -> torch.Tensor:
    """Training-mode forward: inverted dropout of rate `dropout` after every activation (random under vmap)."""
    values = [x]
    keep = 1.0 - dropout
    for op in arch.ops:
        x = apply_op(op, x, params, values)
        if isinstance(op, Activation):
            x = x * (torch.rand_like(x) < keep).to(x.dtype) / keep
        values.append(x)
    return x


def _evaluate(arch: Architecture, theta: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> tuple[torch.Tensor,
                                                                                                   torch.Tensor]:
    """(accuracy [B], mean cross-entropy [B]) of B stacked networks on images xs, in memory-bounded slices."""
    b = theta.shape[0]
    step = max(16, EVAL_FLOATS // max(1, b * int(np.prod(xs.shape[1:])) * 16))
    correct = torch.zeros(b)
    loss = torch.zeros(b, dtype=torch.float64)
    for s in range(0, xs.shape[0], step):
        logits = forward_many(arch, theta, xs[s:s + step])                      # [B, k, 10]
        yk = ys[s:s + step]
        correct += (logits.argmax(-1) == yk).float().sum(1)
        ce = F.cross_entropy(logits.transpose(1, 2), yk.expand(b, -1), reduction="none").sum(1)
        loss += torch.nan_to_num(ce.double(), nan=1e4, posinf=1e4)
    return correct / xs.shape[0], (loss / xs.shape[0]).float()


def checkpoint_steps(train_steps: Sequence[int], checkpoints: int) -> torch.Tensor:
    """[B, K] step after which each run's k-th snapshot is taken: ⌈k/K · steps⌉, k = 1…K (the last: the end)."""
    steps = torch.tensor([int(s) for s in train_steps], dtype=torch.int64)[:, None]
    k = torch.arange(1, checkpoints + 1, dtype=torch.int64)[None]
    return torch.clamp((steps * k + checkpoints - 1) // checkpoints, min=1)


def train_cnns(arch: Architecture, init: torch.Tensor, hp: list[dict[str, Any]], seeds: Sequence[int],
               x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor,
               y_test: torch.Tensor, checkpoints: int = 1,
               train_eval_limit: int | None = None) -> dict[str, torch.Tensor]:
    """Train B same-architecture CNNs at once (flat init [B, P]); returns params and metrics per network.

    With `checkpoints` K > 1 every run is snapshotted K times (see `checkpoint_steps`); the outputs then hold
    B·K networks, run-major (run 0's snapshots first), and "step" [B·K] says when each was taken.
    `train_eval_limit` measures train accuracy/loss on the first that many training images only."""
    b, p = init.shape
    theta = init.clone()
    m, v = torch.zeros_like(theta), torch.zeros_like(theta)
    lr = torch.tensor([h["lr"] for h in hp])[:, None]
    wd = torch.tensor([h["weight_decay"] for h in hp])[:, None]
    adam = torch.tensor([h["optimiser"] == "adam" for h in hp])[:, None]
    rmsprop = torch.tensor([h["optimiser"] == "rmsprop" for h in hp])[:, None]
    dropout = torch.tensor([float(h.get("dropout", 0.0)) for h in hp])
    steps = torch.tensor([h["train_steps"] for h in hp])
    snap_at = checkpoint_steps(steps.tolist(), checkpoints)                 # [B, K]
    snapshots = torch.zeros(checkpoints, b, p)
    sizes = torch.tensor([h["train_size"] for h in hp], dtype=torch.float64)
    n_train = x_train.shape[0]
    g = torch.Generator().manual_seed(int(seeds[0]) ^ 0x5EED)
    perms = torch.stack([torch.randperm(n_train, generator=torch.Generator().manual_seed(int(s))) for s in seeds])

    def loss_one(flat: torch.Tensor, xb: torch.Tensor, yb: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
        params = unflatten_params(arch, flat)
        logits = _forward_dropout(arch, params, xb, rate) if use_dropout else forward(arch, params, xb)
        return F.cross_entropy(logits, yb)

    use_dropout = bool((dropout > 0).any())
    grad_many = torch.func.vmap(torch.func.grad(loss_one), randomness="different" if use_dropout else "error")
    beta1, beta2, momentum, rho = 0.9, 0.999, 0.9, 0.9
    with torch.random.fork_rng(devices=[]):  # dropout masks: seeded here, the caller's global stream untouched
        torch.manual_seed(int(seeds[0]) ^ 0xD80)
        for t in range(1, int(steps.max()) + 1):
            active = (steps >= t)[:, None]
            u = torch.rand(b, BATCH, generator=g, dtype=torch.float64)
            pick = perms.gather(1, (u * sizes[:, None]).long().clamp_max(n_train - 1))
            grad = grad_many(theta, x_train[pick], y_train[pick], dropout)
            grad = grad + wd * theta
            # Adam, SGD with momentum and RMSprop over the one stack: each network takes its own optimiser's step
            m_adam = beta1 * m + (1 - beta1) * grad
            v_adam = beta2 * v + (1 - beta2) * grad * grad
            step_adam = lr * (m_adam / (1 - beta1 ** t)) / ((v_adam / (1 - beta2 ** t)).sqrt() + 1e-8)
            m_sgd = momentum * m + grad
            v_rms = rho * v + (1 - rho) * grad * grad
            step = torch.where(adam, step_adam, torch.where(rmsprop, lr * grad / (v_rms.sqrt() + 1e-8), lr * m_sgd))
            m = torch.where(active, torch.where(adam, m_adam, torch.where(rmsprop, m, m_sgd)), m)
            v = torch.where(active & (adam | rmsprop), torch.where(adam, v_adam, v_rms), v)
            theta = theta - active.to(theta.dtype) * step
            hit = snap_at == t                                                    # [B, K]
            if hit.any():
                for k in torch.nonzero(hit.any(0)).flatten().tolist():
                    snapshots[k][hit[:, k]] = theta[hit[:, k]]
    flat = snapshots.transpose(0, 1).reshape(b * checkpoints, p)                  # run-major
    flat = torch.where(torch.isfinite(flat), flat, torch.zeros_like(flat))
    out: dict[str, torch.Tensor] = {"params": flat, "step": snap_at.reshape(-1)}
    limit = n_train if train_eval_limit is None else min(n_train, int(train_eval_limit))
    for name, xs, ys in (("train", x_train[:limit], y_train[:limit]), ("test", x_test, y_test)):
        acc, loss = zip(*(_evaluate(arch, flat[s:s + b], xs, ys) for s in range(0, flat.shape[0], b)))
        out[f"{name}_accuracy"], out[f"{name}_loss"] = torch.cat(acc), torch.cat(loss)
    return out


def _train_chunk(payload: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Worker entry point: one chunk of one architecture group."""
    return train_cnns(**payload)


def _chunks(group_of: list[str], hps: list[dict[str, Any]], chunk_size: int) -> list[list[int]]:
    """Network indices in chunks of one group and similar step counts; the chunk ids are fixed by the build
    options, so an interrupted build resumes chunk by chunk."""
    # runs with dropout share chunks: its masks double the cost of a step for every network of a chunk
    ordered = sorted(range(len(group_of)),
                     key=lambda i: (group_of[i], hps[i]["train_steps"], hps[i].get("dropout", 0.0) > 0, i))
    chunks: list[list[int]] = []
    for i in ordered:
        if chunks and group_of[chunks[-1][0]] == group_of[i] and len(chunks[-1]) < chunk_size:
            chunks[-1].append(i)
        else:
            chunks.append([i])
    return chunks


def build_cnn_zoo(
    out_dir: str | os.PathLike,
    images: str | os.PathLike = "digits",
    count: int = 200,
    wild: bool = False,
    seed: int = 0,
    *,
    activations: Sequence[str] = ("relu", "tanh"),
    max_epochs: int = 16,
    nets_per_arch: int = 4,
    chunk_size: int = 64,
    workers: int | None = None,
    test_fraction: float = 0.2,
    split: Sequence[float] = (0.8, 0.1, 0.1),
    sweep: str = "basic",
    checkpoints: int = 1,
    train_eval_limit: int | None = None,
    overwrite: bool = False,
    shard: tuple[int, int] | None = None,
    progress: bool = True,
):
    """Train `count` CNN runs on `images` and store them as a zoo directory (resumable; returns the opened Zoo).

    The zoo holds count × `checkpoints` networks (K snapshots per run, see the module docstring)."""
    from core.zoo.build import default_workers, run_chunks
    from core.zoo.images import load_images
    from core.zoo.store import Zoo, ZooBuilder, split_assignment

    if count < 1 or chunk_size < 1 or nets_per_arch < 1 or checkpoints < 1:
        raise ZooError("count, chunk_size, nets_per_arch and checkpoints must be positive")
    if sweep not in SWEEPS:
        raise ZooError(f"unknown sweep {sweep!r}; use one of {', '.join(SWEEPS)}")
    for a in activations:
        if a not in WILD_ACTIVATIONS and a != "identity":
            raise ZooError(f"unsupported activation {a!r} for a CNN zoo")
    x, y = load_images(images)
    if x.shape[1] != x.shape[2]:
        raise ZooError(f"CNN zoos need square images, got {tuple(x.shape[1:])}")
    classes = int(y.max()) + 1
    size = int(x.shape[1])
    data_rng = np.random.default_rng(seed)
    order = data_rng.permutation(len(x))
    n_test = max(1, int(round(test_fraction * len(x))))
    test_idx, train_idx = torch.from_numpy(order[:n_test]), torch.from_numpy(order[n_test:])
    x = x[:, None]
    x_train, y_train, x_test, y_test = x[train_idx], y[train_idx], x[test_idx], y[test_idx]

    rng = np.random.default_rng(seed + 1)
    archs: dict[str, Architecture] = {}
    group_of: list[str] = []
    if wild:
        n_arch = int(math.ceil(count / nets_per_arch))
        for a in range(n_arch):
            archs[f"a{a:03d}"] = wild_architecture(rng, size, classes)
        group_of = [f"a{i // nets_per_arch:03d}" for i in range(count)]
    hps, seeds = [], []
    for i in range(count):
        hp = sample_hyperparameters(rng, len(train_idx), max_epochs, sweep)
        if wild:
            hp["activation"] = archs[group_of[i]].activations()[0].fn
            hp["depth"] = len(archs[group_of[i]].weight_layers()) - 1
        else:
            act = str(rng.choice(list(activations)))
            hp["activation"] = act
            if act not in archs:
                archs[act] = small_cnn_architecture(act, size, classes=classes)
            group_of.append(act)
        hps.append(hp)
        seeds.append(int(seed) * 1_000_000 + i)
    archs = {g: archs[g] for g in sorted(set(group_of))}
    options = dict(images=str(images), count=count, wild=wild, seed=seed, activations=list(activations),
                   max_epochs=max_epochs, nets_per_arch=nets_per_arch if wild else None, chunk_size=chunk_size,
                   test_fraction=test_fraction, split=list(split))
    # new options enter the fingerprint only when set, so zoos built before them still resume and reopen
    options.update({k: v for k, v in (("sweep", sweep), ("checkpoints", checkpoints),
                                      ("train_eval_limit", train_eval_limit))
                    if v != {"sweep": "basic", "checkpoints": 1, "train_eval_limit": None}[k]})
    if sweep == "full":  # version 1 (1–4 epochs of each run's subset, init ×[0.1, 3.2]) left most runs near chance
        options["sweep_version"] = 2
    source = {"images": str(images), "num_images": len(x), "image_shape": list(x.shape[2:]), "classes": classes,
              "train_images": len(train_idx), "test_images": n_test}
    builder = ZooBuilder(out_dir, generator="cnn-wild" if wild else "cnn", options=options, architectures=archs,
                         source=source, overwrite=overwrite, shard=shard)
    run_splits = split_assignment(np.arange(count), split, seed)  # by run: a run's snapshots share a split
    if not builder.complete:
        chunks = _chunks(group_of, hps, chunk_size)
        todo = [(k, idx) for k, idx in enumerate(chunks) if not builder.done(k)]
        tasks = []
        for k, idx in todo:
            arch = archs[group_of[idx[0]]]
            init = torch.stack([init_cnn(arch, seeds[i], hps[i]["init_scale"],
                                         hps[i].get("init_distribution", "normal")) for i in idx])
            tasks.append((k, dict(arch=arch, init=init, hp=[hps[i] for i in idx], seeds=[seeds[i] for i in idx],
                                  x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                                  checkpoints=checkpoints, train_eval_limit=train_eval_limit)))
        members = dict(todo)

        def store(k: int, res: dict[str, torch.Tensor]) -> None:
            runs = members[k]
            builder.write_chunk(k, {group_of[runs[0]]: ([i * checkpoints + c for i in runs for c in range(checkpoints)],
                                                        res["params"])},
                                _rows(runs, res, checkpoints, group_of, seeds, hps))

        nworkers = default_workers() if workers is None else int(workers)
        run_chunks(tasks, _train_chunk, store, workers=nworkers, progress_total=sum(len(i) for _, i in todo),
                   progress_sizes={k: len(i) for k, i in todo}, desc="training CNNs", unit="run", progress=progress)
        builder.finish({i * checkpoints + c: str(s) for i, s in enumerate(run_splits) for c in range(checkpoints)})
    return Zoo.open(out_dir) if builder.complete else None  # None: one shard of a build (merge_shards)


def _rows(runs: list[int], res: dict[str, torch.Tensor], checkpoints: int, group_of: list[str], seeds: list[int],
          hps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Table rows of one chunk's networks (run-major, as `train_cnns` returns them)."""
    rows = []
    for j, i in enumerate(runs):
        for c in range(checkpoints):
            n = j * checkpoints + c
            snapshot = {}
            if checkpoints > 1:
                step = int(res["step"][n])
                snapshot = dict(run_id=i, checkpoint=c, step=step,
                                epoch=round(step * BATCH / hps[i]["train_size"], 4))
            rows.append(dict(index=i * checkpoints + c, group=group_of[i], seed=seeds[i], **snapshot,
                             test_accuracy=round(float(res["test_accuracy"][n]), 5),
                             train_accuracy=round(float(res["train_accuracy"][n]), 5),
                             test_loss=round(float(res["test_loss"][n]), 5),
                             train_loss=round(float(res["train_loss"][n]), 5),
                             generalization_gap=round(float(res["train_accuracy"][n] - res["test_accuracy"][n]), 5),
                             **hps[i]))
    return rows
