"""Zoo explorer."""

import streamlit as st

st.title("🗺️ Zoo explorer")
