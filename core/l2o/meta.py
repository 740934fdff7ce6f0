"""Meta-training by truncated back-propagation through unrolled inner training, rollouts and lr tuning.

Meta-training (`meta_train`):
- a *trajectory* trains B freshly initialised inner networks of one problem (sampled from the training
  specs) for `horizon` inner steps; it is cut into `horizon / unroll` truncations of `unroll` steps;
- within a truncation the inner updates w_{t+1} = w_t + Δ_θ(w_t, g_t, state_t) stay on the autograd graph;
  the inner gradients g_t are treated as inputs (no second-order terms: `autograd.grad` without
  `create_graph`, as in Andrychowicz et al. 2016), so the meta-gradient flows through w_t only;
- meta-objective of a truncation = mean over its `unroll` steps and the B networks of the inner
  minibatch training loss *after* each update; meta-optimiser Adam with gradient-norm clipping;
- after each truncation the inner parameters and optimiser state are detached and training continues;
  a trajectory whose loss becomes non-finite is dropped (no meta-update) and restarted.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import torch

from core.l2o.optimizers import Adam, FunctionalOptimizer, LearnedRule, SGDMomentum, detach_state
from core.l2o.problems import TRAIN_SPECS, InnerProblem, L2OError, ProblemSpec, sample_problem


@dataclass
class MetaConfig:
    """Meta-training hyper-parameters."""

    meta_steps: int = 200  # meta-updates (one per truncation)
    unroll: int = 10  # inner steps per truncation
    horizon: int = 50  # inner steps per trajectory before a new problem is sampled
    networks: int = 4  # B inner networks trained in parallel per problem
    meta_lr: float = 3e-3
    clip: float = 1.0
    seed: int = 0
    specs: tuple[ProblemSpec, ...] = field(default_factory=lambda: TRAIN_SPECS)

    def __post_init__(self):
        if self.unroll < 1 or self.horizon < self.unroll or self.meta_steps < 0 or self.networks < 1:
            raise L2OError("need unroll ≥ 1, horizon ≥ unroll, meta_steps ≥ 0, networks ≥ 1")
        if not self.specs:
            raise L2OError("need at least one training problem spec")

    def to_dict(self) -> dict:
        """JSON-friendly dict."""
        d = asdict(self)
        d["specs"] = [s.to_dict() for s in self.specs]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "MetaConfig":
        """Inverse of `to_dict`."""
        d = dict(d)
        d["specs"] = tuple(ProblemSpec.from_dict(s) for s in d.get("specs", []))
        return cls(**d)


def _loss_and_grad(problem: InnerProblem, flat: torch.Tensor, keep_graph: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Minibatch loss per network [B] (on the graph if keep_graph) and its gradient w.r.t. flat (detached)."""
    x, y = problem.minibatch()
    with torch.enable_grad():
        if not flat.requires_grad:
            flat = flat.detach().requires_grad_(True)
        loss = problem.loss(flat, x, y)
        (grad,) = torch.autograd.grad(loss.sum(), flat, retain_graph=keep_graph)
    return loss, grad.detach()


def meta_train(opt: LearnedRule, config: MetaConfig,
               log: Callable[[int, float], None] | None = None) -> list[float]:
    """Meta-train `opt` in place; returns the meta-loss of every truncation."""
    rng = random.Random(config.seed)
    meta_opt = torch.optim.Adam(opt.parameters(), lr=config.meta_lr)
    dtype = opt.log_lr.dtype
    history: list[float] = []
    per_traj = config.horizon // config.unroll
    problem = flat = state = grad = None
    k = per_traj
    step = 0
    while step < config.meta_steps:
        if k >= per_traj:  # new trajectory
            spec = config.specs[rng.randrange(len(config.specs))]
            problem = sample_problem(spec, config.networks, seed=rng.randrange(2**31), dtype=dtype)
            flat = problem.init.clone()
            state = opt.init_state(flat)
            _, grad = _loss_and_grad(problem, flat, keep_graph=False)
            k = 0
        flat = flat.detach().requires_grad_(True)
        total = 0.0
        for _ in range(config.unroll):
            flat, state = opt.step(problem.architecture, flat, grad, state)
            loss, grad = _loss_and_grad(problem, flat, keep_graph=True)
            total = total + loss.mean()
        meta_loss = total / config.unroll
        k += 1
        if not torch.isfinite(meta_loss):
            k = per_traj  # drop the trajectory
            continue
        meta_opt.zero_grad()
        meta_loss.backward()
        torch.nn.utils.clip_grad_norm_(opt.parameters(), config.clip)
        meta_opt.step()
        state = detach_state(state)
        flat = flat.detach()
        history.append(float(meta_loss.detach()))
        if log is not None:
            log(step, history[-1])
        step += 1
    return history


