"""A run folder: its layout and file formats, its checkpoints (last and previous) and its one-writer lock.

    RUN/config.json        RunConfig and the starting knobs
    RUN/metrics.csv        one row an iteration
    RUN/events.jsonl       start, resume, knob changes, status changes
    RUN/samples/iter_0000100.png
    RUN/samples/live.png   the latest grid drawn between saved ones (a slow model's monitor keeps moving)
    RUN/checkpoints/last.pt, previous.pt
    RUN/checkpoints/iter_0001000.pt   the last K checkpoints kept along the run (hard links): branch points
    RUN/lock               held by the process that trains into the folder (its pid and host inside)
    RUN/heartbeat.json     written every second by the live run: process, host, iteration, status, knobs
    RUN/control/           requests from any process (ID.json) and the run's replies (ID.reply)

Nothing else in the project spells a path inside a run folder.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import ConfigError, Knobs, RunConfig, from_dict, to_json
from . import control, lock, storage
from .lock import FolderLock, Owner
from .status import RunState, Status, logged_state, state_of

CONFIG, METRICS, EVENTS, LOCK = "config.json", "metrics.csv", "events.jsonl", "lock"
HEARTBEAT, CONTROL = "heartbeat.json", "control"
SAMPLES, CHECKPOINTS, LAST, PREVIOUS = "samples", "checkpoints", "last.pt", "previous.pt"
LIVE_GRID = "live.png"
TENSORBOARD = "tensorboard"  # event files, with --tensorboard
DATA_POINTS = "data.npy"  # a drawn 2-D data set (points:FILE.npy), kept with the run that trains on it
GRID_NAME = re.compile(r"iter_(\d+)\.png")
KEPT_NAME = re.compile(r"iter_(\d+)\.pt")
MAX_NAME = 100  # characters of a run folder's name
# Version 1: the layout before checkpoints carried a version (read as version 1). Version 2 adds the field.
CHECKPOINT_FORMAT = 2
CHECKPOINT_KEYS = ("trainer", "iteration", "config", "knobs", "spec")


class CheckpointError(ConfigError):
    """A checkpoint that cannot be used: missing, truncated, foreign or of an unknown format."""


class RunLocked(ConfigError):
    """The folder is being trained by a live process."""


# ---- the folder


class RunFolder:
    """The files of one run. Create it with `create` (a new run) or `open` (an existing one)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    @staticmethod
    def check_new(root: str | Path, name: str) -> None:
        """Refuse a name or runs folder that `create` could not use, before anything else is done."""
        if not 1 <= len(name) <= MAX_NAME:
            raise ConfigError(f"name is {len(name)} characters long: allowed 1 to {MAX_NAME}")
        root = Path(root)
        for path in (root, *root.parents):
            if path.exists():
                if not path.is_dir():
                    raise ConfigError(f"runs folder {root}: {path} is a file, not a folder (--runs-dir)")
                break

    @classmethod
    def create(cls, root: str | Path, name: str) -> RunFolder:
        """A fresh folder under root named after `name` (suffixed -2, -3 ... when taken)."""
        cls.check_new(root, name)
        root = Path(root)
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "run"
        try:
            root.mkdir(parents=True, exist_ok=True)
            for i in range(1, 10_000):
                path = root / (name if i == 1 else f"{name}-{i}")
                try:
                    path.mkdir()
                    return cls(path)
                except FileExistsError:
                    continue
        except OSError as exc:
            raise ConfigError(f"cannot create a run folder in {root}: {exc.strerror or exc}") from None
        raise ConfigError(f"too many runs named {name!r} in {root}")

    @classmethod
    def open(cls, path: str | Path) -> RunFolder:
        folder = cls(path)
        if not (folder.path / CONFIG).is_file():
            raise ConfigError(f"{path} is not a run folder: it has no {CONFIG}")
        return folder

    # ---- config

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def events_path(self) -> Path:
        return self.path / EVENTS

    def write_config(self, config: RunConfig, knobs: Knobs) -> None:
        storage.atomic_write(self.path / CONFIG, to_json(config, knobs))

    def read_config(self) -> tuple[RunConfig, Knobs]:
        path = self.path / CONFIG
        if not path.is_file():
            raise ConfigError(f"{self.path} is not a run folder: it has no {CONFIG}")
        try:
            return from_dict(json.loads(path.read_text()))
        except ValueError as exc:  # bad JSON, or a value out of range (ConfigError is a ValueError)
            raise ConfigError(f"{path} is invalid: {str(exc).splitlines()[0]}") from None
        except (KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{path} is invalid: missing or malformed {exc}") from None

    def parent(self, config: RunConfig | None = None) -> RunFolder | None:
        """A branch's parent run: where its config says, or beside it by name (the runs folder was moved);
        None for a run that is no branch or whose parent is gone."""
        config = config or self.read_config()[0]
        if config.parent is None:
            return None
        for path in (Path(config.parent), self.path.parent / Path(config.parent).name):
            if (path / CONFIG).is_file():
                return RunFolder(path)
        return None

    # ---- metrics and events

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    def write_metrics(self, columns, rows: np.ndarray, append: bool = True) -> None:
        storage.write_table(self.metrics_path, columns, rows, append)

    def read_metrics(self) -> tuple[tuple[str, ...], np.ndarray]:
        """(columns, rows) of metrics.csv; none when it does not exist yet."""
        if not self.metrics_path.exists():
            return (), np.zeros((0, 0), np.float32)
        return storage.read_table(self.metrics_path)

    def last_metrics(self) -> dict[str, float]:
        return storage.last_row(self.metrics_path)

    def append_event(self, event: dict) -> None:
        storage.append_jsonl(self.path / EVENTS, event)

    def log(self, kind: str, iteration: int, **fields) -> dict:
        """Append an event (`kind`, the iteration it concerns, the time, any fields); returns it."""
        event = {"event": kind, "iteration": iteration, "time": time.time(), **fields}
        self.append_event(event)
        return event

    def read_events(self) -> list[dict]:
        return storage.read_jsonl(self.path / EVENTS)

    # ---- a drawn data set

    @property
    def points_path(self) -> Path:
        """Where the run keeps its drawn 2-D points (the config's data set then names this file)."""
        return self.path / DATA_POINTS

    def save_points(self, npy: bytes) -> None:
        """Keep a drawn data set (the bytes of a .npy file) in the folder, atomically."""
        storage.atomic_write(self.points_path, npy)

    # ---- sample grids

    def grid_path(self, iteration: int) -> Path:
        return self.path / SAMPLES / f"iter_{iteration:07d}.png"

    def save_grid(self, image: np.ndarray, iteration: int) -> None:
        storage.save_png(image, self.grid_path(iteration))

    @property
    def live_grid_path(self) -> Path:
        """The latest picture of the fixed latents drawn between saved grids (not one of `grids()`)."""
        return self.path / SAMPLES / LIVE_GRID

    def save_live_grid(self, image: np.ndarray) -> None:
        storage.save_png(image, self.live_grid_path)

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / TENSORBOARD

    def grids(self) -> list[tuple[int, Path]]:
        """The saved grids as (iteration, path), in order."""
        found = [(int(m.group(1)), p) for p in (self.path / SAMPLES).glob("iter_*.png")
                 if (m := GRID_NAME.fullmatch(p.name))]  # fmt: skip
        return sorted(found)

    # ---- checkpoints

    @property
    def checkpoint(self) -> Path:
        """The latest checkpoint's path (it may not exist yet)."""
        return self.path / CHECKPOINTS / LAST

    @property
    def previous_checkpoint(self) -> Path:
        return self.path / CHECKPOINTS / PREVIOUS

    def has_checkpoint(self) -> bool:
        return self.checkpoint.is_file()

    def save_checkpoint(self, state: dict, rotate: bool = True, keep: int = 0) -> None:
        """Write last.pt atomically; the one it replaces becomes previous.pt (also complete at every moment).
        rotate=False overwrites last.pt alone (a second save at the same iteration keeps an older previous.pt).
        keep > 0: also keep it as iter_N.pt, and only the `keep` newest of those."""
        last, previous = self.checkpoint, self.previous_checkpoint
        if rotate and last.is_file():
            try:
                storage.atomic_copy(last, previous)
            except OSError:  # no room for a copy: for a moment only previous.pt exists
                os.replace(last, previous)
        storage.atomic_save(last, {**state, "format": CHECKPOINT_FORMAT})
        if keep:
            storage.atomic_copy(last, self.kept_checkpoint_path(int(state["iteration"])))
            for _, old in self.kept_checkpoints()[:-keep]:
                old.unlink(missing_ok=True)

    def kept_checkpoint_path(self, iteration: int) -> Path:
        return self.path / CHECKPOINTS / f"iter_{iteration:07d}.pt"

    def kept_checkpoints(self) -> list[tuple[int, Path]]:
        """The checkpoints kept along the run as (iteration, path), oldest first."""
        found = [(int(m.group(1)), p) for p in (self.path / CHECKPOINTS).glob("iter_*.pt")
                 if (m := KEPT_NAME.fullmatch(p.name))]  # fmt: skip
        return sorted(found)

    def drop_checkpoints_after(self, iteration: int) -> None:
        """Resumed from `iteration`: the kept checkpoints past it belong to the part that is trained again."""
        for it, path in self.kept_checkpoints():
            if it > iteration:
                path.unlink(missing_ok=True)

    def branch_point(self, iteration: int | None = None, device="cpu") -> dict:
        """The checkpoint a branch starts from: the kept one of `iteration`, or (None) the latest, checked.
        CheckpointError lists the iterations there are when that one is not kept."""
        if iteration is None:
            return self.load_for_resume(device)[0]
        kept = dict(self.kept_checkpoints())
        if iteration not in kept:
            state = self.load_checkpoint(device) if self.has_checkpoint() else None
            if state is not None and int(state["iteration"]) == iteration:
                return state
            there = sorted({*kept, *([int(state["iteration"])] if state else [])})
            raise CheckpointError(f"{self.name} has no checkpoint of iteration {iteration}: kept are "
                                  f"{', '.join(map(str, there)) or 'none'}")  # fmt: skip
        return self.load_checkpoint(device, kept[iteration])

    def load_checkpoint(self, device="cpu", path: Path | None = None) -> dict:
        """A checkpoint's contents (last.pt by default), checked; CheckpointError names the file and the problem."""
        path = path or self.checkpoint
        shown = f"{self.name}/{path.relative_to(self.path)}" if path.is_relative_to(self.path) else str(path)
        if not path.is_file():
            raise CheckpointError(f"{shown} does not exist: the run has no checkpoint yet")
        if path.stat().st_size == 0:
            raise CheckpointError(f"{shown} is empty: not a checkpoint")
        try:
            state = storage.load_tensors(path, device)
        except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError ... by the damage
            raise CheckpointError(f"{shown} {_load_problem(exc)}") from None
        return _checked(state, shown)

    def load_for_resume(self, device="cpu") -> tuple[dict, str | None]:
        """The last checkpoint, or the previous one when the last is damaged: (state, a note saying so)."""
        try:
            return self.load_checkpoint(device), None
        except CheckpointError as damaged:
            if not self.previous_checkpoint.is_file():
                raise
            try:
                state = self.load_checkpoint(device, self.previous_checkpoint)
            except CheckpointError:
                raise damaged from None
            return state, f"{damaged}; resuming from the previous checkpoint (iteration {state['iteration']})"

    def set_aside_damaged(self) -> Path | None:
        """Rename a damaged last.pt to damaged-last.pt (kept for a look), so that the next checkpoint does not
        turn it into previous.pt; the good previous.pt stays the fallback until then."""
        if not self.checkpoint.is_file():
            return None
        aside = self.checkpoint.with_name(f"damaged-{LAST}")
        os.replace(self.checkpoint, aside)
        return aside

    # ---- status, ownership

    def logged_status(self, events: list[dict] | None = None) -> RunState:
        """The last status events.jsonl records (or `events`, read from it already), with its reason."""
        return logged_state(self.read_events() if events is None else events)

    def state(self, events: list[dict] | None = None, beat: dict | None = None) -> RunState:
        """The run's state now, from its heartbeat, its event log and its lock (gan_core.folder.status)."""
        beat = self.heartbeat() if beat is None else beat
        return state_of(self.logged_status(events), self.live(beat), beat)

    def owner(self) -> Owner | None:
        """The live process training into this folder, if any (reads only; takes nothing)."""
        return lock.holder(self.path / LOCK)

    def lock(self) -> FolderLock:
        """Become the folder's one writer; RunLocked (naming the holder) when a live process trains into it."""
        taken = lock.take(self.path / LOCK)
        if isinstance(taken, Owner):
            raise RunLocked(f"run {self.name} is training in {taken}: one process trains into a folder at a "
                            "time; stop that one first")  # fmt: skip
        return taken

    # ---- the control channel: heartbeat out, requests in

    def channel(self) -> control.Channel:
        """The training side's end of the control channel."""
        return control.Channel(self.path / CONTROL, self.path / HEARTBEAT)

    def heartbeat(self) -> dict:
        """What the live run last said of itself (empty if nothing), with its age in seconds (`age_s`)."""
        return control.read_heartbeat(self.path / HEARTBEAT)

    def live(self, beat: dict | None = None) -> bool:
        """A process trains into this folder: it holds the lock, or (on another host, where the lock may not be
        seen through a network file system) its heartbeat is fresh."""
        if self.owner() is not None:
            return True
        beat = self.heartbeat() if beat is None else beat
        elsewhere = bool(beat) and beat.get("host") != socket.gethostname()
        return (
            elsewhere
            and beat["age_s"] < control.STALE_SECONDS
            and beat.get("status") in ("running", "paused")
        )

    def send(self, kind: str, value: object = None, reply: bool = False) -> control.Request:
        """Ask the live run to do something (ConfigError for a bad value or a folder with no live run)."""
        control.check_request(kind, value)
        if not self.live():
            status, _ = self.logged_status()
            raise ConfigError(f"{self.path} has no live run (its log says {status or 'nothing'}): "
                              "a request needs a run that is training or paused")  # fmt: skip
        return control.send(self.path / CONTROL, kind, value, reply)

    def reply(self, request: control.Request, timeout: float = 0.0) -> control.Reply | None:
        """The run's reply to a request; with a timeout, wait for it while the run lives."""
        directory = self.path / CONTROL
        if timeout <= 0:
            return control.reply_of(directory, request)
        return control.wait_reply(directory, request, timeout, alive=self.live)

    def delete(self) -> None:
        owner = self.owner()
        if owner is not None:
            raise RunLocked(f"run {self.name} is training in {owner}: stop it before deleting it")
        shutil.rmtree(self.path)


class FollowerFolder(RunFolder):
    """The run folder as the processes of a group other than the first see it: they train into the same run but
    write nothing (the first process writes every file)."""

    def write_config(self, config: RunConfig, knobs: Knobs) -> None:
        pass

    def write_metrics(self, columns, rows: np.ndarray, append: bool = True) -> None:
        pass

    def append_event(self, event: dict) -> None:
        pass

    def save_grid(self, image: np.ndarray, iteration: int) -> None:
        pass

    def save_live_grid(self, image: np.ndarray) -> None:
        pass

    def save_checkpoint(self, state: dict, rotate: bool = True, keep: int = 0) -> None:
        pass


def _load_problem(exc: Exception) -> str:
    """What torch.load's error says of a file, in a few words."""
    text = str(exc)
    code = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if code:
        return (f"holds Python objects ({code.group(1)}), not only tensors: refused unread (checkpoints load "
                "with weights_only=True)")  # fmt: skip
    first = text.strip().splitlines()[0] if text.strip() else ""
    detail = first if first and len(first) < 120 and "Weights only" not in first else type(exc).__name__
    return f"is truncated or not a checkpoint ({detail})"


def _checked(state, shown: str) -> dict:
    if not isinstance(state, dict) or any(key not in state for key in CHECKPOINT_KEYS):
        raise CheckpointError(f"{shown} is not a gan_core checkpoint (it lacks {', '.join(CHECKPOINT_KEYS)})")
    version = state.get("format", 1)
    if not isinstance(version, int) or not 1 <= version <= CHECKPOINT_FORMAT:
        raise CheckpointError(f"{shown} has checkpoint format {version!r}: this version reads formats 1 to "
                              f"{CHECKPOINT_FORMAT} (a newer gan_core wrote it?)")  # fmt: skip
    return state


# ---- naming


POINTS_PREFIX = "points:"  # a drawn 2-D data set: `points:FILE.npy` (gan_core.engine.points reads it)


def dataset_label(name: str) -> str:
    """A data set's name as a run folder's name carries it: 'points:/a/b/moons.npy' -> 'points-moons'."""
    return f"points-{Path(name.removeprefix(POINTS_PREFIX)).stem}" if name.startswith(POINTS_PREFIX) else name


def new_run_name(config: RunConfig | None = None, *, replay_of: str | None = None, branch_of: str | None = None,
                 at: int | None = None) -> str:  # fmt: skip
    """The default name of a new run folder: RUN-replay for a replay, RUN-at-ITERATION for a branch, else the time,
    the preset (or architecture) and the data set. The command line, torchrun's relaunch and the app all ask here."""
    if replay_of is not None:
        return f"{replay_of}-replay"
    if branch_of is not None:
        return f"{branch_of}-at-{at}"
    return storage.timestamp_name(config.preset or config.arch, dataset_label(config.dataset))


# ---- listing


@dataclass(frozen=True)
class RunInfo:
    """A run as its folder tells it, for tables and choosers."""

    path: Path
    name: str
    preset: str | None
    arch: str
    dataset: str
    status: Status | None
    reason: str
    iteration: int
    target: int
    score_g: float
    score_d: float
    elapsed_s: float
    created: float
    owner: Owner | None
    heartbeat: dict  # what the live run last said of itself (pid, pids, host, age_s ...); {} if none
    parent: Path | None = None  # a branch: its parent's folder, while it exists
    branched_at: int | None = None  # a branch: the parent's iteration it continues from


def run_info(folder: RunFolder) -> RunInfo:
    config, _ = folder.read_config()
    events = folder.read_events()
    owner, beat = folder.owner(), folder.heartbeat()
    status, reason = folder.state(events, beat)
    last = folder.last_metrics()
    iteration, created = last.get("iteration", 0.0), events[0].get("time") if events else None
    return RunInfo(
        path=folder.path, name=folder.name, preset=config.preset, arch=config.arch, dataset=config.dataset,
        status=status, reason=reason, iteration=int(iteration) if math.isfinite(iteration) else 0,
        target=config.iterations, score_g=last.get("score_g", math.nan), score_d=last.get("score_d", math.nan),
        elapsed_s=last.get("elapsed_s", 0.0),
        created=created if isinstance(created, (int, float)) else (folder.path / CONFIG).stat().st_mtime,
        owner=owner, heartbeat=beat, branched_at=config.branched_at,
        parent=parent.path if (parent := folder.parent(config)) else None,
    )  # fmt: skip


def list_runs(root: str | Path | None = None) -> list[RunInfo]:
    """Every run folder under the runs root, newest first (a folder that cannot be read is left out)."""
    root = storage.runs_root(root)
    infos = []
    for path in root.glob(f"*/{CONFIG}") if root.is_dir() else []:
        try:
            infos.append(run_info(RunFolder(path.parent)))
        except (OSError, ValueError, KeyError, TypeError, ArithmeticError):  # one bad folder spoils no list
            continue
    return sorted(infos, key=lambda info: info.created, reverse=True)
