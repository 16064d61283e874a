"""The control channel of a run folder: a live run's heartbeat out, requests (knobs, pause, step, continue, stop,
save) in, from any process. Requests are files written whole (a temporary name, then a rename) into the folder's
control directory; the training side lists that directory a few times a second, applies each request at an
iteration boundary and answers it with a reply file. The folder's paths come from RunFolder."""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from ..config import ConfigError, Knobs
from . import storage
from .names import Kind

KINDS = tuple(Kind)
STEP_KINDS = (Kind.STEP, Kind.STEP_D, Kind.STEP_G)  # n iterations; n updates of D alone; n updates of G alone
POLL_SECONDS = 0.2  # how often a training run lists its control directory (also while paused)
BEAT_SECONDS = 1.0  # how often it rewrites its heartbeat
STALE_SECONDS = 15.0  # a heartbeat older than this, with no process holding the lock: the run is not live


class Request(NamedTuple):
    """One request as a client wrote it. value: knobs -> {name: value}; step, step_d, step_g -> n; else None."""

    id: str
    kind: str
    value: object = None
    reply: bool = False  # the sender waits for a reply file (otherwise none is written)


class Reply(NamedTuple):
    """How a request was handled: applied at `iteration` (knobs: the first iteration that uses them), or not."""

    id: str
    applied: bool
    iteration: int
    message: str = ""


def check_request(kind: str, value: object = None) -> None:
    """ConfigError, naming the value and its allowed range, for a request no run could apply."""
    if kind not in KINDS:
        raise ConfigError(f"request {kind!r} is unknown: allowed {', '.join(KINDS)}")
    if kind == Kind.KNOBS:
        if not isinstance(value, dict) or not value:
            raise ConfigError(
                "a knobs request needs at least one of lr_g, lr_d, flip_prob, d_iters, d_warmup"
            )
        Knobs().replace(**value)  # each value checked against its range
    if kind in STEP_KINDS and (
        isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1_000_000
    ):
        raise ConfigError(f"{kind} {value!r} is out of range: allowed [1, 1000000]")


# ---- the client's side (any process)


def send(directory: Path, kind: str, value: object = None, reply: bool = False) -> Request:
    """Write a request for the run to pick up; returns it (with `reply`, its id names the reply to wait for)."""
    check_request(kind, value)
    request = Request(f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(3)}", kind, value, reply)
    storage.atomic_write(directory / f"{request.id}.json", json.dumps(request._asdict()))
    return request


def reply_of(directory: Path, request: Request) -> Reply | None:
    """The run's reply to a request, once it has one (the reply file is then removed)."""
    path = directory / f"{request.id}.reply"
    try:
        reply = Reply(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    path.unlink(missing_ok=True)
    return reply


def wait_reply(directory: Path, request: Request, timeout: float, alive=lambda: True) -> Reply | None:
    """Poll for the reply until `timeout` seconds pass or `alive()` turns false."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        reply = reply_of(directory, request)
        if reply is not None:
            return reply
        if not alive():
            return reply_of(directory, request)
        time.sleep(0.05)
    return None


def read_heartbeat(path: Path) -> dict:
    """The heartbeat a run last wrote (empty when there is none or it cannot be read); `age_s` added."""
    try:
        beat = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(beat, dict):
        return {}
    beat["age_s"] = max(0.0, time.time() - float(beat.get("time", 0.0)))
    return beat


# ---- the run's side


class Channel:
    """The training side: lists the control directory at most every POLL_SECONDS (between polls a request check
    costs one clock read), answers requests, and rewrites the heartbeat at most every BEAT_SECONDS."""

    def __init__(self, directory: Path, heartbeat: Path):
        self.directory, self.heartbeat = directory, heartbeat
        self.directory.mkdir(exist_ok=True)
        self._next_poll = self._next_beat = 0.0
        self._started, self._host, self._pid = time.time(), socket.gethostname(), os.getpid()

    def requests(self, wait: float = 0.0) -> list[Request]:
        """New requests, oldest first; with `wait`, poll for up to that long until one comes."""
        end = time.monotonic() + wait
        while True:
            now = time.monotonic()
            if now >= self._next_poll:
                self._next_poll = now + POLL_SECONDS
                found = self._read_new()
                if found or now >= end:
                    return found
            elif now >= end:
                return []
            time.sleep(min(self._next_poll, end) - now)

    def _read_new(self) -> list[Request]:
        try:
            names = sorted(e.name for e in os.scandir(self.directory) if e.name.endswith(".json"))
        except OSError:
            return []
        found = []
        for name in names:
            path = self.directory / name
            try:
                data = json.loads(path.read_text())
                request = Request(
                    str(data["id"]), str(data["kind"]), data.get("value"), bool(data.get("reply"))
                )
            except (OSError, ValueError, KeyError, TypeError):
                request = Request(name.removesuffix(".json"), "unreadable")
            path.unlink(missing_ok=True)
            found.append(request)
        return found

    def answer(self, request: Request, iteration: int, error: str | None = None) -> None:
        if not request.reply:  # nobody waits: no file left behind
            return
        reply = Reply(request.id, error is None, iteration, error or "")
        storage.atomic_write(self.directory / f"{request.id}.reply", json.dumps(reply._asdict()))

    def beat(self, state: Callable[[], dict], force: bool = False) -> None:
        """Rewrite the heartbeat (at most every BEAT_SECONDS unless forced) with `state()`: where the run stands."""
        now = time.monotonic()
        if not force and now < self._next_beat:
            return
        self._next_beat = now + BEAT_SECONDS
        beat = {
            "pid": self._pid,
            "host": self._host,
            "started": self._started,
            "time": time.time(),
            **state(),
        }
        storage.atomic_write(self.heartbeat, json.dumps(beat))

    def close(self) -> None:
        """Refuse the requests still waiting: the run has ended."""
        for request in self._read_new():
            self.answer(request, -1, "the run has ended")
