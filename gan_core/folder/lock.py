"""The one-writer lock of a run folder: an operating-system lock on a file, which the OS releases when its process
ends however it ends, with the holder's process id and host written inside for whoever finds it taken."""

from __future__ import annotations

import json
import os
import socket
import time
from typing import NamedTuple

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt


class Owner(NamedTuple):
    """Who holds a run folder's lock."""

    pid: int | None
    host: str
    started: float

    def __str__(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started)) if self.started else "?"
        return f"process {self.pid or '?'} on {self.host or '?'} (since {since})"


def _try_lock(fd: int, exclusive: bool = True) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        else:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        return True
    except OSError:
        return False


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


def _read_owner(fd: int) -> Owner | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 4096).decode(errors="replace")
    try:
        data = json.loads(text)
        return Owner(int(data["pid"]), str(data["host"]), float(data["started"]))
    except (ValueError, KeyError, TypeError):
        return Owner(None, "", 0.0) if text.strip() else None


class FolderLock:
    """Held while a process trains into a folder; `stale` names a dead holder it took over from."""

    def __init__(self, fd: int, stale: Owner | None):
        self._fd, self.stale = fd, stale

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        os.ftruncate(fd, 0)  # empty: released cleanly (a dead holder leaves its name behind)
        _unlock(fd)
        os.close(fd)


def take(path) -> FolderLock | Owner:
    """The lock at `path` for this process (created if need be), or the live holder's name when it is taken."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # less the umask, as every file of the run
    if not _try_lock(fd):
        holder = _read_owner(fd) or Owner(None, "", 0.0)
        os.close(fd)
        return holder
    stale = _read_owner(fd)
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(
        fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}).encode()
    )
    return FolderLock(fd, stale)


def holder(path) -> Owner | None:
    """The live process holding the lock at `path`, if any (reads only; takes nothing)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        if _try_lock(fd, exclusive=False):
            _unlock(fd)
            return None
        return _read_owner(fd) or Owner(None, "", 0.0)
    finally:
        os.close(fd)
