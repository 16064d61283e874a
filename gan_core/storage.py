"""Files written whole or not at all, and the plain formats a run's tables use (CSV, JSON lines)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def runs_root(path: str | Path | None = None) -> Path:
    """The runs folder: the argument, else $GAN_RUNS_DIR, else ./runs."""
    return Path(path or os.environ.get("GAN_RUNS_DIR") or "runs")


def timestamp_name(*parts: str | None) -> str:
    return "-".join([time.strftime("%Y%m%d-%H%M%S")] + [p for p in parts if p])


# ---- atomic files


def _atomic(path: Path, write) -> None:
    """Write through a temporary sibling and a rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: Path, data: bytes | str) -> None:
    _atomic(Path(path), lambda fh: fh.write(data.encode() if isinstance(data, str) else data))


def atomic_save(path: Path, state: dict) -> None:
    """torch.save, atomically."""
    import torch  # here, not at the top: reading a run folder (`status`, `control`) needs no torch

    _atomic(Path(path), lambda fh: torch.save(state, fh))


def atomic_copy(source: Path, path: Path) -> None:
    """`path` becomes a complete copy of `source` at once: a hard link (no bytes copied) where the file system
    has them, else a copy through a temporary sibling."""
    link = path.with_name(f".{path.name}.link")
    try:
        link.unlink(missing_ok=True)
        os.link(source, link)
        os.replace(link, path)
    except OSError:
        link.unlink(missing_ok=True)
        with open(source, "rb") as src:
            _atomic(Path(path), lambda fh: shutil.copyfileobj(src, fh))


def load_tensors(path: Path, device="cpu"):
    """A file of tensors and plain values only: never unpickles code."""
    import torch

    return torch.load(path, map_location=device, weights_only=True)


# ---- CSV tables of numbers


def write_table(path: Path, columns, rows: np.ndarray, append: bool = True) -> None:
    """Append rows to a CSV file; with append=False (or a new file) rewrite it whole, atomically."""
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


def read_table(path: Path) -> tuple[tuple[str, ...], np.ndarray]:
    """A CSV table as (columns, float32 array); empty cells are NaN. Rows that are not all numbers (a line
    cut short by a crash, an edit by hand) are left out: one bad line never makes the table unreadable."""
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        columns = tuple(next(reader, ()))
        rows = [
            values for row in reader if len(row) == len(columns) and (values := _numbers(row)) is not None
        ]
    return columns, np.array(rows, np.float32).reshape(len(rows), len(columns))


def _numbers(row: list[str]) -> list[float] | None:
    try:
        return [float(v) if v else np.nan for v in row]
    except ValueError:
        return None


def last_row(path: Path) -> dict[str, float]:
    """The last complete row of a CSV table, read from the file's end (cheap however long it is)."""
    if not path.exists():
        return {}
    with open(path, "rb") as fh:
        header = fh.readline().decode(errors="replace").strip().split(",")
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - 4096))
        lines = fh.read().decode(errors="replace").strip().splitlines()
    for line in reversed(lines):
        values = _numbers(line.split(","))
        if values is not None and len(values) == len(header):
            return dict(zip(header, values, strict=True))
    return {}


# ---- JSON lines


def append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    """Every record of a JSON-lines file; a line that does not parse (cut short by a crash) is left out."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records
