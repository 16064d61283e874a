"""One run trained by two processes under torchrun (gloo, CPU): one metrics row an iteration, the replicas
bitwise identical at every checkpoint, control requests applied by both processes at one iteration, resuming
across process counts, a killed process restarted from the last checkpoint (or, without restarts, the run left
interrupted), and bad input refused before anything is written. Each torchrun start costs 10-30 s here."""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch.distributed
from conftest import cli

import gan_core.training.distributed
from gan_core.folder.run_folder import RunFolder, run_info
from gan_core.folder.status import Status

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed here")

ROOT = Path(__file__).resolve().parents[1]
BATCH = 64  # a process's share of each global batch (the ring preset's 512 is slow on two shared cores)
START_S = 240  # a torchrun start and a few hundred iterations, on a busy 2-core machine


def train_args(runs: Path, name: str, *more) -> list[str]:
    return ["train", "--preset", "ring", "--device", "cpu", "--batch-size", str(BATCH), "--threads", "1",
            "--runs-dir", str(runs), "--name", name, *map(str, more)]  # fmt: skip


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "GAN_RUNS_DIR"}


def gan_core_process(args: list[str], log: Path) -> subprocess.Popen:
    """`python -m gan_core ARGS` as its own process group; stdout and stderr into files (never a full pipe)."""
    with open(log.with_suffix(".out"), "w") as out, open(log.with_suffix(".err"), "w") as err:
        return subprocess.Popen([sys.executable, "-m", "gan_core", *args], cwd=ROOT, env=env(), stdout=out,
                                stderr=err, start_new_session=True)  # fmt: skip


def finish(proc: subprocess.Popen, log: Path, timeout: float = START_S) -> tuple[int, str, str]:
    """Wait for the process; (exit code, stdout, stderr)."""
    proc.wait(timeout=timeout)
    return proc.returncode, log.with_suffix(".out").read_text(), log.with_suffix(".err").read_text()


@contextlib.contextmanager
def ended(proc: subprocess.Popen, run: Path):
    """On the way out, whatever happened: the launcher and torchrun end (torchrun ends its workers), and any
    worker the run's heartbeat named is killed."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=40)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in RunFolder(run).heartbeat().get("pids", []):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def run_gan_core(args: list[str], log: Path, run: Path) -> tuple[int, str, str]:
    with ended(gan_core_process(args, log), run) as proc:
        return finish(proc, log)


def wait_for_iteration(run: Path, above: int, proc: subprocess.Popen, timeout: float = START_S) -> dict:
    """The heartbeat once it shows an iteration above `above` (fails if the launcher ends first)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        beat = RunFolder(run).heartbeat()
        if beat.get("iteration", 0) > above and beat.get("status") == "running":
            return beat
        assert proc.poll() is None, f"the launcher ended (exit {proc.returncode}) before iteration {above}"
        time.sleep(0.1)
    raise AssertionError(f"no heartbeat above iteration {above} within {timeout} s")


def iterations(run: Path) -> list[int]:
    columns, rows = RunFolder(run).read_metrics()
    return rows[:, columns.index("iteration")].astype(int).tolist()


def events(run: Path, kind: str) -> list[dict]:
    return [e for e in RunFolder(run).read_events() if e["event"] == kind]


def statuses(run: Path) -> list[str]:
    return [e["status"] for e in events(run, "status")]


# ---- a run of two processes


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> Path:
    """A finished two-process ring run of 300 iterations, checkpointed and sampled every 100."""
    runs = tmp_path_factory.mktemp("pair")
    args = train_args(runs, "pair", "--nproc", 2, "--iterations", 300, "--checkpoint-every", 100,
                      "--sample-every", 100)  # fmt: skip
    code, _, err = run_gan_core(args, runs / "log", runs / "pair")
    assert code == 0, err[-3000:]
    return runs / "pair"


def test_two_processes_train_one_run(pair):
    out, err = (pair.parent / "log.out").read_text(), (pair.parent / "log.err").read_text()
    assert out.strip().splitlines()[-1] == str(pair)  # the launcher's last line: the run folder
    assert f"run {pair} on 2 processes on cpu" in err and f"batch {BATCH} x 2" in err
    assert err.strip().splitlines()[-1] == "finished: reached 300 iterations"
    assert iterations(pair) == list(range(1, 301))  # rank 0 alone writes: one row an iteration
    assert [i for i, _ in RunFolder(pair).grids()] == [1, 100, 200, 300]
    assert RunFolder(pair).load_checkpoint()["iteration"] == 300
    saved = json.loads((pair / "config.json").read_text())
    assert saved["config"]["nproc"] == 2 and saved["effective_batch"] == 2 * BATCH
    replicas = events(pair, "replicas")
    assert {e["iteration"] for e in replicas} == {100, 200, 300}
    assert all(e["identical"] is True and e["processes"] == 2 for e in replicas)
    assert statuses(pair) == ["running", "finished"]
    assert events(pair, "start")[0]["processes"] == 2
    assert RunFolder(pair).owner() is None and run_info(RunFolder(pair)).status == Status.FINISHED


