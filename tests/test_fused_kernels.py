"""The fused CPU kernel of NG-GNN's dense message step gives the torch reference's values and gradients,
including ties at the min/max, bfloat16 inputs and widths that leave scalar remainders; the model takes it
and still matches its sparse path; and a machine that cannot build it falls back with a warning."""

from __future__ import annotations

import pytest
import torch

from core.kernels import film_message_stats as fms
from core.models import build_model
from tests.model_helpers import ARCHS, random_batch


def _inputs(b: int, t: int, s: int, h: int, dtype: torch.dtype, seed: int = 0) -> list[torch.Tensor]:
    """[e, weight, at_source, at_target, bias] with edge width H + 3 (≠ H) and FiLM products of unit scale."""
    gen = torch.Generator().manual_seed(seed)
    he = h + 3
    e = torch.randn(b, t, s, he, generator=gen).to(dtype)
    weight = (torch.randn(4 * h, he, generator=gen) / he ** 0.5).to(dtype)
    return [e, weight, torch.randn(b, s, 2 * h, generator=gen), torch.randn(b, t, 2 * h, generator=gen),
            torch.randn(4 * h, generator=gen)]


def _values_and_grads(fn, inputs: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    leaves = [x.detach().clone().requires_grad_() for x in inputs]
    into, out_of = fn(*leaves)
    gen = torch.Generator().manual_seed(1)
    loss = (into * torch.randn(into.shape, generator=gen)).sum() + (out_of * torch.randn(out_of.shape, generator=gen)).sum()
    return [into.detach(), out_of.detach()], list(torch.autograd.grad(loss, leaves))


def _assert_close_to_reference(values: list[torch.Tensor], grads: list[torch.Tensor], ref_values: list[torch.Tensor],
                               ref_grads: list[torch.Tensor], product_tol: float) -> None:
    """Values and the gradients of at_source, at_target and bias to 1e-5; those of e and W (matrix products,
    summed over edges) to `product_tol`."""
    for got, want in zip(values + grads[2:], ref_values + ref_grads[2:]):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads[:2], ref_grads[:2]):
        torch.testing.assert_close(got.float(), want.float(), rtol=product_tol, atol=product_tol)


def _count_calls(monkeypatch: pytest.MonkeyPatch, op: str) -> list[tuple[torch.Tensor, ...]]:
    """Replace the custom op `fms.<op>` by a pass-through that records each call's arguments."""
    calls: list[tuple[torch.Tensor, ...]] = []
    original = getattr(fms, op)
    monkeypatch.setattr(fms, op, lambda *args: calls.append(args) or original(*args))
    return calls


def test_the_kernel_builds_here() -> None:
    # the CI machine has the C++ compiler torch.compile needs; without the kernel the speed figures do not hold
    assert fms.fused_extension() is not None
    assert fms.fused_applies(torch.zeros(1, 1, 1, 4))
    assert not fms.fused_applies(torch.zeros(1, 1, 1, 4, dtype=torch.float64))  # float64: reference path


@pytest.mark.parametrize("shape", [(3, 5, 7, 8), (2, 1, 9, 5), (2, 6, 1, 3), (4, 32, 32, 16), (5, 3, 4, 6)])
@pytest.mark.parametrize("chunk_bytes", [fms.CHUNK_BYTES, 1])  # 1: one graph per thread per FiLM product chunk
def test_fused_kernel_matches_the_reference_in_float32(shape: tuple[int, int, int, int], chunk_bytes: int,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fms, "CHUNK_BYTES", chunk_bytes)
    inputs = _inputs(*shape, dtype=torch.float32)
    values, grads = _values_and_grads(fms.film_message_stats, inputs)
    # against float64: in float32 the reference's own std gradient is noisy where the variance is ~0 (a
    # single sender: two rounded terms of size |m|/sqrt(1e-5) cancel), the kernel's is not
    ref_values, ref_grads = _values_and_grads(fms.reference_film_message_stats, [x.double() for x in inputs])
    for got, want in zip(values + grads, ref_values + ref_grads):
        # the weight and bias gradients sum over every edge: float32 rounding there grows with their size
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5 + 1e-6 * want.abs().max().item())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_without_gradients_the_inference_kernel_gives_the_same_values(dtype: torch.dtype,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = _inputs(3, 6, 5, 8, dtype=dtype)
    with torch.no_grad():
        want = fms.reference_film_message_stats(*inputs)
        with_ties = fms._fused(*inputs)[:2]  # the training kernel's values
    calls = _count_calls(monkeypatch, "_fused_inference")
    with torch.no_grad():
        got = fms.film_message_stats(*inputs)
    assert calls, "no_grad did not take the inference kernel"
    for g, w, t in zip(got, want, with_ties):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)
        assert torch.equal(g, t)  # the same arithmetic, bit for bit


