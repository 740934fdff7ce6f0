"""Resumable zoo builds: split the work into chunks, run them (optionally in worker processes), store each."""

from __future__ import annotations

import contextlib
import os
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable, Iterator, Sequence

import torch


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


@contextlib.contextmanager
def _main_hidden() -> Iterator[None]:
    """Keep spawned workers from re-running the parent's __main__ (e.g. `python -m core`, which has no
    `if __name__ == "__main__"` guard): workers only need core.zoo, which they import by name."""
    main = sys.modules.get("__main__")
    saved = {k: getattr(main, k) for k in ("__spec__", "__file__") if main is not None and hasattr(main, k)}
    try:
        for k in saved:
            if k == "__spec__":
                main.__spec__ = None
            else:
                delattr(main, k)
        yield
    finally:
        for k, v in saved.items():
            setattr(main, k, v)


def default_workers() -> int:
    """One worker per CPU core (each single-threaded: no OpenMP barriers on busy machines)."""
    return max(1, os.cpu_count() or 1)


def run_chunks(
    tasks: Sequence[tuple[int, Any]],
    fn: Callable[[Any], Any],
    on_result: Callable[[int, Any], None],
    *,
    workers: int = 1,
    progress_total: int | None = None,
    progress_sizes: dict[int, int] | None = None,
    desc: str = "building",
    unit: str = "net",
    progress: bool = True,
) -> None:
    """Run `fn(payload)` for each (chunk id, payload), in `workers` processes; `on_result(k, result)` in order
    of completion (in this process), with a tqdm bar (ETA) over `progress_total` items."""
    from tqdm.auto import tqdm

    sizes = progress_sizes or {}
    bar = tqdm(total=progress_total, desc=desc, unit=unit, disable=not progress, dynamic_ncols=True)
    try:
        if workers <= 1 or len(tasks) <= 1:
            for k, payload in tasks:
                on_result(k, fn(payload))
                bar.update(sizes.get(k, 0))
            return
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        with _main_hidden(), ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx,
                                                 initializer=_init_worker, initargs=(1,)) as pool:
            pending = {pool.submit(fn, payload): k for k, payload in tasks}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    k = pending.pop(fut)
                    on_result(k, fut.result())
                    bar.update(sizes.get(k, 0))
    finally:
        bar.close()


def shard_from_env() -> tuple[int, int] | None:
    """(RANK, WORLD_SIZE) when torchrun started this process among several, else None."""
    size, rank = os.environ.get("WORLD_SIZE", "1"), os.environ.get("RANK", "0")
    if not (size.isdigit() and rank.isdigit()) or int(size) <= 1:
        return None
    return int(rank), int(size)


def build_sharded(build: Callable[..., Any], out_dir: str | os.PathLike, shard: str | None, workers: int | None,
                  **options: Any) -> tuple[Any, tuple[int, int] | None]:
    """Run `build(out_dir, shard=…, workers=…, **options)` as one shard of a build, or as the whole build.

    `shard` "I/N": this process builds shard I of N (finish with `merge_shards`). Without it, under torchrun,
    the processes build shard RANK of WORLD_SIZE each into the shared `out_dir` and rank 0 merges once all have
    finished (a gloo barrier). Returns (the opened Zoo, or None for a shard that is not merged here; the shard)."""
    from datetime import timedelta

    import torch.distributed as dist

    from core.zoo.store import Zoo, merge_shards, parse_shard

    chosen = parse_shard(shard) if shard else shard_from_env()
    torchrun = shard is None and chosen is not None
    if torchrun and workers is None:  # the machine's cores shared by the processes torchrun started on it
        workers = max(1, default_workers() // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    if torchrun and not dist.is_initialized():
        dist.init_process_group("gloo", timeout=timedelta(days=7))  # shards of a big zoo take hours
    try:
        zoo = build(out_dir, shard=chosen, workers=workers, **options)
        if torchrun:
            dist.barrier()
            if chosen[0] == 0 and zoo is None:
                zoo = Zoo.open(merge_shards(out_dir))
    finally:
        if torchrun:
            dist.destroy_process_group()
    return zoo, chosen