def test_a_control_request_applies_on_both_processes_at_one_iteration(tmp_path):
    run = tmp_path / "live"
    proc = gan_core_process(
        train_args(tmp_path, "live", "--nproc", 2, "--iterations", 100_000), tmp_path / "log"
    )
    with ended(proc, run):
        wait_for_iteration(run, 10, proc)
        code, out, err = cli("control", run, "--lr-d", "0.0005", "--wait", "--timeout", 60)
        assert code == 0, err
        changed_at = int(re.fullmatch(r"applied knobs \{'lr_d': 0.0005\} at iteration (\d+)", out.strip())[1])
        beat = wait_for_iteration(run, changed_at + 20, proc)
        report = json.loads(cli("status", run, "--json")[1])
        assert report["status"] == "running" and report["pids"] == beat["pids"]
        assert report["host"] == beat["host"]
        assert len(set(beat["pids"])) == 2 and proc.pid not in beat["pids"]  # the workers, not the launcher
        code, out, err = cli("control", run, "--stop", "--wait", "--timeout", 60)
        assert code == 0, err
        stopped_at = int(re.fullmatch(r"applied stop at iteration (\d+)", out.strip())[1])
        code, _, err = finish(proc, tmp_path / "log")
    assert code == 130, err[-3000:]  # stopped by hand, as after Ctrl-C
    assert [(e["iteration"], e["changes"]) for e in events(run, "knobs")] == [(changed_at, {"lr_d": 0.0005})]
    columns, rows = RunFolder(run).read_metrics()
    assert iterations(run) == list(range(1, stopped_at + 1))
    lr_d = rows[:, columns.index("lr_d")]
    its = np.arange(1, stopped_at + 1)
    expected = np.where(its < changed_at, 1e-3, 5e-4) * 0.95 ** ((its - 1) // 500)  # the preset's staircase
    np.testing.assert_array_equal(lr_d, expected.astype(np.float32))
    # the final checkpoint's check: both processes trained with the new rate from the same iteration
    replicas = events(run, "replicas")
    assert replicas[-1]["iteration"] == stopped_at and all(e["identical"] for e in replicas)
    assert RunFolder(run).load_checkpoint()["knobs"]["lr_d"] == 0.0005
    assert statuses(run)[-1] == "stopped"


# ---- resuming across process counts


def test_a_two_process_checkpoint_resumes_on_one_process(pair, tmp_path):
    run = tmp_path / "pair"
    shutil.copytree(pair, run)
    checked = len(events(run, "replicas"))
    code, out, err = cli("train", "--resume", run, "--iterations", 340)
    assert code == 0 and out.strip().splitlines()[-1] == str(run), err
    assert iterations(run) == list(range(1, 341))
    saved = json.loads((run / "config.json").read_text())
    assert saved["config"]["nproc"] == 1 and saved["effective_batch"] == BATCH
    assert RunFolder(run).load_checkpoint()["iteration"] == 340
    assert events(run, "resume")[-1]["from_iteration"] == 300
    assert len(events(run, "replicas")) == checked  # one process: nothing to compare


def test_a_two_process_run_branches_on_two_processes(pair, tmp_path):
    parent = tmp_path / "pair"
    shutil.copytree(pair, parent)
    branch = tmp_path / "pair-at-200"
    args = ["train", "--branch", f"{parent}@200", "--lr-d", "0.0005", "--iterations", "260", "--nproc", "2"]
    code, out, err = run_gan_core(args, tmp_path / "log", branch)
    assert code == 0 and out.strip().splitlines()[-1] == str(branch), err[-3000:]
    config = json.loads((branch / "config.json").read_text())["config"]
    assert (config["parent"], config["branched_at"], config["nproc"]) == (str(parent.resolve()), 200, 2)
    assert iterations(branch) == list(range(1, 261))
    (columns, ours), (_, theirs) = RunFolder(branch).read_metrics(), RunFolder(parent).read_metrics()
    scores = [columns.index(c) for c in ("score_g", "score_d", "loss_g", "loss_d")]
    np.testing.assert_array_equal(ours[:200, scores], theirs[:200, scores])  # the parent's history
    assert [(e["iteration"], e["changes"]) for e in events(branch, "knobs")] == [(201, {"lr_d": 0.0005})]
    assert [(e["iteration"], e["identical"]) for e in events(branch, "replicas")] == [(260, True)]


def test_a_one_process_run_resumes_on_two(tmp_path):
    code, _, err = cli(*train_args(tmp_path, "one", "--iterations", 40, "--checkpoint-every", 20))
    assert code == 0, err
    run = tmp_path / "one"
    code, out, err = run_gan_core(["train", "--resume", str(run), "--iterations", "80", "--nproc", "2"],
                                  tmp_path / "log", run)  # fmt: skip
    assert code == 0 and out.strip().splitlines()[-1] == str(run), err[-3000:]
    assert iterations(run) == list(range(1, 81))
    saved = json.loads((run / "config.json").read_text())
    assert saved["config"]["nproc"] == 2 and saved["effective_batch"] == 2 * BATCH
    assert RunFolder(run).load_checkpoint()["iteration"] == 80
    replicas = events(run, "replicas")
    assert replicas and replicas[-1]["iteration"] == 80 and all(e["identical"] for e in replicas)
    assert statuses(run)[-1] == "finished"


# ---- a process killed


def test_a_killed_process_is_restarted_from_the_last_checkpoint(tmp_path):
    run = tmp_path / "restarted"
    args = train_args(tmp_path, "restarted", "--nproc", 2, "--max-restarts", 1, "--iterations", 600,
                      "--checkpoint-every", 200)  # fmt: skip
    proc = gan_core_process(args, tmp_path / "log")
    with ended(proc, run):
        beat = wait_for_iteration(run, 220, proc)
        assert beat["world"] == 2 and len(beat["pids"]) == 2
        os.kill(beat["pids"][1], signal.SIGKILL)
        code, out, err = finish(proc, tmp_path / "log", timeout=2 * START_S)
    assert code == 0 and out.strip().splitlines()[-1] == str(run), err[-3000:]
    assert iterations(run) == list(range(1, 601))  # rows after the checkpoint trained again, not repeated
    # in order: the first attempt interrupted, the resume, the run finished
    story = [e["status"] if e["event"] == "status" else e["event"] for e in RunFolder(run).read_events()
             if e["event"] in ("status", "resume")]  # fmt: skip
    assert story[-1] == "finished" and story.count("resume") == 1
    logged = RunFolder(run).read_events()
    cut = next(i for i, e in enumerate(logged) if e["event"] == "resume")
    # The first process logs "interrupted" when its collective fails; blocked in one when torchrun ends it, it is
    # killed before it can, and the restarted first process says whose lock it took over.
    said = [e for e in logged[:cut] if e.get("status") == "interrupted"]
    took_over = any("ended without releasing it" in note for note in logged[cut].get("notes", []))
    assert (said and said[0]["iteration"] > 220) or took_over, story
    assert story.index("running") < story.index("resume"), story
    saved = [e["iteration"] for e in logged[:cut] if e["event"] == "replicas"]  # each checkpoint checks them
    last_saved = saved[-1]
    assert last_saved == 200
    assert events(run, "resume")[0]["from_iteration"] == last_saved
    assert any("torchrun restart 1" in e.get("text", "") for e in events(run, "note"))
    assert all(e["identical"] for e in events(run, "replicas"))


def test_without_restarts_a_killed_process_leaves_the_run_interrupted(tmp_path):
    run = tmp_path / "killed"
    args = train_args(tmp_path, "killed", "--nproc", 2, "--iterations", 100_000, "--checkpoint-every", 50)
    proc = gan_core_process(args, tmp_path / "log")
    with ended(proc, run):
        beat = wait_for_iteration(run, 70, proc)
        os.kill(beat["pids"][1], signal.SIGKILL)
        code, out, err = finish(proc, tmp_path / "log")
    assert code == 1, err[-3000:]  # torchrun's code: the run may be resumed
    info = run_info(RunFolder(run))
    assert info.status == Status.INTERRUPTED, (info.status, info.reason)
    assert RunFolder(run).owner() is None
    state = RunFolder(run).load_checkpoint()
    assert state["iteration"] >= 50 and state["iteration"] % 50 == 0
    done = iterations(run)
    assert done == list(range(1, len(done) + 1)) and len(done) >= state["iteration"]


# ---- bad input


def test_nproc_zero_is_refused_and_creates_nothing(tmp_path):
    code, out, err = cli(*train_args(tmp_path / "runs", "zero", "--nproc", 0))
    assert code == 2 and out == "" and err.strip() == "error: nproc 0 is out of range: allowed [1, 1024]"
    assert not (tmp_path / "runs").exists()


def test_nproc_without_torchrun_is_refused_and_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(gan_core.training.distributed, "torchrun_missing", lambda: "no torchrun (test)")
    code, out, err = cli(*train_args(tmp_path / "runs", "missing", "--nproc", 2))
    assert code == 2 and out == "" and err.strip() == "error: --nproc 2 needs torchrun: no torchrun (test)"
    assert not (tmp_path / "runs").exists()
