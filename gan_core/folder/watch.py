"""A run seen and steered through its folder, from any process: the same Snapshot and commands as an in-process
Run, read from the files the training process writes (metrics.csv, events.jsonl, heartbeat.json, the grids) and
sent through the folder's control channel. Each refresh reads only what was appended since the last one."""

from __future__ import annotations

import io
import json
import os
import subprocess
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from ..config import ConfigError, Knobs, RunConfig
from .history import COLUMNS, QUALITY_TABLE, History
from .milestone import Mark, follow
from .names import Event, Kind
from .run_folder import RunFolder
from .snapshot import Snapshot
from .status import NOTHING_LOGGED, RunState, Status, state_of


class Tail:
    """The complete lines appended to a file since the last read. A file replaced or cut shorter (a resumed run
    rewrites metrics.csv) starts over: `read` then says so."""

    def __init__(self, path: Path):
        self.path, self._offset, self._inode, self._partial = path, 0, None, b""

    def read(self) -> tuple[str, bool]:
        """(new complete lines, started over)."""
        try:
            stat = os.stat(self.path)
        except OSError:
            return "", False
        again = stat.st_ino != self._inode or stat.st_size < self._offset
        if again:
            self._offset, self._inode, self._partial = 0, stat.st_ino, b""
        if stat.st_size == self._offset:
            return "", again
        with open(self.path, "rb") as fh:
            fh.seek(self._offset)
            data = self._partial + fh.read(stat.st_size - self._offset)
        self._offset = stat.st_size
        end = data.rfind(b"\n") + 1
        self._partial = data[end:]
        return data[:end].decode(errors="replace"), again


def _with_nan(text: str) -> str:
    """Empty cells spelled out as nan (str.replace: several times faster than a regular expression here)."""
    text = ("\n" + text).replace("\n,", "\nnan,")[1:]
    return text.replace(",,", ",nan,").replace(",,", ",nan,").replace(",\n", ",nan\n")


def parse_rows(text: str, width: int) -> np.ndarray:
    """CSV lines of numbers (empty cells NaN) as float32 (n, width); a line that is not all numbers is skipped."""
    if not text:
        return np.zeros((0, width), np.float32)
    try:  # the fast path: numpy's C parser
        rows = np.loadtxt(io.StringIO(_with_nan(text)), delimiter=",", dtype=np.float32, ndmin=2)
        if rows.shape[1] == width:
            return rows
    except ValueError:
        pass
    good = []
    for line in text.splitlines():
        cells = line.split(",")
        try:
            if len(cells) == width:
                good.append([float(c) if c else np.nan for c in cells])
        except ValueError:
            continue
    return np.array(good, np.float32).reshape(len(good), width)


def _columns(rows: np.ndarray, have: tuple[str, ...], want: tuple[str, ...]) -> np.ndarray:
    """`rows` (columns `have`) as columns `want`, NaN where a column is missing."""
    index = {c: i for i, c in enumerate(have)}
    blank = np.full(len(rows), np.nan, np.float32)
    return np.stack([rows[:, index[c]] if c in index else blank for c in want], axis=1)


