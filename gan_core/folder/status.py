"""What state a run is in: one answer, from its heartbeat, its event log and its lock, whoever asks (the
command line's `status`, the Runs page, the monitor of a run trained elsewhere)."""

from __future__ import annotations

from typing import NamedTuple

from .names import Event, Name


class Status(Name):
    """A run's state, as events.jsonl records it."""

    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"  # reached its iterations
    STOPPED = "stopped"  # stopped by hand; a checkpoint of where it stood is kept
    FAILED = "failed"  # an exception ended it; the last good checkpoint is kept
    DIVERGED = "diverged"  # a loss became NaN or infinite; the last good checkpoint is kept
    INTERRUPTED = "interrupted"  # its log says it trains, but no process holds its folder: killed or crashed

    @property
    def active(self) -> bool:
        return self in (Status.RUNNING, Status.PAUSED)


class RunState(NamedTuple):
    """A run's status and why it is in it ('' when there is nothing to say); status None: nothing logged yet."""

    status: Status | None
    reason: str


NOTHING_LOGGED = RunState(None, "")


def logged_state(events: list[dict]) -> RunState:
    """The last status a run's events.jsonl records, with its reason."""
    for event in reversed(events):
        status = event.get("status")
        if (
            event.get("event") == Event.STATUS
            and isinstance(status, str)
            and status in Status._value2member_map_
        ):
            return RunState(Status(status), str(event.get("reason", "")))
    return NOTHING_LOGGED


def state_of(logged: RunState, live: bool, beat: dict) -> RunState:
    """The state now. A live run says it in its heartbeat (running or paused); a run whose log says it trains but
    that no process trains any more was killed or crashed: interrupted."""
    if live and beat.get("status") in (Status.RUNNING, Status.PAUSED):
        return RunState(Status(beat["status"]), str(beat.get("reason", "")))
    if not live and logged.status is not None and logged.status.active:
        return interrupted(logged.status)
    return logged


def interrupted(was: Status) -> RunState:
    return RunState(Status.INTERRUPTED, f"its process ended while it was {was}: killed or crashed")
