"""`generalization`: predict a CNN's test accuracy from its weights. Metrics: Kendall τ and R²."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from core.tasks.base import Task, TaskError, register_task

if TYPE_CHECKING:
    from core.data import GraphBatch


def kendall_tau(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Kendall rank correlation (scipy, τ-b); NaN for fewer than two networks (a tiny validation split), quietly."""
    from scipy.stats import kendalltau

    if len(actual) < 2:
        return float("nan")
    return float(kendalltau(predicted, actual).statistic)


def r_squared(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Coefficient of determination (scikit-learn); NaN for fewer than two networks, quietly."""
    from sklearn.metrics import r2_score

    return float(r2_score(actual, predicted)) if len(actual) >= 2 else float("nan")


@register_task
class GeneralizationTask(Task):
    """Regress the `test_accuracy` column (sigmoid output, MSE)."""

    ensemble_mean = True
    name = "generalization"
    primary_metric = "kendall_tau"
    greater_is_better = True
    summary_metrics = ("kendall_tau",)
    network_score = "mse"  # each network's squared error; a rank metric like Kendall τ has no per-network terms
    network_score_greater_is_better = False
    zoo_kind = "cnn"

    def __init__(self, target_column: str = "test_accuracy"):
        self.target_column = target_column

    def options(self) -> dict[str, Any]:
        return {"target_column": self.target_column}

    def check_zoo_for_model(self, zoo: Any, model: Any) -> None:
        """Refuse a zoo holding networks that diverged in training beyond what `model` reads finitely
        (`unusable_networks` with its `weight_limit`): they would reach it as inf / NaN."""
        from core.models.layers.probe_features import safe_magnitude

        limit = type(model).weight_limit(model.config)
        # probe activations beyond float32's general limit are refused by the model itself (`check_probe_activations`)
        probes = int(getattr(model.config, "probes", 0) or 0) if limit < safe_magnitude(torch.float32) else 0
        dropped = unusable_networks(zoo, probes, limit=limit)
        if dropped:
            more = " …" if len(dropped) > 5 else ""
            raise TaskError(f"{zoo.dir} holds {len(dropped)} network(s) that diverged in training and that "
                            f"{model.name} cannot read in float32 (|weights| up to {limit:.3g}): "
                            f"{describe_networks(dropped[:5])}{more}; `python -m core bench tasks --tasks "
                            "generalization --cnn-zoo ZOO` drops and lists them")

    def out_dim(self, table=None) -> int:
        if table is not None and self.target_column not in table:
            raise TaskError(f"the zoo has no {self.target_column!r} column (is it a CNN zoo?)")
        return 1

    def targets(self, table, rows: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(table[self.target_column].to_numpy()[rows], dtype=torch.float32)

    def loss(self, output: torch.Tensor, batch: GraphBatch) -> torch.Tensor:
        return F.mse_loss(torch.sigmoid(output.float().squeeze(-1)), batch.targets)

    def predictions(self, output: torch.Tensor, batch: GraphBatch) -> torch.Tensor:
        return torch.sigmoid(output.detach().float().squeeze(-1))

    def metrics(self, predictions: torch.Tensor, targets: torch.Tensor | None) -> dict[str, float]:
        p, t = predictions.numpy(), targets.numpy()
        if not np.isfinite(p).all():
            bad = int((~np.isfinite(p)).sum())
            raise TaskError(f"{bad} of {len(p)} predictions are not finite: the model diverged")
        return {"kendall_tau": kendall_tau(p, t), "r2": r_squared(p, t), "mse": float(np.mean((p - t) ** 2))}

    def network_scores(self, predictions: torch.Tensor, targets: torch.Tensor | None) -> np.ndarray:
        """Each network's squared error (predicted − actual)²."""
        return ((predictions.double() - targets.double()) ** 2).numpy()

    def format_prediction(self, prediction: torch.Tensor) -> dict[str, Any]:
        return {"predicted_accuracy": float(prediction)}


def group_metrics(predicted: np.ndarray, actual: np.ndarray, groups: np.ndarray, min_size: int = 5) -> dict[str, float]:
    """Kendall τ and R² over all networks, and their means within each architecture group of ≥ `min_size`."""
    predicted, actual, groups = np.asarray(predicted), np.asarray(actual), np.asarray(groups)
    within_tau, within_r2 = [], []
    for g in np.unique(groups):
        m = groups == g
        if m.sum() >= min_size and np.ptp(actual[m]) > 0:
            within_tau.append(kendall_tau(predicted[m], actual[m]))
            within_r2.append(r_squared(predicted[m], actual[m]))
    return {"kendall_tau": kendall_tau(predicted, actual), "r2": r_squared(predicted, actual),
            "tau_within": float(np.nanmean(within_tau)) if within_tau else float("nan"),
            "r2_within": float(np.mean(within_r2)) if within_r2 else float("nan"),
            "groups": len(within_tau), "networks": int(len(actual))}


def compose_zoo(parts: list[tuple[Any, np.ndarray, str]], out_dir, *, split_of: dict[str, str] | None = None,
                generator: str = "cnn-composed", overwrite: bool = True):
    """A zoo of the rows of several zoos: parts are (Zoo, rows, group prefix); each network keeps its split unless
    `split_of` maps its new group to one. Returns the opened Zoo."""
    from core.zoo.store import Zoo, write_zoo

    archs, groups, rows, splits = {}, {}, [], {}
    for zoo, part_rows, prefix in parts:
        table = zoo.table
        for group in zoo.architectures:
            members = np.asarray(part_rows)[table["group"].to_numpy()[part_rows] == group]
            if not len(members):
                continue
            name = f"{prefix}{group}"
            _, flat = zoo.flat(members)
            first = len(rows)
            groups[name] = (list(range(first, first + len(members))), flat)
            archs[name] = zoo.architectures[group]
            for k, r in enumerate(table.iloc[members].to_dict("records")):
                kept = {c: v for c, v in r.items() if c not in ("index", "group", "group_row", "split") and v == v}
                rows.append({"index": first + k, "group": name, "source_index": int(r["index"]), **kept})
                splits[first + k] = (split_of or {}).get(name, r["split"])
    options = {"parts": [[str(z.dir), p, len(r)] for z, r, p in parts], "split_of": split_of or {}}
    write_zoo(out_dir, generator=generator, options=options, architectures=archs, groups=groups, rows=rows,
              splits_by_index=splits, overwrite=overwrite)
    return Zoo.open(out_dir)


def unusable_networks(zoo, probes: int = 0, dtype: torch.dtype = torch.float32, chunk: int = 512,
                      limit: float | None = None, rows: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Networks a metanetwork computing in `dtype` cannot read (a run that diverged in training): non-finite weights,
    weights beyond `limit` (default `safe_magnitude(dtype)`; a model's own is `MetaNetwork.weight_limit`), or
    (probes > 0, networks on images) probe features beyond it, computed in float64. One {index, group, reason} per
    network, in zoo order; with `rows` (zoo table rows), only those networks are read and checked."""
    from core.models.layers.probe_features import image_probe_activations, probe_overflow, safe_magnitude

    limit, found = safe_magnitude(dtype) if limit is None else limit, []
    groups = zoo.table["group"].to_numpy()
    asked = np.zeros(len(groups), dtype=bool)
    asked[slice(None) if rows is None else rows] = True
    for group in zoo.architectures:
        members = np.flatnonzero((groups == group) & asked)
        for start in range(0, len(members), chunk):
            part = members[start:start + chunk]
            arch, flat = zoo.flat(part)
            flat = flat.to(torch.float64)
            finite = torch.isfinite(flat).all(1)
            largest = flat.abs().nan_to_num(nan=float("inf")).amax(1) if flat.shape[1] else torch.zeros(len(part))
            acts = image_probe_activations(arch, flat, probes) if probes and len(arch.input_shape) == 3 else None
            overflow = (probe_overflow(acts, dtype, limit) if acts is not None
                        else torch.zeros(len(part), dtype=torch.bool))
            for k in np.flatnonzero((~finite | (largest > limit) | overflow).numpy()):
                if not finite[k]:
                    reason = "non-finite weights"
                elif largest[k] > limit:
                    reason = f"weights up to {largest[k].item():.3g}"
                else:
                    reason = f"probe activations up to {acts[k].abs().nan_to_num(nan=float('inf')).max().item():.3g}"
                found.append({"index": int(zoo.table["index"].iloc[part[k]]), "group": str(group), "reason": reason})
    return sorted(found, key=lambda d: d["index"])


def describe_networks(networks: list[dict[str, Any]]) -> str:
    """'group#index (reason), …' for `unusable_networks` entries."""
    return ", ".join(f"{d['group']}#{d['index']} ({d['reason']})" for d in networks)


def without_unusable_networks(zoo_dir, out_dir, probes: int = 0, label: str = "zoo", limit: float | None = None,
                              reader: str = "any metanetwork") -> tuple[Any, list[dict]]:
    """(zoo, dropped): the zoo itself when every network is usable (`unusable_networks` with `limit`), else a copy
    without the unusable ones written to out_dir (groups and splits kept), with a printed warning naming them and
    `reader`, whose limit it is."""
    from core.models.layers.probe_features import safe_magnitude
    from core.zoo import Zoo

    zoo = Zoo.open(zoo_dir)
    limit = safe_magnitude(torch.float32) if limit is None else limit
    dropped = unusable_networks(zoo, probes, limit=limit)
    if not dropped:
        return zoo, []
    print(f"warning: dropping {len(dropped)} of {len(zoo)} networks of {label} {zoo.dir} that diverged in training "
          f"beyond what {reader} reads in float32 (|weights| and probe activations up to {limit:.3g}): "
          f"{describe_networks(dropped)}", flush=True)
    keep = np.setdiff1d(np.arange(len(zoo)), [int(np.flatnonzero(zoo.table["index"].to_numpy() == d["index"])[0])
                                              for d in dropped])
    return compose_zoo([(zoo, keep, "")], out_dir, generator="cnn-screened"), dropped


def cross_architecture_zoos(base, wild, out_dir, holdout: float = 0.3, seed: int = 0) -> tuple[Any, Any]:
    """The Wild Park protocol: (training zoo = `base` + the wild architectures kept for training, each network in its
    own split; unseen zoo = the held-out wild architectures, never trained on). Zoos are written under out_dir."""
    from pathlib import Path

    from core.zoo import Zoo, ZooError

    base, wild = Zoo.open(base), Zoo.open(wild)
    names = sorted(wild.architectures)
    n_out = int(round(holdout * len(names)))
    if not 0 < n_out < len(names):
        raise ZooError(f"holding out {holdout:.0%} of {len(names)} wild architectures leaves none on one side")
    held = set(np.random.default_rng(seed).choice(names, n_out, replace=False).tolist())
    groups = wild.table["group"].to_numpy()
    seen_rows = np.flatnonzero(~np.isin(groups, list(held)))
    unseen_rows = np.flatnonzero(np.isin(groups, list(held)))
    out = Path(out_dir)
    train = compose_zoo([(base, np.arange(len(base)), "base-"), (wild, seen_rows, "wild-")], out / "train-zoo")
    unseen = compose_zoo([(wild, unseen_rows, "wild-")], out / "unseen-zoo",
                         split_of={f"wild-{g}": "test" for g in held})
    return train, unseen


def nearest_networks(zoo, networks: list, k: int = 5) -> list[list[dict[str, Any]]]:
    """Per network: the k networks of `zoo` nearest to it in standardised `architecture_free_statistics` (any
    architecture; permutation invariant), as {index, group, test_accuracy, distance}, nearest first. Features that
    are constant over the zoo (its depth, kernel size … when it holds one architecture) keep their own units: divided
    by a zero spread, a network that differs in one would be equally far from every zoo network."""
    from core.baselines import architecture_free_statistics

    table = zoo.table
    feats, rows = [], []
    for group in zoo.architectures:
        members = np.flatnonzero(table["group"].to_numpy() == group)
        arch, flat = zoo.flat(members)
        feats.append(architecture_free_statistics(arch, flat))
        rows.append(members)
    zoo_feats, zoo_rows = np.concatenate(feats), np.concatenate(rows)
    mean, std = zoo_feats.mean(0), zoo_feats.std(0)
    std = np.where(std > 1e-6 * np.maximum(np.abs(mean), 1.0), std, 1.0)
    scaled = (zoo_feats - mean) / std
    out = []
    for net in networks:
        q = (architecture_free_statistics(net.architecture, net.flat()[None]) - mean) / std
        dist = np.linalg.norm(scaled - q, axis=1)
        order = np.argsort(dist)[:k]
        out.append([{"index": int(zoo_rows[j]), "group": str(table["group"].iloc[zoo_rows[j]]),
                     "test_accuracy": float(table["test_accuracy"].iloc[zoo_rows[j]]), "distance": float(dist[j])}
                    for j in order])
    return out


def prediction_report(per_run: list[np.ndarray], test_mse: float | None) -> list[dict[str, Any]]:
    """Per network: the predicted accuracy (mean over the runs of a seed ensemble), its spread over the runs
    (std; None with one run) and the run's error on its own test split (RMSE: the typical miss)."""
    stacked = np.stack([np.asarray(p, dtype=np.float64) for p in per_run])
    rmse = float(np.sqrt(test_mse)) if test_mse is not None else None
    return [{"predicted_accuracy": float(stacked[:, i].mean()),
             "ensemble_std": float(stacked[:, i].std()) if len(per_run) > 1 else None,
             "ensemble_size": len(per_run), "test_rmse": rmse} for i in range(stacked.shape[1])]
