"""A run's metric recording: per-iteration device values read back in blocks, into history and metrics.csv."""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..folder.history import COLUMNS, QUALITY_COLUMNS, QUALITY_TABLE, History
from ..folder.run_folder import RunFolder

CSV_COLUMNS = COLUMNS + QUALITY_COLUMNS
FLUSH_ROWS, FLUSH_SECONDS = 256, 0.25  # how often device metrics are read back (one sync each)


class StepResult(NamedTuple):
    """What one `step()` did. `metrics` stays on the device: loss_d, loss_g, p_real, p_fake, out_real, out_fake."""

    iteration: int
    epoch: int
    d_updates: int
    lr_g: float
    lr_d: float
    metrics: Tensor


class NonFinite(NamedTuple):
    """The first loss that became NaN or infinite."""

    iteration: int
    loss: str  # loss_d or loss_g
    value: float


class _Pending(NamedTuple):
    step: StepResult
    flip_prob: float
    time: float


class Recorder:
    """Collects each iteration's metrics (device tensors stay on the device until `flush`, one sync a block),
    keeps the compact in-memory history (and a sparse one of the quality metrics), appends metrics.csv."""

    def __init__(self, folder: RunFolder, batch_size: int, critic: bool):
        """batch_size: images one D update sees in all (N processes: N x the batch size), for images/s."""
        self.folder, self.batch_size, self.critic = folder, batch_size, critic
        self.history = History(COLUMNS)
        self.quality = History(QUALITY_TABLE, capacity=64)
        self.images_per_s = 0.0
        self._pending: list[_Pending] = []
        self._taken: list[_Pending] = []
        self._pending_quality: dict[int, dict] = {}
        self._t0 = self._t_flush = time.monotonic()
        self._elapsed_base = 0.0

    # ---- the clock: elapsed time leaves pauses out

    def start_clock(self) -> None:
        self._t0 = self._t_flush = time.monotonic()
        self._elapsed_base = float(self.history.last().get("elapsed_s", 0.0))

    def elapsed_now(self) -> float:
        """The run's elapsed time now, as the next row counts it (pauses left out)."""
        return self._elapsed_base + (time.monotonic() - self._t0)

    def skip_time(self, seconds: float) -> None:
        """Leave a pause out of the elapsed time and the images/s rate."""
        self._t0 += seconds
        self._t_flush = time.monotonic()

    # ---- recording

    def add(self, step: StepResult, flip_prob: float) -> None:
        self._pending.append(_Pending(step, flip_prob, time.monotonic()))

    def add_quality(self, iteration: int, values: dict[str, float]) -> None:
        """Sample-quality metrics measured at `iteration` (recorded with that iteration's row)."""
        self._pending_quality[iteration] = values

    @property
    def due(self) -> bool:
        return len(self._pending) >= FLUSH_ROWS or time.monotonic() - self._t_flush > FLUSH_SECONDS

    def take(self) -> torch.Tensor | None:
        """The pending rows' device metrics as one (n, 6) tensor, to `record` (after a mean over processes)."""
        if not self._pending:
            return None
        self._taken, self._pending = self._pending, []
        return torch.stack([p.step.metrics for p in self._taken])

    def flush(self) -> NonFinite | None:
        """Record pending rows; returns the first non-finite loss among them, if any."""
        block = self.take()
        return None if block is None else self.record(block)

    def record(self, block: torch.Tensor) -> NonFinite | None:
        """Record the rows last taken with these metrics (n, 6); the first non-finite loss among them, if any."""
        values = block.float().cpu().numpy()  # one sync
        pending, self._taken = self._taken, []
        rows = self._rows(values, pending)
        quality_rows = np.full((len(rows), len(QUALITY_COLUMNS)), np.nan, np.float32)
        for i, p in enumerate(pending):
            measured = self._pending_quality.pop(p.step.iteration, None)
            if measured:
                quality_rows[i] = [measured.get(c, np.nan) for c in QUALITY_COLUMNS]
                self.quality.append(np.array([[rows[i, 0], *quality_rows[i]]], np.float32))
        self.history.append(rows)
        self.folder.write_metrics(CSV_COLUMNS, np.concatenate([rows, quality_rows], axis=1))
        bad = ~np.isfinite(values[:, :2])
        if not bad.any():
            return None
        row, col = np.argwhere(bad)[0]
        return NonFinite(pending[row].step.iteration, ("loss_d", "loss_g")[col], float(values[row, col]))

    def _rows(self, values: np.ndarray, pending: list[_Pending]) -> np.ndarray:
        loss_d, loss_g, p_real, p_fake, out_real, out_fake = values.T
        host = np.array([(p.step.iteration, p.step.epoch, p.time, p.step.lr_g, p.step.lr_d, p.flip_prob,
                          p.step.d_updates) for p in pending], np.float64)  # fmt: skip
        iteration, epoch, t, lr_g, lr_d, flip_prob, d_updates = host.T
        now = time.monotonic()
        rate = float(d_updates.sum() * self.batch_size / max(now - self._t_flush, 1e-9))
        self._t_flush = now
        # smoothed over the last few seconds: single blocks are too short to read steadily
        self.images_per_s = rate if not self.images_per_s else 0.8 * self.images_per_s + 0.2 * rate
        table = {
            "iteration": iteration, "epoch": epoch, "elapsed_s": self._elapsed_base + (t - self._t0),
            "score_g": p_fake, "score_d": (p_real + 1 - p_fake) / 2, "loss_g": loss_g, "loss_d": loss_d,
            "wasserstein": out_real - out_fake if self.critic else np.full_like(loss_d, np.nan),
            "lr_g": lr_g, "lr_d": lr_d, "flip_prob": flip_prob, "d_iters": d_updates,
            "images_per_s": np.full_like(loss_d, self.images_per_s),
        }  # fmt: skip
        return np.stack([table[c] for c in COLUMNS], axis=1).astype(np.float32)

    def restore(self, iteration: int) -> None:
        """Resume: reload metrics.csv up to `iteration` (later rows belong to the lost part) and rewrite it."""
        columns, rows = self.folder.read_metrics()
        if not columns or "iteration" not in columns:
            return
        rows = rows[rows[:, columns.index("iteration")] <= iteration]
        table = np.stack([rows[:, columns.index(c)] if c in columns else np.full(len(rows), np.nan)
                          for c in CSV_COLUMNS], axis=1).astype(np.float32)  # fmt: skip
        self.history.append(table[:, : len(COLUMNS)])
        measured = np.isfinite(table[:, len(COLUMNS) :]).any(axis=1)
        if measured.any():
            self.quality.append(
                np.concatenate([table[measured, :1], table[measured, len(COLUMNS) :]], axis=1)
            )
        self.folder.write_metrics(CSV_COLUMNS, table, append=False)
