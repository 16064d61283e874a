"""Files on disk: every file a run writes follows the umask (a teammate, TensorBoard or an app running as another
user reads the run), and a full disk ends a run with one plain reason (which folder, what the write needed, the
last good checkpoint kept, how to continue), that checkpoint intact and a resume that continues."""

import builtins
import errno
import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from test_cli import cli
from test_loop import new_plan

import gan_core.training.recorder
from gan_core.folder import storage
from gan_core.folder.run_folder import RunFolder
from gan_core.folder.status import Status
from gan_core.training import plan
from gan_core.training.loop import TrainingLoop

TRAIN = ("train", "--arch", "mlp", "--dataset", "digits", "--batch-size", 16, "--device", "cpu", "--eval-every", 0,
         "--threads", 1)  # fmt: skip
# torch.save's own words when its file refuses a write (torch 2.x); the OSError is only its context
TORCH_TEXT = "[enforce fail at inline_container.cc:672] . unexpected pos 5398400 vs 5398292"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask():
    """os.umask for the test; the process's own is restored after."""
    before = os.umask(0o022)
    yield os.umask
    os.umask(before)


# ---- file modes


@pytest.mark.parametrize("mask, file_mode", [(0o022, 0o644), (0o077, 0o600)])
def test_every_file_a_run_writes_follows_the_umask(tmp_path, umask, mask, file_mode):
    umask(mask)
    code, _, err = cli(*TRAIN, "--iterations", 4, "--sample-every", 2, "--checkpoint-every", 2,
                       "--runs-dir", tmp_path, "--name", "run")  # fmt: skip
    assert code == 0, err
    run = tmp_path / "run"
    assert cli("sample", run, "--n", 4, "--out", tmp_path / "export.png")[0] == 0
    files = [run / name for name in ("config.json", "metrics.csv", "events.jsonl", "heartbeat.json", "lock")]
    files += [run / "checkpoints" / name for name in ("last.pt", "previous.pt", "iter_0000004.pt")]
    files += [run / "samples" / "iter_0000002.png", tmp_path / "export.png"]
    modes = {path.relative_to(tmp_path).as_posix(): oct(mode(path)) for path in files}
    assert modes == {name: oct(file_mode) for name in modes}
    folders = {
        path.name: oct(mode(path)) for path in (run, run / "checkpoints", run / "samples", run / "control")
    }
    assert folders == {name: oct(0o777 & ~mask) for name in folders}
    assert not list(tmp_path.rglob("*.tmp"))


def test_each_writer_follows_the_umask_also_where_a_copy_cannot_be_a_link(tmp_path, umask, monkeypatch):
    umask(0o027)
    storage.atomic_write(tmp_path / "a.json", "{}")
    storage.atomic_save(tmp_path / "a.pt", {"x": torch.zeros(3)})  # the data set classifiers' cache too
    storage.append_jsonl(tmp_path / "a.jsonl", {"event": "start"})
    storage.write_table(tmp_path / "a.csv", ("a", "b"), np.ones((2, 2)), append=False)

    def no_links(*args):
        raise OSError(errno.EPERM, "this file system has no hard links")

    monkeypatch.setattr(os, "link", no_links)
    storage.atomic_copy(tmp_path / "a.pt", tmp_path / "b.pt")
    assert {p.name: oct(mode(p)) for p in tmp_path.iterdir()} == {
        name: oct(0o640) for name in ("a.json", "a.pt", "a.jsonl", "a.csv", "b.pt")
    }


# ---- a full disk, faked


