"""The iteration at which a run's samples first became recognisable: the rule, its one event in events.jsonl, and
that event read back (by the training loop on resume, by a branch, by anyone watching the folder)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

from .names import Event

if TYPE_CHECKING:
    from .run_folder import RunFolder

EVENT = Event.RECOGNISABLE  # logged once per run
SHARE_OF_REAL = 0.5  # recognisable: at least half the share of recognisable images that real images score


def recognisable(share: float, real: float) -> bool:
    """The rule: samples are recognisable when their share of recognisable images (the classifier's top class
    probability >= metrics.RECOGNISABLE_PROB) is at least SHARE_OF_REAL of the share that held-out real images of
    the same data set score by that rule. A classifier that recognises no real image marks nothing."""
    return real > 0 and share >= SHARE_OF_REAL * real


def reached(values: dict, real: float | None = None, modes_total: int | None = None) -> dict | None:
    """The event's fields when one measurement reaches the mark, else None. Labelled images: `real` is the held-out
    real images' recognisable share; on the 2-D toys the analogue is every mode captured (`modes_total`)."""
    if modes_total is not None:
        modes = values.get("modes", math.nan)
        return {"modes": int(modes), "modes_total": modes_total} if modes >= modes_total else None
    share = values.get("recognisable", math.nan)
    if real is None or not recognisable(share, real):
        return None
    return {"recognisable": round(share, 4), "real": round(real, 4)}


class Mark(NamedTuple):
    """Where a run's samples first became recognisable (on a 2-D toy: every mode captured)."""

    iteration: int
    elapsed_s: float  # the run's training time when it was measured (pauses left out)
    detail: dict  # recognisable and real; or modes and modes_total

    @property
    def modes_total(self) -> int | None:
        return self.detail.get("modes_total")

    @classmethod
    def of(cls, event: dict) -> Mark | None:
        """The mark an EVENT records; None for a malformed one."""
        detail = {k: v for k, v in event.items() if k not in ("event", "iteration", "time", "elapsed_s")}
        try:
            return cls(int(event["iteration"]), float(event.get("elapsed_s", math.nan)), detail)
        except (KeyError, TypeError, ValueError):
            return None


def log(folder: RunFolder, iteration: int, elapsed_s: float, detail: dict) -> Mark:
    """Append the run's mark to its events.jsonl; returns it."""
    folder.log(EVENT, iteration, elapsed_s=round(elapsed_s, 3), **detail)
    return Mark(iteration, round(elapsed_s, 3), detail)


def follow(mark: Mark | None, event: dict) -> Mark | None:
    """The run's mark after one more event of its log, read in order: its first EVENT, unless a resume went back
    to before it (that part of the run was lost, and is trained again)."""
    kind = event.get("event")
    if kind == EVENT and mark is None:
        return Mark.of(event)
    if kind == "resume" and mark is not None:
        start = event.get("from_iteration", event.get("iteration", 0))
        return mark if isinstance(start, int | float) and mark.iteration <= start else None
    return mark


def find(events: Iterable[dict]) -> Mark | None:
    """The run's mark as its whole log has it; None before its samples became recognisable."""
    mark = None
    for event in events:
        mark = follow(mark, event)
    return mark
