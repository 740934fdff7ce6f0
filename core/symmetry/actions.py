"""Which weight-space symmetries an architecture admits, group elements, and their action on flat
parameters, `Network`s and `NeuralGraph`s.

A group element acts on each hidden neuron layer (a layer of `layout_for(arch).layers` with role
hidden) by a permutation `perm`, a per-neuron scale `d` and, for sine layers, a bias shift by integer
multiples `k` of the period 2π/w0. Convention (gather, indexed by the *new* position j):

    new_incoming[j] = d[j] · old_incoming[perm[j]] (+ k[j] · 2π/w0 for the phase parameter)
    new_outgoing[:, j] = old_outgoing[:, perm[j]] / d[j]

so the transformed network's hidden value at j is d[j] times the original's at perm[j].

Derivation of what is admitted (verified numerically by `core.symmetry.check` and the tests):
- The scale is *injected* at the layer's weight op (rows of W and the bias × d), or — when an affine
  BatchNorm/LayerNorm directly follows the weight op — at that norm's γ and β instead (the norm output is
  affine per channel, so scaling γ, β scales the output exactly; the weights, running mean/var and eps are
  untouched). Plain rescaling of the weights *before* a norm is not exact: BN's eps breaks it, and
  LayerNorm mixes all features of the layer, so per-neuron scales cannot pass through it.
- A value that carries the scale may pass: an activation that commutes with it (ReLU/LeakyReLU: q > 0;
  tanh, sine: s = ±1; identity: any non-zero), average/global pooling and flatten (linear), max-pooling
  (q > 0 only), an eval-mode BatchNorm with running statistics (mean and β × d; exact for any d) or one
  normalising with batch statistics (only |d| = 1). A LayerNorm, an Offset or any other activation on
  a scaled value removes scaling from the layer.
- A residual `x + values[src]` ties the two layers (one permutation, one scale); both summands must
  carry the scale or neither, else the tied group admits permutations only. A tie to the input or
  output layer fixes the group entirely (input and output neurons never move).
- Sine layers: sin(w0·(z + 2πk/w0)) = sin(w0·z), so the parameter that adds last before the sine (bias,
  or the β of a directly preceding affine norm) may shift by k·2π/w0, provided only residual additions
  lie between it and the sine and no skip reads the shifted pre-activation.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import torch

from core.errors import ArchitectureError, WeightSpaceError
from core.graph.layout import HIDDEN, NODE_FEATURES, GraphLayout, layout_for
from core.network.spec import (
    NORM_OPS,
    Activation,
    Architecture,
    BatchNorm,
    Conv,
    Flatten,
    GlobalAvgPool,
    LayerNorm,
    Linear,
    Network,
    Offset,
    Pool,
    Residual,
)

KINDS: tuple[str, ...] = ("permutation", "scale", "sign", "phase")

# scale groups each activation commutes with: f(d·x) = d·f(x)
_COMMUTES: dict[str, frozenset[str]] = {
    "identity": frozenset({"positive", "sign"}),
    "relu": frozenset({"positive"}),
    "leaky_relu": frozenset({"positive"}),
    "tanh": frozenset({"sign"}),
    "sine": frozenset({"sign"}),
}


class SymmetryError(WeightSpaceError, ValueError):
    """A group element does not fit the architecture (wrong layer, size or kind)."""


# ---------------------------------------------------------------------------------------------- report
@dataclass(frozen=True)
class LayerSymmetry:
    """Symmetries of one hidden neuron layer (index into `layout_for(arch).layers`)."""

    layer: int
    name: str
    size: int
    activation: str
    group: int  # tie group id: the smallest layer index of the group
    tied_with: tuple[int, ...]  # other hidden layers sharing the permutation and scale
    permutable: bool  # False when a skip ties the layer to the input or output neurons
    scaling: str | None  # 'positive' | 'sign' | None (identity layers: 'positive', with sign_flips too)
    sign_flips: bool
    period: float | None  # bias periodicity 2π/w0 for sine layers, else None
    w0: float | None = None

    def kinds(self) -> list[str]:
        """Symmetry kinds this layer admits."""
        out = ["permutation"] if self.permutable else []
        if self.scaling == "positive":
            out.append("scale")
        if self.sign_flips:
            out.append("sign")
        if self.period is not None:
            out.append("phase")
        return out


@dataclass(frozen=True)
class SymmetryReport:
    """The symmetries an architecture admits, per hidden neuron layer."""

    architecture: Architecture
    layers: tuple[LayerSymmetry, ...]

    @property
    def kinds(self) -> list[str]:
        """Admitted symmetry names, in the order of `KINDS`."""
        present = {k for layer in self.layers for k in layer.kinds()}
        return [k for k in KINDS if k in present]

    def layer(self, index: int) -> LayerSymmetry:
        """The entry of neuron layer `index`."""
        for layer in self.layers:
            if layer.layer == index:
                return layer
        raise SymmetryError(f"neuron layer {index} is not a hidden layer")

    def groups(self) -> dict[int, list[LayerSymmetry]]:
        """Tie groups: group id → member layers."""
        out: dict[int, list[LayerSymmetry]] = {}
        for layer in self.layers:
            out.setdefault(layer.group, []).append(layer)
        return out

    def describe(self) -> str:
        """One-line summary, e.g. `permutation of 32+32 hidden neurons; sign flips on 64 neurons; …`."""
        parts = []
        perm_sizes, pos, sign, fixed = [], 0, 0, 0
        for members in self.groups().values():
            head = members[0]
            if not head.permutable:
                fixed += sum(m.size for m in members)
                continue
            perm_sizes.append(str(head.size) if len(members) == 1 else f"{head.size}×{len(members)} tied")
            pos += head.size if head.scaling == "positive" else 0
            sign += head.size if head.sign_flips else 0
        if perm_sizes:
            parts.append(f"permutation of {'+'.join(perm_sizes)} hidden neurons")
        if pos:
            parts.append(f"positive scaling on {pos} neurons")
        if sign:
            parts.append(f"sign flips on {sign} neurons")
        w0s = sorted({layer.w0 for layer in self.layers if layer.period is not None})
        if w0s:
            parts.append("bias periodicity " + ", ".join(f"2π/{w:g}" for w in w0s))
        if fixed:
            parts.append(f"{fixed} hidden neurons fixed by skips to the input/output")
        return "; ".join(parts) if parts else "no weight-space symmetries"

    def to_dict(self) -> dict:
        """JSON-ready summary."""
        return {
            "summary": self.describe(),
            "kinds": self.kinds,
            "layers": [
                {"layer": s.layer, "name": s.name, "size": s.size, "activation": s.activation, "group": s.group,
                 "tied_with": list(s.tied_with), "permutable": s.permutable, "scaling": s.scaling,
                 "sign_flips": s.sign_flips, "period": s.period}
                for s in self.layers
            ],
        }


# ---------------------------------------------------------------------------------------------- plan
@dataclass
class _Plan:
    """Per-architecture analysis + flat index maps (cached)."""

    report: SymmetryReport
    layout: GraphLayout
    periods: dict[int, float]  # layer → period of its phase parameter
    # per flat parameter p (length P): row node / col node (dummy N for none), strides, exponents, shift flag
    row_node: torch.Tensor
    row_stride: torch.Tensor
    col_node: torch.Tensor
    col_stride: torch.Tensor
    row_exp: torch.Tensor  # bool: multiplied by d of its row neuron
    col_exp: torch.Tensor  # bool: divided by d of its column neuron
    shift: torch.Tensor  # bool: the phase parameter of its row neuron
    device_cache: dict = field(default_factory=dict)  # device → index maps (see _device_maps)


def _param_offsets(arch: Architecture) -> dict[str, tuple[int, tuple[int, ...]]]:
    offsets, start = {}, 0
    for key, shape in arch.parameter_shapes():
        offsets[key] = (start, shape)
        start += math.prod(shape)
    return offsets


@dataclass
class _PlanBuilder:
    """State while `_plan` walks the ops (one `plan_op` handler per op kind): per flat parameter its row /
    column neuron and whether it scales, per hidden layer the scale groups it still admits."""

    ops: tuple
    shapes: list[tuple[int, ...]]
    layers: list  # NeuronLayer of the layout
    offsets: dict[str, tuple[int, tuple[int, ...]]]
    layer_of_op: dict[int, int]  # Linear/Conv op index → neuron layer it outputs
    row_node: torch.Tensor
    row_stride: torch.Tensor
    col_node: torch.Tensor
    col_stride: torch.Tensor
    row_exp: torch.Tensor
    col_exp: torch.Tensor
    shift: torch.Tensor
    parent: list[int]  # union-find over neuron layers: residuals tie layers
    allowed: list[set[str]]  # per layer: scale groups ('positive', 'sign') its ops commute with
    mismatched: list[int] = field(default_factory=list)  # layers tied by a residual of a scaled + unscaled value
    injection: dict[int, int] = field(default_factory=dict)  # layer → op index where its scale enters
    sine_at: dict[int, int] = field(default_factory=dict)  # layer → op index of its sine activation
    skip_sources: set[int] = field(default_factory=set)  # `source` of every residual
    residual_ops: set[int] = field(default_factory=set)  # op indices of residuals
    value_layer: list[int] = field(default_factory=lambda: [0])  # per value (i + 1 after op i): neuron layer
    flag: list[bool] = field(default_factory=lambda: [False])  # per value: carries its layer's scale
    cur: int = 0  # neuron layer of the current value
    scaled: bool = False  # the current value carries the scale of `cur`
    pending_flatten: tuple[int, ...] | None = None

    def vector(self, key: str, layer: int, scaled: bool) -> None:
        """A per-neuron parameter (bias, norm statistic) of `layer`; `scaled`: multiplied by its d."""
        if key not in self.offsets:
            return
        start, (n,) = self.offsets[key]
        sl = slice(start, start + n)
        self.row_node[sl] = torch.arange(n) + self.layers[layer].start
        self.row_stride[sl] = 1
        self.row_exp[sl] = scaled

    def find(self, a: int) -> int:
        """Root of layer `a`'s tie group."""
        parent = self.parent
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def restrict(self, groups: set[str] | frozenset[str]) -> None:
        """The current value passes an op that commutes only with these scale groups (if it is scaled)."""
        if self.scaled:
            self.allowed[self.cur] &= groups


