"""Zoo explorer: embed whole model zoos, project them, and find where a network of yours lands."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from app.resources import (
    MISSING_COLOUR,
    bundled_zoos,
    cached_run,
    cached_zoo,
    embedding_tasks,
    network_picker,
    one_line_error,
    preferred_embedder,
    remember_widgets,
    runs_for,
    safe_palette,
)
from core.embedding_cache import cached_embed_zoo, user_cache_dir
from core.errors import WeightSpaceError
from core.explore import (
    PROJECTIONS,
    ZooEmbedding,
    embed_networks,
    embedding_export,
    nearest,
    predicted_accuracy,
    project,
    search_rows,
    warm_umap,
)

# coming back to the page shows the same map (its projection is kept too)
remember_widgets("explorer-zoos", "explorer-path", "explorer-embedder", "explorer-projection", "explorer-seed",
                 "explorer-colour", "explorer-search", "explorer-place", "explorer-source", "explorer-activation",
                 "explorer-example")
st.title("Zoo explorer")
st.caption("Each point is a trained network. Networks that a metanetwork embeds close together are similar in "
           "what they compute, whatever their weights' symmetries.")

zoos = {name: str(path) for name, path in bundled_zoos().items()}
embedders = {"weight statistics (no model)": None}
for task in embedding_tasks():
    embedders.update({f"{name} ({task})": str(path) for name, path in runs_for(task).items()})


def _embedder_follows_zoos() -> None:
    """Choosing other zoos re-picks the embedder trained on the first of them, unless the user chose one."""
    now, state = st.session_state.get("explorer-zoos") or [], st.session_state
    if now and state.get("explorer-embedder") == state.get("explorer-embedder-picked"):
        state["explorer-embedder"] = state["explorer-embedder-picked"] = list(embedders)[
            preferred_embedder(embedders, zoos[now[0]])]


c1, c2 = st.columns([2, 1])
default_zoo = ["digits-inr"] if "digits-inr" in zoos else list(zoos)[:1]
chosen = c1.multiselect("Zoos", list(zoos), default=default_zoo, key="explorer-zoos", on_change=_embedder_follows_zoos)
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

e1, e2, e3 = st.columns(3)
if "explorer-embedder" not in st.session_state:  # the page's own choice ("picked") until the user makes one
    st.session_state["explorer-embedder"] = st.session_state["explorer-embedder-picked"] = list(embedders)[
        preferred_embedder(embedders, zoos[chosen[0]])]
embedder = e1.selectbox("Embedder", list(embedders), key="explorer-embedder")
method = e2.selectbox("Projection", PROJECTIONS, key="explorer-projection")
seed = int(e3.number_input("Seed", 0, 1000, 0, key="explorer-seed"))


@st.cache_data(show_spinner=False, max_entries=16)
def _embeddings(zoo_path: str, run_path: str | None) -> tuple[ZooEmbedding, str]:
    """A zoo's embeddings and where they came from: the on-disk cache (kept across server starts) or computed."""
    zoo = cached_zoo(zoo_path)
    kept = " (kept on disk for next time)" if user_cache_dir() is not None else ""
    text = f"Embedding the {len(zoo):,} networks of {Path(zoo_path).name}{kept}…"
    bar = st.progress(0.0, text=text)
    run = cached_run(run_path) if run_path else None
    out = cached_embed_zoo(zoo, run, progress=lambda f: bar.progress(f, text=text))
    bar.empty()
    return out


@st.cache_resource(show_spinner="Preparing UMAP (numba compiles once per server process)…")
def _umap_warm() -> bool:
    warm_umap()
    return True


@st.cache_data(show_spinner=False, max_entries=16)
def _projection(x: np.ndarray, method: str, seed: int) -> np.ndarray:
    """The 2-D map, kept per embedding array (so per zoos + embedder + uploaded network), method and seed: coming
    back to the page, or switching method and back, shows it at once. UMAP and t-SNE show a progress bar fed by
    the libraries' own progress output."""
    if method == "PCA":
        return project(x, method, seed)
    started = time.perf_counter()
    title = f"Projecting {len(x):,} networks with {method} (kept for your next visit)"
    bar = st.progress(0.0, text=f"{title}…")

    def report(fraction: float, stage: str) -> None:
        bar.progress(min(max(fraction, 0.0), 1.0), text=f"{title}: {stage} — {time.perf_counter() - started:.0f} s")

    xy = project(x, method, seed, progress=report)
    bar.empty()
    return xy


def _category(value) -> str:
    """A label as a legend entry: integral numbers without '.0' (a column with gaps turns float), gaps 'none'."""
    if pd.isna(value):
        return "none"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


if method == "UMAP":
    _umap_warm()

with st.expander("Place your own network on the map", expanded=bool(st.session_state.get("explorer-place"))):
    place = st.toggle("Mark a checkpoint of mine and list its nearest networks", key="explorer-place")
    mine = network_picker("explorer") if place else None

