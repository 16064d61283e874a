"""The live monitor in MATLAB's layout — image tile left, scores right — with live tuning and hints."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from gan_core import ConfigError, DataError, Snapshot, Status
from gan_core.engine.data import TOYS
from gan_core.engine.export import png_bytes
from gan_core.engine.losses import LOSSES
from gan_core.folder.run_folder import RunFolder
from gan_core.folder.snapshot import RunHandle
from gan_core.quality.hints import failure_hints, quality_hints
from gan_core.training.run import format_elapsed

from . import charts, toy
from .audience import is_presenter, require_presenter
from .registry import registry

REFRESH_SECONDS = 2.0  # the title, the progress line and the grid (each redraw costs a laptop's run)
STEERING_SECONDS = 6.0  # the score chart, hints and the chart on demand
PRESENTATION = "presentation"  # the toggle's key: the monitor for the front of a room
LIVE = "Live tuning: a change applies at the next iteration and is marked on the curves."
GRID_PIXELS = 420
SCRUBBED_GRID_PIXELS = 320  # shown this wide once the scrub slider stands under it

_figures: dict = {}  # (run folder, chart) -> (data key, built at, figure); (run folder, 'grid') -> PNG
_figures_lock = threading.Lock()


def monitor_title(snap: Snapshot) -> str:
    return f"Epoch: {snap.epoch}, Iteration: {snap.iteration}, Elapsed: {format_elapsed(snap.elapsed_s)}"


QUALITY_CHARTS = {  # chart -> (title, {column: legend}, y axis)
    "quality": ("Sample quality", {"recognisable": "recognisable", "class_entropy": "class entropy (1 = even)",
                                   "diversity": "diversity / real"}, "Fraction"),
    "fd": ("Classifier FD", {"fd": "Fréchet distance to real (classifier features)"}, "FD"),
    "prdc": ("Precision / recall",
             {"precision": "precision (samples near real)", "density": "density (1 = as real)",
              "recall": "recall (real near samples)", "coverage": "coverage (real covered)"},
             "Fraction (k = 5 neighbours)"),
    "kid": ("Classifier KID", {"kid": "kernel distance to real (classifier features)"}, "KID"),
    "modes": ("Modes captured", {"modes": "modes captured"}, "Modes"),
    "high_quality": ("High-quality fraction", {"high_quality": "within 3 std of a mode"}, "Fraction"),
    "divergence": ("KL / JS divergence", {"kl": "KL(real ‖ generated)", "js": "Jensen-Shannon"}, "Bits"),
}  # fmt: skip


def chart_names(snap: Snapshot) -> dict[str, str]:
    names = {"losses": "Losses", "rates": "Learning rates", "speed": "Images/s"}
    if LOSSES[snap.config.loss].critic:
        names["wasserstein"] = "Wasserstein estimate"
    measured = snap.quality["iteration"]
    for name, (title, columns, _) in QUALITY_CHARTS.items():
        if len(measured) and np.isfinite(snap.quality[next(iter(columns))]).any():
            names[name] = title
    return names


def _build(snap: Snapshot, name: str):
    h, ev = snap.history, snap.events
    if name == "scores":
        return charts.scores_figure(h, ev, snap.quality if snap.points is not None else None)
    if name == "losses":
        return charts.lines_figure(
            h, {"loss_g": "Generator loss", "loss_d": "Discriminator loss"}, "Loss", ev
        )
    if name == "rates":
        return charts.lines_figure(h, {"lr_g": "lr G", "lr_d": "lr D"}, "Learning rate", ev, log=True)
    if name in QUALITY_CHARTS:
        _, columns, y_title = QUALITY_CHARTS[name]
        chart = charts.lines_figure(snap.quality, columns, y_title, ev)
        return charts.mark_recognisable(chart, snap.recognisable)
    if name == "wasserstein":
        return charts.lines_figure(h, {"wasserstein": "Wasserstein estimate"}, "Estimate", ev)
    return charts.lines_figure(h, {"images_per_s": "images/s"}, "Images per second")


def figure(snap: Snapshot, name: str):
    """The named chart, shared by every tab: rebuilt when its data changed, at most every REFRESH_SECONDS while it
    trains (a new quality measurement, a knob change or a new status shows at once)."""
    key = (str(snap.run_dir), name)
    data_key = (len(snap.history["iteration"]), len(snap.quality["iteration"]), len(snap.events), snap.status,
                snap.recognisable)  # fmt: skip
    with _figures_lock:
        cached = _figures.get(key)
        recent = cached is not None and time.monotonic() - cached[1] < REFRESH_SECONDS
        if cached is None or (cached[0] != data_key and not (recent and cached[0][1:] == data_key[1:])):
            cached = _figures[key] = (data_key, time.monotonic(), _build(snap, name))
        return cached[2]


def grid_png(snap: Snapshot) -> bytes:
    """The enlarged grid as PNG, encoded once per new grid however many tabs show it."""
    key = (str(snap.run_dir), "grid")
    with _figures_lock:
        cached = _figures.get(key)
        if cached is None or cached[0] != snap.grid_iteration:
            cached = _figures[key] = (snap.grid_iteration, png_bytes(enlarged(snap.grid)))
        return cached[1]


def enlarged(grid: np.ndarray) -> np.ndarray:
    """Scale a small tile up by a whole factor, nearest neighbour, so pixels stay sharp."""
    factor = max(1, round(GRID_PIXELS / max(grid.shape[:2])))
    if factor == 1:
        return grid
    return np.asarray(
        Image.fromarray(grid).resize((grid.shape[1] * factor, grid.shape[0] * factor), Image.NEAREST)
    )


def draw_monitor() -> None:
    """MATLAB's layout, sized so that title, grid, curves, buttons and knobs fit a 1366x768 screen; presenting,
    the grid takes the larger part and the controls wait one click away. Each redraw of a chart or a widget
    costs the browser, on a laptop the cores the run trains on (bench/watch.py), so each part redraws only as
    often as it changes: the title, the progress line and the grid every REFRESH_SECONDS (draw_live), the
    curves, hints and the chart on demand every STEERING_SECONDS (draw_curves); the buttons and knobs when
    clicked (draw_steering) or with the page, which draw_live reruns when the run's status or knobs change."""
    run = registry().active_run()
    if run is None:
        await_run()
        return
    snap = run.snapshot()
    st.session_state[STEERED] = steering_key(snap)
    presenting = st.session_state.get(PRESENTATION, False)
    steer = is_presenter()  # the audience view: the grid, curves and hints, no controls
    head = st.container()
    left, right = st.columns([1.4, 1] if presenting else [1, 1.3])
    below = st.container()
    with head:
        draw_live(left)
    with right:
        curves = st.container()
        if presenting and snap.recognisable is not None:  # the progress line names it; presenting, here
            st.caption(mark_caption(snap))
        if steer:
            draw_steering(below)
        notes = st.container() if presenting else below
    with curves:
        draw_curves(notes)