@functools.singledispatch
def plan_op(op: object, b: _PlanBuilder, i: int) -> None:
    """Record what op `i` does to the symmetry analysis (see the module docstring); one handler per op kind.
    Handlers update `b.cur` / `b.scaled` when the op changes the neuron layer or the scaling of the value."""
    raise ArchitectureError(f"op {i} ({op!r}): its weight-space symmetries are not known")


@plan_op.register(Linear)
@plan_op.register(Conv)
def _(op: Linear | Conv, b: _PlanBuilder, i: int) -> None:
    L = b.layer_of_op[i]
    start, shape = b.offsets[f"{op.name}.weight"]
    n = math.prod(shape)
    idx = torch.arange(n)
    row_stride_w = n // shape[0]
    # a linear layer reading a flattened map has channel blocks as columns; a conv one kernel per column
    area = math.prod(b.pending_flatten) if b.pending_flatten is not None else math.prod(shape[2:])
    sl = slice(start, start + n)
    b.row_node[sl] = idx // row_stride_w + b.layers[L].start
    b.row_stride[sl] = row_stride_w
    b.col_node[sl] = (idx % row_stride_w) // area + b.layers[b.cur].start
    b.col_stride[sl] = area
    b.col_exp[sl] = b.scaled
    nxt = b.ops[i + 1] if i + 1 < len(b.ops) else None
    at_norm = isinstance(nxt, NORM_OPS) and nxt.affine  # the scale enters at the norm's γ, β instead
    b.injection[L] = i + 1 if at_norm else i
    b.row_exp[sl] = not at_norm
    b.vector(f"{op.name}.bias", L, not at_norm)
    b.cur, b.scaled, b.pending_flatten = L, not at_norm, None