parts, tables, left_out, sources = [], [], [], {}
try:
    for name in chosen:
        got, source = _embeddings(zoos[name], embedders[embedder])
        sources[source] = [*sources.get(source, []), Path(name).name]
        left_out += [f"**{Path(name).name}**: {line}" for line in got.left_out]
        if len(got.rows):
            parts.append(got.vectors)
            tables.append(cached_zoo(zoos[name]).table.iloc[got.rows].assign(zoo=Path(name).name, zoo_row=got.rows))
except WeightSpaceError as exc:
    st.error(one_line_error(exc))
    st.stop()
if left_out:
    st.warning(f"{embedder} cannot read some networks; they are left out of the plot:\n\n"
               + "\n".join(f"- {line}" for line in left_out))
if not parts:
    st.error(f"{embedder} cannot read any network of the chosen zoos. Choose another embedder "
             "(weight statistics read every zoo).")
    st.stop()
if len({p.shape[1] for p in parts}) > 1:
    st.error("The chosen zoos give embeddings of different sizes with this embedder; choose another embedder.")
    st.stop()
emb = np.vstack(parts)
table = pd.concat(tables, ignore_index=True)


@st.cache_data(show_spinner="Predicting test accuracies…", max_entries=16)
def _predicted(zoo_path: str, run_path: str) -> np.ndarray:
    zoo = cached_zoo(zoo_path)
    return predicted_accuracy(zoo, np.arange(len(zoo)), cached_run(run_path))


predictors = runs_for("generalization") if "test_accuracy" in table else {}
predictor = st.selectbox("Predicted accuracy from", ["none", *predictors], key="explorer-predictor",
                         help="A generalization run: adds predicted_accuracy and prediction_error (predicted − true) "
                              "to colour by") if predictors else "none"
if predictor != "none":
    path_of = {Path(name).name: zoos[name] for name in chosen}
    table["predicted_accuracy"] = np.nan
    for name, part in table.groupby("zoo"):
        table.loc[part.index, "predicted_accuracy"] = _predicted(path_of[name], str(predictors[predictor]))[
            part["zoo_row"].to_numpy()]
    table["prediction_error"] = table["predicted_accuracy"] - table["test_accuracy"]
    st.caption(f"{predictor}: mean absolute error {table['prediction_error'].abs().mean():.3f} over "
               f"{int(table['prediction_error'].notna().sum()):,} networks (grey: architectures it cannot read, and "
               "networks that diverged in training).")

query = None
if mine is not None:
    try:
        query = embed_networks([mine], cached_run(embedders[embedder]) if embedders[embedder] else None)[0]
    except WeightSpaceError as exc:
        st.error(f"Cannot place this network among the zoo: {one_line_error(exc)}")
try:
    # your network is projected together with the zoo, so it lands where the zoo's own map puts it
    xy = _projection(emb if query is None else np.vstack([emb, query[None]]), method, seed)
except WeightSpaceError as exc:
    st.error(one_line_error(exc))
    st.stop()

columns = [c for c in ("label", "test_accuracy", "predicted_accuracy", "prediction_error", "psnr", "zoo", "activation",
                       "group") if c in table]
s1, s2 = st.columns([1, 2])
colour = s1.selectbox("Colour by", columns or ["zoo"], key="explorer-colour")
search = s2.text_input("Search", key="explorer-search", placeholder="label=3, zoo=cnn-digits  ·  or any text",
                       help="`column=value` (several joined by commas must all hold) or text found in any column; "
                            "matches are ringed on the map and listed below it.")
try:
    found = search_rows(table, search)
except WeightSpaceError as exc:
    st.error(one_line_error(exc))
    found = np.zeros(len(table), dtype=bool)
plot = table.assign(x=xy[: len(table), 0], y=xy[: len(table), 1], row=np.arange(len(table)))
missing = plot[colour].isna()
hover = [c for c in columns if c != colour] + ["row"]
layout = dict(opacity=0.75, height=560, custom_data=["row"], hover_data=hover)
if plot[colour].dtype.kind == "f" and colour != "label":
    fig = px.scatter(plot[~missing], x="x", y="y", color=colour, color_continuous_scale="Viridis", **layout)
    if missing.any():  # drawn grey rather than dropped: a colour scale has no place for a missing value
        gaps = plot[missing]
        fig.add_scatter(x=gaps["x"], y=gaps["y"], mode="markers", name=f"no {colour}", customdata=gaps[["row"]],
                        marker=dict(color=MISSING_COLOUR, size=6), hovertext=gaps["zoo"], showlegend=True)
else:
    plot[colour] = plot[colour].map(_category)
    order = sorted(plot[colour].unique(), key=lambda v: (v == "none", len(v), v))
    fig = px.scatter(plot, x="x", y="y", color=colour, category_orders={colour: order},
                     color_discrete_sequence=safe_palette(), color_discrete_map={"none": MISSING_COLOUR}, **layout)
