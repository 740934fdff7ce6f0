"""Run directories: train a task on a zoo and save everything needed to use the result.

A run directory holds
    config.json          task + options, model + config, zoo path, grid size, train config, versions (+ CPU, threads)
    weights.safetensors  the model's state_dict (input normalisation statistics included)
    metrics.json         the task's metrics per split
    log.csv              one row per epoch
    checkpoint.pt        while training (resume with --resume); removed when the run completes

Nothing here knows a task or model by name: what differs is declared by the task (`core.tasks.Task`) and
the model class (`core.models.MetaNetwork`).
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.data import AUGMENT_KINDS, GraphSet, Group, graph_set_from_networks, keeps_function, symmetry_augment
from core.errors import WeightSpaceError
from core.graph.layout import layout_for
from core.io.atomic import atomic_path
from core.models import build_model, config_for, model_class
from core.network.spec import Network
from core.symmetry.canonical import canonical_rule, canonicalize_flat
from core.tasks import Task, TaskError, build_task
from core.training.trainer import TrainConfig, Trainer, write_json
from core.zoo.inr_augment import AugmentError, INRAugment, parse_augment


@dataclass
class RunConfig:
    """Everything that defines a run (serialised as config.json)."""

    task: str
    model: str
    zoo: str
    task_options: dict[str, Any] = field(default_factory=dict)
    model_config: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    grid_size: int = 1
    augment: bool = False  # symmetry transforms of the training networks
    symmetry_kinds: list[str] | None = None  # their kinds (core.data.AUGMENT_KINDS; before 2026-12-04: all)
    inr_augment: dict[str, float] | None = None  # function-changing INR weight transforms (core.zoo.inr_augment)
    # the model reads canonical forms (core.symmetry.canonical), in training and after: False, or the rule
    # (a name in CANONICAL_RULES; `true` in runs from before the rules had names: "incoming")
    canonical: bool | str = False
    versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})


def _versions() -> dict[str, str]:
    import torch_geometric

    from core.device import cpu_model

    # the CPU too: the same seed and code give other bits, and other results, on another CPU kind (inr_learning.md §39)
    return {"python": platform.python_version(), "torch": torch.__version__,
            "torch_geometric": torch_geometric.__version__, "cpu": cpu_model(),
            "torch_threads": str(torch.get_num_threads())}


def graph_set_from_zoo(zoo, split: str | None, task: Task, grid_size: int | None = None,
                       stream: bool = False, rows: np.ndarray | None = None) -> GraphSet:
    """The networks of `split` (None: all) grouped by architecture, with the task's targets and extras.

    `stream`: batches read their networks from the zoo's memory-mapped parameter files instead of a copy of the
    split held in memory (training on zoos larger than memory; the task's extras are computed chunk by chunk).
    `rows`: only these table rows (of the split), in table order; nothing else is read."""
    table = zoo.table
    rows_all = zoo.split_indices(split) if split else np.arange(len(table))
    if rows is not None:
        rows_all = np.intersect1d(rows_all, np.asarray(rows, dtype=np.int64))
    groups = []
    for name in zoo.architectures:
        in_group = rows_all[table["group"].to_numpy()[rows_all] == name] if "group" in table else rows_all
        if len(in_group) == 0:
            continue
        if stream:
            arch, shard = zoo.architectures[name], zoo.group_params(name)
            in_shard = torch.from_numpy(table["group_row"].to_numpy(dtype=np.int64)[in_group])
            extras = _extras_in_chunks(task, arch, lambda part: shard[in_shard[part]].float(), table, in_group)
            groups.append(Group(arch, shard, torch.as_tensor(in_group), task.targets(table, in_group), extras,
                                in_shard))
            continue
        arch, flat = zoo.flat(in_group)
        flat = torch.as_tensor(flat, dtype=torch.float32)
        groups.append(Group(arch, flat, torch.as_tensor(in_group), task.targets(table, in_group),
                            task.extras(arch, flat, table, in_group)))
    return GraphSet(groups, grid_size, task.model_input)


def _extras_in_chunks(task: Task, arch: Any, params_of: Any, table: Any, rows: np.ndarray,
                      chunk: int = 4096) -> dict[str, torch.Tensor]:
    """`task.extras` of `rows`, computed `chunk` networks at a time (extras are per network)."""
    parts = [task.extras(arch, params_of(slice(s, s + chunk)), table, rows[s:s + chunk])
             for s in range(0, len(rows), chunk)]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]} if parts else {}


def train_run(task_name: str, model_name: str, zoo_dir: str | Path, out_dir: str | Path, *,
              train: TrainConfig | None = None, task_options: dict[str, Any] | None = None,
              model_overrides: dict[str, Any] | None = None, augment: bool | None = None,
              canonical: bool | str | None = False, resume: bool = False, overwrite: bool = False,
              progress: bool = True) -> dict[str, Any]:
    """Train `model_name` on `task_name` over the zoo's train split (early stopping on val); returns metrics.

    `canonical`: the model reads each network's canonical form (training, evaluation and every later prediction)
    under that rule (`CANONICAL_RULES`; True: "incoming"); symmetry transforms are then off, as the canonical
    form would undo them.
    A directory that already holds a run is refused unless `resume` (same configuration) or `overwrite`."""
    from core.zoo import Zoo

    train = train or TrainConfig()
    canonical = canonical_rule(canonical)  # a bad rule fails before anything is read
    out = Path(out_dir)
    _refuse_existing_run(out, resume, overwrite)  # before the zoo is read: a refusal costs nothing
    zoo = Zoo.open(zoo_dir)
    task = build_task(task_name, **(task_options or {}))
    if canonical and task.head != "graph":
        raise TaskError(f"--canonical applies to tasks that predict one value or vector per network; {task_name} "
                        "predicts changes of the input's own parameters")
    task.canonical = canonical
    if canonical:  # an architecture the rule cannot order fails now, not at the first batch
        for architecture, flat in zoo.first_of_each_group():
            canonicalize_flat(architecture, flat, canonical)
    task.adapt_to_zoo(zoo)
    task.check_zoo(zoo)
    out_dim = task.out_dim(zoo.table)
    sets = {split: graph_set_from_zoo(zoo, split, task, stream=True) for split in ("train", "val", "test")}
    if not len(sets["train"]):  # e.g. a `zoo refit` zoo (held-out networks only): refuse before writing anything
        raise TaskError(f"{zoo_dir} has no training networks (its train split is empty); train on the zoo it was "
                        "made from and score this one with `evaluate RUN --zoo`")
    grid = max(s.grid_size or 1 for s in sets.values() if len(s))
    for s in sets.values():
        s.grid_size = grid
    cls = model_class(model_name)
    augment, inr_augment = resolve_augment(augment, cls.augment_by_default)
    # the canonical form undoes every permutation and sign flip: symmetry transforms would only cost time
    augment = augment and not canonical
    if inr_augment is not None:
        _check_inr_augment(inr_augment, task, zoo)
    overrides = dict(model_overrides or {})
    if cls.fixed_architecture:  # symmetry-blind baselines read one architecture's flat vector
        if len(zoo.architectures) != 1:
            raise TaskError(f"{model_name} reads one fixed architecture; the zoo has {len(zoo.architectures)}")
        overrides["architecture"] = next(iter(zoo.architectures.values()))
    torch.manual_seed(train.seed)
    model = build_model(model_name, out_dim=out_dim, head=task.head, edge_dim=grid * grid, **overrides)
    task.check_zoo_for_model(zoo, model)
    config = RunConfig(task=task_name, model=model_name, zoo=str(zoo_dir), task_options=task.options(),
                       model_config=model.config.to_dict(), train=train.to_dict(), grid_size=grid, augment=augment,
                       symmetry_kinds=list(AUGMENT_KINDS) if augment else None,
                       inr_augment=inr_augment.to_dict() if inr_augment else None, canonical=canonical or False,
                       versions=_versions())
    # the Trainer checks the device and precision settings: fail on them before anything is written
    steps = [a for a in (inr_augment, symmetry_augment(AUGMENT_KINDS) if augment else None) if a is not None]
    trainer = Trainer(task, model, train, out, augment=_chain(steps), progress=progress)
    main = trainer.world.is_main  # with torchrun, every process trains and rank 0 alone writes the run directory
    if main:
        out.mkdir(parents=True, exist_ok=True)
        if resume and (out / "config.json").exists():
            _check_same_run(out, config)
        write_json(out / "config.json", config.to_dict())
    started = time.perf_counter()
    result = trainer.fit(sets["train"], sets["val"] if len(sets["val"]) else None, resume=resume)
    metrics = {split: trainer.evaluate(s) for split, s in sets.items() if len(s)}
    epoch_seconds = [h["seconds"] for h in result["history"]]
    metrics["training"] = {"best_epoch": result["best_epoch"], "epochs_run": result["epochs_run"],
                           "seconds": time.perf_counter() - started,
                           "seconds_per_epoch": float(np.mean(epoch_seconds)) if epoch_seconds else 0.0,
                           "parameters": sum(p.numel() for p in model.parameters())}
    if trainer.world.distributed:
        metrics["training"]["processes"] = trainer.world.size
    if main:
        save_weights(model, out / "weights.safetensors")
        write_json(out / "metrics.json", metrics)
        (out / "checkpoint.pt").unlink(missing_ok=True)
    return metrics


def resolve_augment(spec: bool | str | None, default_symmetry: bool) -> tuple[bool, INRAugment | None]:
    """`--augment` → (symmetry transforms on, INR weight transforms or None).

    None: the model's default; True / False: symmetry transforms on / off and no INR transforms; a string:
    comma-separated `symmetry` or `nosymmetry`, presets (`ng`, `none`) and key=value settings
    (`core.zoo.inr_augment`); symmetry transforms stay at the model's default unless one of the two is listed.
    """
    if spec is None or isinstance(spec, bool):
        return (default_symmetry if spec is None else spec), None
    items = _augment_items(spec)
    if "symmetry" in items and "nosymmetry" in items:
        raise AugmentError("--augment lists both 'symmetry' and 'nosymmetry'; keep one")
    rest = ",".join(t for t in items if t not in ("symmetry", "nosymmetry"))
    inr = parse_augment(rest) if rest else None
    symmetry = True if "symmetry" in items else False if "nosymmetry" in items else default_symmetry
    return symmetry, (inr if inr != INRAugment() else None)


def asks_symmetry_transforms(spec: bool | str | None) -> bool:
    """Whether an `--augment` value names symmetry transforms explicitly (alone, or `symmetry` in a spec)."""
    return spec is True or (isinstance(spec, str) and "symmetry" in _augment_items(spec))


def _augment_items(spec: str) -> list[str]:
    """The comma-separated items of an `--augment` spec."""
    return [t.strip() for t in str(spec).split(",") if t.strip()]


def _check_inr_augment(augment: INRAugment, task: Task, zoo: Any) -> None:
    """Refuse INR transforms for tasks whose targets they would invalidate, or networks they do not fit."""
    if not task.function_augmentation:
        raise TaskError(f"{task.name}: weight transforms that change the network's function (translate, rotate, "
                        "scale, noise, dropout) would leave its targets stale; they are for inr-classify, "
                        "inr-edit and embed --objective function (contrastive embed has --views)")
    for architecture, flat in zoo.first_of_each_group():  # fail now, not at the first batch
        augment(architecture, flat.double(), torch.Generator().manual_seed(0))


def _chain(augments: list) -> Any:
    """One augmentation applying `augments` in order (None when there are none)."""
    if not augments:
        return None
    if len(augments) == 1:
        return augments[0]

    def augment(architecture, flat, generator):
        for step in augments:
            flat = step(architecture, flat, generator)
        return flat

    augment.keeps_function = all(keeps_function(step) for step in augments)
    return augment


RUN_FILES = ("config.json", "weights.safetensors", "metrics.json", "log.csv", "checkpoint.pt")


def _refuse_existing_run(out: Path, resume: bool, overwrite: bool) -> None:
    """Never replace a run's files silently: a run directory is continued (--resume) or replaced (--overwrite)."""
    if out.exists() and not out.is_dir():
        raise TaskError(f"{out} is a file, not a run directory; choose another --out")
    held = [name for name in RUN_FILES if (out / name).exists()]
    if held and not (resume or overwrite):
        finished = "a finished run" if (out / "weights.safetensors").exists() else "an interrupted run"
        raise TaskError(f"{out} already holds {finished} ({', '.join(held)}); pass --resume to continue it with the "
                        "same options, --overwrite to replace it, or choose another --out")


def _check_same_run(out: Path, config: RunConfig) -> None:
    """A resumed run must have the configuration it was started with."""
    keys = ("task", "model", "task_options", "model_config", "train", "augment", "symmetry_kinds", "inr_augment",
            "canonical")
    saved, wanted = json.loads((out / "config.json").read_text()), config.to_dict()
    for d in (saved, wanted):  # fields added since the run started read as their defaults on both sides
        if d.get("model") == wanted["model"]:
            d["model_config"] = config_for(wanted["model"]).from_dict(d.get("model_config") or {}).to_dict()
        d["train"] = TrainConfig.from_dict(d.get("train") or {}).to_dict()
        d["canonical"] = canonical_rule(d.get("canonical")) or False
    differ = []
    for k in keys:
        old, new = saved.get(k), wanted[k]
        if isinstance(old, dict) and isinstance(new, dict):
            differ += [f"{k}.{name}" for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)]
        elif old != new:
            differ.append(k)
    if differ:
        raise TaskError(f"{out} holds a run with a different configuration ({', '.join(differ)}); resume it with "
                        "its own options or use another --out")


