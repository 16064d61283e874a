"""Shared by the Samples and Runs pages: choosing a run, the cached generator, pictures and downloads."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
import torch
from PIL import Image

from gan_core.engine.export import gif_bytes, npy_bytes, png_bytes, to_uint8, zip_bytes
from gan_core.engine.sampling import Sampler, generate, interpolate, latents, load_sampler
from gan_core.folder.run_folder import RunFolder, RunInfo, list_runs
from gan_core.folder.storage import runs_root
from gan_core.report import build_report
from gan_core.training.run import Run

from .registry import registry

NO_RUNS = "No runs yet — start one on the Train page."
DISPLAY_WIDTH = 640  # small grids are shown up to this wide
CHUNK = 500  # images generated at a time for a ZIP, so its progress bar moves

# ---- runs


def all_runs() -> list[RunInfo] | None:
    """Every run list_runs can read, newest first; None, with an error box, when the listing itself fails."""
    try:
        return list_runs()
    except Exception as exc:  # a folder damaged in a way list_runs does not foresee: say so, keep the page
        st.error(
            f"The runs folder {runs_root()} cannot be listed: {type(exc).__name__}: {exc}".splitlines()[0]
        )
        return None


def live_run(run_dir: Path) -> Run | None:
    """The run training in this server for that folder, if any."""
    run = registry().runs.get(Path(run_dir))
    return run if run is not None and run.alive else None


def checkpoint_path(run_dir: Path) -> Path:
    return RunFolder(run_dir).checkpoint


def run_label(info: RunInfo) -> str:
    return f"{info.name} · {info.status} · {info.iteration:,}/{info.target:,}"


def run_choice_ui(infos: list[RunInfo], label: str, key: str) -> RunInfo:
    """A selectbox of runs (newest first), starting on the registry's active run."""
    by_name = {info.name: info for info in infos}
    active = registry().active
    names = list(by_name)
    index = names.index(active.name) if active is not None and active.name in by_name else 0
    name = st.selectbox(label, names, index=index, format_func=lambda n: run_label(by_name[n]), key=key)
    return by_name[name]


# ---- the generator and its pictures


@st.cache_resource(max_entries=4, show_spinner="Loading the generator…")
def _sampler(run_dir: str, mtime_ns: int) -> Sampler:
    return load_sampler(run_dir)  # mtime_ns is part of the key: a new checkpoint loads afresh


def checkpoint_stamp(run_dir: Path) -> int:
    """The checkpoint file's modification time, which keys everything generated from it."""
    return checkpoint_path(run_dir).stat().st_mtime_ns


def sampler_for(run_dir: Path, stamp: int) -> Sampler:
    """The run's generator from its latest checkpoint, loaded once per checkpoint file (on the CPU)."""
    return _sampler(str(run_dir), stamp)


def picture(sampler: Sampler, z: torch.Tensor, labels: torch.Tensor | None, nrow: int | None) -> np.ndarray:
    """uint8 (H, W, 3): a grid of generated images, or for 2-D runs a scatter of points over the real ones."""
    return sampler.picture(generate(sampler, z, labels), nrow)


def fixed_latents(sampler: Sampler, class_index: int | None):
    """The run's fixed latents (as its training grids); conditional: one row a class, or one class."""
    z, labels = sampler.fixed_z.cpu(), sampler.fixed_labels
    if labels is None:
        return z, None, None
    labels = labels.cpu()
    if class_index is None:
        return z, labels, 10
    keep = labels == class_index
    return z[keep], labels[keep], None


def new_latents(sampler: Sampler, count: int, seed: int, class_index: int | None):
    """count latents from a seed; conditional with all classes: count a class, one row each, the same
    latents in every row (so a column is one style drawn in every class)."""
    if not sampler.conditional or class_index is not None:
        z, labels = latents(sampler, count, seed, class_index)
        return z, labels, None
    rows = [latents(sampler, count, seed, c) for c in range(sampler.spec.num_classes)]
    return torch.cat([z for z, _ in rows]), torch.cat([labels for _, labels in rows]), count


@st.cache_data(max_entries=16, show_spinner="Generating…")
def grid_png(run_dir: str, stamp: int, fixed: bool, count: int, seed: int, class_index: int | None) -> bytes:
    """The PNG the Samples page shows and offers for download (one source for both)."""
    sampler = sampler_for(Path(run_dir), stamp)
    if fixed:
        z, labels, nrow = fixed_latents(sampler, class_index)
    else:
        z, labels, nrow = new_latents(sampler, count, seed, class_index)
    return png_bytes(picture(sampler, z, labels, nrow))


