"""INR editor."""

import streamlit as st

st.title("✏️ INR editor")
