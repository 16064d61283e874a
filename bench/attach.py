"""What watching a run through its folder costs the server, per refresh, on a 100,000-iteration run.

A run folder is written by the engine's own writer (RunFolder.write_metrics, the CSV layout of a real run, in
blocks as the recorder appends them) up to --rows iterations; then, round after round, BLOCK rows are appended
(one second of a fast run) and the server refreshes, timed:

  incremental   FolderRun.snapshot(): reads the new bytes of metrics.csv, events.jsonl, the heartbeat
  + figure      the same, plus the monitor's score chart built from the snapshot (downsampled to 2,000 points)
  full re-read  what a reader without a tail would do: parse the whole metrics.csv each refresh

Medians over the rounds, in one process, A B alternating. The first attach (parse everything once) is timed too.
    .venv/bin/python bench/attach.py [--rows 100000] [--rounds 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dashboard import charts  # noqa: E402
from gan_core.config import Knobs, RunConfig  # noqa: E402
from gan_core.folder.run_folder import RunFolder  # noqa: E402
from gan_core.folder.watch import FolderRun  # noqa: E402
from gan_core.training.recorder import CSV_COLUMNS  # noqa: E402

BLOCK = 250


def rows(start: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """n rows of metrics.csv from iteration start + 1: plausible values, quality columns blank."""
    table = np.full((n, len(CSV_COLUMNS)), np.nan, np.float32)
    index = {c: i for i, c in enumerate(CSV_COLUMNS)}
    it = np.arange(start + 1, start + n + 1, dtype=np.float32)
    values = {"iteration": it, "epoch": it // 300 + 1, "elapsed_s": it / 60.0, "lr_g": 2e-4, "lr_d": 2e-4,
              "flip_prob": 0.0, "d_iters": 1.0, "images_per_s": 6400.0, "wasserstein": np.nan}  # fmt: skip
    for column in ("score_g", "score_d", "loss_g", "loss_d"):
        values[column] = rng.random(n, dtype=np.float32)
    for column, value in values.items():
        table[:, index[column]] = value
    return table


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = RunFolder.create(tmp, "long")
        folder.write_config(RunConfig(iterations=args.rows * 2), Knobs())
        folder.log("start", 0, device="cpu")
        written = 0
        while written < args.rows:
            n = min(BLOCK, args.rows - written)
            folder.write_metrics(CSV_COLUMNS, rows(written, n, rng))
            written += n
        size, start = folder.metrics_path.stat().st_size, written
        watcher = FolderRun(folder.path)
        first = timed(watcher.snapshot)
        assert len(watcher.snapshot().history["iteration"]) == written
        incremental, with_figure, full = [], [], []
        for _ in range(args.rounds):
            folder.write_metrics(CSV_COLUMNS, rows(written, BLOCK, rng))
            written += BLOCK
            incremental.append(timed(watcher.snapshot))
            folder.write_metrics(CSV_COLUMNS, rows(written, BLOCK, rng))
            written += BLOCK
            with_figure.append(timed(lambda: charts.scores_figure(watcher.snapshot().history, ())))
            full.append(timed(folder.read_metrics))
        assert len(watcher.snapshot().history["iteration"]) == written
    ms = lambda xs: 1000 * statistics.median(xs)  # noqa: E731
    print(f"metrics.csv: {start:,} rows, {size / 1e6:.1f} MB at the start; {BLOCK} rows appended per refresh")
    print(f"first attach (parse it all once):          {1000 * first:8.1f} ms")
    print(f"refresh, incremental (FolderRun.snapshot): {ms(incremental):8.2f} ms")
    print(f"refresh + score chart (2,000 points):      {ms(with_figure):8.2f} ms")
    print(f"refresh by full re-read of metrics.csv:    {ms(full):8.1f} ms")
    print(f"full re-read / incremental: {statistics.median(full) / statistics.median(incremental):.0f}x")


if __name__ == "__main__":
    main()
