"""One run on 1 process against the same run on N processes (torchrun, DDP): iterations/s and images/s.

Each side is `python -m gan_core train --nproc K` as a user runs it, a whole fresh process group, alternated
A B A B. The rate is read from the run's own metrics.csv between the first row past --skip seconds of training
and the last row (startup, data loading and the first iterations left out). With N processes every iteration
trains on N batches (one each), so images/s = it/s x batch x N; on a CPU each process gets 1 thread (torchrun's
OMP_NUM_THREADS=1), the single process all cores (torch's default).
    .venv/bin/python bench/nproc.py [--presets ring pytorch-mlp] [--nproc 2] [--iterations 3000] [--repeats 2]
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

from gan_core.folder import RunFolder  # noqa: E402


def rate(preset: str, nproc: int, iterations: int, skip: float, device: str) -> tuple[float, int]:
    """(iterations/s after `skip` seconds of training, batch size) of one whole run."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "gan_core", "train", "--preset", preset, "--iterations", str(iterations),
                   "--eval-every", "0", "--device", device, "--runs-dir", tmp, "--name", "b", "--nproc", str(nproc),
                   "--sample-every", str(iterations), "--checkpoint-every", str(iterations)]  # fmt: skip
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
    parser.add_argument("--presets", nargs="+", default=["ring", "pytorch-mlp"])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip", type=float, default=3.0, help="seconds of training left out at the start")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    for preset in args.presets:
        rates: dict[int, list[float]] = {1: [], args.nproc: []}
        for _ in range(args.repeats):
            for nproc in (1, args.nproc):  # A B A B
                its, batch = rate(preset, nproc, args.iterations, args.skip, args.device)
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