@torch.no_grad()
def rollout(opt: FunctionalOptimizer, problem: InnerProblem, steps: int, eval_every: int = 10,
            eval_at: Sequence[int] = ()) -> dict:
    """Train the problem's B networks for `steps` steps with `opt`.

    Returns {"steps": [...], "train_loss": [len, B] full-training-set loss at every `eval_every` steps,
    "minibatch_loss": [steps, B], "at": {T: {"train_loss", "test_loss", "test_acc"} [B] each}, "seconds"}.
    """
    flat = problem.init.clone()
    state = opt.init_state(flat)
    marks = sorted(set(range(0, steps + 1, eval_every)) | {int(t) for t in eval_at if t <= steps})
    curve_steps, curve, mb, at = [], [], [], {}
    t0 = time.perf_counter()
    for t in range(steps + 1):
        if t in marks:
            ev = problem.evaluate(flat)
            curve_steps.append(t)
            curve.append(ev["train_loss"])
            if t in eval_at:
                at[t] = ev
        if t == steps:
            break
        loss, grad = _loss_and_grad(problem, flat, keep_graph=False)
        mb.append(loss.detach())
        if not torch.isfinite(grad).all():
            grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
        flat, state = opt.step(problem.architecture, flat.detach(), grad, state)
        flat = flat.detach()
    return {"steps": curve_steps, "train_loss": torch.stack(curve), "minibatch_loss": torch.stack(mb) if mb else None,
            "at": at, "seconds": time.perf_counter() - t0}


def mean_trajectory_loss(opt: FunctionalOptimizer, specs: Sequence[ProblemSpec], steps: int, networks: int,
                         seeds: Sequence[int]) -> float:
    """Mean minibatch training loss over `steps` steps (the meta-objective) on the given problems; inf if diverged."""
    vals = []
    for spec in specs:
        for seed in seeds:
            problem = sample_problem(spec, networks, seed)
            r = rollout(opt, problem, steps, eval_every=max(steps, 1))
            v = float(r["minibatch_loss"].mean())
            vals.append(v if math.isfinite(v) else math.inf)
    return sum(vals) / len(vals)


ADAM_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 2e-2, 3e-2, 5e-2, 1e-1)  # low end for SIREN fits (w0 = 30)
SGDM_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 2e-1, 3e-1, 5e-1, 1.0)


def tune_lr(kind: str, specs: Sequence[ProblemSpec] = TRAIN_SPECS, steps: int = 50, networks: int = 4,
            seeds: Sequence[int] = (1000, 1001),
            grid: Sequence[float] | None = None) -> tuple[float, dict[float, float]]:
    """Grid-search the learning rate of "adam" or "sgdm" on meta-training problems by the meta-objective."""
    if kind not in ("adam", "sgdm"):
        raise L2OError(f"tune_lr knows adam and sgdm, got {kind!r}")
    grid = tuple(grid or (ADAM_GRID if kind == "adam" else SGDM_GRID))
    scores = {}
    for lr in grid:
        opt = Adam(lr) if kind == "adam" else SGDMomentum(lr)
        scores[lr] = mean_trajectory_loss(opt, specs, steps, networks, seeds)
    best = min(scores, key=scores.get)
    return best, scores
