"""INR editor: a bundled editor metanetwork predicts a weight update that edits the image an INR stores."""

from __future__ import annotations

import json
import time
from pathlib import Path

import streamlit as st

from app.resources import (
    bundled_zoos,
    cached_run,
    cached_zoo,
    editor_mismatch,
    editors_by_resolution,
    network_picker,
    runs_for,
)
from core.errors import WeightSpaceError
from core.io import network_to_bytes
from core.paths import REPO_ROOT
from core.tasks.edit import DEFAULT_RESOLUTION
from core.viz.images import difference_image, png_strip

st.title("INR editor")
st.caption("An INR stores an image as a small network from pixel coordinates to grey values. An equivariant "
           "metanetwork reads its neural graph and predicts a weight update, so the *edited network* draws the "
           "edited image — no pixels are touched.")

editors = editors_by_resolution(runs_for("inr-edit"))  # the MNIST 28×28 editors first, when bundled
if not editors:
    st.warning("No bundled editor found under assets/models (train one with `python -m core train inr-edit …`).")
    st.stop()


@st.cache_resource
def _edited_since_start() -> set[tuple[str, str]]:
    """(editor, architecture) pairs edited since the server started: the next edit of such a pair is warm."""
    return set()


def _slider_value(side: int) -> int:
    """`side` on the render-resolution slider (8 to 96 in steps of 4)."""
    return min(96, max(8, 8 + 4 * round((side - 8) / 4)))


c1, c2 = st.columns([2, 1])
editor_name = c1.selectbox("Editor", list(editors), key="editor-run",
                           help="Editors trained on the largest images come first (MNIST 28×28 before 8×8 digits).")
run = cached_run(str(editors[editor_name]))
trained_resolution = int(run.task.resolution or DEFAULT_RESOLUTION)
# keyed per editor: choosing an editor renders at the resolution it was trained at and shows INRs of its own zoo
resolution = c2.slider("Render resolution", 8, 96, _slider_value(trained_resolution), step=4,
                       key=f"editor-resolution-{editor_name}",
                       help=f"{editor_name} was trained to edit {trained_resolution}×{trained_resolution} renderings.")

zoos = bundled_zoos("inr")
trained_zoo_name = Path(run.config.zoo).name if run.config.zoo else None
# the radio's key must differ from network_picker's own "<key>-source" radio (a duplicate key crashed the page)
source = st.radio("INR", ["From a bundled zoo", "Upload"], horizontal=True, key="editor-inr-source",
                  index=0 if zoos else 1)
net, inr_resolution = None, None
if source == "Upload":
    net = network_picker("editor", default="Upload")
elif zoos:
    z1, z2, z3 = st.columns(3)
    zoo_name = z1.selectbox("Zoo", list(zoos), index=list(zoos).index(trained_zoo_name)
                            if trained_zoo_name in zoos else 0, key=f"editor-zoo-{editor_name}")
    zoo = cached_zoo(str(zoos[zoo_name]))
    labels = sorted(zoo.table["label"].unique().tolist()) if "label" in zoo.table else []
    label = z2.selectbox("Class", ["any", *labels], key="editor-label")
    rows = zoo.table.index[zoo.table["label"] == label].tolist() if label != "any" else zoo.table.index.tolist()
    pick = z3.number_input(f"Network (0–{len(rows) - 1})", 0, max(len(rows) - 1, 0), 0, key="editor-index")
    net = zoo.network(int(rows[int(pick)]))
    inr_resolution = (zoo.manifest.get("source", {}).get("image_shape") or [None])[0]
if net is None:
    st.stop()

trained_zoo = REPO_ROOT / run.config.zoo  # run configs store the zoo path relative to the repository (or absolute)
trained_archs = list(cached_zoo(str(trained_zoo)).architectures.values()) \
    if run.config.zoo and (trained_zoo / "manifest.json").is_file() else []
mismatch = editor_mismatch(trained_archs, run.task.resolution, net.architecture, resolution, inr_resolution)
if mismatch:
    st.warning(mismatch)

pair = (editor_name, json.dumps(net.architecture.to_dict(), sort_keys=True))
cold = pair not in _edited_since_start()
started = time.perf_counter()
try:
    with st.spinner("First edit with this editor and architecture since the server started: preparing the model "
                    "and the network's graph layout (a few seconds, once)…" if cold else "Editing…"):
        result = run.edit([net], resolution=resolution)[0]
except WeightSpaceError as exc:
    st.error(f"This editor cannot edit this network: {exc}")
    st.stop()
latency = (time.perf_counter() - started) * 1000
_edited_since_start().add(pair)
mse, identity = result["mse"], result["identity_mse"]

m1, m2, m4, m3 = st.columns([1, 1, 1, 1.4])  # the latency reads "46 ms (cold)": the widest value
m1.metric("MSE edited vs target", f"{mse:.4f}")
m2.metric("MSE unedited vs target", f"{identity:.4f}")
m4.metric("Intensity-only MSE", f"{result['intensity_only_mse']:.4f}",
          help="The best edit that only rescales and shifts this INR's output (a·f + b, fitted against the target: "
               "an oracle). An editor under it changes shapes, not only brightness; on smooth INR renderings "
               "erosion is mostly darkening, so erode editors sit close to it.")
m3.metric("Edit latency", f"{latency:.0f} ms ({'cold' if cold else 'warm'})",
          help="Server time of this edit (metanetwork forward pass and renderings). Cold: the first edit of this "
               "editor and architecture since the server started; warm: every later one.")
scale = max(1, 256 // resolution)
diff, peak = difference_image(result["source"], result["edited"])
st.image(png_strip([result["source"], result["edited"], diff, result["target"]], scale=scale),
         caption=f"original INR | edited INR | difference |edited − original| (white = {peak:.2f}) | "
                 f"target ({run.task.edit} of the original rendering)")
st.download_button("Download the edited INR (.safetensors)", network_to_bytes(result["network"]),
                   f"edited-{run.task.edit}.safetensors")
