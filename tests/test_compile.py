"""Nothing is compiled at run time unless asked for: NG-GNN never calls an extension loader, and the opt-in
`--compile` (torch.compile) gives the eager outputs, stays compiled, and finishes despite stale lock files
left in its caches by interrupted runs (torch's extension loader waits forever on such a `lock`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.models import build_model
from core.models.layers.edge_layout import DenseBlocks
from core.network.spec import mlp_architecture
from tests.model_helpers import ARCHS, random_batch


def _outputs_and_grads(model: torch.nn.Module, batch) -> tuple[torch.Tensor, torch.Tensor]:
    model.zero_grad()
    out = model(batch)
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view(out.shape)
    (out * weights).sum().backward()  # a loss whose gradient reaches every output
    return out.detach(), torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None])


@pytest.mark.parametrize("dense_path", [True, False])
def test_ng_gnn_never_calls_an_extension_loader(monkeypatch: pytest.MonkeyPatch, dense_path: bool) -> None:
    """Every precision, training and inference: no C++ build, no wait on torch's extension cache."""
    from torch.utils import cpp_extension, file_baton

    from core.device import autocast

    def refuse(*args, **kwargs):
        raise AssertionError("an extension loader was called")

    for name in ("load", "load_inline", "_jit_compile"):
        monkeypatch.setattr(cpp_extension, name, refuse)
    monkeypatch.setattr(file_baton.FileBaton, "wait", refuse)
    for dtype in (torch.float32, torch.float64):
        batch = random_batch(ARCHS["siren"](), 3, seed=1, dtype=dtype)
        model = build_model("ng-gnn", out_dim=3, hidden=8, layers=2, dense_path=dense_path).to(dtype)
        model.fit_normalisation(batch)
        model(batch).sum().backward()
        if dtype == torch.float32:  # bfloat16 autocast reads float32 models
            with torch.no_grad(), autocast(torch.device("cpu"), "bf16"):
                model(batch)


def _stale_locks(inductor_cache: Path, extensions: Path) -> list[Path]:
    """Lock files as killed runs leave them: in inductor's lock directory, and torch's extension-build `lock`
    (which `torch.utils.cpp_extension.load` waits on forever) for the kernel this project once built."""
    paths = [inductor_cache / "locks" / f"{name}.lock" for name in ("stale", "0" * 52, "f" * 64)]
    paths += [extensions / "py311_cpu" / name / "lock" for name in ("weightspace_film_message_stats", "stale")]
    paths += [extensions / name / "lock" for name in ("weightspace_film_message_stats", "stale")]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    return paths


def test_compile_gives_the_eager_outputs_despite_stale_locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Compiled with inductor into fresh caches that hold stale lock files: it compiles (the cache fills), gives
    the eager values and gradients, and keeps the state_dict's names. (A wait on a lock would hang here, and
    the suite's timeout would fail it.)"""
    inductor_cache, extensions = tmp_path / "inductor", tmp_path / "torch_extensions"
    locks = _stale_locks(inductor_cache, extensions)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(inductor_cache))
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(extensions))
    # a 2 → 4 → 1 MLP: two weight blocks, so the dense path's code (unrolled per block) stays small to compile
    batch = random_batch(mlp_architecture([2, 4, 1], "relu"), 4, seed=1, dtype=torch.float32)
    model = build_model("ng-gnn", out_dim=3, hidden=8, layers=1)
    model.fit_normalisation(batch)
    assert isinstance(model.edge_layout(batch), DenseBlocks)
    keys = set(model.state_dict())
    eager_out, eager_grads = _outputs_and_grads(model, batch)
    model.compile_layers()
    compiled_out, compiled_grads = _outputs_and_grads(model, batch)
    assert set(model.state_dict()) == keys  # checkpoints of compiled runs load into eager models
    torch.testing.assert_close(compiled_out, eager_out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(compiled_grads, eager_grads, rtol=1e-4, atol=1e-6)
    written = [p for p in inductor_cache.rglob("*") if p.is_file() and p not in locks]
    assert written, "inductor compiled nothing into its cache: the stale locks were not in its way"


def test_compiled_layers_never_fall_back_to_eager() -> None:
    """{train, eval} × {float32, bfloat16} graph variants, more than Dynamo's global cache limit holds: lowered
    from 8 to 2 here, so four variants of one architecture show what three architectures × four variants
    overflow in `bench models` at the default (traced with the eager backend: the cache is under test). A CNN's
    graphs, since the test above compiles an MLP's."""
    import torch._dynamo.config as dynamo_config

    from core.device import autocast

    # a fallback to eager raises instead of warning
    with dynamo_config.patch(fail_on_recompile_limit_hit=True, recompile_limit=2):
        batch = random_batch(ARCHS["cnn"](), 4, seed=1, dtype=torch.float32)
        model = build_model("ng-gnn", out_dim=3, hidden=8, layers=2, edge_dim=batch.edge_attr.shape[1])
        model.fit_normalisation(batch)
        model.compile_layers(backend="eager")
        for precision in ("fp32", "bf16"):
            model.train()
            with autocast(torch.device("cpu"), precision):
                model(batch).sum().backward()
            model.eval()
            with torch.no_grad(), autocast(torch.device("cpu"), precision):
                model(batch)


def test_compile_without_a_cpp_compiler_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from torch._inductor import cpp_builder

    from core.models.base import ModelError

    def no_compiler() -> str:
        raise RuntimeError("no working C++ compiler found")

    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", no_compiler)
    model = build_model("ng-gnn", out_dim=3, hidden=8, layers=1)
    with pytest.raises(ModelError, match="C\\+\\+ compiler"):
        model.compile_layers()
    model.compile_layers(backend="eager")  # tracing alone needs no compiler
