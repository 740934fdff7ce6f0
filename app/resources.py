"""Cached resources and shared widgets for the pages. Everything computed comes from `core`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import streamlit as st
import torch

from core.errors import WeightSpaceError
from core.network.spec import ACTIVATIONS, Activation, Network
from core.paths import BUNDLED_EXAMPLES, BUNDLED_MODELS, BUNDLED_ZOOS

FROM_FILE = "(as stored / unknown)"


def one_line_error(exc: BaseException) -> str:
    """What a page shows for a failure: the reason of a WeightSpaceError, or one generic line (no paths)."""
    if isinstance(exc, WeightSpaceError):
        lines = str(exc).strip().splitlines()
        return lines[0] if lines else type(exc).__name__
    if isinstance(exc, MemoryError):
        return "not enough memory for this input"
    return f"an internal error ({type(exc).__name__}) stopped this page; the details are in the server log"


@st.cache_resource
def device_label() -> str:
    """'GPU: …' or 'CPU (n threads)'."""
    from core.device import describe_device, pick_device

    return describe_device(pick_device())


def remember_widgets(*keys: str) -> None:
    """Keep these widgets' values across a visit to another page: Streamlit forgets a widget's value when a run
    does not draw it, so the values are noted at the top of each run of the page and put back on return."""
    kept = st.session_state.setdefault("kept-widget-values", {})
    for key in keys:
        if key in st.session_state:
            kept[key] = st.session_state[key]
        elif key in kept:
            st.session_state[key] = kept[key]


def example_files() -> dict[str, Path]:
    """Bundled example checkpoints by file name."""
    if not BUNDLED_EXAMPLES.is_dir():
        return {}
    return {p.name: p for p in sorted(BUNDLED_EXAMPLES.iterdir())
            if p.suffix in (".pt", ".pth", ".bin", ".safetensors")}


def network_fingerprint(network: Network) -> str:
    """A digest of the architecture and every parameter's bytes: the cache key of a Network."""
    digest = hashlib.sha256(json.dumps(network.architecture.to_dict(), sort_keys=True).encode())
    for name in sorted(network.params):
        digest.update(name.encode())
        # raw bytes (a uint8 view): numpy has no bfloat16
        digest.update(network.params[name].detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def cached_summary(network: Network) -> dict[str, Any]:
    """`core.summary.summarize` of the network (statistics and a power-law fit per layer), once per network."""
    from core.summary import summarize

    return _summary(network, summarize, id(summarize))


@st.cache_data(max_entries=16, show_spinner="Summarising the network (statistics and spectral α per layer)…",
               hash_funcs={Network: network_fingerprint})
def _summary(network: Network, _summarize, implementation: int) -> dict[str, Any]:
    # the summarising function's identity is part of the key: a reloaded core.summary, or a test's stand-in, is
    # never answered from an older function's cache
    return _summarize(network)


@st.cache_data(max_entries=32, show_spinner="Reading the checkpoint…")
def _load_bytes(data: bytes, name: str, activation: str | None, input_size: int | None = None) -> Network:
    from core.io import load_network_bytes

    return load_network_bytes(data, name, activation, input_size=input_size)


def network_picker(key: str, default: str = "Bundled example") -> Network | None:
    """Upload or pick a bundled checkpoint (`default` is the source chosen first); returns the Network, or None
    after showing why not."""
    examples = example_files()
    sources = ["Bundled example", "Upload"]
    source = st.radio("Checkpoint", sources, horizontal=True, key=f"{key}-source",
                      index=sources.index(default) if examples else 1)
    activations = [FROM_FILE] + [a for a in ACTIVATIONS if a != "unknown"]
    activation = st.selectbox("Activation of hidden layers", activations, key=f"{key}-activation",
                              help="A state_dict does not store its activation. Exported files and known formats "
                                   "(e.g. DWSNets SIRENs) say it; otherwise choose it here.")
    act = None if activation == FROM_FILE else activation
    if source == "Upload":
        upload = st.file_uploader("Checkpoint file (.pt .pth .bin .safetensors .npz)", key=f"{key}-upload",
                                  type=["pt", "pth", "bin", "ckpt", "safetensors", "npz"])
        if upload is None:
            st.info("Upload a state_dict, a training checkpoint or a safetensors file. Nothing in it is executed.")
            return None
        data, name = upload.getvalue(), upload.name
    else:
        if not examples:
            st.warning("No bundled examples found under assets/examples.")
            return None
        name = st.selectbox("Example", list(examples), key=f"{key}-example")
        data = examples[name].read_bytes()
    try:
        net = _load_bytes(data, name, None)
        if act is not None and any(a.fn == "unknown" for a in net.architecture.activations()):
            net = _load_bytes(data, name, act)  # the file does not say: the choice defines the network
    except Exception as exc:  # noqa: BLE001 (an upload must never show a stack trace)
        st.error(f"Cannot read **{name}**: {one_line_error(exc)}")
        return None
    net = _input_size_control(net, key, data, name, act)
    recorded = recorded_activation_contradicting(net.architecture, act)
    if recorded:  # as the CLI does: a file's own activation wins over a contradicting declaration
        st.warning(f"**{name}** records its hidden activation as {recorded}; the chosen {act} contradicts it, "
                   f"so the network runs with its own {recorded}.")
    st.session_state["network"] = net
    return net


def _input_size_control(net: Network, key: str, data: bytes, name: str, act: str | None) -> Network:
    """For a CNN state_dict, whose input size the file cannot say, a control for it; the network at that size (or,
    when the size does not fit, at the assumed one, with a warning)."""
    if not any(a.startswith("input assumed") for a in net.meta.get("assumptions", [])):
        return net
    side = int(net.architecture.input_shape[-1])
    size = int(st.number_input("Input size (pixels per side)", 1, 4096, side, key=f"{key}-input-size",
                               help="A state_dict of a CNN does not store the image size it was trained on."))
    if size == side:
        return net
    try:
        loaded = _load_bytes(data, name, None, size)
        if act is not None and any(a.fn == "unknown" for a in loaded.architecture.activations()):
            loaded = _load_bytes(data, name, act, size)
    except Exception as exc:  # noqa: BLE001 (one line, never a stack trace)
        st.warning(f"Input size {size} does not fit **{name}** ({one_line_error(exc)}); showing it at {side}.")
        return net
    return loaded


def recorded_activation_contradicting(architecture, declared: str | None) -> str | None:
    """The architecture's hidden activations in words when they are not all `declared`, else None."""
    if declared is None:
        return None
    weights = architecture.weight_layers()
    last = weights[-1] if weights else len(architecture.ops)
    hidden = [op for i, op in enumerate(architecture.ops) if i < last and isinstance(op, Activation)]
    if not hidden or {op.fn for op in hidden} == {declared}:
        return None
    return ", ".join(sorted({op.describe() for op in hidden}))


def bundled_runs() -> dict[str, Path]:
    """Pretrained run directories under assets/models, by name."""
    if not BUNDLED_MODELS.is_dir():
        return {}
    return {p.name: p for p in sorted(BUNDLED_MODELS.iterdir())
            if (p / "config.json").is_file() and (p / "weights.safetensors").is_file()}


@st.cache_resource(show_spinner="Loading a pretrained metanetwork (once per server)…")
def cached_run(path: str):
    """A loaded run (model on CPU or GPU), kept for the server's lifetime."""
    from core.runs import load_run

    return load_run(path)


def runs_for(task: str) -> dict[str, Path]:
    """Bundled runs of one task."""
    return {name: p for name, p in bundled_runs().items() if _run_task(p) == task}


def run_config(run_dir: str | Path) -> dict[str, Any]:
    """A run's config.json (read without loading the model)."""
    return json.loads((Path(run_dir) / "config.json").read_text())


def _run_task(run_dir: str | Path) -> str:
    return run_config(run_dir)["task"]


def training_resolution(run_dir: str | Path) -> int | None:
    """The image side an editor run was trained to edit at, from its config (None when it did not say)."""
    resolution = run_config(run_dir).get("task_options", {}).get("resolution")
    return int(resolution) if resolution else None


def editors_by_resolution(editors: dict[str, Path]) -> dict[str, Path]:
    """Editor runs, those trained at the highest resolution first (MNIST 28×28 editors before 8×8 digits ones:
    they edit real-size images), then by name; the first is the page's default."""
    return dict(sorted(editors.items(), key=lambda item: (-(training_resolution(item[1]) or 0), item[0])))


def embedding_tasks() -> list[str]:
    """Registered tasks whose runs give one vector per network (graph head), the embedding tasks first."""
    from core.tasks import TASKS

    graph_head = [name for name, cls in TASKS.items() if cls.head == "graph"]
    return sorted(graph_head, key=lambda name: not TASKS[name].embedding)


def preferred_embedder(embedders: dict[str, str | None], zoo_path: str) -> int:
    """Index of the first run of an embedding task trained on a zoo of this name, else of the first such run,
    else 0."""
    from core.tasks import TASKS

    names = list(embedders)
    embeds = [i for i, n in enumerate(names) if embedders[n] and getattr(TASKS.get(_run_task(embedders[n])),
                                                                          "embedding", False)]
    for i in embeds:
        trained_on = run_config(embedders[names[i]]).get("zoo", "")
        if Path(trained_on).name == Path(zoo_path).name:
            return i
    return embeds[0] if embeds else 0


def bundled_zoos(kind: str | None = None) -> dict[str, Path]:
    """Zoo directories under assets/zoos (kind: 'inr' or 'cnn' filters by name)."""
    if not BUNDLED_ZOOS.is_dir():
        return {}
    zoos = {p.name: p for p in sorted(BUNDLED_ZOOS.iterdir()) if (p / "manifest.json").is_file()}
    return {k: v for k, v in zoos.items() if kind is None or kind in k}


@st.cache_resource(show_spinner="Opening zoo…")
def cached_zoo(path: str):
    """An opened zoo, kept for the server's lifetime."""
    from core.zoo import Zoo

    return Zoo.open(path)


def editor_mismatch(trained_on: list, trained_resolution: int | None, architecture, resolution: int,
                    inr_resolution: int | None = None) -> str | None:
    """One line saying how an INR or render resolution differs from what an editor was trained on, else None.

    `trained_on`: the architectures of the editor's training zoo; `inr_resolution`: the side of the image the INR
    was fitted to, where known (a zoo's manifest says it; an uploaded file does not)."""
    reasons = []
    if trained_on and architecture not in trained_on:
        trained = " or ".join(_widths(a) for a in trained_on)
        reasons.append(f"its architecture ({_widths(architecture)}) is not the {trained} the editor was trained on")
    if trained_resolution and inr_resolution and inr_resolution != trained_resolution:
        reasons.append(f"it stores a {inr_resolution}×{inr_resolution} image, the editor learned "
                       f"{trained_resolution}×{trained_resolution} edits")
    if trained_resolution and resolution != trained_resolution:
        reasons.append(f"the render resolution {resolution} differs from the {trained_resolution} the editor "
                       f"was trained at")
    if not reasons:
        return None
    return "This editor may not fit this INR: " + "; ".join(reasons) + " — expect a weaker edit."


def _widths(architecture) -> str:
    """'2–16–16–1': the input and each weight layer's output size (the flattened shape for convolutions)."""
    import math

    shapes = architecture.value_shapes()
    sizes = [shapes[0]] + [shapes[i + 1] for i in architecture.weight_layers()]
    return "–".join(str(math.prod(s)) for s in sizes)


def safe_palette() -> list[str]:
    """Plotly's colour-blind-safe qualitative palette (CARTO 'Safe') without its grey, which marks missing values."""
    import plotly.express as px

    return [c for c in px.colors.qualitative.Safe if c != "rgb(136, 136, 136)"]


MISSING_COLOUR = "#bbbbbb"