def _norm_injects(op: BatchNorm | LayerNorm, b: _PlanBuilder, i: int) -> bool:
    """If the current layer's scale enters at this norm's affine output, record its parameters; else False."""
    if b.injection.get(b.cur) != i:
        return False
    b.vector(f"{op.name}.weight", b.cur, True)
    b.vector(f"{op.name}.bias", b.cur, True)
    b.vector(f"{op.name}.running_mean", b.cur, False)
    b.vector(f"{op.name}.running_var", b.cur, False)
    b.scaled = True
    return True


@plan_op.register(BatchNorm)
def _(op: BatchNorm, b: _PlanBuilder, i: int) -> None:
    if _norm_injects(op, b, i):
        return
    through = b.scaled  # eval-mode BN is affine per channel: mean and β carry the scale
    b.vector(f"{op.name}.weight", b.cur, False)
    b.vector(f"{op.name}.bias", b.cur, through)
    b.vector(f"{op.name}.running_mean", b.cur, through)
    b.vector(f"{op.name}.running_var", b.cur, False)
    if not op.track_running_stats:
        b.restrict({"sign"})  # batch statistics normalise the scale away: only |d| = 1 survives


@plan_op.register(LayerNorm)
def _(op: LayerNorm, b: _PlanBuilder, i: int) -> None:
    if _norm_injects(op, b, i):
        return
    b.vector(f"{op.name}.weight", b.cur, False)
    b.vector(f"{op.name}.bias", b.cur, False)
    b.restrict(set())  # mixes all features of the layer


@plan_op.register(Activation)
def _(op: Activation, b: _PlanBuilder, i: int) -> None:
    b.restrict(_COMMUTES.get(op.fn, frozenset()))
    if op.fn == "sine":
        b.sine_at[b.cur] = i


@plan_op.register(Pool)
def _(op: Pool, b: _PlanBuilder, i: int) -> None:
    if op.mode != "avg":
        b.restrict({"positive"})


@plan_op.register(GlobalAvgPool)
def _(op: GlobalAvgPool, b: _PlanBuilder, i: int) -> None:
    pass  # linear: passes any scale


@plan_op.register(Offset)
def _(op: Offset, b: _PlanBuilder, i: int) -> None:
    b.restrict(set())


@plan_op.register(Flatten)
def _(op: Flatten, b: _PlanBuilder, i: int) -> None:
    spatial = b.shapes[i][1:]
    if b.cur != 0 and math.prod(spatial) > 1:
        b.pending_flatten = spatial