fig.update_traces(marker=dict(size=6))
if found.any():
    hits = plot[found]
    fig.add_scatter(x=hits["x"], y=hits["y"], mode="markers", name=f"search: {search.strip()}",
                    customdata=hits[["row"]], hoverinfo="skip",
                    marker=dict(symbol="circle-open", size=12, color="black", line=dict(width=2)))
if query is not None:
    fig.add_scatter(x=[xy[-1, 0]], y=[xy[-1, 1]], mode="markers+text", name="your network", text=["your network"],
                    textposition="top center", customdata=[[-1]],
                    marker=dict(symbol="star", size=18, color="black", line=dict(width=1, color="white")))
fig.update_layout(xaxis_title=f"{method} 1", yaxis_title=f"{method} 2", margin=dict(l=10, r=10, t=30, b=10))
event = st.plotly_chart(fig, width="stretch", on_select="rerun", selection_mode=("points", "box", "lasso"),
                        key="explorer-plot")
notes = []
if search.strip():
    notes.append(f"search matches {int(found.sum()):,} networks")
if missing.any():
    shown = "drawn grey" if plot[colour].dtype.kind == "f" else "shown as 'none'"
    by_zoo = ", ".join(f"{n:,} of {z}" for z, n in table[missing.to_numpy()]["zoo"].value_counts().items())
    notes.append(f"{int(missing.sum()):,} networks have no {colour} ({by_zoo}): {shown}")
if left_out:
    notes.append("some networks left out (see above)")
if "computed" not in sources:
    where = {"cache": "on-disk cache", "bundled cache": "bundled cache"}
    notes.append("embeddings read from " + " and ".join(f"the {where[s]} ({', '.join(names)})"
                                                        for s, names in sources.items()))
st.caption(f"{len(table):,} networks embedded with {embedder}, projected with {method}. Click a point for details, "
           "or draw a box or lasso (toolbar) to list a selection."
           + "".join(f" {n[0].upper()}{n[1:]}." for n in notes))
export = embedding_export(table, xy[: len(table)], emb)
x1, x2 = st.columns(2)
x1.download_button("Download embeddings, coordinates and metadata (CSV)", export.to_csv(index=False).encode(),
                   f"embeddings-{method.lower()}.csv", mime="text/csv", key="explorer-download")
x2.download_button("… as Parquet", export.to_parquet(index=False), f"embeddings-{method.lower()}.parquet",
                   mime="application/vnd.apache.parquet", key="explorer-download-parquet")
if found.any():
    st.dataframe(table[found], width="stretch", key="explorer-found")

if query is not None:
    idx, sims = nearest(emb, query, k=5)
    st.dataframe(table.iloc[idx].assign(similarity=sims), width="stretch")
    st.caption("The five most similar networks in the chosen zoos (cosine similarity of standardised embeddings); "
               "the star marks your network on the map.")

if isinstance(event, dict):
    points = (event or {}).get("selection", {}).get("points", [])
else:
    points = getattr(getattr(event, "selection", None), "points", [])
points = [p for p in points if p.get("customdata") and int(p["customdata"][0]) >= 0]
picked = sorted({int(p["customdata"][0]) for p in points})
if len(picked) > 1:
    st.subheader(f"{len(picked):,} networks selected")
    st.dataframe(table.iloc[picked], width="stretch")
elif points:
    row = int(points[0]["customdata"][0])
    info = table.iloc[row]
    st.subheader(f"Network {int(info['zoo_row'])} of {info['zoo']}")
    zoo_dir = zoos.get(info["zoo"]) or next(v for k, v in zoos.items() if Path(k).name == info["zoo"])
    net = cached_zoo(zoo_dir).network(int(info["zoo_row"]))
    d1, d2 = st.columns([1, 2])
    if net.architecture.input_shape == (2,):
        from core.tasks.edit import render
        from core.viz.images import png_strip

        image = render(net.architecture, net.flat()[None].float(), 28)[0].view(28, 28)
        d1.image(png_strip([image], scale=6), caption="what this INR draws")
    d2.dataframe(info.to_frame("value").astype(str), width="stretch")


# short headers and three or four decimals keep the drift table's seven columns within a 1024-px window
DRIFT_NUMBERS = {column: st.column_config.NumberColumn(label, format="%.4f" if column.endswith("_std") else "%.3f")
                 for column, label in (("init_std", "init std"), ("fitted_std", "fitted std"),
                                       ("update_ratio", "update/init"), ("correlation", "corr"),
                                       ("update_correlation", "update corr"))}


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
            st.dataframe(drift[["tensor", *DRIFT_NUMBERS, "flag"]], hide_index=True, width="stretch",
                         column_config=DRIFT_NUMBERS)
            st.caption(f"{report['networks']:,} INRs, init {report['recipe']['init']}. Correlation across networks "
                       "between fitted and initial values; above the dotted line "
                       f"({report['threshold']}) the layer mostly carries each INR's random init, not its image. "
                       "update/init = std(fitted − init) / std(init); update corr = corr(fitted − init, init), "
                       "above 0 when fitting grows each INR's own init. No bar: the init is the same for every "
                       "network (zero biases, a shared init).")