def save_weights(model: torch.nn.Module, path: Path) -> None:
    """The model's state_dict as safetensors (atomically)."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(tmp))


@dataclass
class Run:
    """A trained run loaded from its directory."""

    path: Path
    config: RunConfig
    task: Task
    model: torch.nn.Module

    @property
    def metrics(self) -> dict[str, Any]:
        p = self.path / "metrics.json"
        return json.loads(p.read_text()) if p.exists() else {}

    def trainer(self, device: str = "auto") -> Trainer:
        cfg = TrainConfig.from_dict({**self.config.train, "device": device})
        return Trainer(self.task, self.model, cfg, None, progress=False)

    def graph_set(self, networks: list[Network]) -> GraphSet:
        """Networks → GraphSet at this run's grid size; a clear error if the run cannot read them."""
        for net in networks:
            net.architecture.check_known_activations()
            need = layout_for(net.architecture).grid_size
            if need > self.config.grid_size:
                raise TaskError(f"{net.meta.get('file', 'network')}: kernels of size {need} exceed this run's "
                                f"grid size {self.config.grid_size}; the run cannot read this architecture")
        return graph_set_from_networks(networks, self.task, self.config.grid_size)

    def predict(self, networks: list[Network], device: str = "auto") -> torch.Tensor:
        """Task predictions for arbitrary networks, in input order."""
        data = self.graph_set(networks)
        try:
            preds = self.trainer(device).predict(data)
        except (RuntimeError, IndexError) as exc:
            reason = str(exc).splitlines()[0]
            raise TaskError(f"the {self.config.model} model of this run cannot read this architecture: "
                            f"{reason}") from None
        order = torch.cat([g.index for g in data.groups])
        out = torch.empty_like(preds)
        out[order] = preds
        return out

    def edit(self, networks: list[Network], resolution: int | None = None) -> list[dict[str, Any]]:
        """Apply an editing run (a task whose `predict_command` is "edit", e.g. `inr-edit`) to networks:
        per network {"network": edited Network, "source", "edited", "target" images, "mse", "identity_mse"}."""
        if self.task.predict_command != "edit":
            raise TaskError(f"{self.path} is a {self.config.task} run; `edit` needs an editing run (e.g. inr-edit)")
        return self.task.edit_networks(self.model, networks, self.config.grid_size, resolution)


