"""Steps a TrainingLoop until it ends, applying requests at iteration boundaries: from the run folder's control
channel (any process), from an in-process queue (the app's own runs), and a stop flag (Ctrl-C, SIGTERM).

Alone, a process meets a boundary after every iteration; a check there costs a queue read and a clock read. In a
group of processes (torchrun) the first decides, at boundaries about SYNC_SECONDS apart, and one collective gives
every process the metrics block's mean and the decision: all apply it at the same iteration.
"""

from __future__ import annotations

import os
import queue
import re
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import NamedTuple

from ..config import ConfigError, Knobs
from ..engine.devices import device_label
from ..folder.control import KINDS, POLL_SECONDS, Request
from ..folder.names import Kind
from ..folder.status import Status
from .distributed import Decision, peer_lost
from .hooks import checkpoint_due
from .loop import Interrupted, TrainingLoop

SYNC_SECONDS = 0.25  # a group's boundaries: about this far apart, and at most MAX_SYNC_ITERATIONS
MAX_SYNC_ITERATIONS = 256


class Command(NamedTuple):
    """A request to the run. kind: knobs (value: a Knobs, or a dict of changes) | pause | continue | step, step_d,
    step_g (value: n iterations; n updates of D or G alone, the run paused) | stop | save.
    `done(iteration, error)` is told where it was applied, or why it was not."""

    kind: str
    value: object = None
    done: Callable[[int, str | None], None] | None = None


