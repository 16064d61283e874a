"""Plotly figures of a run's snapshot: MATLAB's score panel, losses, rates, the 2-D playground."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from gan_core.folder.history import downsample
from gan_core.folder.milestone import Mark

GENERATOR, DISCRIMINATOR = "#0072BD", "#D95319"  # MATLAB's first two line colours
RECOGNISABLE = "#2E8B57"  # the mark where the samples first became recognisable
MAX_POINTS = 2000
HEIGHT = 340  # the score panel and the Pause/Step/Stop row stand as tall as the grid beside them


def _layout(fig: go.Figure, y_title: str, y_range=None, height: int = HEIGHT) -> go.Figure:
    fig.update_layout(
        height=height, margin=dict(l=50, r=20, t=30, b=45), uirevision="keep",  # zoom survives refreshes
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=1, xanchor="right"), template="plotly_white",
    )  # fmt: skip
    fig.update_xaxes(title="Iteration", showgrid=True, zeroline=False)
    fig.update_yaxes(title=y_title, showgrid=True, range=y_range)
    return fig


def _line(history: dict, column: str, name: str, colour: str | None = None) -> go.Scatter:
    x, y = downsample(history["iteration"], history[column], MAX_POINTS)
    return go.Scatter(x=x, y=y, name=name, mode="lines", line=dict(color=colour, width=1.5))


def knob_label(event: dict) -> str:
    return ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in event["changes"].items()
    )


def _mark_changes(fig: go.Figure, events, limit: int = 30) -> None:
    """A dotted vertical line, labelled, where each knob change took effect."""
    for event in list(events)[-limit:]:
        fig.add_vline(x=event["iteration"], line=dict(color="#888", dash="dot", width=1))
        fig.add_annotation(x=event["iteration"], y=1, yref="paper", text=knob_label(event), showarrow=False,
                           xanchor="left", yanchor="bottom", bgcolor="rgba(255,255,255,0.8)",
                           font=dict(size=10, color="#444"))  # fmt: skip


def duration(seconds: float) -> str:
    """'41 s', '12 min', '2.5 h': a run's training time, short enough to read out."""
    if not np.isfinite(seconds):
        return "? s"
    if seconds < 100:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 6000 else f"{seconds / 3600:.1f} h"


def mark_label(mark: Mark, since: bool = False) -> str:
    """'recognisable at 1,234 (41 s)'; since: 'recognisable from iteration 1,234 (41 s)'. On a 2-D toy the mark
    is every mode captured: 'all 8 modes at ...'."""
    what = "recognisable" if mark.modes_total is None else f"all {mark.modes_total} modes"
    return f"{what} {'from iteration' if since else 'at'} {mark.iteration:,} ({duration(mark.elapsed_s)})"


def mark_recognisable(fig: go.Figure, mark: Mark | None) -> go.Figure:
    """A solid line, labelled at the foot of the chart, where the samples first became recognisable."""
    if mark is not None:
        fig.add_vline(x=mark.iteration, line=dict(color=RECOGNISABLE, width=2))
        fig.add_annotation(x=mark.iteration, y=0, yref="paper", text=mark_label(mark), showarrow=False,
                           xanchor="left", yanchor="bottom", bgcolor="rgba(255,255,255,0.8)",
                           font=dict(size=11, color=RECOGNISABLE))  # fmt: skip
    return fig


def scores_figure(history: dict, events=(), quality: dict | None = None) -> go.Figure:
    """The monitor's right panel: Generator and Discriminator scores in [0, 1]; with a 2-D run's quality table,
    the Jensen-Shannon divergence to the real density beside them (bits, also in [0, 1])."""
    fig = go.Figure([_line(history, "score_g", "Generator", GENERATOR),
                     _line(history, "score_d", "Discriminator", DISCRIMINATOR)])  # fmt: skip
    if quality is not None and "js" in quality and np.isfinite(quality["js"]).any():
        measured = np.isfinite(quality["js"])
        x, y = downsample(quality["iteration"][measured], quality["js"][measured], MAX_POINTS)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers",
                                 name="JS divergence (bits)", line=dict(color="#2E8B57", width=1.5, dash="dash"),
                                 marker=dict(size=3)))  # fmt: skip
    _mark_changes(fig, events)
    return _layout(fig, "Score", [0, 1])