@st.fragment
def draw_steering(below) -> None:
    """The buttons and (into `below`) the knobs; presenting, both in a popover. A click reruns this alone, not
    the page (a page rerun would carry the scrub slider's position as the browser last reported it, a moved
    slider to Streamlit); draw_live redraws the page once the click changed the run's status or knobs."""
    run = registry().active_run()
    if run is None:
        return
    snap = run.snapshot()
    if st.session_state.get(PRESENTATION, False):
        with st.popover("Controls: knobs, pause, step, stop", width="stretch"):
            draw_buttons(run, snap)
            draw_controls(run, snap)
        return
    draw_buttons(run, snap)
    with below:
        draw_controls(run, snap)


STEERED = "steered"  # the steering key the buttons and knobs were last drawn for


def steering_key(snap: Snapshot) -> tuple:
    """What the buttons (a 2-D run's once its picture comes), knobs and the presenting mark caption show: a
    change redraws the page."""
    return snap.status, snap.active, snap.knobs, snap.recognisable is not None, snap.points is not None


@st.fragment(run_every=REFRESH_SECONDS)
def await_run() -> None:
    if registry().active_run() is not None:  # started here or in another tab: lay the monitor out
        st.rerun()
    st.info("No run yet — choose a preset and press **Start**.")


@st.fragment(run_every=REFRESH_SECONDS)
def draw_live(left) -> None:
    """The title, status and progress lines, and (into `left`) the grid with its scrub slider. The whole page
    redraws when the buttons and knobs are out of date, or the scrub slider moved (the curves mark its grid)."""
    run = registry().active_run()
    snap = run.snapshot() if run is not None else None
    scrubbed = st.session_state.pop(SCRUB_MOVED, False)
    if snap is None or scrubbed or steering_key(snap) != st.session_state.get(STEERED):
        st.rerun()
    presenting = st.session_state.get(PRESENTATION, False)
    (st.title if presenting else st.subheader)(monitor_title(snap))
    draw_status(snap)
    if not presenting:
        st.progress(min(1.0, snap.iteration / snap.target), text=progress_text(snap))
    with left:
        draw_samples(snap, large=presenting)


