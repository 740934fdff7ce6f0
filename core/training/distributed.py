"""Data-parallel training on `torch.distributed`: process-group setup from torchrun's environment, rank
helpers, and the reductions the Trainer needs.

`torchrun --nproc_per_node N -m core train …` starts N processes with RANK, WORLD_SIZE, LOCAL_RANK (and
MASTER_ADDR/MASTER_PORT) in their environment; `setup` joins them into one process group: `nccl` when the
processes train on CUDA GPUs (one GPU per process, `cuda:LOCAL_RANK`), `gloo` on CPUs. Without those
variables (or with WORLD_SIZE 1) everything here is a no-op and training runs in one process as before.

Every rank takes its share of each global batch (`GraphSet.batches(shard=…)`): the global batch is the
per-process `--batch-size` × the number of processes, so N processes with `--batch-size B` follow the loss
curve of one process with `--batch-size N·B` (same batches, same order, same schedule).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from core.device import pick_device
from core.errors import WeightSpaceError


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (rank 0 of 1 when not distributed)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and prints (rank 0)."""
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int] | None:
        """(rank, world size) for `GraphSet.batches(shard=…)`, None in one process."""
        return (self.rank, self.size) if self.distributed else None


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise WeightSpaceError(f"environment variable {name}={value!r} is not an integer") from None


def env_world() -> World:
    """The World described by torchrun's environment variables (RANK, WORLD_SIZE, LOCAL_RANK)."""
    size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    if size < 1 or not 0 <= rank < size:
        raise WeightSpaceError(f"RANK={rank} and WORLD_SIZE={size} do not describe a process group")
    return World(rank, size, _env_int("LOCAL_RANK", rank))


def current_world() -> World:
    """The World of the initialised process group (one process when there is none)."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), env_world().local_rank)
    return World()


def setup(device_preference: str = "auto") -> tuple[World, torch.device]:
    """Join the process group torchrun describes (once per process) and pick this rank's device.

    CUDA processes use `cuda:LOCAL_RANK` and the nccl backend; CPU processes the gloo backend."""
    world = env_world()
    device = pick_device(device_preference)
    if not world.distributed:
        return world, device
    if device.type == "cuda":
        if world.local_rank >= torch.cuda.device_count():
            raise WeightSpaceError(f"LOCAL_RANK {world.local_rank} but only {torch.cuda.device_count()} CUDA "
                                   "device(s): start at most one process per GPU (--nproc_per_node)")
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs: dict[str, Any] = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend=backend, **kwargs)
        barrier()  # every rank has finished its own checks before any rank writes
    return current_world(), device


def teardown() -> None:
    """Leave the process group (no-op when there is none)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op in one process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sums of `values` over the ranks, in float64 (the same list in one process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def all_gather_rows(index: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate every rank's (index [n], rows [n, …]) (CPU tensors; ranks may hold different n)."""
    if not (dist.is_available() and dist.is_initialized()):
        return index, rows
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, (index.cpu(), rows.cpu()))
    held = [g for g in gathered if len(g[0])] or gathered[:1]  # ranks without networks add nothing
    return torch.cat([g[0] for g in held]), torch.cat([g[1] for g in held])


def broadcast_object(value: Any) -> Any:
    """Rank 0's `value` on every rank (the value itself in one process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wrap_model(model: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around `model` when there are several ranks (the model itself otherwise).

    DDP averages gradients over the ranks during backward; the Trainer weights each rank's loss by its share
    of the global batch so that the average is the global batch's mean loss."""
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=False)
