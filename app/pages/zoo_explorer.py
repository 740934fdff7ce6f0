"""Zoo explorer: embed whole model zoos, project them, and find where a network of yours lands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from app.resources import (
    bundled_zoos,
    cached_run,
    cached_zoo,
    embedding_tasks,
    network_picker,
    preferred_embedder,
    runs_for,
)
from core.errors import WeightSpaceError
from core.explore import PROJECTIONS, embed_zoo, nearest, project, warm_umap

st.title("Zoo explorer")
st.caption("Each point is a trained network. Networks that a metanetwork embeds close together are similar in "
           "what they compute, whatever their weights' symmetries.")

zoos = {name: str(path) for name, path in bundled_zoos().items()}
c1, c2 = st.columns([2, 1])
default_zoo = ["digits-inr"] if "digits-inr" in zoos else list(zoos)[:1]
chosen = c1.multiselect("Zoos", list(zoos), default=default_zoo, key="explorer-zoos")
extra = c2.text_input("…or a zoo directory on the server", key="explorer-path")
if extra:
    if not (Path(extra) / "manifest.json").is_file():
        st.error(f"{extra} is not a zoo directory (no manifest.json).")
    else:
        zoos[extra] = extra
        chosen = [*chosen, extra]
if not chosen:
    st.info("Choose at least one zoo.")
    st.stop()

embedders = {"weight statistics (no model)": None}
for task in embedding_tasks():
    embedders.update({f"{name} ({task})": str(path) for name, path in runs_for(task).items()})
e1, e2, e3 = st.columns(3)
embedder = e1.selectbox("Embedder", list(embedders), index=preferred_embedder(embedders, zoos[chosen[0]]),
                        key="explorer-embedder")
method = e2.selectbox("Projection", PROJECTIONS, key="explorer-projection")
seed = int(e3.number_input("Seed", 0, 1000, 0, key="explorer-seed"))


@st.cache_data(show_spinner=False, max_entries=16)
def _embeddings(zoo_path: str, run_path: str | None) -> np.ndarray:
    bar = st.progress(0.0, text=f"Embedding {Path(zoo_path).name}…")
    run = cached_run(run_path) if run_path else None
    text = f"Embedding {Path(zoo_path).name}…"
    out = embed_zoo(cached_zoo(zoo_path), run, progress=lambda f: bar.progress(f, text=text))
    bar.empty()
    return out


@st.cache_resource(show_spinner="Preparing UMAP (numba compiles once per server process)…")
def _umap_warm() -> bool:
    warm_umap()
    return True


@st.cache_data(show_spinner="Projecting…", max_entries=16)
def _projection(x: np.ndarray, method: str, seed: int) -> np.ndarray:
    return project(x, method, seed)


if method == "UMAP":
    _umap_warm()


try:
    parts, tables = [], []
    for name in chosen:
        parts.append(_embeddings(zoos[name], embedders[embedder]))
        tables.append(cached_zoo(zoos[name]).table.assign(zoo=Path(name).name))
    emb = np.vstack(parts)
    table = pd.concat(tables, ignore_index=True)
    xy = _projection(emb, method, seed)
except WeightSpaceError as exc:
    st.error(str(exc))
    st.stop()

columns = [c for c in ("label", "test_accuracy", "psnr", "zoo", "activation", "group") if c in table]
colour = st.selectbox("Colour by", columns or ["zoo"], key="explorer-colour")
plot = table.assign(x=xy[:, 0], y=xy[:, 1], row=np.arange(len(table)))
if colour == "label":
    plot["label"] = plot["label"].astype(str)
fig = px.scatter(plot, x="x", y="y", color=colour, hover_data=[c for c in columns if c != colour] + ["row"],
                 custom_data=["row"], opacity=0.75, height=560,
                 color_continuous_scale="Viridis" if plot[colour].dtype.kind == "f" else None)
fig.update_traces(marker=dict(size=6))
fig.update_layout(xaxis_title=f"{method} 1", yaxis_title=f"{method} 2", margin=dict(l=10, r=10, t=30, b=10))
event = st.plotly_chart(fig, width="stretch", on_select="rerun", selection_mode="points", key="explorer-plot")
st.caption(f"{len(table):,} networks embedded with {embedder}, projected with {method}. Select a point for details.")

if isinstance(event, dict):
    points = (event or {}).get("selection", {}).get("points", [])
else:
    points = getattr(getattr(event, "selection", None), "points", [])
if points:
    row = int(points[0]["customdata"][0])
    info = table.iloc[row]
    st.subheader(f"Network {row} of {info['zoo']}")
    zoo_dir = zoos.get(info["zoo"]) or next(v for k, v in zoos.items() if Path(k).name == info["zoo"])
    zoo = cached_zoo(zoo_dir)
    local = int(row - sum(len(t) for t in tables[: [Path(n).name for n in chosen].index(info["zoo"])]))
    net = zoo.network(local)
    d1, d2 = st.columns([1, 2])
    if net.architecture.input_shape == (2,):
        from core.tasks.edit import render
        from core.viz.images import png_strip

        image = render(net.architecture, net.flat()[None].float(), 28)[0].view(28, 28)
        d1.image(png_strip([image], scale=6), caption="what this INR draws")
    d2.dataframe(info.to_frame("value").astype(str), width="stretch")


@st.cache_data(show_spinner="Rebuilding the INRs' initial values from their seeds…", max_entries=8)
def _drift(zoo_path: str) -> dict:
    from core.zoo.drift import init_drift

    return init_drift(cached_zoo(zoo_path))


inr_zoos = [n for n in chosen if cached_zoo(zoos[n]).manifest.get("generator", {}).get("name") == "inr"]
if inr_zoos:
    st.subheader("How far the INRs moved from their initial values")
    for name in inr_zoos:
        with st.expander(f"Init drift of {Path(name).name}", expanded=len(inr_zoos) == 1):
            try:
                report = _drift(zoos[name])
            except WeightSpaceError as exc:
                st.error(str(exc))
                continue
            drift = pd.DataFrame(report["rows"])
            drift.insert(0, "tensor", drift["layer"] + "." + drift["kind"])
            drift["flag"] = np.where(drift["carries_init"], "carries the init, not the data", drift["note"])
            bars = px.bar(drift, x="tensor", y="correlation", color="carries_init", range_y=[-0.2, 1.05], height=300,
                          color_discrete_map={True: "#d62728", False: "#1f77b4"},
                          labels={"correlation": "corr(fitted, init)", "carries_init": "carries the init"})
            bars.add_hline(y=report["threshold"], line_dash="dot")
            bars.update_layout(margin=dict(l=10, r=10, t=30, b=10))
            st.plotly_chart(bars, width="stretch", key=f"drift-{name}")
            st.dataframe(drift[["tensor", "init_std", "fitted_std", "update_ratio", "correlation", "flag"]],
                         hide_index=True, width="stretch")
            st.caption(f"{report['networks']:,} INRs, init {report['recipe']['init']}. Correlation across networks "
                       "between fitted and initial values; above the dotted line "
                       f"({report['threshold']}) the layer mostly carries each INR's random init, not its image. "
                       "update_ratio = std(fitted − init) / std(init). No bar: the init is the same for every "
                       "network (zero biases, a shared init).")

st.subheader("Place your own network")
place = st.toggle("Find the nearest networks to a checkpoint of mine", key="explorer-place")
mine = network_picker("explorer") if place else None
if mine is not None:
    try:
        from core.explore import embed_networks

        q = embed_networks([mine], cached_run(embedders[embedder]) if embedders[embedder] else None)[0]
        if q.shape[0] != emb.shape[1]:
            raise WeightSpaceError("its embedding has a different size than the zoo's (weight statistics need the "
                                   "same architecture; choose a trained embedder)")
        idx, sims = nearest(emb, q, k=5)
        st.dataframe(table.iloc[idx].assign(similarity=sims), width="stretch")
        st.caption("The five most similar networks in the chosen zoos (cosine similarity of standardised embeddings).")
    except WeightSpaceError as exc:
        st.error(f"Cannot place this network among the zoo: {exc}")

