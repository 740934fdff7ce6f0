"""Symmetry lab (filled in once core.symmetry lands)."""

import streamlit as st

st.title("🔁 Symmetry lab")