class Driver:
    """Trains `loop` to its end or a stop; `close()` ends the run (see TrainingLoop.close)."""

    def __init__(
        self, loop: TrainingLoop, inbox: queue.SimpleQueue | None = None,
        stop_requested: Callable[[], bool] = lambda: False, on_boundary: Callable[[TrainingLoop], None] | None = None,
    ):  # fmt: skip
        self.loop, self.group, self.inbox = loop, loop.group, inbox
        self.stop_requested, self.on_boundary = stop_requested, on_boundary
        self.channel = loop.folder.channel() if loop.main else None
        self.paused, self.steps, self.stopping = False, 0, False
        self.solo: list[tuple[str, int]] = []  # D-only or G-only updates asked at this boundary: (player, n)
        self.next_boundary = loop.iteration  # a boundary before the first iteration
        self._rate_mark = (time.monotonic(), loop.iteration)
        self._rate = 0.0  # iterations a second, between boundaries
        self._next_look = 0.0  # alone: the next boundary that must look at requests, whatever comes

    # ---- the loop

    def run(self) -> None:
        loop = self.loop
        try:
            while True:
                if (self.paused or loop.iteration >= self.next_boundary) and not self._quiet():
                    self._boundary()
                if self.stopping or loop.done:
                    return
                if self.paused:
                    if not self.steps:
                        continue
                    self.steps -= 1
                # alone, a stop may cut the D updates short; a group must keep its processes' updates equal
                loop.step(interrupted=self.stop_requested if self.group is None else None)
                if self.paused and not self.steps and self.group is None:
                    loop.flush()  # a step taken while paused shows at once (a group's shows at its boundary)
        except RuntimeError as exc:
            if self.group is None or not peer_lost(exc):
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            first = re.sub(r"\[[^\]]*\.(cc|cpp|h):\d+\] ", "", first).split(". ")[
                0
            ]  # gloo's source path, its advice
            raise Interrupted(f"another process of the group ended ({first[:120]})") from exc

    def close(self, error: BaseException | None = None) -> Status:
        status = self.loop.close(error)
        if self.channel is not None:
            try:
                self.channel.close()
                self.channel.beat(self._state, force=True)
            except OSError:  # a full disk: the run's end (its status and reason) still reaches the caller
                pass
        return status

    # ---- boundaries

    def _quiet(self) -> bool:
        """Alone, with nothing to do at this boundary: no command queued, no stop asked, the control directory
        and the heartbeat not due (a boundary then costs a clock read, not the ~10 us of a full one)."""
        return (
            self.group is None and not self.paused and time.monotonic() < self._next_look
            and (self.inbox is None or self.inbox.empty()) and not self.stop_requested()
        )  # fmt: skip

    def _boundary(self) -> None:
        loop = self.loop
        waited = time.monotonic()
        decision = self._decide() if loop.main else Decision()
        if self.group is not None:
            block, decision = self.group.exchange(loop.recorder.take(), decision)
            if block is not None:
                loop.record(block)
        was = loop.status
        self._apply(decision)
        if self.paused:
            loop.skip_time(time.monotonic() - waited)  # elapsed time leaves pauses out
        self._next_look = time.monotonic() + POLL_SECONDS
        if loop.main:
            self.channel.beat(self._state, force=loop.status is not was)
            if self.on_boundary is not None:
                self.on_boundary(loop)

    def _decide(self) -> Decision:
        loop = self.loop
        wait = POLL_SECONDS if self.paused and not self.steps else 0.0
        decision = Decision()
        for command in self._commands(wait):
            self._fold(decision, command)
        if self.stop_requested():
            decision.stop = True
        if self.group is not None:  # alone, the AlonePolicy hook saves
            decision.save |= checkpoint_due(loop)
        decision.next_boundary = self._next_boundary()
        return decision

    def _commands(self, wait: float) -> list[Command]:
        commands = []
        if self.inbox is not None:
            try:
                if wait:
                    commands.append(self.inbox.get(timeout=wait))
                    wait = 0.0
                while True:
                    commands.append(self.inbox.get_nowait())
            except queue.Empty:
                wait = 0.0
        return commands + [self._from_channel(r) for r in self.channel.requests(wait)]

    def _from_channel(self, request: Request) -> Command:
        def done(iteration: int, error: str | None) -> None:
            self.channel.answer(request, iteration, error)

        return Command(request.kind, request.value, done)

    def _fold(self, decision: Decision, command: Command) -> None:
        """Add one command to the boundary's decision (a bad one is answered with its error at once)."""
        kind, value = command.kind, command.value
        try:
            if kind == Kind.KNOBS:
                current = decision.knobs or self.loop.knobs
                decision.knobs = value if isinstance(value, Knobs) else current.replace(**dict(value))
            elif kind in (Kind.PAUSE, Kind.CONTINUE):
                decision.pause = kind == Kind.PAUSE
            elif kind == Kind.STEP:
                if not (self.paused or decision.pause):
                    raise ConfigError("step: the run is not paused (pause it first)")
                decision.steps += int(value)
            elif kind in (Kind.STEP_D, Kind.STEP_G):
                self._fold_solo(decision, kind, int(value))
            elif kind in (Kind.STOP, Kind.SAVE):
                setattr(decision, kind, True)
            else:
                raise ConfigError(f"request {kind!r} is unknown: allowed {', '.join(KINDS)}")
        except (ConfigError, TypeError, ValueError) as exc:
            if command.done is not None:
                command.done(-1, str(exc).splitlines()[0])
            return
        decision.answers.append(command)

    def _fold_solo(self, decision: Decision, kind: str, n: int) -> None:
        """D-only or G-only updates: the run pauses (if it was not) and stays paused after them."""
        if self.group is not None:  # every replica would have to agree on them: not offered there
            raise ConfigError(f"{kind}: one player alone cannot train in a group of processes")
        if n < 1:
            raise ConfigError(f"{kind} {n} is out of range: allowed [1, 1000000]")
        decision.pause = decision.pause if decision.pause is not None else True
        self.solo.append((kind[-1], n))

    def _next_boundary(self) -> int:
        loop = self.loop
        it = loop.iteration
        if self.group is None:
            return it + 1
        now = time.monotonic()
        mark_time, mark_it = self._rate_mark
        if it > mark_it and now > mark_time:
            rate = (it - mark_it) / (now - mark_time)
            self._rate = rate if not self._rate else 0.5 * self._rate + 0.5 * rate
        self._rate_mark = (now, it)
        ahead = max(1, min(MAX_SYNC_ITERATIONS, int(self._rate * SYNC_SECONDS)))
        every = loop.config.checkpoint_every  # checkpoints fall on boundaries
        return min(it + ahead, (it // every + 1) * every, loop.config.iterations)

    def _apply(self, decision: Decision) -> None:
        """The same on every process. Knobs apply from the next iteration; the rest at this boundary."""
        loop = self.loop
        if decision.knobs is not None:
            loop.set_knobs(decision.knobs)
        if decision.pause and not self.paused:
            self.paused = True
            loop.pause()
        elif decision.pause is False and self.paused:
            self.paused, self.steps = False, 0
            loop.unpause()
        if self.paused:
            self.steps += decision.steps
        for player, n in self.solo:
            loop.train_player(player, n)
        self.solo = []
        if decision.save:
            loop.save()
        self.stopping = decision.stop
        self.next_boundary = decision.next_boundary
        for command in decision.answers:
            if command.done is not None:
                command.done(loop.iteration + (command.kind == Kind.KNOBS), None)

    def _state(self) -> dict:
        """The heartbeat's account of the run."""
        loop = self.loop
        status, reason = loop.state
        grid = loop.grid
        return {
            "iteration": loop.iteration, "target": loop.config.iterations, "status": status.value,
            "reason": reason, "knobs": asdict(loop.knobs), "grid_iteration": grid.iteration if grid else 0,
            "world": self.group.world if self.group else 1,
            "pids": self.group.pids if self.group else [os.getpid()],
            "device": device_label(loop.device), "num_classes": loop.data.num_classes,
        }  # fmt: skip
