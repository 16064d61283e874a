"""The metric history of a run: a compact append-only float32 table that readers can view while it grows."""

from __future__ import annotations

import numpy as np

COLUMNS = (
    "iteration", "epoch", "elapsed_s", "score_g", "score_d", "loss_g", "loss_d", "wasserstein",
    "lr_g", "lr_d", "flip_prob", "d_iters", "images_per_s",
)  # fmt: skip
QUALITY_COLUMNS = (
    "fd", "recognisable", "class_coverage", "class_entropy", "max_class_share", "class_agreement",
    "diversity", "precision", "recall", "density", "coverage", "kid", "modes", "high_quality", "kl", "js",
)  # fmt: skip  # measured every so often (gan_core.metrics); blank in metrics.csv in between

QUALITY_TABLE = ("iteration", *QUALITY_COLUMNS)  # the sparse table of quality measurements


class History:
    """Float32 rows of COLUMNS; about 52 bytes an iteration, so a million iterations take ~55 MB.

    One thread appends; any thread may call `view()`. Rows already published never change, and the
    (array, length) pair is swapped as one reference, so a view stays valid while the table grows.
    """

    def __init__(self, columns=COLUMNS, capacity: int = 1024):
        self.columns = tuple(columns)
        self._index = {name: i for i, name in enumerate(self.columns)}
        self._state = (np.full((capacity, len(self.columns)), np.nan, np.float32), 0)

    def __len__(self) -> int:
        return self._state[1]

    def append(self, rows: np.ndarray) -> None:
        """Append rows of shape (n, len(columns))."""
        data, n = self._state
        if n + len(rows) > len(data):
            bigger = np.full((max(2 * len(data), n + len(rows)), len(self.columns)), np.nan, np.float32)
            bigger[:n] = data[:n]
            data = bigger
        data[n : n + len(rows)] = rows
        self._state = (data, n + len(rows))

    def view(self) -> dict[str, np.ndarray]:
        """Read-only column views of the published rows."""
        data, n = self._state
        table = data[:n]
        table.flags.writeable = False
        return {name: table[:, i] for name, i in self._index.items()}

    def last(self) -> dict[str, float]:
        data, n = self._state
        return {name: float(data[n - 1, i]) for name, i in self._index.items()} if n else {}

    def nbytes(self) -> int:
        return self._state[0].nbytes


def downsample(x: np.ndarray, y: np.ndarray, max_points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """At most max_points (x, y) pairs: bucket means, so a long curve keeps its shape and stays cheap."""
    n = len(x)
    if n <= max_points:
        return x, y
    starts = np.linspace(0, n, max_points, endpoint=False).astype(np.int64)
    valid = ~np.isnan(y)
    sums = np.add.reduceat(np.where(valid, y, 0).astype(np.float64), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        y_mean = sums / np.add.reduceat(valid, starts)  # NaN where a bucket has no value
    x_last = x[np.append(starts[1:], n) - 1]
    return x_last, y_mean.astype(np.float32)
