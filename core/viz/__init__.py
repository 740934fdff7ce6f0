"""Figures (plotly) and graph exports (networkx) of networks; used by the app, usable from notebooks."""

from core.viz.exports import graph_json_bytes, graphml_bytes, to_networkx
from core.viz.graph_figure import edge_strengths, graph_figure
from core.viz.layer_figures import esd_histograms, spectra_figure, weight_histograms

__all__ = ["edge_strengths", "esd_histograms", "graph_figure", "graph_json_bytes", "graphml_bytes", "spectra_figure",
           "to_networkx", "weight_histograms"]
