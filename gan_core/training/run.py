"""A run trained by one background thread: commands in (knobs, pause, step, stop, save), snapshots out.

The thread builds the networks and steps the loop, so it is the process's one user of torch's CPU thread pool
(a second pool alive beside it halves small models' speed: bench/README.md). The caller's thread only plans.
"""

from __future__ import annotations

import atexit
import math
import queue
import signal
import threading
import weakref
from pathlib import Path

from ..config import ConfigError, Knobs, RunConfig
from ..engine.data import Data
from ..engine.devices import device_label, resolve_device
from ..folder.history import COLUMNS, QUALITY_TABLE, History
from ..folder.names import Kind
from ..folder.snapshot import Snapshot
from ..folder.status import RunState, Status
from . import plan as plans
from .driver import Command, Driver
from .loop import TrainingLoop, failure_reason
from .plan import RunPlan

_RUNS: weakref.WeakSet[Run] = weakref.WeakSet()


@atexit.register
def _stop_all_runs() -> None:
    """At interpreter exit, stop and save every run still training (no thread is cut off mid-step)."""
    for run in list(_RUNS):
        run.stop(timeout=10)


class Run:
    """One training run in its own thread. Create it with `start_run` or `resume_run`."""

    def __init__(self, plan: RunPlan):
        self.plan, self.config, self.data, self.run_dir = plan, plan.config, plan.data, plan.folder.path
        self.device = resolve_device(plan.config.device)
        self.notes = plan.notes
        self._knobs = plan.knobs  # the latest asked for; the thread applies them at the next iteration
        self._knobs_lock = threading.Lock()
        self._commands: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self._stopping = False
        self._loop: TrainingLoop | None = None
        self._ended: RunState | None = None  # set when the loop could not even be built
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"gan-run-{self.run_dir.name}", daemon=True)
        _RUNS.add(self)

    def start(self) -> Run:
        self._thread.start()
        return self

    # ---- commands (any thread)

    @property
    def knobs(self) -> Knobs:
        return self._knobs

    def update(self, **changes) -> Knobs:
        """Change knobs (lr_g, lr_d, flip_prob, d_iters, d_warmup); they apply from the next iteration."""
        with self._knobs_lock:
            if not self.status.active:
                raise ConfigError(f"the run is {self.status}: its knobs can no longer change")
            self._knobs = knobs = self._knobs.replace(**changes)  # validates: raises ConfigError
        self._commands.put(Command(Kind.KNOBS, knobs))
        return knobs

    def pause(self) -> None:
        """Pause after the current iteration; the status reads 'paused' once the thread waits."""
        self._commands.put(Command(Kind.PAUSE))

    def unpause(self) -> None:
        """Go on training after a pause."""
        self._commands.put(Command(Kind.CONTINUE))

    def step(self, n: int = 1) -> None:
        """While paused, train n more iterations, then wait again."""
        self._commands.put(Command(Kind.STEP, max(0, int(n))))

    def step_player(self, player: str, n: int = 1) -> None:
        """Train only D ('d') or only G ('g') for n updates; the run pauses (if it was not) and stays paused."""
        self._commands.put(Command(Kind(f"step_{player}"), max(1, int(n))))

    def stop(self, wait: bool = True, timeout: float = 30.0) -> None:
        """End training; the thread saves a checkpoint and exits (within a second for small models)."""
        self._stopping = True  # also read inside an iteration, between D updates
        self._commands.put(Command(Kind.STOP))
        if wait:
            self.wait(timeout)

    def checkpoint_now(self, timeout: float = 30.0) -> bool:
        """Ask the thread to write a checkpoint now (e.g. to sample the latest weights); True once written.
        A run that has ended has its final checkpoint already."""
        if not self.alive:
            return self.plan.folder.has_checkpoint()
        done = threading.Event()
        self._commands.put(Command(Kind.SAVE, done=lambda iteration, error: done.set()))
        return done.wait(timeout) and self.plan.folder.has_checkpoint()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run has ended and saved; True when it has.

        An Event, not Thread.join: after a join interrupted by Ctrl-C, CPython reports the thread dead
        while it still runs (seen on 3.11), and the process would exit under a training step.
        """
        if not self._done.wait(timeout):
            return False
        self._thread.join(1.0)  # its last instructions: no thread is mid-exit when the process ends
        return True

    # ---- what it shows (any thread)

    @property
    def alive(self) -> bool:
        return not self._done.is_set()

    @property
    def status(self) -> Status:
        return self._state()[0]

    @property
    def reason(self) -> str:
        return self._state()[1]

    def _state(self) -> RunState:
        loop = self._loop
        return self._ended or (loop.state if loop is not None else RunState(Status.RUNNING, "starting"))

    @property
    def iteration(self) -> int:
        loop = self._loop
        return loop.iteration if loop is not None else self.plan.start_iteration

    @property
    def history(self) -> History:
        loop = self._loop
        return loop.recorder.history if loop is not None else History(COLUMNS)

    def snapshot(self) -> Snapshot:
        loop = self._loop
        status, reason = self._state()
        history = self.history
        quality = loop.recorder.quality if loop is not None else History(QUALITY_TABLE)
        grid = loop.grid if loop is not None else None
        last = history.last()
        return Snapshot(
            status=status, reason=reason, iteration=int(last.get("iteration", 0)), epoch=int(last.get("epoch", 0)),
            elapsed_s=float(last.get("elapsed_s", 0.0)), target=self.config.iterations,
            images_per_s=loop.recorder.images_per_s if loop is not None else 0.0, config=self.config,
            knobs=self._knobs, run_dir=self.run_dir, device=device_label(self.device), history=history.view(),
            quality=quality.view(), grid=grid.image if grid else None, grid_iteration=grid.iteration if grid else 0,
            points=grid.points if grid else None, quality_note=loop.quality.note if loop is not None else None,
            num_classes=self.data.num_classes, events=loop.events if loop is not None else (),
            recognisable=loop.quality.mark if loop is not None else None,
        )  # fmt: skip

    # ---- the training thread

    def _main(self) -> None:
        if hasattr(signal, "pthread_sigmask"):  # Ctrl-C goes to the main thread, never to training
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            loop = self._loop = TrainingLoop(self.plan)
        except BaseException as exc:  # logged by the loop; shown here
            kept = self.plan.start_iteration if self.plan.checkpoint is not None else None
            self._ended = RunState(Status.FAILED, failure_reason(exc, self.plan.folder.path, kept))
            self._done.set()
            return
        driver, error = Driver(loop, inbox=self._commands, stop_requested=self._stop_requested), None
        try:
            driver.run()
        except BaseException as exc:
            error = exc
        finally:
            driver.close(error)
            self._refuse_waiting()
            self._done.set()

    def _stop_requested(self) -> bool:
        return self._stopping

    def _refuse_waiting(self) -> None:
        """Commands that came too late are told so (a save's waiter: the final checkpoint is written)."""
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            if command.done is not None:
                command.done(self.iteration, "the run has ended")


# ---- starting and resuming


def start_run(
    config: RunConfig, knobs: Knobs, runs_dir: str | Path | None = None, name: str | None = None,
    data: Data | None = None,
) -> Run:  # fmt: skip
    """Check the settings, load the data, create the run folder and start training in the background.

    Raises ConfigError (bad settings) or DataError (data that cannot be loaded) before anything is written.
    """
    return Run(plans.new_run(config, knobs, runs_dir, name, data)).start()


def resume_run(
    run_dir: str | Path, iterations: int | None = None, device: str | None = None, threads: int | None = None
) -> Run:
    """Continue a stopped, finished or crashed run from its checkpoint, up to `iterations` in total."""
    return Run(plans.resume(run_dir, iterations, device, threads)).start()


def format_elapsed(seconds: float) -> str:
    """hh:mm:ss, as MATLAB's monitor shows it."""
    seconds = int(seconds) if math.isfinite(seconds) else 0
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
