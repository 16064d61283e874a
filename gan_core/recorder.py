"""A run's metric recording: per-iteration device values read back in blocks, into history and metrics.csv."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from . import storage
from .history import COLUMNS, QUALITY_COLUMNS, History

CSV_COLUMNS = COLUMNS + QUALITY_COLUMNS
QUALITY_TABLE = ("iteration", *QUALITY_COLUMNS)


class Recorder:
    """Collects each iteration's metrics (device tensors stay on the device until `flush`, one sync a block),
    keeps the compact in-memory history (and a sparse one of the quality metrics), appends metrics.csv."""

    def __init__(self, path: Path, batch_size: int, critic: bool):
        self.path, self.batch_size, self.critic = path, batch_size, critic
        self.history = History(COLUMNS)
        self.quality = History(QUALITY_TABLE, capacity=64)
        self.images_per_s = 0.0
        self._pending: list = []
        self._t0 = self._t_flush = time.monotonic()
        self._elapsed_base = 0.0

    def __len__(self) -> int:
        return len(self._pending)

    def start_clock(self) -> None:
        self._t0 = self._t_flush = time.monotonic()
        self._elapsed_base = float(self.history.last().get("elapsed_s", 0.0))

    def skip_time(self, seconds: float) -> None:
        """Leave a pause out of the elapsed time and the images/s rate."""
        self._t0 += seconds
        self._t_flush = time.monotonic()

    def add(self, device_row: torch.Tensor, host: tuple, quality: dict | None = None) -> None:
        """One iteration: device_row (loss_d, loss_g, p_real, p_fake, out_real, out_fake);
        host (iteration, epoch, time, lr_g, lr_d, flip_prob, d_iters)."""
        self._pending.append((device_row, host, quality))

    def seconds_since_flush(self) -> float:
        return time.monotonic() - self._t_flush

    def flush(self) -> tuple[int, str, float] | None:
        """Record pending rows; returns (iteration, loss name, value) of the first non-finite loss, if any."""
        if not self._pending:
            return None
        values = torch.stack([row for row, _, _ in self._pending]).float().cpu().numpy()  # (n, 6): one sync
        host = np.array([h for _, h, _ in self._pending], np.float64)  # (n, 7)
        quality = [q for _, _, q in self._pending]
        self._pending = []
        rows = self._rows(values, host)
        quality_rows = np.full((len(rows), len(QUALITY_COLUMNS)), np.nan, np.float32)
        for i, q in enumerate(quality):
            if q:
                quality_rows[i] = [q.get(c, np.nan) for c in QUALITY_COLUMNS]
                self.quality.append(np.array([[rows[i, 0], *quality_rows[i]]], np.float32))
        self.history.append(rows)
        storage.write_metrics(self.path, CSV_COLUMNS, np.concatenate([rows, quality_rows], axis=1))
        bad = ~np.isfinite(values[:, :2])
        if not bad.any():
            return None
        row, col = np.argwhere(bad)[0]
        return int(host[row, 0]), ("loss_d", "loss_g")[col], float(values[row, col])

    def _rows(self, values: np.ndarray, host: np.ndarray) -> np.ndarray:
        loss_d, loss_g, p_real, p_fake, out_real, out_fake = values.T
        iteration, epoch, t, lr_g, lr_d, flip, n_d = host.T
        now = time.monotonic()
        rate = float(n_d.sum() * self.batch_size / max(now - self._t_flush, 1e-9))
        self._t_flush = now
        # smoothed over the last few seconds: single blocks are too short to read steadily
        self.images_per_s = rate if not self.images_per_s else 0.8 * self.images_per_s + 0.2 * rate
        table = {
            "iteration": iteration, "epoch": epoch, "elapsed_s": self._elapsed_base + (t - self._t0),
            "score_g": p_fake, "score_d": (p_real + 1 - p_fake) / 2, "loss_g": loss_g, "loss_d": loss_d,
            "wasserstein": out_real - out_fake if self.critic else np.full_like(loss_d, np.nan),
            "lr_g": lr_g, "lr_d": lr_d, "flip_prob": flip, "d_iters": n_d,
            "images_per_s": np.full_like(loss_d, self.images_per_s),
        }  # fmt: skip
        return np.stack([table[c] for c in COLUMNS], axis=1).astype(np.float32)

    def restore(self, iteration: int) -> None:
        """Resume: reload metrics.csv up to `iteration` (later rows belong to the lost part) and rewrite it."""
        if not self.path.exists():
            return
        columns, rows = storage.read_metrics(self.path)
        rows = rows[rows[:, columns.index("iteration")] <= iteration]
        table = np.stack([rows[:, columns.index(c)] if c in columns else np.full(len(rows), np.nan)
                          for c in CSV_COLUMNS], axis=1).astype(np.float32)  # fmt: skip
        self.history.append(table[:, : len(COLUMNS)])
        measured = np.isfinite(table[:, len(COLUMNS) :]).any(axis=1)
        if measured.any():
            self.quality.append(
                np.concatenate([table[measured, :1], table[measured, len(COLUMNS) :]], axis=1)
            )
        storage.write_metrics(self.path, CSV_COLUMNS, table, append=False)
