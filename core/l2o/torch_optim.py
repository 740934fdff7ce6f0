"""`LearnedOptimizer`: a trained learned optimiser as a `torch.optim.Optimizer` for a user's own small MLP.

    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = LearnedOptimizer(net, load_optimizer("runs/l2o"))
    loss.backward(); opt.step(); opt.zero_grad()

The module is traced once (`core.io.network_from_module`) to get its Architecture and the flat parameter
order; each `step` gathers the gradients into one flat vector [1, P], asks the learned optimiser for the
update and writes the new values back into the module's parameters in place.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from core.l2o.optimizers import FunctionalOptimizer, check_architecture
from core.l2o.optimizers import LearnedRule as _Learned
from core.l2o.problems import L2OError


class LearnedOptimizer(torch.optim.Optimizer):
    """torch.optim wrapper around a functional (learned or hand-designed) optimiser for one nn.Module MLP."""

    def __init__(self, module: nn.Module, optimizer: FunctionalOptimizer, input_shape: tuple[int, ...] | None = None):
        from core.io import network_from_module

        if not isinstance(optimizer, FunctionalOptimizer):
            raise L2OError(f"expected a core.l2o optimiser, got {type(optimizer).__name__}")
        net = network_from_module(module, input_shape)
        self.architecture = net.architecture
        if isinstance(optimizer, _Learned):
            check_architecture(self.architecture)
        named = dict(module.named_parameters())
        keys = [k for k, _ in self.architecture.parameter_shapes()]
        missing = [k for k in keys if k not in named]
        if missing or len(keys) != len(named):
            raise L2OError(f"cannot match the module's parameters to its traced architecture (missing {missing[:3]})")
        params = [named[k] for k in keys]
        self.learned = optimizer.eval()
        super().__init__(params, {})
        self._state = None

    def _flat(self, attr: str) -> torch.Tensor:
        ps = self.param_groups[0]["params"]
        dtype = self.learned.log_lr.dtype if isinstance(self.learned, _Learned) else ps[0].dtype
        parts = []
        for p in ps:
            t = p if attr == "data" else p.grad
            parts.append(torch.zeros(p.numel(), dtype=dtype, device=p.device) if t is None
                         else t.detach().reshape(-1).to(dtype))
        return torch.cat(parts)[None]

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None):  # type: ignore[override]
        """Apply one learned update to the module's parameters (gradients must be populated)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        flat, grad = self._flat("data"), self._flat("grad")
        if self._state is None:
            self._state = self.learned.init_state(flat)
        new, self._state = self.learned.step(self.architecture, flat, grad, self._state)
        offset = 0
        for p in self.param_groups[0]["params"]:
            n = p.numel()
            p.copy_(new[0, offset:offset + n].view_as(p).to(p.dtype))
            offset += n
        return loss
