"""Train page: set up a GAN, start it, and watch it learn in MATLAB's training-monitor layout."""

import streamlit as st

from dashboard.audience import READ_ONLY, is_presenter
from dashboard.form import config_ui
from dashboard.monitor import PRESENTATION, draw_monitor
from dashboard.registry import registry
from dashboard.sidebar import page_setup
from gan_core import ConfigError, DataError


def setup_ui(expanded: bool) -> None:
    """The set-up form and Start; after a start the page reruns with the form folded away."""
    with st.expander("Set-up", expanded=expanded):
        form = config_ui()
        if not st.button("Start", type="primary", disabled=not form.ok, key="start"):
            return
        try:
            with st.spinner("Loading the data set …"):
                run = registry().start(form.config, form.knobs)
        except (ConfigError, DataError) as exc:
            st.error(str(exc))
            return
        if form.config.nproc > 1:
            st.session_state["started"] = (
                f"Launched {run.run_dir.name} on {form.config.nproc} processes (torchrun)"
            )
        else:
            skipped = f", {run.data.skipped} unreadable files skipped" if run.data.skipped else ""
            st.session_state["started"] = f"Started {run.run_dir.name}: {len(run.data):,} samples{skipped}"
    st.rerun()  # the monitor comes into view


page_setup("Train", monitor=True)
active = registry().active_run()
idle = active is None or not active.alive
presenting = st.sidebar.toggle("Presentation view", key=PRESENTATION,
                               help="For the front of a room: the title and the grid large, the set-up hidden, "
                               "the knobs and buttons one click away under the curves.")  # fmt: skip
if "started" in st.session_state:
    st.toast(st.session_state.pop("started"))
if not is_presenter():  # the audience: the monitor only, never the set-up (it reads server folders)
    st.caption(READ_ONLY)
elif not presenting:
    if idle:
        st.title("Train a GAN")  # while a run trains, the monitor has the screen (1366x768 holds all of it)
    setup_ui(expanded=idle)
draw_monitor()
