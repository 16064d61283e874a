"""When each failure hint fired over a whole run: the monitor's hints (hints.py) replayed along its history."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..folder.run_folder import Status
from .hints import Hint, failure_hints, quality_hints

CHECKS = 500  # at most this many points along the run where the hints are asked again
WINDOW = 200  # the monitor's window (failure_hints' default)


@dataclass(frozen=True)
class HintSpan:
    """A hint over a run: first and last iteration at which it fired, how often it was seen, its first text."""

    hint: Hint
    first: int
    last: int
    times: int


def check_points(n: int, checks: int = CHECKS, window: int = WINDOW) -> list[int]:
    """Row counts at which to ask the hints again: about `checks` evenly spread, the whole history the last."""
    if n == 0:
        return []
    step = max(window // 2, -(-n // checks))
    return sorted({*range(min(window, n), n, step), n})


def failure_timeline(
    history: dict[str, np.ndarray], status: str = Status.RUNNING, reason: str = ""
) -> list[HintSpan]:
    """The failure hints (hints.failure_hints) that fired along `history` (equal-length columns) and when: asked at
    check_points with the run still running, and at the end with its final status and reason."""
    n = len(history.get("iteration", ()))
    fired = []
    for end in check_points(n):
        last = end == n
        view = {name: column[:end] for name, column in history.items()}  # views: no copies
        at = int(history["iteration"][end - 1])
        fired += [(at, hint) for hint in failure_hints(view, status if last else Status.RUNNING,
                                                       reason if last else "")]  # fmt: skip
    return spans(fired)


def quality_timeline(
    quality: dict[str, np.ndarray], num_classes: int = 10, modes_total: int | None = None
) -> list[HintSpan]:
    """The sample-quality hints (hints.quality_hints) at each measurement of the sparse `quality` table."""
    n = len(quality.get("iteration", ()))
    fired = []
    for end in check_points(n, window=1):
        view = {name: column[:end] for name, column in quality.items()}
        at = int(quality["iteration"][end - 1])
        fired += [(at, hint) for hint in quality_hints(view, num_classes, modes_total)]
    return spans(fired)


def spans(fired: list[tuple[int, Hint]]) -> list[HintSpan]:
    """(iteration, hint) pairs in order as one span a kind of hint, in the order they first fired."""
    found: dict[str, HintSpan] = {}
    for at, hint in fired:
        seen = found.get(hint.kind)
        found[hint.kind] = HintSpan(hint, at, at, 1) if seen is None else HintSpan(
            seen.hint, seen.first, at, seen.times + 1)  # fmt: skip
    return list(found.values())