def test_fused_kernel_reads_bfloat16_and_returns_bfloat16_gradients() -> None:
    inputs = _inputs(3, 4, 6, 8, dtype=torch.bfloat16)
    values, grads = _values_and_grads(fms.film_message_stats, inputs)
    # reference: the same bfloat16 product (rounded to bfloat16 as the kernel's), the rest in float32
    ref_values, ref_grads = _values_and_grads(fms.reference_film_message_stats, inputs)
    assert values[0].dtype == torch.float32 and grads[0].dtype == grads[1].dtype == torch.bfloat16
    _assert_close_to_reference(values, grads, ref_values, ref_grads, 1e-2)  # e, W: a bfloat16 rounding apart


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_ties_at_the_min_and_max_share_the_gradient_as_autograd_does(dtype: torch.dtype,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    b, t, s, h = 9, 4, 6, 5
    e, weight, at_source, at_target, bias = _inputs(b, t, s, h, dtype=dtype, seed=3)
    e[:, 1] = 0.0  # row 1: γ = b_γ, β = b_β for all senders ...
    at_source[:, 2] = at_source[:, 3]  # ... and two equal senders: equal messages along rows and columns
    e[:, :, 2] = e[:, :, 3]
    # the smallest chunks (one graph per thread): the backward pass recomputes the FiLM product chunk by
    # chunk and must find the forward's min/max bit for bit
    monkeypatch.setattr(fms, "CHUNK_BYTES", 1)
    values, grads = _values_and_grads(fms.film_message_stats, [e, weight, at_source, at_target, bias])
    ref_values, ref_grads = _values_and_grads(fms.reference_film_message_stats, [e, weight, at_source, at_target, bias])
    _assert_close_to_reference(values, grads, ref_values, ref_grads, 1e-4 if dtype == torch.float32 else 1e-2)
    assert grads[2][:, 2].abs().sum() > 0  # the tied senders did receive gradient


def test_extreme_pre_activations_stay_finite() -> None:
    e, weight, at_source, at_target, bias = _inputs(2, 3, 4, 4, dtype=torch.float32)
    inputs = [e * 1e4, weight, at_source, at_target, bias]  # SiLU's exp over- and underflows far outside [-88, 88]
    values, grads = _values_and_grads(fms.film_message_stats, inputs)
    ref_values, ref_grads = _values_and_grads(fms.reference_film_message_stats, inputs)
    assert all(torch.isfinite(x).all() for x in values + grads)
    for got, want in zip(values, ref_values):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("arch_name", ["siren", "mixed", "cnn"])
@pytest.mark.parametrize("head", ["graph", "params"])
def test_ng_gnn_takes_the_kernel_and_matches_its_sparse_path_in_float32(arch_name: str, head: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    batch = random_batch(ARCHS[arch_name](), 4, seed=2, dtype=torch.float32)
    model = build_model("ng-gnn", out_dim=3, hidden=16, layers=2, head=head, edge_dim=batch.edge_attr.shape[1])
    model.fit_normalisation(batch)

    def run(dense: bool) -> tuple[torch.Tensor, torch.Tensor]:
        model.dense_path = dense
        model.zero_grad()
        out = model(batch)
        out = out if torch.is_tensor(out) else torch.cat([out.x.reshape(-1), out.edge_attr.reshape(-1)])
        out.pow(2).sum().backward()
        return out.detach(), torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None])

    out_sparse, grad_sparse = run(False)
    calls = _count_calls(monkeypatch, "_fused")
    out_dense, grad_dense = run(True)
    assert calls, "the dense path did not call the fused kernel"
    torch.testing.assert_close(out_dense, out_sparse, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grad_dense, grad_sparse, rtol=1e-3, atol=1e-5)


def test_a_machine_that_cannot_build_the_kernel_falls_back_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    from torch.utils import cpp_extension

    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(fms, "_LOADED", {})
    monkeypatch.setattr(cpp_extension, "load", no_compiler)
    with pytest.warns(RuntimeWarning, match="could not be built"):
        assert fms.fused_extension() is None
    inputs = _inputs(2, 3, 4, 4, dtype=torch.float32)
    values, _ = _values_and_grads(fms.film_message_stats, inputs)  # still works, on the reference path
    ref_values, _ = _values_and_grads(fms.reference_film_message_stats, inputs)
    torch.testing.assert_close(values[0], ref_values[0])


def test_the_kernel_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fms, "_LOADED", {})
    monkeypatch.setenv(fms.DISABLE_VARIABLE, "0")
    assert fms.fused_extension() is None
    assert not fms.fused_applies(torch.zeros(1, 1, 1, 4))


def test_ng_gnn_under_bfloat16_autocast_runs_the_film_product_in_bfloat16(monkeypatch: pytest.MonkeyPatch) -> None:
    # the FiLM product runs inside the kernel, not in a module: module hooks (test_models) cannot see its dtype
    from core.device import autocast

    batch = random_batch(ARCHS["siren"](), 3, seed=1, dtype=torch.float32)
    model = build_model("ng-gnn", out_dim=2, hidden=8, layers=1).eval()
    model.fit_normalisation(batch)
    calls = _count_calls(monkeypatch, "_fused_inference")
    with torch.no_grad(), autocast(torch.device("cpu"), "bf16"):
        model(batch)
    assert calls and all(args[0].dtype == args[1].dtype == torch.bfloat16 for args in calls)


def test_training_keeps_the_edge_states_not_their_film_product() -> None:
    # the backward pass recomputes the FiLM product chunk by chunk: nothing of its size [B, T, S, 4H] is saved
    b, t, s, h = 2, 5, 7, 8
    inputs = [x.requires_grad_() for x in _inputs(b, t, s, h, dtype=torch.float32)]
    saved: list[torch.Size] = []

    def pack(x: torch.Tensor) -> torch.Tensor:
        saved.append(x.shape)
        return x

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        into, out_of = fms.film_message_stats(*inputs)
    assert torch.Size([b, t, s, h + 3]) in saved  # e itself
    assert all(shape.numel() < b * t * s * 4 * h for shape in saved), saved
    (into.sum() + out_of.sum()).backward()
    assert all(x.grad is not None for x in inputs)


def test_op_names_change_with_the_kernel_sources() -> None:
    # torch.compile's disk cache keys compiled graphs by op name: a changed kernel must not keep its old name
    import hashlib
    from pathlib import Path

    version = hashlib.sha256(fms.SOURCE.read_bytes() + Path(fms.__file__).read_bytes()).hexdigest()[:10]
    for op in (fms._fused, fms._fused_inference, fms._fused_backward):
        assert op._qualname.endswith(f"_{version}"), op._qualname
