"""Functional optimisers on flat parameters [B, P]: hand-designed (Adam, SGD+momentum) and learned.

Every optimiser has `init_state(flat)` and `step(arch, flat, grad, state) -> (flat', state')`. The state
holds Adam's moment estimates for all of them (m: β1-EMA of the gradient, v: β2-EMA of its square, t).

Learned optimisers read three features per parameter,

    f_w = w,    f_g = g / (sqrt(v̂) + ε),    f_m = m̂ / (sqrt(v̂) + ε)     (m̂, v̂: bias-corrected moments)

(the gradient and momentum are normalised element-wise by the RMS gradient so that their scale does not
depend on the problem; the normalisation is element-wise, hence commutes with neuron permutations) and
output two numbers per parameter, a direction correction d and a log step-size r:

    Δw = −η · (exp(r) · f_m + d),    r = 2·tanh(a·o_r),  d = tanh(a·o_d),   η = exp(log_lr)

with learned scalars η (initialised at the tuned Adam rate) and gain a (initialised at 0.1). With o = 0
the update is Adam, so meta-training starts from a sensible optimiser and stays bounded (|Δw| ≤ η(e²|f_m|+1)).

- `PerParamOptimizer`: the classic coordinate-wise L2O baseline, an MLP on each parameter's
  [f_w, f_g, f_m, is_bias, is_first_layer, is_last_layer] (it cannot see any other parameter).
- `GraphOptimizer`: a params-head metanetwork (`ng-gnn`, `scalegmn`, …) on the neural graph of each
  inner network with edge features [f_w, f_g, f_m] (edge_dim = 3, one column per stacked
  `features_from_params` edge tensor) and node features [b, f_g(b), f_m(b), 0, 0]: column 0 is the bias
  (as in every NeuralGraph); columns 1–2, which hold normalisation-layer parameters in general graphs and
  are constant (1, 0) for plain MLPs, carry the bias's gradient and momentum features instead, so every
  parameter of the inner network (weight = edge, bias = node) sees the same three features. Inner
  networks with normalisation layers are therefore rejected. The per-edge output channels 0/1 are (o_d,
  o_r) of the weights, the per-node output channels 0/1 those of the biases; `params_from_features` maps
  them back to flat order. Being a permutation-equivariant function of a permutation-equivariant input,
  the update permutes with the inner network's hidden neurons.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn

from core.graph import layout_for, to_graphs
from core.l2o.problems import L2OError
from core.network import Architecture, Linear

State = dict[str, Any]


def init_state(flat: torch.Tensor) -> State:
    """Zero Adam moments for flat parameters [B, P]."""
    return {"m": torch.zeros_like(flat), "v": torch.zeros_like(flat), "t": 0}


def update_moments(state: State, grad: torch.Tensor, beta1: float, beta2: float) -> State:
    """New state with the gradient folded into the moment EMAs."""
    return {"m": beta1 * state["m"] + (1 - beta1) * grad,
            "v": beta2 * state["v"] + (1 - beta2) * grad * grad,
            "t": state["t"] + 1}


def detach_state(state: State) -> State:
    """The state cut from the autograd graph (truncated back-propagation)."""
    return {k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in state.items()}


class FunctionalOptimizer(nn.Module, ABC):
    """Base class of the functional optimisers."""

    name = "base"
    beta1, beta2, eps = 0.9, 0.999, 1e-8

    def init_state(self, flat: torch.Tensor) -> State:
        """Initial optimiser state for flat parameters [B, P]."""
        return init_state(flat)

    @abstractmethod
    def step(self, arch: Architecture, flat: torch.Tensor, grad: torch.Tensor,
             state: State) -> tuple[torch.Tensor, State]:
        """One update: (new flat parameters, new state)."""


class Adam(FunctionalOptimizer):
    """Adam (Kingma & Ba) on flat parameters."""

    name = "adam"

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        super().__init__()
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps

    def step(self, arch, flat, grad, state):
        state = update_moments(state, grad, self.beta1, self.beta2)
        t = state["t"]
        mhat = state["m"] / (1 - self.beta1 ** t)
        vhat = state["v"] / (1 - self.beta2 ** t)
        return flat - self.lr * mhat / (vhat.sqrt() + self.eps), state


class SGDMomentum(FunctionalOptimizer):
    """SGD with (heavy-ball) momentum: m ← μ m + g, w ← w − lr m."""

    name = "sgdm"

    def __init__(self, lr: float = 0.1, momentum: float = 0.9):
        super().__init__()
        self.lr, self.momentum = lr, momentum

    def step(self, arch, flat, grad, state):
        m = self.momentum * state["m"] + grad
        return flat - self.lr * m, {"m": m, "v": state["v"], "t": state["t"] + 1}


def check_architecture(arch: Architecture) -> None:
    """Raise L2OError unless `arch` is a plain MLP-like network (Linear layers, activations, no normalisation)."""
    from core.network import Activation, Flatten, Offset

    for op in arch.ops:
        if not isinstance(op, (Linear, Activation, Flatten, Offset)):
            raise L2OError(f"learned optimisers support MLPs (Linear + activations); got a {type(op).__name__} layer")


class LearnedRule(FunctionalOptimizer):
    """Shared features and update rule of the learned optimisers; subclasses implement `propose`."""

    kind = "learned"

    def __init__(self, lr: float = 1e-2, gain: float = 0.1):
        super().__init__()
        self.log_lr = nn.Parameter(torch.tensor(math.log(lr)))
        self.gain = nn.Parameter(torch.tensor(float(gain)))

    def features(self, flat: torch.Tensor, state: State) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(f_w, f_g, f_m) [B, P] each, from an already-updated state and the current gradient in state['g']."""
        t = state["t"]
        vhat = state["v"] / (1 - self.beta2 ** t)
        denom = vhat.sqrt() + self.eps
        mhat = state["m"] / (1 - self.beta1 ** t)
        return flat, state["g"] / denom, mhat / denom

    @abstractmethod
    def propose(self, arch: Architecture, fw: torch.Tensor, fg: torch.Tensor,
                fm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw outputs (o_d, o_r) [B, P] each."""

    def update(self, arch: Architecture, flat: torch.Tensor, grad: torch.Tensor,
               state: State) -> tuple[torch.Tensor, State]:
        """The proposed update Δw [B, P] and the new state (the step without applying it)."""
        check_architecture(arch)
        state = update_moments(state, grad, self.beta1, self.beta2)
        fw, fg, fm = self.features(flat, {**state, "g": grad})
        o_d, o_r = self.propose(arch, fw.to(self.log_lr.dtype), fg.to(self.log_lr.dtype), fm.to(self.log_lr.dtype))
        a = self.gain
        r = 2 * torch.tanh(a * o_r)
        d = torch.tanh(a * o_d)
        delta = -self.log_lr.exp() * (r.exp() * fm + d)
        return delta.to(flat.dtype), state

    def step(self, arch, flat, grad, state):
        delta, state = self.update(arch, flat, grad, state)
        return flat + delta, state

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-friendly constructor arguments (for saving)."""


def _param_kinds(arch: Architecture) -> torch.Tensor:
    """[P, 3] float: is_bias, is_first_weight_layer, is_last_weight_layer per flat parameter."""
    shapes = arch.parameter_shapes()
    layers = [k.rsplit(".", 1)[0] for k, _ in shapes]
    first, last = layers[0], layers[-1]
    rows = []
    for (key, shape), layer in zip(shapes, layers):
        n = math.prod(shape)
        kind = [float(key.endswith("bias")), float(layer == first), float(layer == last)]
        rows.append(torch.tensor([kind]).expand(n, 3))
    return torch.cat(rows)


class PerParamOptimizer(LearnedRule):
    """Coordinate-wise MLP learned optimiser (classic L2O baseline; sees each parameter in isolation)."""

    name = "per-param-mlp"

    def __init__(self, hidden: int = 32, lr: float = 1e-2, gain: float = 0.1):
        super().__init__(lr, gain)
        self.hidden = hidden
        self.net = nn.Sequential(nn.Linear(6, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 2))
        self._kinds: dict[Architecture, torch.Tensor] = {}

    def propose(self, arch, fw, fg, fm):
        kinds = self._kinds.get(arch)
        if kinds is None:
            kinds = self._kinds[arch] = _param_kinds(arch)
        b, p = fw.shape
        feats = torch.cat([torch.stack([fw, fg, fm], -1), kinds.to(fw)[None].expand(b, p, 3)], -1)
        out = self.net(feats)
        return out[..., 0], out[..., 1]

    def config(self):
        return {"kind": "per-param", "hidden": self.hidden}


def graph_backbones() -> list[str]:
    """Registered models a `GraphOptimizer` can use: they read any architecture and have a params head."""
    from core.models import model_names

    return model_names(lambda cls: not cls.fixed_architecture and "params" in cls.heads)


class GraphOptimizer(LearnedRule):
    """Equivariant learned optimiser: a params-head metanetwork on the neural graph of [w, grad, momentum]."""

    def __init__(self, model: str = "ng-gnn", hidden: int = 16, layers: int = 2, lr: float = 1e-2, gain: float = 0.1,
                 model_config: dict | None = None):
        super().__init__(lr, gain)
        from core.models import build_model, model_class

        if model not in graph_backbones():
            raise L2OError(f"{model!r} cannot be a learned optimiser's backbone; choose one of "
                           f"{', '.join(graph_backbones())}")
        self.model_name = model
        overrides: dict[str, Any] = {}
        if model_config is None:
            overrides = {"hidden": hidden, "layers": layers, "edge_dim": 3}
            if model_class(model).normalises_input:
                overrides["normalise"] = False  # the inputs are already normalised element-wise
        self.net = build_model(model, out_dim=1, head="params", config=model_config, **overrides)
        if self.net.config.edge_dim != 3:
            raise L2OError(f"the graph optimiser needs edge_dim=3, got {self.net.config.edge_dim}")
        self.name = model
        self._batches: dict[tuple[Architecture, int], Any] = {}

    def graph_batch(self, arch: Architecture, fw: torch.Tensor, fg: torch.Tensor, fm: torch.Tensor):
        """The PyG Batch of B neural graphs with the stacked features (structure cached per (arch, B))."""
        b = fw.shape[0]
        layout = layout_for(arch)
        if layout.edge_dim != 1:
            raise L2OError("the graph optimiser supports MLPs (scalar edge features)")
        key = (arch, b)
        batch = self._batches.get(key)
        if batch is None:
            batch = self._batches[key] = to_graphs(arch, torch.zeros(b, arch.num_parameters))
        (xw, ew), (xg, eg), (xm, em) = (layout.features_from_params(f) for f in (fw, fg, fm))
        x = torch.cat([xw[..., :1], xg[..., :1], xm[..., :1], torch.zeros_like(xw[..., :2])], -1)  # [B, N, 5]
        batch.x = x.reshape(-1, 5)
        batch.edge_attr = torch.cat([ew, eg, em], -1).reshape(-1, 3)  # [B*E, 3]
        return batch

    def propose(self, arch, fw, fg, fm):
        b = fw.shape[0]
        layout = layout_for(arch)
        out = self.net(self.graph_batch(arch, fw, fg, fm))
        x = out.x.view(b, layout.num_nodes, 5)
        e = out.edge_attr.view(b, layout.num_edges, 3)
        o_d = layout.params_from_features(x[..., 0:1].expand(-1, -1, 5), e[..., 0:1])
        o_r = layout.params_from_features(x[..., 1:2].expand(-1, -1, 5), e[..., 1:2])
        return o_d, o_r

    def config(self):
        return {"kind": "graph", "model": self.model_name, "model_config": self.net.config.to_dict()}


def build_optimizer(config: dict[str, Any]) -> LearnedRule:
    """A learned optimiser from its `config()` dict (weights not loaded)."""
    cfg = dict(config)
    kind = cfg.pop("kind", None)
    if kind == "per-param":
        return PerParamOptimizer(hidden=int(cfg.get("hidden", 32)))
    if kind == "graph":
        return GraphOptimizer(model=cfg["model"], model_config=cfg.get("model_config"))
    raise L2OError(f"unknown learned optimiser kind {kind!r}; expected 'per-param' or 'graph'")
