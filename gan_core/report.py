"""A run in one self-contained HTML file: settings, knob log, curves (Plotly, its JavaScript inlined), the grid
time-lapse with a slider, the final grid, the hints that fired and when, and a branch's parent up to the branch point.
Opens offline in any browser; `python -m gan_core report RUN --out run.html`."""

from __future__ import annotations

import base64
from dataclasses import asdict
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from .config import ConfigError
from .engine.data import TOYS
from .folder import storage
from .folder.history import QUALITY_COLUMNS, downsample
from .folder.run_folder import RunFolder, Status
from .quality.hint_timeline import HintSpan, failure_timeline, quality_timeline
from .report_page import page

MAX_POINTS = 2000  # a curve's points in the file, however long the run
MAX_FRAMES = 200  # grids in the time-lapse, spread over the run
GENERATOR, DISCRIMINATOR, PARENT = "#0072BD", "#D95319", "#999999"
CURVES = {  # figure -> (title, {column: legend}, y axis)
    "scores": ("Scores", {"score_g": "Generator", "score_d": "Discriminator"}, "Score"),
    "losses": ("Losses", {"loss_g": "Generator", "loss_d": "Discriminator"}, "Loss"),
    "quality": ("Sample quality", {c: c.replace("_", " ") for c in ("recognisable", "class_entropy", "diversity",
                "precision", "recall", "density", "coverage", "high_quality")}, "Fraction"),
    "distance": ("Distance to real (classifier features)", {"fd": "FD", "kid": "KID"}, "Distance"),
    "modes": ("Modes captured", {"modes": "modes"}, "Modes"),
}  # fmt: skip


# ---- what the report reads


def columns_of(folder: RunFolder) -> dict[str, np.ndarray]:
    """metrics.csv as {column: values}; empty when the run has recorded nothing yet."""
    names, table = folder.read_metrics()
    return {name: table[:, i] for i, name in enumerate(names)}


def quality_rows(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The sparse table of sample-quality measurements: the rows where any quality column has a value."""
    present = [c for c in QUALITY_COLUMNS if c in columns]
    if not present or "iteration" not in columns:
        return {"iteration": np.zeros(0, np.float32)}
    measured = np.isfinite(np.stack([columns[c] for c in present])).any(axis=0)
    return {c: columns[c][measured] for c in ("iteration", *present)}


def spread(items: list, most: int) -> list:
    """At most `most` of the items, evenly spread, the first and the last among them."""
    if len(items) <= most:
        return list(items)
    picks = np.linspace(0, len(items) - 1, most).round().astype(int)
    return [items[i] for i in sorted(set(picks.tolist()))]


def data_uri(path: Path) -> str:
    """A saved grid as it is on disk (PNG at its native size), base64 in a data: URI."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


# ---- figures


def curve(columns: dict, column: str, name: str, colour: str | None, start: float = -np.inf,
          end: float = np.inf, dash: str = "solid") -> go.Scatter | None:  # fmt: skip
    """One line of a column between two iterations, at most MAX_POINTS points; None where it has no value."""
    if column not in columns or "iteration" not in columns:
        return None
    x, y = columns["iteration"], columns[column]
    keep = (x >= start) & (x <= end) & np.isfinite(y)
    if not keep.any():
        return None
    x, y = downsample(x[keep], y[keep], MAX_POINTS)
    return go.Scatter(
        x=x, y=y, name=name, mode="lines", line=dict(color=colour, dash=dash, width=1.5, simplify=False)
    )


def figure(title: str, traces: list, y_title: str, knob_events: list[dict]) -> go.Figure:
    fig = go.Figure([trace for trace in traces if trace is not None])
    for event in knob_events[-30:]:
        fig.add_vline(x=event["iteration"], line=dict(color="#888", dash="dot", width=1))
    fig.update_layout(title=title, height=340, showlegend=True, margin=dict(l=50, r=20, t=50, b=45), template="plotly_white",
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, x=1, xanchor="right"))  # fmt: skip
    fig.update_xaxes(title="Iteration")
    fig.update_yaxes(title=y_title)
    return fig


