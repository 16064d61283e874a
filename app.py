"""Train page (placeholder until the dashboard lands)."""

import streamlit as st

st.title("GAN training dashboard")
st.info("The dashboard is being built; meanwhile train from the command line: python -m gan_core train")
