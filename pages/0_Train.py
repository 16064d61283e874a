"""Train page: set up a GAN, start it, and watch it learn in MATLAB's training-monitor layout."""

import streamlit as st

from dashboard.form import config_ui
from dashboard.monitor import draw_monitor
from dashboard.registry import registry
from dashboard.sidebar import page_setup
from gan_core import ConfigError, DataError

page_setup("Train")
active = registry().active_run()
if active is None or not active.alive:
    st.title("Train a GAN")  # while a run trains, the monitor has the screen (1366x768 holds all of it)
if "started" in st.session_state:
    st.toast(st.session_state.pop("started"))

with st.expander("Set-up", expanded=active is None or not active.alive):
    form = config_ui()
    if st.button("Start", type="primary", disabled=not form.ok, key="start"):
        try:
            with st.spinner("Loading the data set …"):
                run = registry().start(form.config, form.knobs)
            if form.config.nproc > 1:
                started = f"Launched {run.run_dir.name} on {form.config.nproc} processes (torchrun)"
            else:
                skipped = f", {run.data.skipped} unreadable files skipped" if run.data.skipped else ""
                started = f"Started {run.run_dir.name}: {len(run.data):,} samples{skipped}"
            st.session_state["started"] = started
        except (ConfigError, DataError) as exc:
            st.error(str(exc))
        else:
            st.rerun()  # the set-up folds away: the monitor comes into view

draw_monitor()