@st.cache_data(max_entries=16, show_spinner="Interpolating…")
def interpolation_png(
    run_dir: str, stamp: int, seeds: tuple[int, int], steps: int, class_index: int
) -> bytes:
    """One row from the latent of seeds[0] to that of seeds[1], along a great circle (slerp)."""
    sampler = sampler_for(Path(run_dir), stamp)
    (z0, labels), (z1, _) = latents(sampler, 1, seeds[0]), latents(sampler, 1, seeds[1])
    if sampler.conditional:
        labels = latents(sampler, steps, 0, class_index)[1]
    return png_bytes(picture(sampler, interpolate(z0[0], z1[0], steps), labels, steps))


def samples_file(
    sampler: Sampler, count: int, seed: int, class_index: int | None, progress: Callable[[float, str], None]
) -> bytes:
    """count generated samples from a seed: a ZIP of PNGs (images) or an NPY array (2-D points)."""
    z, labels = latents(sampler, count, seed, class_index)
    parts = []
    for start in range(0, count, CHUNK):
        end = min(count, start + CHUNK)
        part = generate(sampler, z[start:end], labels[start:end] if labels is not None else None)
        parts.append(part if sampler.points else to_uint8(part))  # uint8: a quarter of the memory
        progress(0.5 * end / count, f"Generating {end:,} of {count:,}")
    if sampler.points:
        return npy_bytes(torch.cat(parts))
    return zip_bytes(np.concatenate(parts), lambda done: progress(0.5 + 0.5 * done, "Packing the PNGs"))


def draw_png(png: bytes, caption: str) -> None:
    """Show PNG bytes as they are (never re-encoded as JPEG): small pictures scaled up a whole factor,
    wide ones fitted to the page (Streamlit shrinks those wider than 1,460 px for the browser)."""
    width = Image.open(io.BytesIO(png)).width
    shown = width * max(1, DISPLAY_WIDTH // width) if width < DISPLAY_WIDTH else "stretch"
    st.image(png, caption=caption, width=shown, output_format="PNG")


# ---- downloads


@dataclass(frozen=True)
class Download:
    """A file to offer: its bytes are built only when the button is clicked."""

    label: str
    file_name: str
    mime: str
    data: Callable[[], bytes] | bytes
    missing: str | None = None  # why the file cannot be had yet (the button is disabled)


def run_files(info: RunInfo) -> list[Download]:
    """The run's own files: the time-lapse of its saved grids, its checkpoint, its metrics."""
    folder, name = RunFolder(info.path), info.name
    metrics, checkpoint, grids = folder.metrics_path, folder.checkpoint, folder.grids()
    return [
        Download("Time-lapse (GIF)", f"{name}-timelapse.gif", "image/gif", lambda: gif_bytes(grids),
                 None if grids else "No sample grids saved yet."),
        Download("Checkpoint (.pt)", f"{name}-last.pt", "application/octet-stream", checkpoint.read_bytes,
                 None if checkpoint.is_file() else "No checkpoint yet."),
        Download("Metrics (CSV)", f"{name}-metrics.csv", "text/csv", metrics.read_bytes,
                 None if metrics.is_file() else "No metrics yet."),
    ]  # fmt: skip


def report_download(info: RunInfo) -> Download:
    """The run's report: one self-contained HTML file (gan_core.report), built when the button is clicked."""
    return Download("Report (HTML)", f"{info.name}-report.html", "text/html",
                    lambda: build_report(info.path).encode())  # fmt: skip


def report_ui(infos: list[RunInfo]) -> None:
    """Any run's report to download (the Runs page)."""
    st.subheader("Report")
    by_name = {info.name: info for info in infos}
    name = st.selectbox("Run to report", list(by_name), key="report_run")
    draw_download(report_download(by_name[name]), key="report")
    st.caption("Settings, knob log, score, loss and quality curves, the grids' time-lapse with a slider, the final "
               "grid and the hints that fired, in one HTML file that opens offline in any browser.")  # fmt: skip


def draw_download(download: Download, key: str) -> None:
    st.download_button(
        download.label, data=download.data, file_name=download.file_name, mime=download.mime,
        on_click="ignore", disabled=download.missing is not None, help=download.missing, key=key,
    )  # fmt: skip
