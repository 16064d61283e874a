"""Page set-up and the sidebar's view of the active run, shown on every page."""

from __future__ import annotations

import streamlit as st

from gan_core.folder.status import Status
from gan_core.training.run import format_elapsed

from .registry import registry

STATUS_ICONS = {
    Status.RUNNING: "🟢",
    Status.PAUSED: "⏸️",
    Status.FINISHED: "✅",
    Status.STOPPED: "⏹️",
    Status.FAILED: "❌",
    Status.DIVERGED: "⚠️",
    Status.INTERRUPTED: "💥",
}
REFRESH_SECONDS = 3.0  # the monitor itself refreshes every second; every rerun costs the training thread


def page_setup(title: str) -> None:
    st.set_page_config(page_title=f"{title} · GAN dashboard", page_icon="🎛️", layout="wide")
    with st.sidebar:
        draw_active_run_status()


@st.fragment(run_every=REFRESH_SECONDS)
def draw_active_run_status() -> None:
    run = registry().active_run()
    if run is None:
        st.caption("No active run: start one on the Train page.")
        return
    snap = run.snapshot()
    st.markdown(
        f"**{STATUS_ICONS.get(snap.status, '')} {snap.status.value.capitalize()}** · `{snap.run_dir.name}`"
    )
    st.progress(
        min(1.0, snap.iteration / snap.target), text=f"Iteration {snap.iteration:,} of {snap.target:,}"
    )
    st.caption(
        f"Epoch {snap.epoch} · {format_elapsed(snap.elapsed_s)} · {snap.images_per_s:,.0f} img/s · {snap.device}"
    )
    if snap.reason and snap.status is not Status.RUNNING:
        st.caption(snap.reason)
