"""Run folders on disk: config.json, metrics.csv, events.jsonl, samples/, checkpoints/ — written atomically."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import ConfigError, Knobs, RunConfig, from_dict, to_json


def runs_root(path: str | Path | None = None) -> Path:
    """The runs folder: the argument, else $GAN_RUNS_DIR, else ./runs."""
    return Path(path or os.environ.get("GAN_RUNS_DIR") or "runs")


def new_run_dir(root: Path, name: str) -> Path:
    """A fresh folder under root named after `name` (suffixed -2, -3 ... when taken)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "run"
    root.mkdir(parents=True, exist_ok=True)
    for i in range(1, 10_000):
        path = root / (name if i == 1 else f"{name}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise ConfigError(f"too many runs named {name!r} in {root}")


# ---- atomic files


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write a file via a temporary sibling and a rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict:
    """A checkpoint's tensors and plain values only: never unpickles code."""
    return torch.load(path, map_location=device, weights_only=True)


# ---- config, metrics, events


def write_config(run_dir: Path, config: RunConfig, knobs: Knobs) -> None:
    atomic_write(run_dir / "config.json", to_json(config, knobs))


def read_config(run_dir: Path) -> tuple[RunConfig, Knobs]:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a run folder: it has no config.json")
    return from_dict(json.loads(path.read_text()))


def write_metrics(path: Path, columns, rows: np.ndarray, append: bool = True) -> None:
    """Append rows to metrics.csv; with append=False (or a new file) rewrite it whole, atomically."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    if append and path.exists():
        writer.writerows([_cell(v) for v in row] for row in rows)
        with open(path, "a") as fh:
            fh.write(text.getvalue())
        return
    writer.writerow(columns)
    writer.writerows([_cell(v) for v in row] for row in rows)
    atomic_write(path, text.getvalue())


def _cell(value: float) -> str:
    if value != value:
        return ""
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else f"{value:.6g}"


def read_metrics(path: Path) -> tuple[tuple[str, ...], np.ndarray]:
    """metrics.csv as (columns, float32 array); empty cells are NaN."""
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        columns = tuple(next(reader, ()))
        rows = [[float(v) if v else np.nan for v in row] for row in reader if len(row) == len(columns)]
    return columns, np.array(rows, np.float32).reshape(len(rows), len(columns))


def append_event(run_dir: Path, event: dict) -> None:
    with open(run_dir / "events.jsonl", "a") as fh:
        fh.write(json.dumps(event) + "\n")


def read_events(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---- listing


@dataclass(frozen=True)
class RunInfo:
    path: Path
    name: str
    preset: str | None
    arch: str
    dataset: str
    status: str
    iteration: int
    target: int
    score_g: float
    score_d: float
    elapsed_s: float
    created: float


def run_info(run_dir: Path) -> RunInfo:
    config, _ = read_config(run_dir)
    events = read_events(run_dir)
    status = next((e["status"] for e in reversed(events) if e.get("event") == "status"), "unknown")
    last = _last_metrics(run_dir / "metrics.csv")
    return RunInfo(
        path=run_dir, name=run_dir.name, preset=config.preset, arch=config.arch, dataset=config.dataset,
        status=status, iteration=int(last.get("iteration", 0)), target=config.iterations,
        score_g=last.get("score_g", float("nan")), score_d=last.get("score_d", float("nan")),
        elapsed_s=last.get("elapsed_s", 0.0),
        created=events[0].get("time", 0.0) if events else (run_dir / "config.json").stat().st_mtime,
    )  # fmt: skip


def _last_metrics(path: Path) -> dict[str, float]:
    if not path.exists():
        return {}
    with open(path, "rb") as fh:
        header = fh.readline().decode().strip().split(",")
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - 4096))
        lines = fh.read().decode().strip().splitlines()
    last = lines[-1].split(",") if lines else []
    if len(last) != len(header) or last == header:
        return {}
    return {k: float(v) if v else float("nan") for k, v in zip(header, last, strict=True)}


def list_runs(root: str | Path | None = None) -> list[RunInfo]:
    """Every run folder under the runs root, newest first (unreadable folders are skipped)."""
    root = runs_root(root)
    infos = []
    for path in root.glob("*/config.json") if root.is_dir() else []:
        try:
            infos.append(run_info(path.parent))
        except (OSError, ValueError, KeyError):
            continue
    return sorted(infos, key=lambda info: info.created, reverse=True)


def delete_run(run_dir: Path) -> None:
    if not (Path(run_dir) / "config.json").is_file():
        raise ConfigError(f"{run_dir} is not a run folder")
    shutil.rmtree(run_dir)


def timestamp_name(*parts: str | None) -> str:
    return "-".join([time.strftime("%Y%m%d-%H%M%S")] + [p for p in parts if p])
