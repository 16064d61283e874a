"""bench/gpu.sh --dry-run: every step of the one command a lent GPU runs, here on the CPU with tiny sizes, so that
the script cannot rot while no session is lent a GPU (about 2 minutes on an idle 2-core machine)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STEPS = ["env", "tests", "quality", "app", "engine"]
FILES = {"summary.md", "env.txt", "tests.txt", "quality.txt", "app.txt", "engine.txt", "engine.json"}


def summary_rows(stdout: str) -> dict[str, list[str]]:
    """The summary table's rows: step -> [status, seconds, result]."""
    rows = [line.split("|")[1:-1] for line in stdout.splitlines() if line.startswith("| ")]
    # after the header and its |---| line
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows[2:]}


@pytest.mark.slow
def test_the_dry_run_runs_every_step_on_the_cpu_and_writes_its_files(tmp_path):
    out = tmp_path / "out"
    env = os.environ | {"OUT": str(out), "PYTHON": sys.executable}
    done = subprocess.run(["bash", "bench/gpu.sh", "--dry-run"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    rows = summary_rows(done.stdout)
    assert list(rows) == STEPS and all(row[0] == "ok" for row in rows.values()), rows
    assert rows["tests"][2].startswith("9 passed") and rows["app"][2].startswith("1 passed"), rows
    assert rows["env"][2].endswith("; CPU")
    assert rows["quality"][2] == "0/2 meet the bars"  # after seconds of training
    assert {path.name for path in out.iterdir()} == FILES  # at most 8 come back from a device call
    assert (out / "summary.md").read_text() in done.stdout
    mlp = json.loads((out / "engine.json").read_text())["results"]["mlp"]
    assert list(mlp) == ["bare", "engine", "precision=bf16", "channels-last", "no-fused"]
    assert mlp["engine"]["to"] == "bare" and mlp["no-fused"]["to"] == "engine" and mlp["bare"]["its"] > 0
    quality = (out / "quality.txt").read_text().splitlines()
    assert [line.split()[0] for line in quality] == ["cntk-dcgan/digits", "keras-wgan/digits"]
    assert all(line.endswith(("PASS", "MISS")) and " it in " in line for line in quality)
