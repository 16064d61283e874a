"""Draw your own 2-D data on the Train page: start from a shape (ring, grid, spiral, two moons, line), then add
points by clicking or by a box or lasso over the canvas, or erase them; or paste coordinates. The drawing is
checked beside the widget (engine.points), and saved as a .npy file that `points:FILE.npy` names."""

from __future__ import annotations

import hashlib

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from gan_core import DataError
from gan_core.engine import points as drawn_points
from gan_core.engine.points import SHAPE_POINTS, SHAPES, check_points, npy_bytes, shape_points
from gan_core.folder import storage
from gan_core.folder.storage import runs_root

DRAW = "draw your own 2-D points…"
CANVAS = 4.0  # the canvas spans [-CANVAS, CANVAS]^2, the toys' scale
LATTICE_STEP = 0.2  # spacing of the candidate points a click or a box adds
ADD_NOISE = 0.03  # added points are jittered this much, so a box is a cloud, not a lattice
ADD, ERASE = "add", "erase"


def lattice() -> np.ndarray:
    """The candidate points a click, box or lasso adds: a regular lattice over the canvas (n, 2)."""
    axis = np.arange(-CANVAS, CANVAS + 1e-9, LATTICE_STEP)
    return np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2).astype(np.float32)


def apply_selection(drawn: np.ndarray, selected: list[dict], mode: str) -> np.ndarray:
    """The drawing after a selection on the canvas: ADD puts a jittered copy of each selected lattice point
    (trace 1) in; ERASE takes each selected drawn point (trace 0) out."""
    if mode == ERASE:
        gone = {int(p["point_index"]) for p in selected if p.get("curve_number") == 0}
        return drawn[[i for i in range(len(drawn)) if i not in gone]]
    picked = [int(p["point_index"]) for p in selected if p.get("curve_number") == 1]
    if not picked:
        return drawn
    rng = np.random.default_rng(len(drawn))
    added = lattice()[picked] + ADD_NOISE * rng.standard_normal((len(picked), 2))
    return np.concatenate([drawn, added.astype(np.float32)])


def parse_points(text: str) -> np.ndarray:
    """Pasted coordinates, one 'x, y' (or 'x y') a line; DataError naming the first line that is not."""
    rows = []
    for number, line in enumerate(text.strip().splitlines(), 1):
        parts = line.replace(",", " ").split()
        try:
            if len(parts) != 2:
                raise ValueError
            rows.append([float(parts[0]), float(parts[1])])
        except ValueError:
            shown = line.strip()[:40]
            raise DataError(f"line {number} {shown!r} is not two numbers: write 'x, y' a line") from None
    return np.array(rows, dtype=np.float64).reshape(-1, 2)


def canvas_figure(drawn: np.ndarray) -> go.Figure:
    """The drawing (trace 0) over the faint lattice of points a click or a box adds (trace 1)."""
    grid = lattice()
    fig = go.Figure([
        go.Scatter(x=drawn[:, 0], y=drawn[:, 1], mode="markers", name="drawn", marker=dict(size=5, color="#1b7837")),
        go.Scatter(x=grid[:, 0], y=grid[:, 1], mode="markers", name="canvas", hoverinfo="none", showlegend=False,
                   marker=dict(size=7, color="rgba(120, 120, 120, 0.08)")),
    ])  # fmt: skip
    fig.update_layout(height=360, margin=dict(l=30, r=10, t=10, b=30), dragmode="lasso", template="plotly_white",
                      uirevision="canvas", showlegend=False, clickmode="event+select")  # fmt: skip
    fig.update_xaxes(range=[-CANVAS - 0.2, CANVAS + 0.2], constrain="domain")
    fig.update_yaxes(range=[-CANVAS - 0.2, CANVAS + 0.2], scaleanchor="x")
    return fig


def _key(k: str, name: str) -> str:
    return f"{k}draw-{name}"


def _start(k: str, shape: str, n: int, noise: float) -> None:
    """A new shape chosen: the drawing starts from it again."""
    st.session_state[_key(k, "points")] = shape_points(shape, n, noise)
    st.session_state[_key(k, "from")] = (shape, n, noise)


def _selected(k: str) -> None:
    """The canvas reported a selection: apply it once (the widget keeps reporting it on later reruns)."""
    event = st.session_state.get(_key(k, "canvas"))
    selected = list(event.selection.points) if event is not None else []
    if selected:
        mode = st.session_state.get(_key(k, "mode")) or ADD
        st.session_state[_key(k, "points")] = apply_selection(
            st.session_state[_key(k, "points")], selected, mode
        )


def drawing_ui(k: str, errors: dict) -> str:
    """The drawing widgets; returns 'points:FILE.npy' of the checked drawing (saved), or with errors['choices']
    set to why not (Start stays disabled)."""
    c1, c2, c3 = st.columns(3)
    shape = c1.selectbox("Start from", list(SHAPES), key=_key(k, "shape"))
    n = int(c2.number_input("Points", value=SHAPE_POINTS, step=50, key=_key(k, "n")))
    noise = float(c3.number_input("Noise (std)", value=0.05, step=0.01, format="%.2f", key=_key(k, "noise")))
    low, high = drawn_points.MIN_POINTS, drawn_points.MAX_POINTS
    if not low <= n <= high:  # refused before a shape of that many points is made
        errors["choices"] = f"points {n} is out of range: allowed [{low}, {high}]"
        return "points:"
    try:
        if st.session_state.get(_key(k, "from")) != (shape, n, noise):
            _start(k, shape, n, noise)
    except (DataError, ValueError) as exc:  # a count below 0 ...
        errors["choices"] = f"the shape cannot be drawn: {exc}"
        return "points:"
    st.segmented_control(
        "Click, box or lasso on the canvas to", [ADD, ERASE], default=ADD, key=_key(k, "mode")
    )
    st.plotly_chart(canvas_figure(st.session_state[_key(k, "points")]), key=_key(k, "canvas"),
                    on_select=lambda: _selected(k), selection_mode=("points", "box", "lasso"),
                    config={"displaylogo": False})  # fmt: skip
    pasted = st.text_area("Or paste points, one 'x, y' a line (replaces the drawing)", key=_key(k, "paste"),
                          height=80)  # fmt: skip
    return _checked(k, pasted, errors)


def _checked(k: str, pasted: str, errors: dict) -> str:
    """Check the drawing (or the pasted points) beside the widgets and save it; 'points:FILE.npy' or 'points:'."""
    try:
        drawn = parse_points(pasted) if pasted.strip() else st.session_state[_key(k, "points")]
        points = check_points(drawn)
    except DataError as exc:
        errors["choices"] = str(exc)  # shown under the canvas; Start stays disabled
        return "points:"
    bound = drawn_points.MAX_COORD
    st.caption(f"{len(points)} points, within ±{np.abs(points).max():.2f} (allowed ±{bound:g}); train them with "
               "the ring or grid preset (arch mlp).")  # fmt: skip
    return f"points:{save_drawing(points)}"


def save_drawing(points: np.ndarray) -> str:
    """The drawing as RUNS/drawings/<content hash>.npy, written atomically once; its path."""
    data = npy_bytes(points)
    path = runs_root() / "drawings" / f"{hashlib.sha256(data).hexdigest()[:16]}.npy"
    if not path.is_file():
        storage.atomic_write(path, data)
    return str(path)