@st.fragment(run_every=STEERING_SECONDS)
def draw_curves(notes) -> None:
    """The score chart; into `notes` the hints and, under the knobs, the chart chosen on demand."""
    run = registry().active_run()
    if run is None:
        return
    snap = run.snapshot()
    scores = figure(snap, "scores")
    shown = scrubbed_to(snap)
    if shown is not None:  # scrubbed back: the curves mark the grid's iteration (on this tab's own copy)
        scores = go.Figure(scores).add_vline(x=shown, line=dict(color="#444", width=2))
    st.plotly_chart(scores, key="scores", config={"displaylogo": False})
    with notes:
        draw_hints(snap)
        if not st.session_state.get(PRESENTATION, False):
            draw_more_charts(snap)


def progress_text(snap: Snapshot) -> str:
    """The line under the monitor: how far, how fast, the batch, where it trains, a branch's parent and branch
    point, and the iteration from which its samples are recognisable (for a speaker to point at)."""
    config = snap.config
    batch = f"batch {config.batch_size} x {config.nproc} processes = {config.batch_size * config.nproc}" if (
        config.nproc > 1) else f"batch {config.batch_size}"  # fmt: skip
    origin = (f" · branch of {Path(config.parent).name} at {config.branched_at:,}"
              if config.parent is not None else "")  # fmt: skip
    mark = f" · {charts.mark_label(snap.recognisable, since=True)}" if snap.recognisable is not None else ""
    return (f"{snap.iteration:,} / {snap.target:,} iterations · {snap.images_per_s:,.0f} images/s · {batch} "
            f"· {snap.device}{origin}{mark}")  # fmt: skip


def mark_caption(snap: Snapshot) -> str:
    """Presentation view's line under the curves: 'Recognisable from iteration 1,234 (41 s)'."""
    label = charts.mark_label(snap.recognisable, since=True)
    return label[0].upper() + label[1:]


def draw_status(snap: Snapshot) -> None:
    if snap.status in (Status.FAILED, Status.DIVERGED):
        st.error(f"The run {snap.status}: {snap.reason}")
    elif snap.status in (Status.FINISHED, Status.STOPPED):
        st.success(f"The run {snap.status}: {snap.reason}. Its samples and exports are on the Samples page.")
    elif snap.status is Status.PAUSED:
        st.info(f"Paused ({snap.reason}). Step through iterations or resume.")
    elif snap.iteration == 0:
        st.caption(f"Starting on {snap.device} …")


