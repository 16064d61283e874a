"""The Runs page's comparisons: curves of several runs overlaid (a branch beside its parent from the branch point),
and two runs' grids side by side at one iteration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from gan_core.folder.history import downsample
from gan_core.folder.run_folder import RunFolder, RunInfo

MAX_POINTS = 2000
COLOURS = ("#0072BD", "#D95319", "#EDB120", "#7E2F8E", "#77AC30", "#4DBEEE", "#A2142F")  # MATLAB's lines
SCORES = {"score_g": ("Generator", "solid"), "score_d": ("Discriminator", "dash")}
LOSSES = {"loss_g": ("Generator", "solid"), "loss_d": ("Discriminator", "dash")}
GRID_WIDTH = 300  # each of the two grids side by side


# ---- curves


@st.cache_data(max_entries=64, show_spinner=False)
def curves(run_dir: str, stamp: int, columns: tuple[str, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(iteration, value) of each column, at most MAX_POINTS a curve; keyed by the file's mtime."""
    names, table = RunFolder(run_dir).read_metrics()
    if "iteration" not in names:
        return {}
    x = table[:, names.index("iteration")]
    return {c: downsample(x, table[:, names.index(c)], MAX_POINTS) for c in columns if c in names}


def run_curves(info: RunInfo, columns: tuple[str, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The run's curves; none (and a warning) when its metrics cannot be read: one bad folder spoils no page."""
    path = RunFolder(info.path).metrics_path
    try:
        return curves(str(info.path), path.stat().st_mtime_ns, columns) if path.is_file() else {}
    except (OSError, ValueError) as exc:
        st.warning(f"The metrics of {info.name} cannot be read: {str(exc).splitlines()[0]}")
        return {}


def with_parents(chosen: list[RunInfo], infos: list[RunInfo]) -> list[RunInfo]:
    """The chosen runs, and the parent of each chosen branch (a branch is read against where it came from)."""
    by_path = {info.path: info for info in infos}
    runs = list(chosen)
    for info in chosen:
        parent = by_path.get(info.parent)
        if parent is not None and parent not in runs:
            runs.append(parent)
    return runs


def overlay_figure(infos: list[RunInfo], lines: dict[str, tuple[str, str]], y_title: str, y_range=None):
    """One colour a run, one dash style a curve (G solid, D dashed). A branch shown with its parent is drawn from
    its branch point on (before it, it is its parent), which a dotted line marks."""
    fig = go.Figure()
    shown = {info.path for info in infos}
    for n, info in enumerate(infos):
        branch = info.parent in shown  # a branch without its parent: its whole history
        start = info.branched_at if branch else -np.inf
        colour = COLOURS[n % len(COLOURS)]
        for column, (x, y) in run_curves(info, tuple(lines)).items():
            who, dash = lines[column]
            keep = x >= start
            fig.add_trace(go.Scattergl(x=x[keep], y=y[keep], mode="lines", name=f"{info.name} · {who}",
                                       legendgroup=info.name, line=dict(color=colour, dash=dash, width=1.5)))  # fmt: skip
        if branch:
            fig.add_vline(x=info.branched_at, line=dict(color=colour, dash="dot", width=1),
                          annotation_text=f"{info.name} branches from {info.parent.name}",
                          annotation_position="top left", annotation_font_size=10)  # fmt: skip
    fig.update_layout(height=380, margin=dict(l=50, r=20, t=30, b=45), template="plotly_white",
                      legend=dict(orientation="h", yanchor="top", y=-0.2, x=0))  # fmt: skip
    fig.update_xaxes(title="Iteration")
    fig.update_yaxes(title=y_title, range=y_range)
    return fig


def draw_overlays(infos: list[RunInfo]) -> None:
    st.subheader("Compare")
    by_name = {info.name: info for info in infos}
    names = st.multiselect("Runs to overlay", list(by_name), default=list(by_name)[:1], key="overlay")
    chosen = [by_name[name] for name in names if name in by_name]
    if not chosen:
        st.caption("Choose runs to overlay their curves.")
        return
    shown = with_parents(chosen, infos)
    if len(shown) > len(chosen):
        st.caption("With the parent of each branch chosen: "
                   + ", ".join(info.name for info in shown[len(chosen):]) + ".")  # fmt: skip
    left, right = st.columns(2)
    left.plotly_chart(overlay_figure(shown, SCORES, "Score", [0, 1]), key="scores")
    right.plotly_chart(overlay_figure(shown, LOSSES, "Loss"), key="losses")


# ---- grids side by side


def grid_at(folder: RunFolder, iteration: int) -> tuple[int, Path] | None:
    """The run's latest saved grid at or before `iteration` (its first one if it has none that early)."""
    grids = folder.grids()
    if not grids:
        return None
    before = [grid for grid in grids if grid[0] <= iteration]
    return before[-1] if before else grids[0]


def default_pair(infos: list[RunInfo]) -> tuple[str, str]:
    """The newest branch and its parent, else the two newest runs."""
    by_path = {info.path: info for info in infos}
    for info in infos:
        if info.parent in by_path:
            return by_path[info.parent].name, info.name
    return infos[0].name, infos[1].name


def side_by_side_ui(infos: list[RunInfo]) -> None:
    """Two runs' grids at one iteration, moved together by one slider."""
    st.subheader("Side by side")
    if len(infos) < 2:
        st.caption("Two runs are needed.")
        return
    by_name = {info.name: info for info in infos}
    first, second = default_pair(infos)
    left, right = st.columns(2)
    a = left.selectbox("Left", list(by_name), index=list(by_name).index(first), key="side-a")
    b = right.selectbox("Right", list(by_name), index=list(by_name).index(second), key="side-b")
    folders = [RunFolder(by_name[a].path), RunFolder(by_name[b].path)]
    iterations = sorted({it for folder in folders for it, _ in folder.grids()})
    if not iterations:
        st.caption("Neither run has saved a grid yet.")
        return
    at = (st.select_slider("Iteration", iterations, value=iterations[-1], key=f"side-{a}-{b}")
          if len(iterations) > 1 else iterations[0])  # fmt: skip
    for column, folder in zip((left, right), folders, strict=True):
        grid = grid_at(folder, at)
        if grid is None:
            column.caption(f"{folder.name} has saved no grid yet.")
            continue
        shown, path = grid
        note = (
            "" if shown == at else f" (its grid nearest before {at:,})" if shown < at else " (its first grid)"
        )
        column.image(
            path.read_bytes(),
            width=GRID_WIDTH,
            caption=f"{folder.name} at iteration {shown:,}{note}",
            output_format="PNG",
        )
