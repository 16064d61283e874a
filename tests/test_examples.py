"""examples/minimal.py, the README's ten-line driver, runs as printed and leaves a finished run folder."""

import os
import subprocess
import sys
from pathlib import Path

from gan_core.folder.run_folder import RunFolder
from gan_core.folder.status import Status

ROOT = Path(__file__).resolve().parent.parent


def test_the_minimal_driver_trains_a_run_to_its_end(tmp_path):
    result = subprocess.run([sys.executable, "examples/minimal.py", str(tmp_path / "runs"), "12"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    ended, path = result.stdout.strip().splitlines()
    assert ended == "finished reached 12 iterations"
    folder = RunFolder.open(path)
    assert folder.logged_status().status is Status.FINISHED and folder.load_checkpoint()["iteration"] == 12
    columns, rows = folder.read_metrics()
    assert rows[:, columns.index("iteration")].tolist() == list(range(1, 13))


def test_the_readme_shows_the_example_as_it_is():
    code = (ROOT / "examples" / "minimal.py").read_text()
    readme = (ROOT / "README.md").read_text()
    for line in (
        "loop = TrainingLoop(new_run(",
        "while not loop.done:",
        "step = loop.step()",
        "print(loop.close(error), loop.reason)",
    ):
        assert line in code and line in readme
