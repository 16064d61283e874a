"""Samples: generate from any run's generator (fixed or new latents), interpolate, export files."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st
from PIL import Image

from dashboard import pages_common as common
from dashboard.audience import is_presenter
from dashboard.monitor import enlarged
from dashboard.pages_common import Download, draw_download, draw_png
from dashboard.sidebar import page_setup
from gan_core.engine.export import png_bytes
from gan_core.engine.sampling import Sampler
from gan_core.folder.run_folder import RunFolder, RunInfo
from gan_core.training.run import Run

MAX_GRID, MAX_FILE = 400, 10_000
MAX_SEED = 2**31 - 1
ALL_CLASSES = "All classes, one row each"


@dataclass(frozen=True)
class GridRequest:
    fixed: bool
    count: int
    seed: int
    class_index: int | None


def sampleable(infos: list[RunInfo]) -> list[RunInfo]:
    """Runs with a checkpoint to sample from, or training here (they can write one on request)."""
    return [
        info for info in infos if common.checkpoint_path(info.path).is_file() or common.live_run(info.path)
    ]


# ---- widgets


def latest_weights_ui(run: Run) -> None:
    """For a run training here: write a checkpoint now, so the page samples the newest weights."""
    if st.button("Use the latest weights", help="Save a checkpoint of the training run now and sample it."):
        with st.spinner("Saving a checkpoint…"):
            if not run.checkpoint_now():
                st.warning("The run did not write a checkpoint in time; showing the last one saved.")


def class_ui(sampler: Sampler, label: str, key: str, with_all: bool = True) -> int | None:
    """A class for a conditional model (None: all classes); nothing to choose otherwise."""
    if not sampler.conditional:
        return None
    options = ([None] if with_all else []) + list(range(sampler.spec.num_classes))
    return st.selectbox(
        label, options, format_func=lambda c: ALL_CLASSES if c is None else f"Class {c}", key=key
    )


def count_label(sampler: Sampler, class_index: int | None) -> str:
    if sampler.points:
        return "Points"
    return "Images a class" if sampler.conditional and class_index is None else "Images"


def grid_request_ui(sampler: Sampler) -> GridRequest:
    left, middle, right, far = st.columns(4)
    source = left.radio("Latents", ["Fixed (as in training)", "New random"], key="source", horizontal=True)
    fixed = source.startswith("Fixed")
    seed = middle.number_input("Seed", 0, MAX_SEED, 0, step=1, key="seed", disabled=fixed)
    default = 512 if sampler.points else 10 if sampler.conditional else 64  # conditional: 10 a class
    with right:
        class_index = class_ui(sampler, "Class", key="grid_class")
    count = far.number_input(
        count_label(sampler, class_index),
        1,
        MAX_GRID * (10 if sampler.points else 1),
        default,
        key="count",
        disabled=fixed,
    )
    return GridRequest(fixed, int(count), int(seed), class_index)


def grid_ui(info: RunInfo, stamp: int, sampler: Sampler) -> GridRequest:
    """The picture asked for, shown, with its PNG (the very bytes shown) to download; returns the request."""
    request = grid_request_ui(sampler)
    png = common.grid_png(
        str(info.path), stamp, request.fixed, request.count, request.seed, request.class_index
    )
    what = "fixed latents" if request.fixed else f"seed {request.seed}"
    draw_png(png, f"{info.name} · iteration {sampler.iteration:,} · {what}")
    draw_download(
        Download("This picture (PNG)", f"{info.name}-samples.png", "image/png", png), key="grid_png"
    )
    return request


def draw_interpolation(info: RunInfo, stamp: int, sampler: Sampler) -> None:
    st.subheader("Interpolation")
    first, second, steps_column, class_column = st.columns(4)
    seed_a = first.number_input("From seed", 0, MAX_SEED, 1, step=1, key="seed_a")
    seed_b = second.number_input("To seed", 0, MAX_SEED, 2, step=1, key="seed_b")
    steps = steps_column.slider("Steps", 2, 20, 10, key="steps")
    with class_column:
        class_index = class_ui(sampler, "Class", key="interpolation_class", with_all=False) or 0
    png = common.interpolation_png(str(info.path), stamp, (int(seed_a), int(seed_b)), int(steps), class_index)
    draw_png(png, f"Spherical interpolation, seed {seed_a} → seed {seed_b}, {steps} steps")


def samples_file_ui(info: RunInfo, stamp: int, sampler: Sampler, request: GridRequest) -> None:
    """N single samples from the grid's seed and class, built on request with a progress bar."""
    kind = "points (NPY)" if sampler.points else "single images (ZIP)"
    count = st.number_input(
        f"How many {kind}, from the seed above", 1, MAX_FILE, 100, step=100, key="file_count"
    )
    seed, class_index = request.seed, request.class_index
    wanted = (str(info.path), stamp, int(count), seed, class_index)
    if st.button(f"Prepare {int(count):,} {kind}", key="prepare"):
        bar = st.progress(0.0, text="Generating")
        data = common.samples_file(
            sampler, int(count), seed, class_index, lambda f, text: bar.progress(f, text=text)
        )
        bar.empty()
        st.session_state["prepared"] = (wanted, data)
    prepared = st.session_state.get("prepared")
    if prepared is not None and prepared[0] == wanted:
        draw_prepared(info, sampler, request, int(count), prepared[1])