@plan_op.register(Residual)
def _(op: Residual, b: _PlanBuilder, i: int) -> None:
    src = b.value_layer[op.source + 1]
    b.parent[b.find(src)] = b.find(b.cur)
    if b.flag[op.source + 1] != b.scaled:
        b.mismatched.append(b.cur)
    b.skip_sources.add(op.source)
    b.residual_ops.add(i)


def _group_allowed(b: _PlanBuilder, members: dict[int, list[int]]) -> dict[int, set[str]]:
    """Per tie group root: the scale groups every member admits (none for a group fixed by the input/output
    layer or tied through a residual that adds a scaled and an unscaled value)."""
    out_layer = len(b.layers) - 1
    out: dict[int, set[str]] = {}
    for root, ls in members.items():
        a = set(("positive", "sign"))
        for L in ls:
            a &= b.allowed[L]
        if 0 in ls or out_layer in ls or any(b.find(L) == root for L in b.mismatched):
            a = set()
        out[root] = a
    return out


def _phase_periods(b: _PlanBuilder) -> dict[int, float]:
    """Per hidden sine layer whose phase parameter may shift: its period 2π/w0 (marks `b.shift`)."""
    periods: dict[int, float] = {}
    for L, j in b.sine_at.items():
        if b.layers[L].role != HIDDEN:
            continue
        inj = b.injection[L]
        between_ok = all(t in b.residual_ops for t in range(inj + 1, j))
        leaks = any(inj <= s < j for s in b.skip_sources)
        key = f"{b.ops[inj].name}.bias"
        if between_ok and not leaks and key in b.offsets:
            start, (n,) = b.offsets[key]
            b.shift[start:start + n] = True
            periods[L] = 2 * math.pi / b.ops[j].w0
    return periods


def _report_entries(b: _PlanBuilder, members: dict[int, list[int]], periods: dict[int, float]) -> list[LayerSymmetry]:
    """One LayerSymmetry per hidden layer; layers fixed by a tie to the input/output get negative group ids."""
    layers, out_layer = b.layers, len(b.layers) - 1
    allowed = _group_allowed(b, members)
    entries = []
    for L, layer in enumerate(layers):
        if layer.role != HIDDEN:
            continue
        root = b.find(L)
        ls = members[root]
        fixed = 0 in ls or out_layer in ls
        a = allowed[root]
        w0 = b.ops[b.sine_at[L]].w0 if L in periods else None  # a shifting phase needs a sine
        entries.append(LayerSymmetry(
            layer=L, name=b.ops[layer.op_index].name, size=layer.size, activation=layer.activation,
            group=min(ls) if not fixed else -1, tied_with=tuple(m for m in ls if m != L and layers[m].role == HIDDEN),
            permutable=not fixed, scaling="positive" if "positive" in a else ("sign" if "sign" in a else None),
            sign_flips="sign" in a, period=periods.get(L), w0=w0,
        ))
    fixed_groups: dict[int, int] = {}
    for k, e in enumerate(entries):
        if e.group == -1:
            root = b.find(e.layer)
            fixed_groups.setdefault(root, -1 - len(fixed_groups))
            entries[k] = dataclasses.replace(e, group=fixed_groups[root])
    return entries


@functools.lru_cache(maxsize=256)
def _plan(arch: Architecture) -> _Plan:
    layout = layout_for(arch)
    layers = layout.layers
    P, N, n_layers = arch.num_parameters, layout.num_nodes, len(layers)
    b = _PlanBuilder(
        ops=arch.ops, shapes=arch.value_shapes(), layers=layers, offsets=_param_offsets(arch),
        layer_of_op={i: k + 1 for k, i in enumerate(arch.weight_layers())},
        row_node=torch.full((P,), N, dtype=torch.long), row_stride=torch.zeros(P, dtype=torch.long),
        col_node=torch.full((P,), N, dtype=torch.long), col_stride=torch.zeros(P, dtype=torch.long),
        row_exp=torch.zeros(P, dtype=torch.bool), col_exp=torch.zeros(P, dtype=torch.bool),
        shift=torch.zeros(P, dtype=torch.bool),
        parent=list(range(n_layers)), allowed=[set(("positive", "sign")) for _ in range(n_layers)],
    )
    for i, op in enumerate(arch.ops):
        plan_op(op, b, i)
        b.value_layer.append(b.cur)
        b.flag.append(b.scaled)

    members: dict[int, list[int]] = {}  # tie groups: root → member layers
    for L in range(n_layers):
        members.setdefault(b.find(L), []).append(L)
    periods = _phase_periods(b)
    report = SymmetryReport(arch, tuple(_report_entries(b, members, periods)))
    return _Plan(report, layout, periods, b.row_node, b.row_stride, b.col_node, b.col_stride, b.row_exp, b.col_exp,
                 b.shift)