class Filling:
    """A file on a disk with `room[0]` bytes left: a write puts down what fits, then fails (ENOSPC)."""

    def __init__(self, file, room: list):
        self._file, self._room = file, room

    def write(self, data) -> int:
        fits = min(len(data), self._room[0])
        self._room[0] -= self._file.write(data[:fits])
        if fits < len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return fits

    def __getattr__(self, name):
        return getattr(self._file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._file.close()


@pytest.fixture
def disk(monkeypatch):
    """`disk(room)`: from now on the files storage writes find `room` bytes left, and so does its measure of the
    free space; `disk(None)`: space freed."""
    room: list = [None]

    def opened(file, mode="r", *args, **kwargs):
        handle = builtins.open(file, mode, *args, **kwargs)  # noqa: SIM115 (returned, as open returns it)
        return handle if room[0] is None or not set(mode) & set("wax+") else Filling(handle, room)

    real_free = storage._free
    monkeypatch.setattr(storage, "open", opened, raising=False)
    monkeypatch.setattr(storage, "_free", lambda folder: real_free(folder) if room[0] is None else room[0])

    def fill(left: int | None) -> None:
        room[0] = left

    return fill


def reason_pattern(run: Path, written: str, kept: int) -> str:
    where = (run / written).parent
    return (rf"disk full: no space left in {re.escape(str(where))} \(writing {re.escape(written)} needed about "
            rf"[\d.]+ (B|kB|MB), 0 B free\); the last good checkpoint \(iteration {kept}\) is kept; free space and "
            rf"run `python -m gan_core train --resume {re.escape(str(run))}` to continue")  # fmt: skip


def test_a_full_disk_at_a_checkpoint_keeps_the_last_one_says_so_and_a_resume_continues(tmp_path, disk):
    loop = TrainingLoop(new_plan(tmp_path, iterations=10, checkpoint_every=4, sample_every=100))
    run = loop.folder.path
    for _ in range(7):
        loop.step()
    disk(4096)  # the metrics rows fit, a checkpoint (6.8 MB) does not
    with pytest.raises(storage.DiskFull) as raised:
        loop.step()  # torch.save itself meets the full disk: its RuntimeError wraps the OSError
    assert "inline_container" in str(raised.value.__cause__)
    disk(None)  # the partial checkpoint is gone: room for the log
    assert loop.close(raised.value) is Status.FAILED
    assert re.fullmatch(reason_pattern(run, "checkpoints/last.pt", 4), loop.reason), loop.reason
    assert loop.folder.logged_status() == (Status.FAILED, loop.reason)
    traceback = [e["text"] for e in loop.folder.read_events() if e["event"] == "traceback"][-1]
    assert "No space left on device" in traceback and "inline_container" in traceback
    assert not list(run.rglob("*.tmp")) and loop.folder.owner() is None
    assert torch.load(loop.folder.checkpoint, weights_only=True)["iteration"] == 4

    resumed = TrainingLoop(plan.resume(run, threads=1))
    while not resumed.done:
        resumed.step()
    assert resumed.close() is Status.FINISHED
    columns, rows = resumed.folder.read_metrics()
    assert rows[:, columns.index("iteration")].tolist() == list(range(1, 11))
    assert torch.load(resumed.folder.checkpoint, weights_only=True)["iteration"] == 10


@pytest.mark.parametrize("what, written", [("metrics", "metrics.csv"), ("grid", "samples/iter_0000005.png")])
def test_a_full_disk_writing_metrics_or_a_grid_says_the_same_and_the_end_of_the_run_does_not_hide_it(
    tmp_path, disk, monkeypatch, what, written
):
    # the rows wait to be recorded: iteration 5's for the flush below
    monkeypatch.setattr(gan_core.training.recorder, "FLUSH_SECONDS", 1e9)
    loop = TrainingLoop(new_plan(tmp_path, iterations=10, checkpoint_every=4, sample_every=100))
    run = loop.folder.path
    for _ in range(5):
        loop.step()
    metrics, events = loop.folder.metrics_path.read_bytes(), (run / "events.jsonl").read_bytes()
    disk(10)  # part of a row fits; then nothing, not even the end-of-run log
    with pytest.raises(storage.DiskFull) as raised:
        loop.flush() if what == "metrics" else loop.sample()
    assert loop.close(raised.value) is Status.FAILED
    assert re.fullmatch(reason_pattern(run, written, 4), loop.reason), loop.reason
    assert loop.folder.metrics_path.read_bytes() == metrics  # no part of a row left behind
    assert (run / "events.jsonl").read_bytes() == events  # the status event found no room: no part of it
    assert not list(run.rglob("*.tmp")) and loop.folder.owner() is None


def test_a_resume_that_finds_the_disk_full_leaves_the_folder_unlocked(tmp_path, disk):
    loop = TrainingLoop(new_plan(tmp_path, iterations=4))
    while not loop.done:
        loop.step()
    assert loop.close() is Status.FINISHED
    disk(0)
    with pytest.raises(storage.DiskFull, match="writing config.json"):
        plan.resume(loop.folder.path, iterations=6, threads=1)
    assert loop.folder.owner() is None  # not held by this process until it exits (the app's Resume again)
    disk(None)
    resumed = TrainingLoop(plan.resume(loop.folder.path, iterations=6, threads=1))
    while not resumed.done:
        resumed.step()
    assert resumed.close() is Status.FINISHED and resumed.iteration == 6


def test_torchs_error_counts_as_a_full_disk_only_when_the_room_is_short(tmp_path, monkeypatch):
    def save(*args, **kwargs):
        raise RuntimeError(TORCH_TEXT)  # without the OSError in its chain

    monkeypatch.setattr(torch, "save", save)
    monkeypatch.setattr(storage, "_free", lambda folder: 10**9)
    with pytest.raises(RuntimeError, match="inline_container"):
        storage.atomic_save(tmp_path / "a.pt", {"x": torch.zeros(1000)})
    monkeypatch.setattr(storage, "_free", lambda folder: 1200)
    with pytest.raises(storage.DiskFull) as raised:
        storage.atomic_save(tmp_path / "a.pt", {"x": torch.zeros(1000)})
    assert (
        str(raised.value)
        == f"disk full: no space left in {tmp_path} (writing a.pt needed about 4.0 kB, 1.2 kB free)"
    )
    assert not list(tmp_path.iterdir())


def test_the_cli_on_a_full_disk_exits_1_with_one_line_and_resumes_once_there_is_room(tmp_path, monkeypatch):
    real_save, saves = torch.save, []

    def save(state, file, *args, **kwargs):  # the third checkpoint meets a full disk, as torch reports it
        saves.append(state["iteration"])
        if len(saves) < 3:
            return real_save(state, file, *args, **kwargs)
        file.write(b"PK\x03\x04")
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            raise RuntimeError(TORCH_TEXT)  # noqa: B904 (as torch's __exit__ does: the OSError is its context)

    monkeypatch.setattr(torch, "save", save)
    code, out, err = cli(
        *TRAIN, "--iterations", 8, "--checkpoint-every", 2, "--runs-dir", tmp_path, "--name", "run"
    )
    run = tmp_path / "run"
    assert code == 1 and out.strip().splitlines()[-1] == str(run) and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    pattern = reason_pattern(run, "checkpoints/last.pt", 4).replace("0 B free", r"[\d.]+ (B|kB|MB|GB) free")
    assert re.fullmatch(f"failed: {pattern}", line), line
    assert RunFolder(run).logged_status() == (Status.FAILED, line.removeprefix("failed: "))
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["iteration"] == 4

    monkeypatch.setattr(torch, "save", real_save)  # space freed
    code, _, err = cli("train", "--resume", run)
    assert code == 0 and err.strip().splitlines()[-1] == "finished: reached 8 iterations", err
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["iteration"] == 8


# ---- a full disk, real (a small tmpfs; where mounting is allowed)


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs: two checkpoints of the mlp (6.8 MB each) fit, a third does not."""
    path = tmp_path / "disk"
    path.mkdir()
    if not shutil.which("mount") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(path)], capture_output=True)
    if done.returncode:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.decode().strip()}")
    yield path
    subprocess.run(["umount", "-l", str(path)], check=True)


def test_a_real_full_disk(small_disk):
    code, out, err = cli(
        *TRAIN, "--iterations", 8, "--checkpoint-every", 2, "--runs-dir", small_disk, "--name", "run"
    )
    run = small_disk / "run"
    assert code == 1 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    pattern = reason_pattern(run, "checkpoints/last.pt", 4).replace("0 B free", r"[\d.]+ (B|kB|MB) free")
    assert re.fullmatch(f"failed: {pattern}", line), line
    events = [json.loads(text) for text in (run / "events.jsonl").read_text().splitlines()]
    assert events[-2]["reason"] == line.removeprefix("failed: ") and "Errno 28" in events[-1]["text"]
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["iteration"] == 4
    assert not list(run.rglob("*.tmp"))

    (run / "checkpoints" / "iter_0000002.pt").unlink()  # space freed: the oldest kept checkpoint
    code, _, err = cli("train", "--resume", run, "--iterations", 6)
    assert code == 0 and err.strip().splitlines()[-1] == "finished: reached 6 iterations", err
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["iteration"] == 6