def lines_figure(
    history: dict, columns: dict[str, str], y_title: str, events=(), log: bool = False
) -> go.Figure:
    colours = [GENERATOR, DISCRIMINATOR, "#EDB120", "#7E2F8E"]
    fig = go.Figure([_line(history, c, name, colours[i % 4]) for i, (c, name) in enumerate(columns.items())])
    _mark_changes(fig, events)
    _layout(fig, y_title)
    if log:
        fig.update_yaxes(type="log")
    return fig


ARROWS, MESH = "G's gradients", "G's manifold"  # the 2-D picture's optional layers
ARROW_SHARE = 0.06  # the longest arrows (95th percentile) drawn this share of the square's width


def _segments(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x and y of line segments as one trace: start, end, gap (NaN) for each."""
    gaps = np.full(len(starts), np.nan)
    xy = [np.stack([starts[:, i], ends[:, i], gaps], 1).ravel() for i in range(2)]
    return xy[0], xy[1]


def arrow_traces(points: dict) -> list[go.Scatter]:
    """An arrow on each generated point, the way G's update moves it, scaled for reading (ARROW_SHARE)."""
    starts, arrows = points["arrows_from"], points["arrows"]
    lengths = np.hypot(arrows[:, 0], arrows[:, 1])
    scale = ARROW_SHARE * 2 * points["bounds"] / max(float(np.percentile(lengths, 95)), 1e-12)
    ends = starts + scale * arrows
    x, y = _segments(starts, ends)
    angles = np.degrees(np.arctan2(arrows[:, 0], arrows[:, 1]))  # Plotly: clockwise from up
    return [go.Scatter(x=x, y=y, mode="lines", name=ARROWS, line=dict(color="#e08214", width=1),
                       hoverinfo="skip", legendgroup="arrows"),
            go.Scatter(x=ends[:, 0], y=ends[:, 1], mode="markers", showlegend=False, legendgroup="arrows",
                       marker=dict(symbol="triangle-up", size=6, angle=angles, color="#e08214"),
                       hoverinfo="skip")]  # fmt: skip


def mesh_trace(points: dict) -> go.Scatter:
    """G's image of a regular grid of latents, its rows and columns drawn as lines: the plane as G folds it."""
    mesh = points["manifold"]  # (s, s, 2)
    lines = [*mesh, *mesh.transpose(1, 0, 2)]
    gap = np.full((1, 2), np.nan)
    xy = np.concatenate([np.concatenate([line, gap]) for line in lines])
    return go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="lines", name=MESH, hoverinfo="skip",
                      line=dict(color="rgba(60, 60, 60, 0.55)", width=1))  # fmt: skip


def points_figure(points: dict, layers=()) -> go.Figure:
    """GAN Lab's view: D's output as a heat-map, real (green) and generated (purple) points on top; `layers`
    (ARROWS, MESH) adds G's gradient arrows and its manifold where the snapshot has them."""
    b, field = points["bounds"], points["field"]
    axis = np.linspace(-b, b, field.shape[0])
    fig = go.Figure([
        go.Heatmap(x=axis, y=axis, z=field, zmin=0, zmax=1, colorscale=[[0, "#decbe4"], [1, "#ccebc5"]],
                   colorbar=dict(title="D(x)", len=0.8), hoverinfo="skip"),
        go.Scatter(x=points["real"][:, 0], y=points["real"][:, 1], mode="markers", name="real",
                     marker=dict(size=4, color="#1b7837")),
        go.Scatter(x=points["fake"][:, 0], y=points["fake"][:, 1], mode="markers", name="generated",
                     marker=dict(size=4, color="#762a83")),
    ])  # fmt: skip
    if MESH in layers and "manifold" in points:
        fig.add_trace(mesh_trace(points))
    if ARROWS in layers and "arrows" in points:
        fig.add_traces(arrow_traces(points))
    fig.update_layout(height=HEIGHT, margin=dict(l=30, r=10, t=30, b=30), uirevision="keep",
                      legend=dict(orientation="h", y=1.02, x=0), template="plotly_white")  # fmt: skip
    fig.update_xaxes(range=[-b, b], constrain="domain")
    fig.update_yaxes(range=[-b, b], scaleanchor="x")
    return fig
