"""The names a run folder's files use, each spelled once: the event names of events.jsonl and the request kinds
of the control channel. Both are str Enums, so they read and write as the plain strings the files hold."""

from __future__ import annotations

from enum import Enum


class Name(str, Enum):
    """A name that is its string: equal to it, written as it in JSON, shown as it."""

    def __str__(self) -> str:
        return self.value


class Event(Name):
    """What a line of events.jsonl records (its "event" field)."""

    START = "start"
    RESUME = "resume"
    STATUS = "status"
    KNOBS = "knobs"  # knob changes, at the first iteration that uses them
    NOTE = "note"
    TRACEBACK = "traceback"
    QUALITY = "quality"  # why sample-quality metrics are unavailable
    REPLICAS = "replicas"  # a group's weights compared at a checkpoint
    BRANCH = "branch"
    REPLAY = "replay"
    RECOGNISABLE = "recognisable"  # gan_core.folder.milestone
    SOLO = "solo"  # D or G trained alone for a few updates (the iteration count stays)


class Kind(Name):
    """What a request asks of a live run (control channel, the app's queue)."""

    KNOBS = "knobs"  # value: {knob: value}, or a Knobs
    PAUSE = "pause"
    CONTINUE = "continue"
    STEP = "step"  # value: n
    STEP_D = "step_d"  # value: n updates of D alone (the iteration count stays)
    STEP_G = "step_g"  # value: n updates of G alone
    STOP = "stop"
    SAVE = "save"