def draw_samples(snap: Snapshot, large: bool = False) -> None:
    """The grid (or 2-D picture); with a slider through the saved grids."""
    if snap.points is not None:
        layers = toy.layers_ui()
        st.plotly_chart(
            charts.points_figure(snap.points, layers), key="points", config={"displaylogo": False}
        )
        st.caption(toy.caption(snap.points, layers))
        return
    if snap.grid is None:
        st.caption("Generated Images appear after the first iteration.")
        return
    picture = st.container()  # above the slider, drawn once the slider has said which grid
    shown = scrub_ui(snap)
    # with the slider under it, the grid gives up the slider's height: the monitor still fits 1366x768
    width = (
        "stretch"
        if large
        else SCRUBBED_GRID_PIXELS
        if f"scrub-{snap.run_dir.name}" in st.session_state
        else "content"
    )
    with picture:
        if shown is None:
            st.image(
                grid_png(snap), caption=f"Generated Images (iteration {snap.grid_iteration})", width=width
            )
        else:
            path = RunFolder(snap.run_dir).grid_path(shown)
            st.image(saved_grid_png(str(path), path.stat().st_mtime_ns), width=width,
                     caption=f"Generated Images (iteration {shown}; the run is at {snap.iteration})")  # fmt: skip


SCRUB_MOVED = "scrub-moved"  # set by the slider: the whole monitor redraws, the curves' mark with it
SCRUB_STOPS = 200  # a slider's stops: finer than its pixels, and what every rerun sends stays small


def saved_grids(run_dir: Path) -> list[int]:
    """Iterations of the grids a run saved, at most SCRUB_STOPS of them evenly spread, the first and the newest
    among them; the folder is listed again only when it changed."""
    samples = RunFolder(run_dir).grid_path(1).parent
    try:
        stamp = samples.stat().st_mtime_ns
    except OSError:
        return []
    return _spread_grids(str(run_dir), stamp)


@st.cache_data(max_entries=16, show_spinner=False)
def _spread_grids(run_dir: str, stamp: int) -> list[int]:
    saved = [it for it, _ in RunFolder(Path(run_dir)).grids()]
    if len(saved) <= SCRUB_STOPS:
        return saved
    picks = np.linspace(0, len(saved) - 1, SCRUB_STOPS).round().astype(int)
    return [saved[i] for i in sorted(set(picks.tolist()))]


def scrub_ui(snap: Snapshot) -> int | None:
    """A slider through the grids the run has saved (every one, or SCRUB_STOPS spread over a long run); at its
    right end it follows the run. Returns the iteration chosen, or None while following."""
    saved = saved_grids(snap.run_dir)
    if len(saved) < 2:
        return None
    key = f"scrub-{snap.run_dir.name}"
    if st.session_state.get(key + "-follow", True) or st.session_state.get(key) not in saved:
        st.session_state[key] = saved[-1]
    st.session_state[key + "-latest"] = saved[-1]
    shown = st.select_slider("Saved grids", saved, key=key, on_change=_scrubbed, args=(key,),
                             format_func=lambda it: f"{it:,}", label_visibility="collapsed")  # fmt: skip
    return None if shown == saved[-1] else shown


def _scrubbed(key: str) -> None:
    st.session_state[key + "-follow"] = st.session_state[key] == st.session_state.get(key + "-latest")
    st.session_state[SCRUB_MOVED] = True


def scrubbed_to(snap: Snapshot) -> int | None:
    """The saved grid's iteration the slider was moved back to; None while the grid follows the run."""
    key = f"scrub-{snap.run_dir.name}"
    return None if st.session_state.get(key + "-follow", True) else st.session_state.get(key)


@st.cache_data(max_entries=64, show_spinner=False)
def saved_grid_png(path: str, mtime_ns: int) -> bytes:
    with Image.open(path) as image:
        return png_bytes(enlarged(np.asarray(image.convert("RGB"))))


