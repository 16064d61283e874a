"""Page set-up and the sidebar's view of the active run, shown on every page."""

from __future__ import annotations

import streamlit as st

from gan_core import Snapshot
from gan_core.folder.status import Status
from gan_core.training.run import format_elapsed

from .audience import draw_access
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
REFRESH_SECONDS = 3.0  # pages without the monitor; every rerun costs the browser, on a laptop the run's cores


def page_setup(title: str, monitor: bool = False) -> None:
    """The page's title and the sidebar. `monitor`: the page shows the live monitor, which tells the run's
    progress every few seconds; the sidebar then names the run and its status only, redrawn with the page (which the
    monitor reruns when the status changes), not by a timer of its own."""
    st.set_page_config(page_title=f"{title} · GAN dashboard", page_icon="🎛️", layout="wide")
    with st.sidebar:
        if monitor:
            draw_status_line()
        else:
            draw_active_run_status()
        draw_access()


def draw_status_line() -> Snapshot | None:
    """The active run's status and name; its snapshot (None without one)."""
    run = registry().active_run()
    if run is None:
        st.caption("No active run: start one on the Train page.")
        return None
    snap = run.snapshot()
    st.markdown(
        f"**{STATUS_ICONS.get(snap.status, '')} {snap.status.value.capitalize()}** · `{snap.run_dir.name}`"
    )
    return snap


@st.fragment(run_every=REFRESH_SECONDS)
def draw_active_run_status() -> None:
    snap = draw_status_line()
    if snap is None:
        return
    st.progress(
        min(1.0, snap.iteration / snap.target), text=f"Iteration {snap.iteration:,} of {snap.target:,}"
    )
    st.caption(
        f"Epoch {snap.epoch} · {format_elapsed(snap.elapsed_s)} · {snap.images_per_s:,.0f} img/s · {snap.device}"
    )
    if snap.reason and snap.status is not Status.RUNNING:
        st.caption(snap.reason)
