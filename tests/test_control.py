"""The control channel from the command line: `control` steers a live run (knobs applied once, at the iteration it
prints; pause, step, continue, save, stop), `status` reports it, bad requests are refused with one line and exit 2
before anything reaches the folder, and the run lists its control directory no more often than POLL_SECONDS."""

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import cli, wait_for

from gan_core.folder import control
from gan_core.folder.run_folder import RunFolder, run_info
from gan_core.folder.status import Status

APPLIED = re.compile(r"applied (.+) at iteration (\d+)")


def applied_at(*args) -> int:
    """Send `control RUN ARGS --wait`; the iteration it printed as where the request applied."""
    code, out, err = cli("control", *args, "--wait", "--timeout", 20)
    assert code == 0 and err == "", err
    match = APPLIED.fullmatch(out.strip())
    assert match, out
    return int(match.group(2))


def listing(directory: Path) -> dict[str, bytes]:
    """Every file in a folder, with its content."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())} if directory.exists() else {}


def lr_d_by_iteration(run_dir: Path) -> dict[int, float]:
    columns, rows = RunFolder(run_dir).read_metrics()
    iterations = rows[:, columns.index("iteration")].astype(int).tolist()
    assert iterations == list(range(1, len(iterations) + 1))  # one row an iteration
    return dict(zip(iterations, rows[:, columns.index("lr_d")].tolist(), strict=True))


# ---- a live run, steered


def test_a_knob_change_applies_once_at_the_iteration_it_prints(live):
    it = applied_at(live.run_dir, "--lr-d", "0.001")
    assert it >= 4  # after the iterations already trained
    assert wait_for(lambda: live.iteration >= it + 3)
    live.stop()
    assert live.status == Status.STOPPED
    knobs = [e for e in RunFolder(live.run_dir).read_events() if e["event"] == "knobs"]
    assert [(e["iteration"], e["changes"]) for e in knobs] == [(it, {"lr_d": 0.001})]
    lr_d = lr_d_by_iteration(live.run_dir)
    assert all(v == np.float32(2e-4) for i, v in lr_d.items() if i < it)
    assert all(v == np.float32(1e-3) for i, v in lr_d.items() if i >= it) and max(lr_d) >= it + 3
    assert listing(live.run_dir / "control") == {}  # the request taken, its reply read and removed


def test_pause_step_save_continue_and_stop(live):
    run_dir = live.run_dir
    paused_at = applied_at(run_dir, "--pause")
    code, out, _ = cli("status", run_dir)
    assert code == 0 and f"status      paused (paused at iteration {paused_at})" in out
    assert f"iteration   {paused_at:,} / 100,000" in out
    time.sleep(0.3)
    assert live.iteration == paused_at  # paused: nothing trains

    assert applied_at(run_dir, "--step", "3") == paused_at
    assert wait_for(lambda: live.iteration >= paused_at + 3)
    saved_at = applied_at(run_dir, "--save")  # applied at a boundary after the steps: none beyond the three
    assert saved_at == paused_at + 3 == live.iteration and live.status == Status.PAUSED
    assert RunFolder(run_dir).load_checkpoint()["iteration"] == saved_at
    columns, rows = RunFolder(run_dir).read_metrics()
    assert rows[-1, columns.index("iteration")] == saved_at  # the steps' rows written while paused

    assert applied_at(run_dir, "--continue") == saved_at
    assert wait_for(lambda: live.iteration >= saved_at + 5)
    assert json.loads(cli("status", run_dir, "--json")[1])["status"] == "running"

    stopped_at = applied_at(run_dir, "--stop")
    assert live.wait(timeout=20) and live.status == Status.STOPPED
    assert live.iteration == stopped_at == RunFolder(run_dir).load_checkpoint()["iteration"]
    assert run_info(RunFolder(run_dir)).status == Status.STOPPED
    code, out, _ = cli("status", run_dir)
    assert code == 0 and f"status      stopped (stopped at iteration {stopped_at})" in out


def test_status_json_names_the_process_host_and_heartbeat(live):
    code, out, err = cli("status", live.run_dir, "--json")
    assert code == 0 and err == ""
    report = json.loads(out)
    assert set(report) == {
        "run",
        "status",
        "reason",
        "iteration",
        "target",
        "pids",
        "host",
        "heartbeat_age_s",
    }
    assert report["run"] == str(live.run_dir) and report["status"] == "running" and report["reason"] == ""
    assert report["pids"] == [os.getpid()] and report["host"] == socket.gethostname()
    assert report["target"] == 100_000 and 0 <= report["iteration"] <= live.iteration
    assert 0 <= report["heartbeat_age_s"] <= control.STALE_SECONDS


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("finished")
    code, _, err = cli("train", "--arch", "mlp", "--dataset", "ring", "--batch-size", 64, "--iterations", 3,
                       "--device", "cpu", "--eval-every", 0, "--runs-dir", root, "--name", "done")  # fmt: skip
    assert code == 0, err
    return root / "done"


def test_status_of_a_finished_run_has_no_live_process(finished):
    report = json.loads(cli("status", finished, "--json")[1])
    assert report["status"] == "finished" and report["reason"] == "reached 3 iterations"
    assert report["iteration"] == report["target"] == 3


# ---- refused requests: one line, exit 2, nothing written into the control directory


def refused(run_dir: Path, *args) -> str:
    """`control RUN_DIR ARGS`: exit 2, one line, nothing written; returns the line."""
    before = listing(run_dir / "control")
    code, out, err = cli("control", run_dir, *args)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert listing(run_dir / "control") == before
    return err.strip()


def test_control_of_a_missing_folder_is_refused(tmp_path):
    line = refused(tmp_path / "nosuch", "--lr-d", "0.001")
    assert line == f"error: {tmp_path / 'nosuch'} is not a run folder: it has no config.json"
    assert not (tmp_path / "nosuch").exists()


def test_control_of_a_finished_run_is_refused(finished):
    assert (finished / "control").is_dir()  # the run made it; a refused request adds nothing to it
    line = refused(finished, "--lr-d", "0.001", "--wait")
    assert "has no live run (its log says finished)" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--flip-prob", "1.5"], "flip_prob 1.5 is out of range: allowed [0, 1]"),
        (["--lr-d", "-1"], "lr_d -1.0 is out of range: allowed [0, 1]"),
        (["--step", "0"], "step 0 is out of range: allowed [1, 1000000]"),
        (["--d-iters", "0"], "d_iters 0 is out of range"),
        ([], "nothing to ask: give --lr-g, --lr-d"),
        (["--pause", "--stop"], "not allowed with argument"),
    ],
)
def test_a_bad_request_to_a_live_run_is_refused_before_it_is_sent(live, args, message):
    line = refused(live.run_dir, *args, "--wait")
    assert message in line, line
    assert live.status == Status.RUNNING
    assert not [e for e in RunFolder(live.run_dir).read_events() if e["event"] == "knobs"]


def test_a_negative_timeout_is_refused_before_the_request_is_sent(live):
    line = refused(live.run_dir, "--lr-d", "0.001", "--wait", "--timeout", "-1")
    assert "timeout -1" in line, line


def test_step_on_a_running_run_is_refused_by_the_run(live):
    code, out, err = cli("control", live.run_dir, "--step", "2", "--wait", "--timeout", 20)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.strip() == "error: step 2: step: the run is not paused (pause it first)"
    assert listing(live.run_dir / "control") == {}  # the request taken, the refusal read and removed
    assert live.status == Status.RUNNING


# ---- the run's side


def test_requests_list_the_directory_at_most_every_poll(tmp_path, monkeypatch):
    channel = control.Channel(tmp_path / "control", tmp_path / "heartbeat.json")
    calls = []
    scandir = os.scandir
    monkeypatch.setattr(control.os, "scandir", lambda path: calls.append(path) or scandir(path))
    end = time.monotonic() + 0.5
    found = []
    while time.monotonic() < end:
        found += channel.requests()
    assert found == [] and 2 <= len(calls) <= 4  # 0.5 s at one listing per 0.2 s
    calls.clear()
    assert channel.requests(wait=0.5) == [] and len(calls) <= 4  # waiting polls at the same pace
    request = control.send(tmp_path / "control", "knobs", {"lr_d": 0.001})
    assert channel.requests(wait=1.0) == [request]
    assert listing(tmp_path / "control") == {}


def test_requests_sent_without_wait_leave_no_reply_behind(live):
    checkpoint = RunFolder(live.run_dir).checkpoint
    for _ in range(3):
        assert cli("control", live.run_dir, "--save")[0] == 0
    assert wait_for(lambda: checkpoint.is_file() and listing(live.run_dir / "control") == {}, timeout=20)
    time.sleep(3 * control.POLL_SECONDS)  # long after they were applied: still nothing left in control/
    assert listing(live.run_dir / "control") == {}


def test_status_and_control_start_without_torch(finished):
    """They answer in a fraction of a second: the light path imports no torch (nor torchvision)."""
    code = ("import sys; from gan_core.cli import main; main(['status', sys.argv[1]]); "
            "main(['control', sys.argv[1], '--pause']); print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))")  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", code, str(finished)], capture_output=True, text=True, timeout=60
    )
    assert "status      finished" in result.stdout and "has no live run" in result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