def draw_hints(snap: Snapshot) -> None:
    toy = TOYS.get(snap.config.dataset)
    hints = failure_hints(snap.history, snap.status, snap.reason)
    hints += quality_hints(snap.quality, snap.num_classes, len(toy[0]) if toy else None)
    for hint in hints:
        show = st.error if hint.level == "error" else st.warning if hint.level == "warning" else st.info
        show(f"**{hint.title}.** {hint.text}")


# ---- live tuning


def _apply(run: RunHandle, name: str, key: str) -> None:
    try:
        require_presenter("Changing a knob")
        run.update(**{name: st.session_state[key]})
        st.session_state.pop("live-error", None)
    except ConfigError as exc:
        st.session_state["live-error"] = str(exc)


def draw_controls(run: RunHandle, snap: Snapshot) -> None:
    active = snap.active
    c1, c2, c3, c4 = st.columns([1, 1, 1.4, 1])
    k = f"live-{snap.run_dir.name}-"
    knobs = snap.knobs
    for col, name, label in ((c1, "lr_g", "lr G"), (c2, "lr_d", "lr D")):
        col.number_input(label, value=float(getattr(knobs, name)), step=1e-5, format="%.2e", key=k + name, help=LIVE,
                         disabled=not active, on_change=_apply, args=(run, name, k + name))  # fmt: skip
    c3.slider("Flip probability", 0.0, 1.0, float(knobs.flip_prob), 0.05, key=k + "flip_prob", disabled=not active,
              on_change=_apply, args=(run, "flip_prob", k + "flip_prob"))  # fmt: skip
    c4.number_input("D iterations", value=int(knobs.d_iters), step=1, key=k + "d_iters", disabled=not active,
                    on_change=_apply, args=(run, "d_iters", k + "d_iters"))  # fmt: skip
    if "live-error" in st.session_state:
        st.error(st.session_state["live-error"])


def draw_buttons(run: RunHandle, snap: Snapshot) -> None:
    if not is_presenter():  # (never drawn for the audience: no click can come from it)
        return
    b1, b2, b3, b4 = st.columns(4)
    paused = snap.status is Status.PAUSED
    try:  # a run in another process may end between the page's drawing and a click
        if b1.button(
            "Resume" if paused else "Pause", key="live-pause", disabled=not snap.active, width="stretch"
        ):
            run.unpause() if paused else run.pause()
        if b2.button(
            "Step",
            key="live-step",
            disabled=not paused,
            help="Train one iteration while paused",
            width="stretch",
        ):
            run.step(1)
        if b3.button("Stop", key="live-stop", disabled=not snap.active, type="primary", width="stretch"):
            run.stop(wait=False)
            st.toast("Stopping: the checkpoint and metrics are being saved.")
    except ConfigError as exc:
        st.error(str(exc).splitlines()[0])
    if snap.points is not None:  # 2-D: D only, G only, next to Step
        toy.draw_player_buttons(run, snap)
    if b4.button("Continue run", key="live-continue", disabled=snap.active or snap.status is Status.FINISHED,
                 help="Continue a stopped run from its last checkpoint", width="stretch"):  # fmt: skip
        try:
            registry().resume(snap.run_dir)
        except (ConfigError, DataError) as exc:  # another tab or process trains it, or a damaged checkpoint
            st.error(f"Cannot continue {snap.run_dir.name}: {str(exc).splitlines()[0]}")


def draw_more_charts(snap: Snapshot) -> None:
    """One more chart at a time, on demand: every chart drawn costs the training thread a little."""
    names = chart_names(snap)
    choice = st.segmented_control("More charts", list(names), format_func=names.get, key="more-charts")
    if choice in names:
        st.plotly_chart(figure(snap, choice), key=f"chart-{choice}", config={"displaylogo": False})
    if snap.quality_note:
        st.caption(f"Sample quality: {snap.quality_note}.")
    elif not len(snap.quality["iteration"]) and snap.active:
        st.caption("Sample quality: measured every so often (about 2% of training time); the first measurement "
                   "comes once the data set's classifier is ready (trained once, then cached).")  # fmt: skip
