"""Symmetry lab: the symmetries a network admits, a random one applied, and whether functions and bundled
metanetworks respect it."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.resources import (
    FROM_FILE,
    bundled_runs,
    cached_run,
    network_picker,
    one_line_error,
    recorded_activation_contradicting,
)
from core.cli.check_cmd import declare_activation
from core.errors import WeightSpaceError
from core.explore import unreadable_reason
from core.graph import to_graph
from core.symmetry import (
    admitted_symmetries,
    check_function_preservation,
    equivariance_error,
    invariance_error,
    prediction_invariance_error,
)
from core.symmetry.check import CONSTANT_OUTPUT_WARNING, constant_output
from core.symmetry.lab import acted_neurons, transformed_network
from core.viz import graph_figure

st.title("Symmetry lab")
st.caption("Different weights, same function: permuting hidden neurons, rescaling ReLU neurons, flipping the signs of "
           "tanh/sine neurons or shifting sine phases by a period leaves the network's function unchanged.")

net = network_picker("symmetry")
if net is None:
    st.stop()
if any(a.fn == "unknown" for a in net.architecture.activations()):
    st.warning("The activation is unknown, so the symmetries are too: choose the activation above.")
    st.stop()

declared = st.session_state.get("symmetry-activation")
assume = None  # as the CLI: a declaration that contradicts the file decides the claimed symmetries only
if recorded_activation_contradicting(net.architecture, None if declared == FROM_FILE else declared):
    assume = declare_activation(net.architecture, declared)
    st.caption(f"The symmetries below are those a {declared} network would admit, checked against the file's own "
               "function: the ones its real activation does not admit fail.")
report = admitted_symmetries(assume if assume is not None else net)
st.markdown(f"**Admitted symmetries:** {report.describe()}")
kinds = report.kinds
if not kinds:
    st.info("This network has no hidden neurons to transform.")
    st.stop()

c1, c2, c3 = st.columns([2, 1, 1])
kind = c1.radio("Transformation", kinds, horizontal=True, key="symmetry-kind")
seed = int(c2.number_input("Seed", min_value=0, max_value=10_000, value=0, step=1, key="symmetry-seed"))
broken = c3.toggle("Break it", key="symmetry-broken",
                   help="Apply a near miss instead (incoming weights only, or half a phase period): "
                        "the check must fail.")

after = transformed_network(net, kind, seed, broken)
results = check_function_preservation(net, trials=3, seed=seed, kinds=[kind], broken=broken, assume=assume)
res = results[0]
label = "broken transform" if broken else kind
if res.passed:
    st.success(f"Function preserved under the {label}: max abs output change {res.max_abs_error:.2e} "
               f"(relative {res.max_rel_error:.2e}).")
else:
    st.error(f"Function changed under the {label}: max abs output change {res.max_abs_error:.2e} "
             f"(relative {res.max_rel_error:.2e}).")
if constant_output(net, seed=seed):
    st.warning(CONSTANT_OUTPUT_WARNING[0].upper() + CONSTANT_OUTPUT_WARNING[1:] + ".")

moved = acted_neurons(net, kind, seed)
# side by side where the page is wide enough for two readable graphs, one above the other otherwise (at 1024 px)
with st.grid(2, min_column_width=440):
    fig, _ = graph_figure(net, max_edges=1500, title="Original")
    st.plotly_chart(fig, width="stretch", key="symmetry-before")
    fig, _ = graph_figure(after, max_edges=1500, title=f"After {label}", highlight=moved,
                          highlight_label=f"neurons the {label} acts on")
    st.plotly_chart(fig, width="stretch", key="symmetry-after")
st.caption(f"Ringed in the after-graph: the {len(moved):,} neurons the {label} acts on (moved, flipped, scaled "
           "or shifted); their incoming and outgoing weights change with them.")

st.subheader("All symmetries, checked")
table = check_function_preservation(net, trials=3, seed=seed, broken=broken, assume=assume)
SCIENTIFIC = st.column_config.NumberColumn(format="%.1e")  # 1.4e-14, not 0.000000000000014
st.dataframe(pd.DataFrame([{"symmetry": r.symmetry, "max abs error": r.max_abs_error, "max rel error": r.max_rel_error,
                            "passed": r.passed} for r in table]), hide_index=True, width="stretch",
             column_config={"max abs error": SCIENTIFIC, "max rel error": SCIENTIFIC})
st.caption("Each row applies 3 random elements and compares outputs on probe inputs in float64 "
           "(a coordinate grid for INRs, random inputs otherwise).")

runs = bundled_runs()
if runs:
    st.subheader("Do the bundled metanetworks respect it?")
    rows, unreadable = [], []
    # each model is loaded on a cold server, then run 3 times on the network and its transforms: say which one
    bar = st.progress(0.0)
    for i, (name, path) in enumerate(runs.items()):
        bar.progress(i / len(runs), text=f"Checking {name} ({i + 1} of {len(runs)})…")
        run = cached_run(str(path))
        reason = unreadable_reason(net.architecture, run)
        if reason is None:
            try:
                if run.task.canonical:  # the model reads canonical forms: check the whole prediction pipeline
                    err = prediction_invariance_error(run.predict, net, trials=3, seed=seed, kinds=[kind])
                else:
                    graph = to_graph(net.to(dtype=next(run.model.parameters()).dtype), grid_size=run.config.grid_size)
                    measure = equivariance_error if run.task.head == "params" else invariance_error
                    err = measure(run.model, [graph], trials=3, seed=seed, kinds=[kind])
            except (WeightSpaceError, RuntimeError, ValueError) as exc:
                reason = one_line_error(exc) if isinstance(exc, WeightSpaceError) else str(exc).splitlines()[0][:120]
        if reason is not None:
            unreadable.append(f"**{name}** ({reason})")
            continue
        rows.append({"model": name, "output": "equivariant update" if run.task.head == "params" else "prediction",
                     "claims": "all (reads canonical forms)" if run.task.canonical else ", ".join(run.model.symmetries),
                     "error under " + kind: err,
                     "respects it": bool(kind in run.model.symmetries or err < 1e-4)})
    bar.empty()
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                     column_config={"error under " + kind: SCIENTIFIC})
    st.caption("Relative change of each model's output when the input network is transformed (invariance for "
               "predictions, equivariance for editors). Models are exact for the symmetries they claim.")
    if unreadable:
        st.caption("Cannot read this network, so not in the table: " + "; ".join(unreadable) + ".")