def draw_prepared(info: RunInfo, sampler: Sampler, request: GridRequest, count: int, data: bytes) -> None:
    kind, suffix = ("points (NPY)", "npy") if sampler.points else ("single images (ZIP)", "zip")
    name = f"{info.name}-{count}-seed{request.seed}.{suffix}"
    draw_download(
        Download(f"Download {count:,} {kind}", name, "application/octet-stream", lambda: data),
        key="samples_file",
    )


def draw_exports(info: RunInfo, stamp: int, sampler: Sampler, request: GridRequest) -> None:
    st.subheader("Export")
    samples_file_ui(info, stamp, sampler, request)
    st.caption("The run's own files:")
    for column, download in zip(st.columns(3), common.run_files(info), strict=True):
        with column:
            draw_download(download, key=f"file_{download.file_name}")
    draw_download(common.report_download(info), key="report")
    st.caption("The report: settings, knob log, curves, the grids' time-lapse and the hints, in one HTML file "
               "that opens offline.")  # fmt: skip


# ---- the page


def history_ui(info: RunInfo) -> None:
    """Every grid the run saved while it trained, one at a time on a slider: how it learned."""
    saved = dict(RunFolder(info.path).grids())
    if len(saved) < 2:
        return
    st.subheader("History")
    shown = st.select_slider("Saved grid at iteration", list(saved), value=max(saved), key=f"history-{info.name}",
                             format_func=lambda it: f"{it:,}")  # fmt: skip
    with Image.open(saved[shown]) as image:
        grid = np.asarray(image.convert("RGB"))
    draw_png(png_bytes(enlarged(grid)), f"Generated Images (iteration {shown:,} of {max(saved):,})")


def main() -> None:
    page_setup("Samples")
    st.title("Samples")
    infos = common.all_runs()
    if infos is None:
        return
    if not infos:
        st.info(common.NO_RUNS)
        return
    candidates = sampleable(infos)
    if not candidates:
        st.info(
            "No run has a checkpoint yet: one is written every checkpoint_every iterations and at the end."
        )
        return
    info = common.run_choice_ui(candidates, "Run", key="samples_run")
    run = common.live_run(info.path)
    if run is not None and is_presenter():  # (it asks the training run for a checkpoint)
        latest_weights_ui(run)
    if not common.checkpoint_path(info.path).is_file():
        st.info("This run has no checkpoint yet: press **Use the latest weights** to write one.")
        return
    try:
        stamp = common.checkpoint_stamp(info.path)
        sampler = common.sampler_for(info.path, stamp)
    except Exception as exc:  # any folder may be here (a half-copied, foreign or newer checkpoint): say why
        st.error(f"Cannot load the generator of {info.name}: {str(exc).splitlines()[0]}")
        return
    st.caption(
        f"Generator of iteration {sampler.iteration:,} · {sampler.config.arch} on {sampler.config.dataset}"
    )
    request = grid_ui(info, stamp, sampler)
    history_ui(info)
    draw_interpolation(info, stamp, sampler)
    draw_exports(info, stamp, sampler, request)


main()