def run_split(run: Run, zoo, split: str | None) -> GraphSet:
    """A zoo split (None: all) as `run` reads it (its task, grid size and probes), streamed; refuses an empty one."""
    data = graph_set_from_zoo(zoo, split, run.task, run.config.grid_size, stream=True)
    if len(data) == 0:
        raise TaskError(f"split {split or 'all'!r} of {zoo.dir} is empty")
    return data


def check_ensemble(runs: list[Run]) -> None:
    """Refuse runs whose predictions cannot be averaged: of different tasks, or of a task whose predictions do not
    average (`Task.ensemble_mean`: embeddings, parameter updates)."""
    first = runs[0]
    for run in runs:
        if run.config.task != first.config.task or not run.task.ensemble_mean:
            raise TaskError(f"{run.path}: its task is {run.config.task}; an ensemble needs runs of one task whose "
                            f"predictions average (inr-classify or generalization; the first run's is "
                            f"{first.config.task})")


def ensemble_metrics(runs: list[Run], zoo, split: str | None, device: str = "auto") -> dict[str, Any]:
    """The task's metrics of the mean of several runs' predictions on a zoo split, with each member's own.

    The runs must share a task whose predictions average (`Task.ensemble_mean`: class probabilities, predicted
    values) and its output size; each reads the split at its own grid size and probes."""
    check_ensemble(runs)
    first = runs[0]
    preds, targets = [], None
    for run in runs:
        data = run_split(run, zoo, split)
        out = run.trainer(device).predict(data)
        if preds and out.shape != preds[0].shape:
            raise TaskError(f"{run.path}: predictions of shape {tuple(out.shape)}, the first run's are "
                            f"{tuple(preds[0].shape)}")
        preds.append(out)
        targets = data.targets() if targets is None else targets  # one zoo split: the same order for every run
    metrics = first.task.metrics(torch.stack(preds).mean(0), targets)
    metrics["members"] = [first.task.metrics(p, targets) for p in preds]
    metrics["runs"] = [str(run.path) for run in runs]
    return metrics


def load_run(path: str | Path, device: str = "cpu") -> Run:
    """Load a run directory (config + weights) for evaluation or prediction."""
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / "config.json").is_file() or not (path / "weights.safetensors").is_file():
        raise WeightSpaceError(f"{path}: not a finished run directory (needs config.json and weights.safetensors)")
    config = RunConfig.from_dict(json.loads((path / "config.json").read_text()))
    task = build_task(config.task, **config.task_options)
    task.canonical = canonical_rule(config.canonical)
    model_cfg = config_for(config.model).from_dict(config.model_config)
    model = build_model(config.model, out_dim=task.out_dim(), head=task.head, config=model_cfg)
    state = load_file(str(path / "weights.safetensors"), device=device)
    model.load_state_dict(state)
    model.eval()
    return Run(path, config, task, model)