def figures(folder: RunFolder, columns: dict, knob_events: list[dict]) -> list[go.Figure]:
    """The score and loss curves (a branch: from its branch point, its parent's before it, grey), and the quality
    curves that have values."""
    config = folder.read_config()[0]
    parent, at = parent_columns(folder, columns), config.branched_at
    found = []
    for name, (title, lines, y_title) in CURVES.items():
        colours = [GENERATOR, DISCRIMINATOR, "#EDB120", "#7E2F8E", "#77AC30", "#4DBEEE", "#A2142F", "#333333"]
        start = at if parent and name in ("scores", "losses") else -np.inf
        traces = [
            curve(columns, c, legend, colours[i % 8], start) for i, (c, legend) in enumerate(lines.items())
        ]
        if parent and name in ("scores", "losses"):
            traces += [curve(parent[1], c, f"{parent[0]} (parent) · {legend}", PARENT, end=at, dash="dot")
                       for c, legend in lines.items()]  # fmt: skip
        if any(traces):
            found.append(figure(title, traces, y_title, knob_events))
    return found


def parent_columns(folder: RunFolder, columns: dict) -> tuple[str, dict] | None:
    """A branch's parent as (name, columns): its own metrics when its folder is there, else the rows the branch
    copied from it (up to the branch point). None for a run that is no branch."""
    config = folder.read_config()[0]
    if config.parent is None or config.branched_at is None:
        return None
    parent = folder.parent(config)
    return (parent.name, columns_of(parent)) if parent is not None else (Path(config.parent).name, columns)


def figures_html(figs: list[go.Figure]) -> list[str]:
    """Each figure as a <div>; the first carries plotly.js itself (once), so the file needs no network."""
    return [fig.to_html(full_html=False, include_plotlyjs=i == 0, config={"displaylogo": False, "responsive": True})
            for i, fig in enumerate(figs)]  # fmt: skip


# ---- the report


def hint_spans(folder: RunFolder, columns: dict) -> list[HintSpan]:
    """The failure and sample-quality hints that fired along the run, and when."""
    config = folder.read_config()[0]
    status, reason = folder.logged_status()
    toy = TOYS.get(config.dataset)
    history = {c: v for c, v in columns.items() if c not in QUALITY_COLUMNS}
    failures = failure_timeline(history, status or Status.RUNNING, reason) if "loss_g" in history else []
    return failures + quality_timeline(quality_rows(columns), 10, len(toy[0]) if toy else None)


def build_report(run_dir: str | Path) -> str:
    """The run's report as one HTML page (ConfigError for a folder that is not a run)."""
    folder = RunFolder.open(run_dir)
    config, knobs = folder.read_config()
    events = folder.read_events()
    knob_events = [e for e in events if e.get("event") == "knobs" and isinstance(e.get("changes"), dict)]
    columns = columns_of(folder)
    grids = folder.grids()
    frames = [(it, data_uri(path)) for it, path in spread(grids, MAX_FRAMES)]
    status, reason = folder.logged_status(events)
    return page(
        name=folder.name, status=f"{status or 'unknown'}" + (f": {reason}" if reason else ""),
        settings={**asdict(config), **{f"knob {k}": v for k, v in asdict(knobs).items()}},
        events=[e for e in events if e.get("event") != "knobs"], knob_events=knob_events,
        charts=figures_html(figures(folder, columns, knob_events)), frames=frames,
        final=frames[-1] if frames else None, hints=hint_spans(folder, columns),
        rows=len(columns.get("iteration", ())), grids=len(grids),
    )  # fmt: skip


def write_report(run_dir: str | Path, out: str | Path) -> Path:
    """Write the run's report to `out` atomically (ConfigError: not a run folder, `out` a folder or in none)."""
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder: give a file name, such as {out / 'run.html'}")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: {out.parent} is not a folder to write it in")
    text = build_report(run_dir)
    try:
        storage.atomic_write(out, text)
    except OSError as exc:  # (a full disk is storage's DiskFull, which says how much room it needed)
        raise ConfigError(f"cannot write {out}: {exc.strerror or exc}") from None
    return out
