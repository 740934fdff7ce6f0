"""Function-preservation check: apply random group elements, run the network before and after (float64)
and report, per symmetry kind, the largest output difference.

The check must be able to fail. `broken=True` applies a deliberate non-symmetry of each kind instead
(a permutation or scale of the incoming weights that forgets the outgoing ones, half-period bias shifts),
and a kind the architecture does not admit (e.g. sign flips on ReLU layers) is applied as if it were
admitted. `assume=` tests the symmetries of a *declared* architecture (e.g. a wrong `--activation`)
against the network's real computation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable

import torch

from core.network.execute import forward_many
from core.network.spec import Architecture, Network
from core.symmetry.actions import KINDS, GroupElement, SymmetryError, SymmetryReport, _apply_plan, _plan

DEFAULT_RTOL = 1e-9
CONSTANT_OUTPUT_WARNING = (
    "the network gives the same output for every probe input (e.g. all ReLUs dead), so the check is weak: "
    "a transform that keeps the dead units dead passes whatever it does to their weights")


@dataclass(frozen=True)
class CheckResult:
    """Largest output change over all trials of one symmetry kind."""

    symmetry: str
    max_abs_error: float
    max_rel_error: float
    passed: bool
    trials: int = 0
    admitted: bool = True  # False: the kind was applied although the architecture does not admit it
    broken: bool = False  # True: a deliberately broken transform was applied

    def to_dict(self) -> dict:
        """The JSON fields `symmetry, max_abs_error, max_rel_error, passed` (+ trials, admitted, broken)."""
        return asdict(self)


def probe_inputs(arch: Architecture, n: int = 32, seed: int = 0, grid: int = 16) -> torch.Tensor:
    """Float64 probe inputs: a grid×grid coordinate grid on [-1, 1]² for 2-input nets (INRs), else N(0, 1)."""
    if tuple(arch.input_shape) == (2,):
        t = torch.linspace(-1, 1, grid, dtype=torch.float64)
        return torch.stack(torch.meshgrid(t, t, indexing="xy"), -1).reshape(-1, 2)
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, *arch.input_shape, generator=gen, dtype=torch.float64)


def constant_output(net: Network, seed: int = 0, inputs: torch.Tensor | None = None,
                    rtol: float = DEFAULT_RTOL) -> bool:
    """True when `net` gives the same output for every probe input (to `rtol`), e.g. when all its ReLUs are dead.

    A check on such a network is weak: a transform that keeps the dead units dead passes whatever it does to
    their weights, so callers should say so next to a pass.
    """
    x = probe_inputs(net.architecture, seed=seed) if inputs is None else inputs.to(torch.float64)
    with torch.no_grad():
        y = forward_many(net.architecture, net.flat().detach().to(torch.float64)[None], x)[0]
    y = y.reshape(y.shape[0], -1)
    spread = (y.amax(0) - y.amin(0)).max().item()
    return spread <= rtol * y.abs().max().item()


def _nonidentity_perm(n: int, b: int, gen: torch.Generator) -> torch.Tensor:
    p = torch.argsort(torch.rand(b, n, generator=gen, dtype=torch.float64), dim=-1)
    if n > 1:  # a cyclic shift of an identity row keeps the transform non-trivial
        ident = (p == torch.arange(n)).all(-1)
        p[ident] = torch.roll(torch.arange(n), 1)
    return p


def _sample(report: SymmetryReport, kind: str, b: int, gen: torch.Generator, force: bool,
            nontrivial: bool) -> GroupElement:
    """b random elements of one kind; `force` applies it to every permutable layer, admitted or not."""
    g = GroupElement()
    for members in report.groups().values():
        head = members[0]
        if not head.permutable or (kind == "phase"):
            continue
        n = head.size
        if kind == "permutation":
            value = _nonidentity_perm(n, b, gen) if nontrivial else torch.argsort(torch.rand(b, n, generator=gen), -1)
            target = g.perms
        elif kind == "scale":
            if not (force or head.scaling == "positive"):
                continue
            value = 10.0 ** (4 * torch.rand(b, n, generator=gen, dtype=torch.float64) - 2)
            target = g.scales
        else:  # sign
            if not (force or head.sign_flips):
                continue
            value = torch.randint(0, 2, (b, n), generator=gen).double() * 2 - 1
            value[:, 0] = -1.0  # at least one flip per layer
            target = g.scales
        for m in members:
            target[m.layer] = value.clone()
    if kind == "phase":
        for layer in report.layers:
            if layer.period is not None:
                k = torch.randint(-3, 4, (b, layer.size), generator=gen)
                if nontrivial:  # odd multiples: with half periods every shift is a real change
                    k = 2 * k + 1
                g.shifts[layer.layer] = k
    return g


def _admits(report: SymmetryReport, kind: str) -> bool:
    return kind in report.kinds


def check_function_preservation(
    net: Network, trials: int = 5, seed: int = 0, kinds: Iterable[str] | None = None, broken: bool = False,
    assume: Architecture | None = None, rtol: float = DEFAULT_RTOL, inputs: torch.Tensor | None = None,
) -> list[CheckResult]:
    """Apply `trials` random elements per symmetry kind and compare outputs before/after in float64.

    kinds: None = every kind the (assumed) architecture admits; a listed kind it does not admit is applied
    anyway (sign flips / positive scales on every permutable layer) and should fail. broken: apply a
    deliberate non-symmetry of each kind. assume: the declared architecture whose symmetries are tested
    (same parameter shapes as `net`); the network still runs with its own architecture.
    A kind passes when max|f'(x) − f(x)| ≤ rtol · max|f(x)|.
    """
    if trials < 1:
        raise SymmetryError("trials must be at least 1")
    arch = net.architecture
    claimed = assume if assume is not None else arch
    if assume is not None and assume.parameter_shapes() != arch.parameter_shapes():
        raise SymmetryError("the declared architecture has different parameters than the network")
    arch.check_known_activations()
    plan = _plan(claimed)
    report = plan.report
    kinds = list(report.kinds if kinds is None else kinds)
    for k in kinds:
        if k not in KINDS:
            raise SymmetryError(f"unknown symmetry kind {k!r}; choose from {', '.join(KINDS)}")
    gen = torch.Generator().manual_seed(int(seed))
    x = probe_inputs(arch, seed=seed) if inputs is None else inputs.to(torch.float64)
    flat = net.flat().detach().to(torch.float64)
    with torch.no_grad():
        reference = forward_many(arch, flat[None], x)[0]
        scale = reference.abs().max().item()
        results = []
        for kind in kinds:
            admitted = _admits(report, kind)
            if kind == "phase" and not admitted:
                continue  # nothing periodic to shift
            if kind == "permutation" and not admitted:
                continue  # no permutable layer
            g = _sample(report, kind, trials, gen, force=not admitted, nontrivial=broken or not admitted)
            if broken:
                moved = _apply_plan(plan, flat.expand(trials, -1), g, outgoing=kind == "phase",
                                    phase_unit=0.5 if kind == "phase" else 1.0)
            else:
                moved = _apply_plan(plan, flat.expand(trials, -1), g)
            out = forward_many(arch, moved, x)
            err = (out - reference).abs().max().item()
            rel = err / scale if scale > 0 else (0.0 if err == 0 else float("inf"))
            results.append(CheckResult(kind, err, rel, bool(rel <= rtol), trials, admitted, broken))
    return results
