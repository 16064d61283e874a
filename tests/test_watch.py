"""Watching a run through its folder (gan_core.folder.watch) and the app attached to runs it does not train: incremental
reading, interrupted runs, a run started from the command line watched and tuned on the Train page, a run the app
launched in its own processes and found again by a restarted server."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from conftest import wait_for
from streamlit.testing.v1 import AppTest

from dashboard.registry import registry
from gan_core.config import ConfigError
from gan_core.engine.presets import resolve
from gan_core.folder.run_folder import RunFolder, run_info
from gan_core.folder.status import Status
from gan_core.folder.watch import FolderRun, Tail, parse_rows
from gan_core.training.plan import resume
from gan_core.training.run import start_run

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120


pytestmark = pytest.mark.usefixtures("fresh_registry")


def train_cli(runs_dir: Path, name: str, *flags: str) -> subprocess.Popen:
    """`python -m gan_core train` in its own process: a ring run long enough to be steered."""
    command = [sys.executable, "-m", "gan_core", "train", "--preset", "ring", "--device", "cpu", "--threads", "1",
               "--eval-every", "0", "--runs-dir", str(runs_dir), "--name", name, *flags]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)


def heartbeat(path: Path) -> dict:
    return RunFolder(path).heartbeat()


def knob_events(path: Path) -> list[dict]:
    return [e for e in RunFolder(path).read_events() if e["event"] == "knobs"]


# ---- reading


def test_tail_returns_only_complete_new_lines_and_starts_over_when_the_file_is_replaced(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n3,")
    tail = Tail(path)
    assert tail.read() == ("a,b\n1,2\n", True)
    with open(path, "a") as fh:
        fh.write("4\n5,6\n")
    assert tail.read() == ("3,4\n5,6\n", False)  # the line cut short is completed, not lost
    assert tail.read() == ("", False)
    path.write_text("a,b\n9,9\n")  # rewritten (a resume cuts metrics.csv back): smaller, new file
    assert tail.read() == ("a,b\n9,9\n", True)


def test_rows_parse_with_empty_cells_as_nan_and_bad_lines_left_out():
    rows = parse_rows("1,,3\n,5,\n7,8,9\n", 3)
    np.testing.assert_array_equal(
        rows, np.array([[1, np.nan, 3], [np.nan, 5, np.nan], [7, 8, 9]], np.float32)
    )
    rows = parse_rows("1,2,3\n4,x,6\n7,8\n", 3)  # a line damaged by hand, a line cut short
    np.testing.assert_array_equal(rows, np.array([[1, 2, 3]], np.float32))


def test_a_folder_read_bit_by_bit_gives_the_same_history_as_the_run_itself(runs_dir):
    config, knobs = resolve("ring", device="cpu", threads=1, iterations=300, eval_every=0, sample_every=100,
                            batch_size=64)  # fmt: skip
    run = start_run(config, knobs, runs_dir=runs_dir, name="r")
    watched = FolderRun(runs_dir / "r")
    seen = 0
    while run.alive:  # refreshes while it trains, each reading only what is new
        seen = max(seen, len(watched.snapshot().history["iteration"]))
    assert run.wait(60) and run.status is Status.FINISHED
    snap = watched.snapshot()
    mine = run.snapshot()
    for column in ("iteration", "score_g", "score_d", "loss_d", "lr_d"):
        np.testing.assert_allclose(snap.history[column], mine.history[column], rtol=1e-5)
    assert snap.status is Status.FINISHED and snap.iteration == 300 and snap.grid_iteration == 300
    assert snap.grid is not None and snap.grid.dtype == np.uint8 and snap.grid.shape[2] == 3
    assert 0 < seen <= 300


def test_a_run_whose_process_was_killed_reads_as_interrupted(runs_dir):
    process = train_cli(runs_dir, "killed", "--iterations", "100000", "--checkpoint-every", "50")
    path = runs_dir / "killed"
    try:
        assert wait_for(lambda: heartbeat(path).get("iteration", 0) > 60, timeout=TIMEOUT)
        assert FolderRun(path).snapshot().status is Status.RUNNING
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    snap = FolderRun(path).snapshot()
    assert snap.status is Status.INTERRUPTED and "killed or crashed" in snap.reason
    assert RunFolder(path).load_checkpoint()["iteration"] >= 50  # the last good checkpoint is kept


# ---- the app


def test_the_train_page_watches_and_tunes_a_run_started_from_the_command_line(runs_dir):
    process = train_cli(runs_dir, "cli", "--iterations", "100000")
    path = runs_dir / "cli"
    try:
        assert wait_for(lambda: heartbeat(path).get("iteration", 0) > 10, timeout=TIMEOUT)
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()  # a new server finds it
        assert not at.exception
        assert registry().active == path and at.subheader[0].value.startswith("Epoch: ")
        assert "process" in at.get("progress")[0].proto.text  # where it trains: process and host
        at.number_input(key="live-cli-lr_d").set_value(5e-4).run()
        assert not at.exception and not at.error
        assert wait_for(lambda: knob_events(path), timeout=30)
        [event] = knob_events(path)
        assert event["changes"] == {"lr_d": 5e-4}
        at.button(key="live-pause").click().run()
        assert wait_for(lambda: heartbeat(path).get("status") == "paused", timeout=30)
        at.run()
        assert at.button(key="live-pause").label == "Resume"
        at.button(key="live-stop").click().run()
        assert process.wait(60) == 130  # stopped by hand: the CLI's exit code for a stop
    finally:
        if process.poll() is None:
            process.kill()
    columns, rows = RunFolder(path).read_metrics()
    lr_d = rows[:, columns.index("lr_d")]
    first = int(np.argmax(lr_d == np.float32(5e-4)))
    assert rows[first, 0] == event["iteration"] and (lr_d[first:] == np.float32(5e-4)).all()


def test_a_run_launched_in_its_own_processes_outlives_the_server_and_is_found_again(runs_dir):
    config, knobs = resolve("ring", device="cpu", iterations=100000, nproc=2, eval_every=0)
    run = registry().launch(config, knobs, name="own")
    assert wait_for(lambda: heartbeat(run.run_dir).get("iteration", 0) > 5, timeout=TIMEOUT), (
        run.log.read_text()
    )
    assert heartbeat(run.run_dir)["world"] == 2 and run.snapshot().status is Status.RUNNING
    st.cache_resource.clear()  # the server's state is gone (as after a restart): its threads' runs stop
    assert run.process.poll() is None and heartbeat(run.run_dir)["status"] == "running"
    found = registry()  # a new server
    assert found.active == run.run_dir
    snap = found.active_run().snapshot()
    assert snap.status is Status.RUNNING and snap.config.nproc == 2 and "2 processes" in snap.device
    found.active_run().stop(wait=True, timeout=60)
    assert run.process.wait(60) == 130
    assert RunFolder(run.run_dir).logged_status()[0] is Status.STOPPED
    events = [e for e in RunFolder(run.run_dir).read_events() if e["event"] == "replicas"]
    assert events and all(e["identical"] for e in events)
    assert json.loads((run.run_dir / "config.json").read_text())["effective_batch"] == 2 * config.batch_size
    assert os.path.exists(run.log)  # the processes' output, kept beside the runs


def test_a_run_on_another_host_is_live_while_its_heartbeat_is_fresh(runs_dir):
    config, knobs = resolve("ring", device="cpu", threads=1, iterations=3, eval_every=0)
    run = start_run(config, knobs, runs_dir=runs_dir, name="far")
    assert run.wait(60)
    folder = RunFolder(run.run_dir)
    folder.log("status", 3, status="running", reason="")  # as a run on a machine sharing the folder logs it

    def beat(host: str, age: float) -> None:
        beat = {"host": host, "pid": 1, "time": time.time() - age, "status": "running", "iteration": 3}
        (folder.path / "heartbeat.json").write_text(json.dumps(beat))

    beat("elsewhere", 1.0)  # its lock is not visible here (another machine): the heartbeat decides
    assert folder.live() and run_info(folder).status is Status.RUNNING
    with pytest.raises(ConfigError, match="training on elsewhere"):
        resume(folder.path, iterations=10)
    beat("elsewhere", 60.0)  # stale: that machine stopped writing
    assert not folder.live() and run_info(folder).status is Status.INTERRUPTED
    beat(socket.gethostname(), 1.0)  # this host, fresh, but no process holds the lock: killed
    assert not folder.live() and run_info(folder).status is Status.INTERRUPTED


def test_the_runs_page_sends_a_run_to_the_train_page_monitor(runs_dir):
    config, knobs = resolve("ring", device="cpu", threads=1, iterations=3, eval_every=0)
    for name in ("older", "newer"):
        assert start_run(config, knobs, runs_dir=runs_dir, name=name).wait(60)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/2_Runs.py").run()
    assert not at.exception
    at.selectbox(key="watch_run").set_value("older").run()
    at.button(key="watch").click().run()
    assert not at.exception and registry().active == runs_dir / "older"
    assert at.subheader[0].value.startswith("Epoch: 1, Iteration: 3, Elapsed: ")  # the Train page's monitor


def test_the_runs_page_replays_a_tuned_run_with_its_knob_changes(runs_dir):
    config, knobs = resolve("ring", device="cpu", threads=1, iterations=30, eval_every=0, batch_size=64)
    original = start_run(config, knobs, runs_dir=runs_dir, name="tuned")
    assert wait_for(lambda: original.iteration >= 5, timeout=60)
    original.update(lr_d=5e-4)
    assert original.wait(60)
    [(at_iteration, changes)] = [(e["iteration"], e["changes"]) for e in RunFolder(original.run_dir).read_events()
                                 if e["event"] == "knobs"]  # fmt: skip
    at = AppTest.from_file(str(ROOT / "pages" / "2_Runs.py"), default_timeout=TIMEOUT).run()
    at.selectbox(key="replay_run").set_value("tuned").run()
    assert any(f"its 1 knob change at the iterations they took effect: {at_iteration}." in c.value
               for c in at.caption)  # fmt: skip
    at.button(key="replay").click().run()
    assert not at.exception and any("Replaying tuned as tuned-replay" in s.value for s in at.success)
    replay = registry().active_run()
    assert replay.run_dir == runs_dir / "tuned-replay" and replay.wait(60)
    events = RunFolder(replay.run_dir).read_events()
    assert [(e["iteration"], e["changes"]) for e in events if e["event"] == "knobs"] == [
        (at_iteration, changes)
    ]
    (columns, theirs), (_, ours) = (
        RunFolder(original.run_dir).read_metrics(),
        RunFolder(replay.run_dir).read_metrics(),
    )
    lr_d = columns.index("lr_d")
    np.testing.assert_array_equal(ours[:, lr_d], theirs[:, lr_d])
