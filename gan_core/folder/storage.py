"""Files written whole or not at all, and the plain formats a run's tables use (CSV, JSON lines)."""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image


def runs_root(path: str | Path | None = None) -> Path:
    """The runs folder: the argument, else $GAN_RUNS_DIR, else ./runs."""
    return Path(path or os.environ.get("GAN_RUNS_DIR") or "runs")


def timestamp_name(*parts: str | None) -> str:
    return "-".join([time.strftime("%Y%m%d-%H%M%S")] + [p for p in parts if p])


# ---- atomic files


def _atomic(path: Path, write, needed: int | Callable[[], int] | None = None) -> None:
    """Write through a temporary sibling and a rename, so readers never see half a file. `needed`: about how many
    bytes it takes (or a function that says, called only then), for the message when the disk is full (DiskFull)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temporary(path)
    try:
        with open(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)  # first: what it took is free again when the message measures the room
        full = disk_full(exc, path, needed() if callable(needed) else needed)
        if full is None:
            raise
        raise full from exc


def _temporary(path: Path) -> tuple[int, Path]:
    """A new temporary sibling of `path`, open for writing. Created as any file is, 0o666 less the umask (0644
    under the usual 022), never tempfile.mkstemp's 0600: a teammate, TensorBoard or an app running as another
    user reads the run. The kernel applies the umask: nothing reads it (os.umask would change it process-wide)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path))


def atomic_write(path: Path, data: bytes | str) -> None:
    data = data.encode() if isinstance(data, str) else data
    _atomic(Path(path), lambda fh: fh.write(data), len(data))


def atomic_save(path: Path, state: dict) -> None:
    """torch.save, atomically."""
    import torch  # here, not at the top: reading a run folder (`status`, `control`) needs no torch

    _atomic(Path(path), lambda fh: torch.save(state, fh), lambda: _tensor_bytes(state))


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
            _atomic(Path(path), lambda fh: shutil.copyfileobj(src, fh), os.fstat(src.fileno()).st_size)


def _tensor_bytes(value) -> int:
    """The bytes of the tensors in a nest of dicts, lists and tuples: about the size torch.save writes."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.untyped_storage().nbytes()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    return 0


# ---- a full disk


class DiskFull(OSError):
    """A write that found no room (ENOSPC, or over a quota): the file, about how many bytes it needed, how many
    were free after its partial file was removed. The file keeps its previous, complete content."""

    def __init__(self, path: Path, needed: int | None, free: int | None):
        self.path, self.needed, self.free = Path(path), needed, free
        super().__init__(errno.ENOSPC, f"disk full: {self.describe()}")  # strerror: what the CLI's line shows

    def describe(self, root: Path | None = None) -> str:
        """'no space left in DIR (writing NAME needed about 5.4 MB, 1.2 MB free)', NAME relative to `root`."""
        path = self.path.absolute()
        inside = root is not None and path.is_relative_to(Path(root).absolute())
        name = path.relative_to(Path(root).absolute()) if inside else path.name
        needed = f" needed about {format_bytes(self.needed)}" if self.needed else ""
        free = f", {format_bytes(self.free)} free" if self.free is not None else ""
        return f"no space left in {path.parent} (writing {name}{needed}{free})"

    def __str__(self) -> str:
        return self.strerror


FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def disk_full(exc: BaseException, path: Path, needed: int | None = None) -> DiskFull | None:
    """`exc`, raised writing `path`, as a DiskFull when it says the disk is full. torch.save wraps the OSError in
    a RuntimeError of its own ('[enforce fail at inline_container.cc:...] unexpected pos ...'): the chain of
    causes is searched, and a RuntimeError with less room left than the write needed counts too."""
    found = full_error(exc)
    if isinstance(found, DiskFull):
        return found
    free = _free(path.parent)
    short = isinstance(exc, RuntimeError) and needed and free is not None and free < needed
    if found is None and not short:
        return None
    return DiskFull(path, needed, free)


def full_error(exc: BaseException | None) -> OSError | None:
    """The error in `exc`'s chain of causes that says the disk is full (a DiskFull first), if any."""
    seen, found = set(), None
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DiskFull):
            return exc
        if found is None and isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
            found = exc
        exc = exc.__cause__ or exc.__context__
    return found


def _free(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def format_bytes(n: int) -> str:
    """5.4 MB, 812 kB, 96 B (decimal units, as df -H and file managers show them)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}" if n < 100 * size else f"{n / size:.0f} {unit}"
    return f"{n} B"


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
        _append(path, text.getvalue().encode())
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
    _append(Path(path), (json.dumps(record) + "\n").encode())


def _append(path: Path, data: bytes) -> None:
    """Add `data` at the file's end. A full disk leaves no part of it behind (the file is cut back to where it
    ended) and raises DiskFull."""
    try:
        with open(path, "ab", buffering=0) as fh:
            start = fh.seek(0, os.SEEK_END)
            try:
                view = memoryview(data)
                while view:  # an unbuffered write may take part of it
                    view = view[fh.write(view) :]
            except OSError:
                with contextlib.suppress(OSError):
                    fh.truncate(start)
                raise
    except OSError as exc:
        full = disk_full(exc, path, len(data))
        if full is None:
            raise
        raise full from exc


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


# ---- pictures


def png_bytes(image: np.ndarray) -> bytes:
    """PNG of a uint8 picture, grey ones as one channel, at zlib's fastest level: a grid is saved every
    `sample_every` iterations on the training thread (a 242-px RGB grid took 30 ms at the default level,
    as grey at level 1 5 ms; the files are 5% larger than at level 6)."""
    if (
        image.ndim == 3
        and image.shape[-1] == 3
        and (image[..., 0] == image[..., 1]).all()
        and (image[..., 1] == image[..., 2]).all()
    ):
        image = image[..., :1]
    buffer = io.BytesIO()
    Image.fromarray(image.squeeze(-1) if image.ndim == 3 and image.shape[-1] == 1 else image).save(
        buffer, "PNG", compress_level=1
    )
    return buffer.getvalue()


def save_png(image: np.ndarray, path: Path) -> None:
    atomic_write(Path(path), png_bytes(image))
