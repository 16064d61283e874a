"""One run on 1 process against the same run on N processes (torchrun, DDP): iterations/s and images/s.

Each side is `python -m gan_core train --nproc K` as a user runs it, a whole fresh process group, alternated
A B A B. The rate is read from the run's own metrics.csv between the first row past --skip seconds of training
and the last row (startup, data loading and the first iterations left out). With N processes every iteration
trains on N batches (one each), so images/s = it/s x batch x N; on a CPU each process gets 1 thread (torchrun's
OMP_NUM_THREADS=1), the single process all cores (torch's default).
    .venv/bin/python bench/nproc.py [--runs ring::1500 pytorch-mlp:digits:3000] [--nproc 2] [--repeats 2]
(a run: PRESET:DATASET:ITERATIONS, the data set empty for the preset's own)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan_core.folder.run_folder import RunFolder  # noqa: E402


def rate(run: str, nproc: int, skip: float, device: str) -> tuple[float, int]:
    """(iterations/s after `skip` seconds of training, batch size) of one whole run."""
    preset, dataset, iterations = run.split(":")
    with tempfile.TemporaryDirectory() as tmp:
        data = ["--dataset", dataset] if dataset else []
        command = [sys.executable, "-m", "gan_core", "train", "--preset", preset, *data, "--iterations", iterations,
                   "--eval-every", "0", "--device", device, "--runs-dir", tmp, "--name", "b", "--nproc", str(nproc),
                   "--sample-every", iterations, "--checkpoint-every", iterations]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
        subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
        folder = RunFolder(Path(tmp) / "b")
        columns, rows = folder.read_metrics()
        config, _ = folder.read_config()
    it, elapsed = rows[:, columns.index("iteration")], rows[:, columns.index("elapsed_s")]
    start = int(np.argmax(elapsed >= skip))
    return float((it[-1] - it[start]) / (elapsed[-1] - elapsed[start])), config.batch_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=["ring::1500", "pytorch-mlp:digits:3000"])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip", type=float, default=3.0, help="seconds of training left out at the start")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    for preset in args.runs:
        rates: dict[int, list[float]] = {1: [], args.nproc: []}
        for _ in range(args.repeats):
            for nproc in (1, args.nproc):  # A B A B
                its, batch = rate(preset, nproc, args.skip, args.device)
                rates[nproc].append(its)
                print(
                    f"  {preset} nproc {nproc}: {its:7.1f} it/s  {its * batch * nproc:9,.0f} images/s",
                    flush=True,
                )
        one, many = statistics.median(rates[1]), statistics.median(rates[args.nproc])
        print(f"{preset} (batch {batch}): 1 process {one:.1f} it/s, {one * batch:,.0f} images/s; {args.nproc} "
              f"processes {many:.1f} it/s, {many * batch * args.nproc:,.0f} images/s; images/s ratio "
              f"{many * args.nproc / one:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