def admitted_symmetries(arch: Architecture | Network) -> SymmetryReport:
    """The symmetries an architecture admits (derived from its ops; see the module docstring)."""
    if isinstance(arch, Network):
        arch = arch.architecture
    return _plan(arch).report


# ---------------------------------------------------------------------------------------------- elements
def _bshape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape[:-1])


def _take(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """t[..., idx] with broadcasting of leading (batch) dims."""
    lead = torch.broadcast_shapes(_bshape(t), _bshape(idx))
    return t.expand(*lead, t.shape[-1]).gather(-1, idx.expand(*lead, idx.shape[-1]))


@dataclass
class GroupElement:
    """One weight-space symmetry (or a batch of them): per hidden neuron layer a permutation, scales and
    phase shifts, all indexed by the new neuron position (see the module docstring).

    Tensors are [size] for one element or [B, size] for a batch; missing layers act as the identity.
    `a.compose(b)` is a∘b: applying it equals applying b first, then a.
    """

    perms: dict[int, torch.Tensor] = field(default_factory=dict)
    scales: dict[int, torch.Tensor] = field(default_factory=dict)
    shifts: dict[int, torch.Tensor] = field(default_factory=dict)

    def layers(self) -> list[int]:
        """Neuron layers this element touches."""
        return sorted(set(self.perms) | set(self.scales) | set(self.shifts))

    def _size(self, layer: int) -> int:
        for d in (self.perms, self.scales, self.shifts):
            if layer in d:
                return d[layer].shape[-1]
        raise KeyError(layer)  # pragma: no cover

    def _full(self, layer: int, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p = self.perms.get(layer, torch.arange(size))
        d = self.scales.get(layer, torch.ones(size, dtype=torch.float64))
        k = self.shifts.get(layer, torch.zeros(size, dtype=torch.long))
        return p.long(), d.double(), k.long()

    @property
    def batch_size(self) -> int | None:
        """B for a batch of elements, None for a single one."""
        for d in (self.perms, self.scales, self.shifts):
            for t in d.values():
                if t.dim() == 2:
                    return t.shape[0]
        return None

    def compose(self, other: "GroupElement") -> "GroupElement":
        """self ∘ other (apply `other` first, then `self`)."""
        out = GroupElement()
        for L in sorted(set(self.layers()) | set(other.layers())):
            size = self._size(L) if L in self.layers() else other._size(L)
            p2, d2, k2 = self._full(L, size)
            p1, d1, k1 = other._full(L, size)
            if L in self.perms or L in other.perms:
                out.perms[L] = _take(p1, p2)
            if L in self.scales or L in other.scales:
                out.scales[L] = d2 * _take(d1, p2)
            if L in self.shifts or L in other.shifts:
                out.shifts[L] = torch.sign(d2).long() * _take(k1, p2) + k2
        return out

    def inverse(self) -> "GroupElement":
        """The element undoing this one."""
        out = GroupElement()
        for L in self.layers():
            p, d, k = self._full(L, self._size(L))
            inv = torch.argsort(p, dim=-1)
            d_inv = 1.0 / _take(d, inv)
            if L in self.perms:
                out.perms[L] = inv
            if L in self.scales:
                out.scales[L] = d_inv
            if L in self.shifts:
                out.shifts[L] = -(torch.sign(d_inv).long() * _take(k, inv))
        return out

    def index(self, b: int) -> "GroupElement":
        """Element b of a batch."""
        pick = lambda t: t[b] if t.dim() == 2 else t  # noqa: E731
        return GroupElement({L: pick(t) for L, t in self.perms.items()}, {L: pick(t) for L, t in self.scales.items()},
                            {L: pick(t) for L, t in self.shifts.items()})

    def allclose(self, other: "GroupElement", rtol: float = 1e-9) -> bool:
        """Same action (up to float tolerance on scales)."""
        for L in sorted(set(self.layers()) | set(other.layers())):
            size = self._size(L) if L in self.layers() else other._size(L)
            a, b = self._full(L, size), other._full(L, size)
            if not (torch.equal(*torch.broadcast_tensors(a[0], b[0])) and torch.allclose(a[1], b[1], rtol=rtol)
                    and torch.equal(*torch.broadcast_tensors(a[2], b[2]))):
                return False
        return True


def identity_element(arch: Architecture) -> GroupElement:
    """The identity (acts on no layer)."""
    return GroupElement()


def _generator(seed: int | None, generator: torch.Generator | None) -> torch.Generator:
    if generator is not None:
        return generator
    g = torch.Generator()
    g.manual_seed(int(seed) if seed is not None else int(torch.randint(0, 2**62, (1,)).item()))
    return g


def random_element(
    arch: Architecture | Network, kinds: Iterable[str] | None = None, seed: int | None = None,
    generator: torch.Generator | None = None, batch: int | None = None, log10_range: float = 2.0,
    max_shift: int = 3,
) -> GroupElement:
    """A random admitted group element (a batch of `batch` of them if given).

    kinds: subset of 'permutation', 'scale', 'sign', 'phase' (None: every admitted kind). Positive
    scales are 10**U(-log10_range, log10_range); signs uniform ±1; shifts uniform in [-max_shift, max_shift].
    Tied layers share their permutation and scale. Layers that do not admit a kind do not get it.
    """
    report = admitted_symmetries(arch)
    kinds = set(report.kinds if kinds is None else kinds)
    unknown = kinds - set(KINDS)
    if unknown:
        raise SymmetryError(f"unknown symmetry kind(s) {sorted(unknown)}; choose from {', '.join(KINDS)}")
    gen = _generator(seed, generator)
    lead = () if batch is None else (int(batch),)
    g = GroupElement()
    for members in report.groups().values():
        head = members[0]
        if not head.permutable:
            continue
        n = head.size
        perm = scale = None
        if "permutation" in kinds:
            perm = torch.argsort(torch.rand(*lead, n, generator=gen, dtype=torch.float64), dim=-1)
        if "scale" in kinds and head.scaling == "positive":
            u = torch.rand(*lead, n, generator=gen, dtype=torch.float64) * 2 - 1
            scale = 10.0 ** (log10_range * u)
        if "sign" in kinds and head.sign_flips:
            s = torch.randint(0, 2, (*lead, n), generator=gen).double() * 2 - 1
            scale = s if scale is None else scale * s
        for m in members:
            if perm is not None:
                g.perms[m.layer] = perm.clone()
            if scale is not None:
                g.scales[m.layer] = scale.clone()
    if "phase" in kinds:
        for layer in report.layers:
            if layer.period is not None:
                g.shifts[layer.layer] = torch.randint(-max_shift, max_shift + 1, (*lead, layer.size), generator=gen)
    return g


# ---------------------------------------------------------------------------------------------- action
def _node_arrays(plan: _Plan, g: GroupElement, dtype: torch.dtype, phase_unit: float = 1.0):
    """Global node permutation σ [b, N+1], scale D [b, N+1] and additive shift T [b, N+1] (dummy node N)."""
    N = plan.layout.num_nodes
    b = g.batch_size
    lead = (1,) if b is None else (b,)
    sigma = torch.arange(N + 1).expand(*lead, N + 1).clone()
    D = torch.ones(*lead, N + 1, dtype=dtype)
    T = torch.zeros(*lead, N + 1, dtype=dtype)
    layers = plan.layout.layers
    for L in g.layers():
        if not 0 <= L < len(layers) or layers[L].role != HIDDEN:
            raise SymmetryError(f"neuron layer {L} is not a hidden layer of this architecture")
        layer = layers[L]
        if g._size(L) != layer.size:
            raise SymmetryError(f"element acts on {g._size(L)} neurons of layer {L}, which has {layer.size}")
        p, d, k = g._full(L, layer.size)
        if b is not None and any(t.dim() == 2 and t.shape[0] != b for t in (p, d, k)):
            raise SymmetryError("inconsistent batch sizes inside a group element")
        sl = slice(layer.start, layer.start + layer.size)
        if L in g.perms:
            if not torch.equal(torch.sort(p, dim=-1).values, torch.arange(layer.size).expand_as(p)):
                raise SymmetryError(f"perms[{L}] is not a permutation of {layer.size} neurons")
            sigma[:, sl] = p + layer.start
        D[:, sl] = d.to(dtype)
        if L in g.shifts:
            if L not in plan.periods:
                raise SymmetryError(f"neuron layer {L} has no periodic bias; it admits no phase shift")
            T[:, sl] = k.to(dtype) * (plan.periods[L] * phase_unit)
    if (D == 0).any():
        raise SymmetryError("scales must be non-zero")
    return sigma, D, T


def _device_maps(plan: _Plan, device: torch.device) -> dict[str, torch.Tensor]:
    """The plan's index maps on `device` (cached on the plan), with exponent/shift folded into the node
    index: a parameter that does not scale reads the dummy node N, whose d is 1 and shift 0."""
    key = str(device)
    if key not in plan.device_cache:
        N = plan.layout.num_nodes
        maps = {
            "arange": torch.arange(plan.row_node.numel()),
            "rn": plan.row_node, "cn": plan.col_node, "rs": plan.row_stride, "cs": plan.col_stride,
            "rn_exp": torch.where(plan.row_exp, plan.row_node, N),
            "cn_exp": torch.where(plan.col_exp, plan.col_node, N),
            "rn_shift": torch.where(plan.shift, plan.row_node, N),
        }
        plan.device_cache[key] = {k: v.to(device) for k, v in maps.items()}
    return plan.device_cache[key]


def _apply_plan(plan: _Plan, flat: torch.Tensor, g: GroupElement, *, outgoing: bool = True,
                phase_unit: float = 1.0) -> torch.Tensor:
    """Core of `apply_to_flat`; `outgoing=False` / `phase_unit≠1` give deliberately broken transforms."""
    single = flat.dim() == 1
    x = flat[None] if single else flat
    if x.shape[-1] != plan.row_node.numel():
        need = plan.row_node.numel()
        raise ArchitectureError(f"flat parameters have {x.shape[-1]} entries, architecture needs {need}")
    if g.batch_size is not None and g.batch_size != x.shape[0]:
        raise SymmetryError(f"a batch of {g.batch_size} elements cannot act on {x.shape[0]} networks")
    dev = x.device
    sigma, D, T = (t.to(dev) for t in _node_arrays(plan, g, x.dtype, phase_unit))
    m = _device_maps(plan, dev)
    B, P = x.shape
    out = x
    if g.perms:
        delta = sigma - torch.arange(sigma.shape[-1], device=dev)
        src = m["arange"] + delta[:, m["rn"]] * m["rs"]
        if outgoing:
            src = src + delta[:, m["cn"]] * m["cs"]
        out = x.gather(1, src.expand(B, P))
    if g.scales:
        mult = D[:, m["rn_exp"]]
        if outgoing:
            mult = mult / D[:, m["cn_exp"]]
        out = out * mult
    if g.shifts:
        out = out + T[:, m["rn_shift"]]
    if out is x:
        out = x.clone()
    return out[0] if single else out


def apply_to_flat(arch: Architecture, flat: torch.Tensor, g: GroupElement) -> torch.Tensor:
    """Act on flat parameters [P] or [B, P] (one gather + multiply-add; index maps cached per arch).

    A batched element ([B, size] tensors) applies element b to network b.
    """
    return _apply_plan(_plan(arch), flat, g)


def apply_to_network(net: Network, g: GroupElement) -> Network:
    """The transformed Network (same architecture and meta)."""
    if g.batch_size not in (None, 1):
        raise SymmetryError("apply_to_network needs a single element, not a batch")
    flat = apply_to_flat(net.architecture, net.flat(), g if g.batch_size is None else g.index(0))
    return Network.from_flat(net.architecture, flat, dict(net.meta))


# ---------------------------------------------------------------------------------------------- graphs
@dataclass
class _GraphMaps:
    """Graph-side form of a plan: which node feature columns / edges scale or shift, edge re-indexing."""

    x_exp: torch.Tensor  # [N, 5] bool
    x_shift: torch.Tensor  # [N, 5] bool
    e_dst_exp: torch.Tensor  # [E] bool: × d[target]
    e_src_exp: torch.Tensor  # [E] bool: ÷ d[source]
    e_dst_stride: torch.Tensor  # [E]
    e_src_stride: torch.Tensor  # [E]


@functools.lru_cache(maxsize=256)
def _graph_maps(arch: Architecture, grid_size: int | None) -> _GraphMaps:
    plan = _plan(arch)
    layout = layout_for(arch, grid_size)
    N, E, D = layout.num_nodes, layout.num_edges, layout.edge_dim
    x_exp = torch.zeros(N * NODE_FEATURES, dtype=torch.bool)
    x_shift = torch.zeros(N * NODE_FEATURES, dtype=torch.bool)
    x_exp[layout.x_target] = plan.row_exp[layout.x_source]
    x_shift[layout.x_target] = plan.shift[layout.x_source]
    e_dst_exp = torch.zeros(E, dtype=torch.bool)
    e_src_exp = torch.zeros(E, dtype=torch.bool)
    edge_of = layout.edge_target // D
    e_dst_exp[edge_of] = plan.row_exp[layout.edge_source]
    e_src_exp[edge_of] = plan.col_exp[layout.edge_source]
    e_dst_stride = torch.zeros(E, dtype=torch.long)
    e_src_stride = torch.ones(E, dtype=torch.long)
    for k, b in enumerate(layout.blocks):  # edges of a block: e = out * fan_in + in (structure order)
        e_dst_stride[layout.edge_layer == k] = layout.layers[b.source_layer].size
    return _GraphMaps(x_exp.view(N, NODE_FEATURES), x_shift.view(N, NODE_FEATURES), e_dst_exp, e_src_exp,
                      e_dst_stride, e_src_stride)


@dataclass
class GraphAction:
    """How a group element moves a neural graph: new node j is old node `node_perm[j]`, new edge e is old
    edge `edge_perm[e]`; parameter-like features then scale by `x_mult` / `edge_mult` and shift by
    `x_add`. `node_scale` is d per node (1 on input/output neurons). For a batch of elements every
    tensor has a leading [B] dimension."""

    node_perm: torch.Tensor  # [N]
    edge_perm: torch.Tensor  # [E]
    node_scale: torch.Tensor  # [N]
    x_mult: torch.Tensor  # [N, 5]
    x_add: torch.Tensor  # [N, 5]
    edge_mult: torch.Tensor  # [E]


def graph_action(arch: Architecture, g: GroupElement, grid_size: int | None = None,
                 dtype: torch.dtype = torch.float64) -> GraphAction:
    """Node/edge re-indexing and feature scaling of `g` on `arch`'s neural graph (batched for a batch)."""
    plan = _plan(arch)
    maps = _graph_maps(arch, grid_size)
    layout = layout_for(arch, grid_size)
    sigma, D, T = _node_arrays(plan, g, dtype)
    sigma, D, T = sigma[:, :-1], D[:, :-1], T[:, :-1]
    src, dst = layout.edge_index
    edge_perm = (torch.arange(layout.num_edges) + (sigma[:, dst] - dst) * maps.e_dst_stride
                 + (sigma[:, src] - src) * maps.e_src_stride)
    one = torch.ones((), dtype=dtype)
    x_mult = torch.where(maps.x_exp, D[:, :, None], one)
    x_add = torch.where(maps.x_shift, T[:, :, None], torch.zeros((), dtype=dtype))
    edge_mult = torch.where(maps.e_dst_exp, D[:, dst], one) / torch.where(maps.e_src_exp, D[:, src], one)
    act = GraphAction(sigma, edge_perm, D, x_mult, x_add, edge_mult)
    if g.batch_size is None:
        act = GraphAction(*(t[0] for t in (sigma, edge_perm, D, x_mult, x_add, edge_mult)))
    return act


def apply_to_graph(graph, g: GroupElement | Sequence[GroupElement]):
    """Act on a NeuralGraph directly (permute node rows and edges, scale/shift their features).

    Also accepts a PyG Batch of NeuralGraphs, with one element for all graphs, a batched element (element
    b for graph b) or a list of elements. A batch of one architecture is transformed in one vectorised
    gather; mixed batches graph by graph.
    """
    from torch_geometric.data import Batch

    if isinstance(graph, Batch):
        archs, grids = list(graph.architecture), list(graph.grid_size)
        b = graph.num_graphs
        if isinstance(g, GroupElement) and g.batch_size is not None and g.batch_size != b:
            raise SymmetryError(f"a batch of {g.batch_size} elements cannot act on {b} graphs")
        if isinstance(g, GroupElement) and all(a == archs[0] for a in archs) and len(set(grids)) == 1:
            act = graph_action(archs[0], g, grids[0], graph.x.dtype)
            n, e = act.node_perm.shape[-1], act.edge_perm.shape[-1]
            lead = (b,) if act.node_perm.dim() == 1 else ()
            node_perm = act.node_perm.expand(*lead, -1) if lead else act.node_perm
            edge_perm = act.edge_perm.expand(*lead, -1) if lead else act.edge_perm
            x = graph.x.view(b, n, -1)
            ea = graph.edge_attr.view(b, e, -1)
            out = graph.clone()
            new_x = x.gather(1, node_perm[..., None].expand(-1, -1, x.shape[-1]).to(x.device))
            out.x = (new_x * act.x_mult.to(x) + act.x_add.to(x)).reshape(b * n, -1)
            new_e = ea.gather(1, edge_perm[..., None].expand(-1, -1, ea.shape[-1]).to(ea.device))
            out.edge_attr = (new_e * act.edge_mult.to(ea)[..., None]).reshape(b * e, -1)
            return out
        graphs = graph.to_data_list()
        if isinstance(g, GroupElement):
            elements = [g.index(i) for i in range(b)] if g.batch_size is not None else [g] * b
        else:
            elements = list(g)
        if len(elements) != len(graphs):
            raise SymmetryError(f"{len(elements)} elements for a batch of {len(graphs)} graphs")
        return Batch.from_data_list([apply_to_graph(gr, el) for gr, el in zip(graphs, elements)])
    if g.batch_size not in (None, 1):
        raise SymmetryError("a single graph needs a single element, not a batch")
    act = graph_action(graph.architecture, g if g.batch_size is None else g.index(0), graph.grid_size, graph.x.dtype)
    out = graph.clone()
    out.x = graph.x[act.node_perm] * act.x_mult.to(graph.x) + act.x_add.to(graph.x)
    out.edge_attr = graph.edge_attr[act.edge_perm] * act.edge_mult.to(graph.edge_attr)[:, None]
    return out


def augment_flat(arch: Architecture, flat: torch.Tensor, kinds: Iterable[str] | None = None,
                 seed: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Data augmentation: every network of flat [B, P] moved by its own random admitted element."""
    if flat.dim() == 1:
        return apply_to_flat(arch, flat, random_element(arch, kinds, seed=seed, generator=generator))
    g = random_element(arch, kinds, seed=seed, generator=generator, batch=flat.shape[0])
    return apply_to_flat(arch, flat, g)
