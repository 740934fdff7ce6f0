"""One `Trainer` for every task: AdamW, warm-up + cosine schedule, gradient clipping, early stopping on the
validation split, mixed precision (float16 on GPU by default, bfloat16 on request, CPU included),
deterministic seeds, tqdm progress with live metrics, resumable per-epoch checkpoints, and (`ema`) an exponential
moving average of the weights that validation and the kept model use.

Determinism: every epoch reseeds the global RNG and the data generator from (seed, epoch), so a run
resumed from the checkpoint of epoch k continues exactly as the uninterrupted run would.

Data parallelism: started by torchrun, every process trains a DistributedDataParallel copy on its share of
each global batch (per-process batch size × processes; `core.training.distributed`); losses and metrics are
reduced over the processes and only rank 0 writes checkpoints and logs.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from core.data import Augment, GraphSet
from core.device import autocast, autocast_dtype
from core.io.atomic import atomic_path, save_torch, write_text
from core.tasks.base import Task, TaskError
from core.training import distributed
from core.training.early_stopping import EarlyStopping
from core.training.schedule import warmup_cosine


@dataclass
class TrainConfig:
    """Optimisation settings (serialised with each run)."""

    epochs: int = 50
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.05
    grad_clip: float = 1.0
    patience: int = 10  # epochs without validation improvement before stopping (0: never stop early)
    stop_window: int = 1  # patience also counts on the mean of the last N validation scores (1: the raw score)
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # `auto` precision: float16 mixed precision on CUDA (False: float32 there too)
    precision: str = "auto"  # auto, fp32 or bf16 (bfloat16 autocast, also on CPU; see core.device.autocast_dtype)
    compile: bool = False  # torch.compile the model's layers (pays off on long runs)
    normalisation_sample: int = 512  # networks used to compute input normalisation
    # exponential moving average of the weights (0: off): validation, the kept model and the saved weights use
    # W_ema ← ema · W_ema + (1 − ema) · W after every step; about 1 / (1 − ema) steps are averaged
    ema: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


class Trainer:
    """Train / evaluate / predict a metanetwork on a task. `run_dir` (optional) receives checkpoints and logs."""

    def __init__(self, task: Task, model: torch.nn.Module, config: TrainConfig, run_dir: str | Path | None = None,
                 augment: Augment | None = None, progress: bool = True):
        self.task = task
        self.config = config
        self.world, self.device = distributed.setup(config.device)
        self.model = model.to(self.device)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.augment = augment
        self.progress = progress and self.world.is_main
        self.history: list[dict[str, Any]] = []
        self.precision = config.precision if config.amp or config.precision != "auto" else "fp32"
        autocast_dtype(self.device, self.precision)  # a bad setting fails here, before any work
        EarlyStopping(config.patience, config.stop_window)  # as does a bad patience or window
        if not 0.0 <= config.ema < 1.0:
            raise TaskError(f"ema must be in [0, 1) (0: off), got {config.ema}")

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def predict(self, data: GraphSet, batch_size: int | None = None) -> torch.Tensor:
        """Per-network predictions in the order of `data.batches(shuffle=False)`."""
        self.model.eval()
        outs = []
        for batch in data.batches(batch_size or self.config.batch_size):
            with autocast(self.device, self.precision):
                outs.append(self.task.predict_step(self.model, batch.to(self.device)).float().cpu())
        return torch.cat(outs) if outs else torch.empty(0)

    def evaluate(self, data: GraphSet) -> dict[str, float]:
        """The task's metrics on `data` (loss included); with several processes each evaluates its share."""
        self.model.eval()
        losses, preds, rows, n = 0.0, [], [], 0
        with torch.no_grad():
            for batch in data.batches(self.config.batch_size * self.world.size, shard=self.world.shard):
                if batch.weight == 0:  # a placeholder: evaluation needs no step on every rank
                    continue
                with autocast(self.device, self.precision):
                    loss, pred = self.task.step(self.model, batch.to(self.device))
                losses += float(loss) * pred.shape[0]
                n += pred.shape[0]
                preds.append(pred.float().cpu())
                rows.append(batch.index)
        predictions = torch.cat(preds) if preds else torch.empty(0)
        if self.world.distributed:
            losses, n = distributed.all_reduce_sum([losses, n], self.device)
            mine = torch.cat(rows) if rows else torch.empty(0, dtype=torch.long)  # a rank may hold no network
            predictions = _in_data_order(data, *distributed.all_gather_rows(mine, predictions))
        metrics = self.task.metrics(predictions, data.targets())
        metrics["loss"] = losses / max(n, 1)
        return metrics

    # ------------------------------------------------------------------ training
    def fit(self, train: GraphSet, val: GraphSet | None = None, resume: bool = False) -> dict[str, Any]:
        """Train; returns {"best_epoch", "epochs_run", "history"}. With `resume`, continue from the checkpoint.

        With `val`, the model of the best validation epoch is kept, the untrained one (best epoch 0) included.
        """
        cfg = self.config
        if len(train) == 0:
            raise TaskError("the training split is empty")
        global_batch = cfg.batch_size * self.world.size
        steps_per_epoch = train.num_batches(global_batch)
        total = steps_per_epoch * cfg.epochs
        torch.manual_seed(cfg.seed)
        if hasattr(self.model, "fit_normalisation"):
            sample = train.subset(cfg.normalisation_sample, torch.Generator().manual_seed(cfg.seed))
            graphs = [b.graph for b in sample.batches(cfg.normalisation_sample)]
            self.model.fit_normalisation(graphs[0] if len(graphs) == 1 else graphs)
            self.model.to(self.device)
        # built before compiling, so that its copy of the model is a plain module
        averaged = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema)) if cfg.ema else None
        if cfg.compile and hasattr(self.model, "compile_layers"):
            self.model.compile_layers()
        stepped = distributed.wrap_model(self.model, self.world, self.device)  # what the training steps call
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        # float16 gradients need loss scaling; bfloat16 has float32's exponent range and does not
        use_scaler = autocast_dtype(self.device, self.precision) == torch.float16
        opt = _Optimisation(optimizer, warmup_cosine(optimizer, total, math.ceil(cfg.warmup_fraction * total)),
                            torch.amp.GradScaler(self.device.type, enabled=use_scaler), averaged)
        start_epoch, best_epoch, best_state = 0, -1, None
        stopping = EarlyStopping(cfg.patience, cfg.stop_window, self.task.greater_is_better)
        ckpt_path = self.run_dir / "checkpoint.pt" if self.run_dir else None
        state = self._read_checkpoint(ckpt_path, global_batch) if resume and ckpt_path else None
        if state is not None:
            self.model.load_state_dict(state["model"])
            opt.load_state_dict(state)
            start_epoch, best_epoch = state["epoch"] + 1, state["best_epoch"]
            best_state = state["best_state"]
            # checkpoints written before the smoothed stopping rule hold the plain rule's counter only
            stopping.load_state_dict(state["stopping"] if "stopping" in state else
                                     {"scores": [], "best": state["best"], "bad_epochs": state["bad_epochs"]})
            self.history = json.loads(state["history"])
        elif val is not None and len(val):
            # the untrained model is a candidate too: an editor that starts at the identity edit and only gets
            # worse on validation (an overfitting one) keeps that identity edit, at best epoch 0
            stopping.update(self.evaluate(val)[self.task.primary_metric])
            best_epoch = 0
            best_state = self._state_copy()
        bar = tqdm(total=total, initial=start_epoch * steps_per_epoch, desc=f"train {self.task.name}",
                   disable=not self.progress, unit="batch", dynamic_ncols=True)
        for epoch in range(start_epoch, cfg.epochs):
            started = time.perf_counter()
            torch.manual_seed(cfg.seed * 1_000_003 + epoch)
            gen = _epoch_generator(cfg.seed, epoch)
            batches = train.batches(global_batch, shuffle=True, generator=gen, augment=self.augment,
                                    shard=self.world.shard)
            running, count = self._train_epoch(batches, stepped, opt, bar, epoch)
            live = None
            if averaged is not None:  # validate (and keep) the averaged weights; training resumes from the live ones
                live = self._state_copy()
                self.model.load_state_dict(self._averaged_state(averaged))
            record: dict[str, Any] = {"epoch": epoch + 1, "train_loss": running / max(count, 1),
                                      "lr": opt.scheduler.get_last_lr()[0], "seconds": time.perf_counter() - started}
            score = self._epoch_score(record, val)
            # the kept model: the best single epoch, whatever the window
            if stopping.better(score, stopping.best_raw):
                best_epoch = epoch + 1
                best_state = self._state_copy()
            stopping.update(score)
            if live is not None:
                self.model.load_state_dict(live)
            self.history.append(record)
            shown = {"epoch": epoch + 1, "loss": f"{record['train_loss']:.4g}"}
            if val is not None:
                shown[f"val_{self.task.primary_metric}"] = f"{score:.4g}"
            bar.set_postfix(**shown)
            if self.run_dir is not None and self.world.is_main:
                self._write_log()
                save_torch({"model": self.model.state_dict(), **opt.state_dict(), "epoch": epoch,
                            "best_epoch": best_epoch, "stopping": stopping.state_dict(),
                            "best_state": best_state, "history": json.dumps(self.history),
                            "global_batch": global_batch}, ckpt_path)
            if stopping.should_stop:
                break
        bar.close()
        if best_state is not None:
            self.model.load_state_dict(best_state)
        return {"best_epoch": best_epoch, "epochs_run": len(self.history), "history": self.history}

    def _epoch_score(self, record: dict[str, Any], val: GraphSet | None) -> float:
        """The early-stopping score of an epoch: the validation metric (its metrics added to `record`), else the
        training loss (negated where greater is better)."""
        if val is None or not len(val):
            return -record["train_loss"] if self.task.greater_is_better else record["train_loss"]
        val_metrics = self.evaluate(val)
        record.update({f"val_{k}": v for k, v in val_metrics.items() if isinstance(v, (int, float))})
        return val_metrics[self.task.primary_metric]

    def _state_copy(self) -> dict[str, torch.Tensor]:
        """A detached copy of the model's state_dict (the best model so far)."""
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def _averaged_state(self, averaged: AveragedModel) -> dict[str, torch.Tensor]:
        """The model's state with its parameters replaced by their moving averages (buffers stay the model's)."""
        state = self._state_copy()
        names = [name for name, _ in self.model.named_parameters()]
        for name, param in zip(names, averaged.module.parameters(), strict=True):
            state[name] = param.detach().clone()
        return state

    def _train_epoch(self, batches: Any, stepped: torch.nn.Module, opt: "_Optimisation", bar: Any,
                     epoch: int) -> tuple[float, float]:
        """One pass over `batches`: (sum of per-network losses, networks) over all ranks."""
        optimizer, scheduler, scaler, averaged = opt.optimizer, opt.scheduler, opt.scaler, opt.averaged
        self.model.train()
        running, count = 0.0, 0
        for batch in batches:
            batch = batch.to(self.device)
            with autocast(self.device, self.precision):
                loss, pred = self.task.step(stepped, batch)
            optimizer.zero_grad(set_to_none=True)
            # DDP averages the ranks' gradients: weighting by each rank's share makes that the global mean
            scaler.scale(loss * batch.weight if batch.weight != 1.0 else loss).backward()
            scaler.unscale_(optimizer)
            if self.config.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            if averaged is not None:
                averaged.update_parameters(self.model)
            networks = pred.shape[0] if batch.weight else 0
            running += float(loss.detach()) * networks
            count += networks
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{running / max(count, 1):.4g}")
        if self.world.distributed:
            running, count = distributed.all_reduce_sum([running, count], self.device)
        return running, count

    def _read_checkpoint(self, path: Path, global_batch: int) -> dict[str, Any] | None:
        """The resumable state in `path` (None if absent). Rank 0 reads it and hands it to the other ranks, so
        only its machine needs the run directory."""
        state = None
        if self.world.is_main and path.exists():
            state = torch.load(path, map_location="cpu", weights_only=True)
        if self.world.distributed:
            state = distributed.broadcast_object(state)
        if state is not None and state.get("global_batch", global_batch) != global_batch:
            raise TaskError(f"the checkpoint was trained with a global batch of {state['global_batch']} networks; "
                            f"resume with --batch-size × processes = {state['global_batch']} (now {global_batch})")
        return state

    def _write_log(self) -> None:
        keys = list(dict.fromkeys(k for r in self.history for k in r))
        with atomic_path(self.run_dir / "log.csv") as tmp:
            with open(tmp, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=keys)
                writer.writeheader()
                writer.writerows(self.history)


@dataclass
class _Optimisation:
    """What each training step updates besides the model: optimiser, schedule, loss scaler, weight average."""

    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    averaged: AveragedModel | None = None

    def state_dict(self) -> dict[str, Any]:
        """Their states under the checkpoint's keys (`ema` only when averaging)."""
        state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "scaler": self.scaler.state_dict()}
        if self.averaged is not None:
            state["ema"] = self.averaged.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from a checkpoint; one written without a weight average cannot resume a run that keeps one."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.averaged is not None:
            if "ema" not in state:
                raise TaskError("the checkpoint was written without --ema; resume without it")
            self.averaged.load_state_dict(state["ema"])


def _in_data_order(data: GraphSet, rows: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
    """Predictions gathered from the ranks (with their zoo rows) in the order `data.batches()` yields."""
    order = torch.cat([g.index for g in data.groups])
    position = torch.full((int(order.max()) + 1,), -1, dtype=torch.long)
    position[order] = torch.arange(len(order))
    out = torch.empty((len(order), *predictions.shape[1:]), dtype=predictions.dtype)
    out[position[rows]] = predictions
    return out


def write_json(path: Path, data: Any) -> None:
    """Atomically write pretty JSON."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