class FolderRun:
    """A live or ended run read from its folder; commands go through the control channel (ConfigError when no
    process trains it any more). `process`: the training process when this server launched it."""

    def __init__(self, run_dir: str | Path, process: subprocess.Popen | None = None, log: Path | None = None):
        self.folder = RunFolder(run_dir)
        self.run_dir = self.folder.path
        self.process, self.log = process, log
        self.notes: tuple[str, ...] = ()
        self._lock = threading.Lock()  # one refresh at a time, whichever tab asks
        self._reset()
        self._events_tail = Tail(self.folder.events_path)
        self._config: tuple[RunConfig, Knobs] | None = None
        self._grid: tuple[int, np.ndarray | None] = (0, None)
        self._quality_note: str | None = None
        self._knob_events: tuple[dict, ...] = ()
        self._mark: Mark | None = None
        self._status = NOTHING_LOGGED
        self._device = ""
        self._knobs = Knobs()

    def _reset(self) -> None:
        self._metrics_tail = Tail(self.folder.metrics_path)
        self._columns: tuple[str, ...] = ()
        self.history = History(COLUMNS)
        self.quality = History(QUALITY_TABLE, capacity=64)

    # ---- reading

    @property
    def alive(self) -> bool:
        if self.process is not None and self.process.poll() is None:
            return True  # launched here: starting (its folder may not exist yet) or training
        return self.folder.live()

    def refresh(self) -> dict:
        """Read what is new; returns the heartbeat."""
        self._read_metrics()
        self._read_events()
        beat = self.folder.heartbeat()
        if self._config is None and self.folder.config_path.is_file():
            self._config = self.folder.read_config()
        return beat

    def _read_metrics(self) -> None:
        text, again = self._metrics_tail.read()
        if again:
            tail = self._metrics_tail
            self._reset()
            self._metrics_tail = tail
        if not text:
            return
        if not self._columns:
            header, _, text = text.partition("\n")
            self._columns = tuple(header.strip().split(","))
        rows = parse_rows(text, len(self._columns))
        if not len(rows):
            return
        self.history.append(_columns(rows, self._columns, COLUMNS))
        quality = _columns(rows, self._columns, QUALITY_TABLE)
        measured = np.isfinite(quality[:, 1:]).any(axis=1)
        if measured.any():
            self.quality.append(quality[measured])

    def _read_events(self) -> None:
        text, again = self._events_tail.read()
        if again:
            self._knob_events, self._status, self._quality_note, self._mark = (), NOTHING_LOGGED, None, None
        for line in text.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            kind, self._mark = event.get("event"), follow(self._mark, event)
            if kind == Event.KNOBS:
                self._knob_events += (event,)
            elif kind == Event.STATUS and event.get("status") in Status._value2member_map_:
                self._status = RunState(Status(event["status"]), str(event.get("reason", "")))
            elif kind == Event.QUALITY and event.get("note"):
                self._quality_note = str(event["note"])
            elif kind in (Event.START, Event.RESUME):
                self._device = str(event.get("device", ""))
                self._config = None  # a resume may change iterations, device, processes

    def _grid_image(self, iteration: int) -> tuple[np.ndarray | None, int]:
        """The latest saved grid: the one the heartbeat names (read once), else the folder's last."""
        if iteration and iteration == self._grid[0]:
            return self._grid[1], iteration
        if not iteration and self._grid[1] is not None:
            return self._grid[1], self._grid[0]
        path = self.folder.grid_path(iteration)
        if iteration and not path.is_file():  # drawn between saved grids: the folder's live picture
            path = self.folder.live_grid_path
        grids = self.folder.grids() if not iteration else [(iteration, path)]
        if not grids:
            return None, 0
        iteration, path = grids[-1]
        try:
            with Image.open(path) as image:
                self._grid = (iteration, np.asarray(image.convert("RGB")))
        except OSError:
            return self._grid[1], self._grid[0]
        return self._grid[1], iteration

    def _state(self, beat: dict) -> RunState:
        live = self.folder.live(beat)
        if not live and self.process is not None and self.process.poll() is None:
            return RunState(Status.RUNNING, "starting")
        if not live and self._status.status is None:
            return RunState(Status.FAILED, self._launch_error())
        state = state_of(self._status, live, beat)
        return state if state.status is not None else RunState(Status.RUNNING, state.reason)

    def _launch_error(self) -> str:
        try:
            lines = [line for line in self.log.read_text(errors="replace").splitlines() if line.strip()]
        except (OSError, AttributeError):
            lines = []
        errors = [line for line in lines if line.startswith("error:")]
        return (errors or lines or ["the training process ended before it created its folder"])[-1]

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._snapshot()

    def _snapshot(self) -> Snapshot:
        beat = self.refresh()
        status, reason = self._state(beat)
        config, knobs = self._config or (RunConfig(), Knobs())
        if beat.get("knobs") and status.active:
            knobs = Knobs(**beat["knobs"])
        elif self._knob_events:
            knobs = self._latest_knobs(knobs)
        self._knobs = knobs
        grid, grid_iteration = self._grid_image(int(beat.get("grid_iteration", 0)))
        last = self.history.last()
        return Snapshot(
            status=status, reason=reason, iteration=int(last.get("iteration", 0)), epoch=int(last.get("epoch", 0)),
            elapsed_s=float(last.get("elapsed_s", 0.0)), target=int(beat.get("target", config.iterations)),
            images_per_s=float(last.get("images_per_s", 0.0)) if np.isfinite(last.get("images_per_s", 0.0)) else 0.0,
            config=config, knobs=knobs, run_dir=self.run_dir, device=self._where(beat), history=self.history.view(),
            quality=self.quality.view(), grid=grid, grid_iteration=grid_iteration, points=None,
            quality_note=self._quality_note, num_classes=int(beat.get("num_classes", 10)), events=self._knob_events,
            recognisable=self._mark,
        )  # fmt: skip

    def _latest_knobs(self, knobs: Knobs) -> Knobs:
        for event in self._knob_events:
            try:
                knobs = knobs.replace(**event.get("changes", {}))
            except (ConfigError, TypeError):
                continue
        return knobs

    def _where(self, beat: dict) -> str:
        if not beat:
            return self._device or ("its own processes" if self.process is not None else "")
        world = int(beat.get("world", 1))
        processes = f"{world} processes" if world > 1 else f"process {beat.get('pid')}"
        return f"{beat.get('device', self._device)} · {processes} on {beat.get('host', '?')}"

    # ---- commands, through the control channel

    def update(self, **changes) -> Knobs:
        knobs = self._knobs.replace(
            **changes
        )  # checked here first: ConfigError names the value and its range
        self.folder.send(Kind.KNOBS, changes)
        return knobs

    def pause(self) -> None:
        self.folder.send(Kind.PAUSE)

    def unpause(self) -> None:
        self.folder.send(Kind.CONTINUE)

    def step(self, n: int = 1) -> None:
        self.folder.send(Kind.STEP, max(1, int(n)))

    def step_player(self, player: str, n: int = 1) -> None:
        self.folder.send(Kind(f"step_{player}"), max(1, int(n)))

    def stop(self, wait: bool = True, timeout: float = 30.0) -> None:
        request = self.folder.send(Kind.STOP, reply=wait)
        if wait:
            self.folder.reply(request, timeout)

    def checkpoint_now(self, timeout: float = 30.0) -> bool:
        if self.alive:
            request = self.folder.send(Kind.SAVE, reply=True)
            reply = self.folder.reply(request, timeout)
            return reply is not None and reply.applied and self.folder.has_checkpoint()
        return self.folder.has_checkpoint()
