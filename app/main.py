"""Weight-Space Explorer — the Streamlit entry point: `streamlit run app/main.py`."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run app/main.py` puts app/ on the path, not the repository root
    sys.path.insert(0, str(ROOT))

from app.resources import device_label, one_line_error  # noqa: E402

# a bundled favicon: a ":material/…:" page icon is fetched from fonts.gstatic.com, a failed request offline
st.set_page_config(page_title="Weight-Space Explorer", page_icon=str(Path(__file__).with_name("icon.png")),
                   layout="wide")

# the pages live in views/, not pages/: Streamlit lists a pages/ folder next to the entry point in the sidebar until
# the first run reaches st.navigation (the ~10 s import below), and a click there runs that page without this
# script: no wide layout, no device caption, no error boundary
PAGES = [
    st.Page("views/inspect.py", title="Inspect", icon=":material/search:", default=True),
    st.Page("views/symmetry_lab.py", title="Symmetry lab", icon=":material/sync_alt:"),
    st.Page("views/inr_editor.py", title="INR editor", icon=":material/edit:"),
    st.Page("views/zoo_explorer.py", title="Zoo explorer", icon=":material/scatter_plot:"),
]

@st.cache_resource(show_spinner="Starting: loading PyTorch and the model code (once per server, about 10 s)…")
def _libraries_loaded() -> bool:
    """Import the heavy libraries once per server process, behind a message, so a cold first page is not blank."""
    import core.io  # noqa: F401
    import core.summary  # noqa: F401
    import core.viz  # noqa: F401

    return True


_libraries_loaded()
# below 1280 px the wide layout's 5rem side margins leave tables and graphs cramped (at 1024 px with the sidebar
# open the content was 564 px wide and the Layers table scrolled sideways): narrower margins there
st.html("<style>@media (max-width: 1280px) { [data-testid='stMainBlockContainer'] "
        "{ padding-left: 1.5rem; padding-right: 1.5rem; } }</style>")

with st.sidebar:
    st.markdown("**Weight-Space Explorer**")
    st.caption(f"Running on {device_label()}")

try:
    st.navigation(PAGES).run()
except Exception as exc:  # noqa: BLE001 (the last resort: a page never shows a stack trace or server paths)
    import logging

    logging.getLogger("weight_space_explorer.app").exception("page failed")  # the traceback stays in the server log
    st.error(one_line_error(exc))
