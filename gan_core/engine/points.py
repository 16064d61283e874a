"""Drawn 2-D data: a person's own points (`--dataset points:FILE.npy`), checked, and the shapes a drawing starts
from (ring, grid, spiral, two moons, line). Plain numpy: the UI and the command line use it alike."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from ..config import DataError

# The smallest mode the toy metrics count holds 20 points (quality.metrics.MODE_MIN_POINTS): a drawing must hold
# at least one mode's worth, or a generator is shown memorising dots, not learning a distribution.
MIN_POINTS = 20
MAX_POINTS = 100_000  # beyond the toys' own 20,000 the page and the heat-map gain nothing
# The toys reach |4.2| (grid); the MLP's default learning rates and the monitor's square suit that scale. At
# |10| the picture still reads; beyond it a drawing's units are likely pixels, not coordinates.
MAX_COORD = 10.0
# A drawing is repeated to at least this many rows (the toys' own size), so that every toy preset's batch fits:
# an epoch then draws each point about equally often, as sampling the drawing's own distribution does.
TRAINING_ROWS = 20_000
SHAPE_POINTS = 400  # a shape's points, before editing
SHAPE_SEED = 1234


def check_points(points: np.ndarray, source: str = "the drawing") -> np.ndarray:
    """The points as float32 (n, 2), or DataError naming what is wrong and what is allowed."""
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 2:
        raise DataError(f"{source} has shape {tuple(points.shape)}: points need shape (n, 2), an x, y a row")
    if not np.issubdtype(points.dtype, np.number) or np.issubdtype(points.dtype, np.complexfloating):
        raise DataError(f"{source} holds {points.dtype} values: points need real numbers")
    n = len(points)
    if not MIN_POINTS <= n <= MAX_POINTS:
        raise DataError(f"{source} has {n} points: allowed [{MIN_POINTS}, {MAX_POINTS}]")
    bad = int((~np.isfinite(points)).any(axis=1).sum())
    if bad:
        raise DataError(f"{source} has {bad} points with NaN or infinite coordinates: allowed finite values")
    largest = float(np.abs(points).max())
    if largest > MAX_COORD:
        raise DataError(f"{source} has a coordinate of {largest:g}: allowed [-{MAX_COORD:g}, {MAX_COORD:g}]")
    return points.astype(np.float32)


def read_points(path: str | Path) -> np.ndarray:
    """A .npy file of points, checked (check_points); DataError when it is missing or not a numeric array."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"points file {path} does not exist: give a .npy file of shape (n, 2)")
    try:
        points = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"points file {path} is not a .npy array ({str(exc)[:80]})") from None
    return check_points(points, f"points file {path}")


def tiled(points: np.ndarray) -> np.ndarray:
    """The points repeated whole to at least TRAINING_ROWS rows, in a fixed shuffled order (so that every k-th
    row, as the monitor picks real points to draw, still spreads over the whole drawing)."""
    rows = np.tile(points, (-(-TRAINING_ROWS // len(points)), 1))
    return rows[np.random.default_rng(SHAPE_SEED).permutation(len(rows))]


def npy_bytes(points: np.ndarray) -> bytes:
    """The points as the bytes of a .npy file (to be written atomically by the caller)."""
    buffer = io.BytesIO()
    np.save(buffer, check_points(points))
    return buffer.getvalue()


# ---- shapes a drawing starts from


def _ring(t: np.ndarray) -> np.ndarray:
    angle = 2 * math.pi * t
    return 2.0 * np.stack([np.cos(angle), np.sin(angle)], 1)


def _grid(t: np.ndarray) -> np.ndarray:
    cell = (t * 9).astype(int).clip(0, 8)  # 3 x 3 dots, 2 apart
    return np.stack([cell % 3, cell // 3], 1) * 2.0 - 2.0


def _spiral(t: np.ndarray) -> np.ndarray:
    angle = 3 * math.pi * t
    radius = 0.4 + 2.4 * t
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1)


def _two_moons(t: np.ndarray) -> np.ndarray:
    upper = t < 0.5
    angle = math.pi * np.where(upper, t * 2, t * 2 - 1)
    moon = np.stack([np.cos(angle), np.sin(angle)], 1) * 1.5
    lower = np.stack([1.5 - moon[:, 0], 0.5 - moon[:, 1]], 1)
    return np.where(upper[:, None], moon - [0.75, 0.25], lower - [0.75, 0.25])


def _line(t: np.ndarray) -> np.ndarray:
    return np.stack([4 * t - 2, 2 * t - 1], 1)


def shape_points(name: str, n: int = SHAPE_POINTS, noise: float = 0.05, seed: int = SHAPE_SEED) -> np.ndarray:
    """n points (float32 (n, 2)) along a shape of SHAPES, with Gaussian noise of std `noise`."""
    if name not in SHAPES:
        raise DataError(f"unknown shape {name!r}: choose one of {', '.join(SHAPES)}")
    rng = np.random.default_rng(seed)
    t = np.sort(rng.random(n))
    return (SHAPES[name](t) + noise * rng.standard_normal((n, 2))).astype(np.float32)


SHAPES = {"ring": _ring, "grid": _grid, "spiral": _spiral, "two moons": _two_moons, "line": _line}
