"""The run folder: checkpoints (last and previous, versioned, damage reported), the one-writer lock, tolerant
readers of metrics and events."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gan_core.config import ConfigError
from gan_core.engine.presets import resolve
from gan_core.folder.run_folder import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    RunFolder,
    RunLocked,
    Status,
    list_runs,
    run_info,
)

ROOT = Path(__file__).resolve().parents[1]


def state(iteration: int) -> dict:
    """The keys a checkpoint must have, with small values."""
    return {"trainer": {"w": torch.ones(3) * iteration}, "iteration": iteration, "config": {}, "knobs": {},
            "spec": {}}  # fmt: skip


@pytest.fixture
def folder(tmp_path) -> RunFolder:
    folder = RunFolder.create(tmp_path, "run")
    folder.write_config(*resolve("ring"))
    return folder


# ---- checkpoints


def test_a_new_checkpoint_keeps_the_one_before_as_previous(folder):
    folder.save_checkpoint(state(10))
    assert not folder.previous_checkpoint.exists()
    folder.save_checkpoint(state(20))
    assert folder.load_checkpoint()["iteration"] == 20
    previous = folder.load_checkpoint(path=folder.previous_checkpoint)
    assert previous["iteration"] == 10 and previous["format"] == CHECKPOINT_FORMAT
    assert sorted(p.name for p in folder.checkpoint.parent.iterdir()) == ["last.pt", "previous.pt"]


class Code:  # pickled as a reference to this class: weights_only loading refuses it
    pass


DAMAGE = {
    "truncated": (lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 3]), "is truncated or not a checkpoint"),
    "empty": (lambda path: path.write_bytes(b""), "is empty"),
    "text": (lambda path: path.write_text("not a checkpoint"), "is truncated or not a checkpoint"),
    "code": (lambda path: torch.save({**state(5), "x": Code()}, path), "holds Python objects (test_folder.Code), not only tensors"),
    "foreign": (lambda path: torch.save({"weights": torch.zeros(2)}, path), "is not a gan_core checkpoint"),
    "newer": (lambda path: torch.save({**state(5), "format": CHECKPOINT_FORMAT + 1}, path), "has checkpoint format"),
}  # fmt: skip


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_checkpoint_is_named_with_its_problem(folder, damage):
    folder.save_checkpoint(state(10))
    spoil, message = DAMAGE[damage]
    spoil(folder.checkpoint)
    with pytest.raises(CheckpointError) as error:
        folder.load_checkpoint()
    text = str(error.value)
    assert text.startswith("run/checkpoints/last.pt ") and message in text and "\n" not in text


def test_resume_falls_back_to_the_previous_checkpoint_and_says_so(folder):
    folder.save_checkpoint(state(10))
    folder.save_checkpoint(state(20))
    DAMAGE["truncated"][0](folder.checkpoint)
    checkpoint, note = folder.load_for_resume()
    assert checkpoint["iteration"] == 10
    assert "last.pt is truncated" in note and "previous checkpoint (iteration 10)" in note
    folder.previous_checkpoint.write_bytes(b"")
    with pytest.raises(CheckpointError, match="last.pt is truncated"):  # both damaged: the last one's problem
        folder.load_for_resume()


def test_a_checkpoint_without_a_version_reads_as_version_1(folder):
    folder.checkpoint.parent.mkdir()
    torch.save(state(7), folder.checkpoint)  # as checkpoints were written before the version field
    assert folder.load_checkpoint()["iteration"] == 7


# ---- the lock


def test_one_writer_per_folder(folder):
    lock = folder.lock()
    try:
        assert folder.owner().pid == os.getpid() and folder.owner().host == socket.gethostname()
        with pytest.raises(RunLocked) as error:
            folder.lock()  # a second writer in this very process (another tab, another thread)
        assert f"process {os.getpid()} on {socket.gethostname()}" in str(error.value)
        with pytest.raises(RunLocked, match="stop it before deleting it"):
            folder.delete()
    finally:
        lock.release()
    assert folder.owner() is None and lock.stale is None
    folder.lock().release()  # free again


def test_a_stale_lock_of_a_killed_process_is_taken_over(folder):
    script = ("import sys, time; from gan_core.folder.run_folder import RunFolder\n"
              "lock = RunFolder(sys.argv[1]).lock(); print('locked', flush=True); time.sleep(60)")  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", script, str(folder.path)], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "locked"
        assert folder.owner().pid == proc.pid
        with pytest.raises(RunLocked, match=f"process {proc.pid} on"):
            folder.lock()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert folder.owner() is None  # the OS released it with the process
    lock = folder.lock()
    assert lock.stale.pid == proc.pid  # its name was left behind: a stale lock, taken over
    lock.release()


def test_a_run_whose_process_died_reads_as_interrupted(folder):
    folder.log("status", 5, status="running", reason="")
    info = run_info(folder)
    assert info.status is Status.INTERRUPTED and "killed or crashed" in info.reason and info.owner is None
    lock = folder.lock()
    try:
        assert run_info(folder).status is Status.RUNNING
    finally:
        lock.release()


# ---- new folders and damaged files


def test_create_refuses_a_file_as_runs_folder_and_an_overlong_name(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        RunFolder.create(tmp_path / "file" / "runs", "run")
    with pytest.raises(ConfigError, match="name is 300 characters long: allowed 1 to 100"):
        RunFolder.create(tmp_path, "n" * 300)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    assert RunFolder.create(tmp_path, "a b/c").name == "a-b-c"


@pytest.mark.parametrize(
    ("text", "message"),
    [("{not json", "is invalid: Expecting property name"), ('{"config": {"lr": 1}}', "is invalid"),
     ('{"config": {"batch_size": 0}, "knobs": {}}', "batch_size 0 is out of range")],
)  # fmt: skip
def test_an_invalid_config_is_one_line_and_the_folder_is_left_out_of_listings(folder, text, message):
    (folder.path / "config.json").write_text(text)
    with pytest.raises(ConfigError, match=message) as error:
        folder.read_config()
    assert "\n" not in str(error.value)
    assert list_runs(folder.path.parent) == []


def test_metrics_and_events_readers_skip_damaged_lines(folder):
    folder.write_metrics(("iteration", "score_g"), np.array([[1, 0.5], [2, 0.4]], np.float32), append=False)
    with open(folder.metrics_path, "a") as fh:
        fh.write("3,abc\n4,0.3\n5")  # a non-numeric row, a good one, a row cut short by a crash
    columns, rows = folder.read_metrics()
    assert columns == ("iteration", "score_g") and rows[:, 0].tolist() == [1, 2, 4]
    assert folder.last_metrics() == {"iteration": 4.0, "score_g": pytest.approx(0.3)}
    folder.log("status", 1, status="running", reason="")
    with open(folder.path / "events.jsonl", "a") as fh:
        fh.write('{"event": "status", "stat')
    assert [e["event"] for e in folder.read_events()] == ["status"]
    assert folder.logged_status() == (Status.RUNNING, "")


def test_grids_are_listed_in_iteration_order(folder):
    for it in (100, 1, 20):
        folder.grid_path(it).parent.mkdir(exist_ok=True)
        folder.grid_path(it).write_bytes(b"png")
    (folder.path / "samples" / "notes.png").write_bytes(b"")
    assert [it for it, _ in folder.grids()] == [1, 20, 100]
