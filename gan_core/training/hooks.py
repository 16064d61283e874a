"""The hooks every run has — metrics recorded, grids drawn, checkpoints written, sample quality measured, a replay's
knob changes applied — as `default_hooks(loop)` lists them. A hook sees the loop through LoopView; the loop calls
each after every step and once when it closes. Which process records and checkpoints when is decided here alone:
a process on its own does both as they fall due (AlonePolicy); a group's driver does both at the boundaries its
processes agree on."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Protocol

import torch

from ..config import Knobs, RunConfig
from ..engine.data import Data
from ..engine.trainer import Trainer
from ..folder import milestone
from ..folder.names import Event
from ..folder.run_folder import RunFolder
from ..quality.metrics import QualityMonitor
from .recorder import Recorder, StepResult

CHECKPOINT_SECONDS = 120  # a slow run also checkpoints at least this often
LIVE_GRID_SECONDS = 3.0  # between saved grids, the monitor's grid is drawn at least this often


class LoopView(Protocol):
    """What a hook may use of the loop it hangs on (gan_core.training.loop.TrainingLoop)."""

    config: RunConfig
    knobs: Knobs
    data: Data
    folder: RunFolder
    recorder: Recorder
    trainer: Trainer
    device: torch.device
    iteration: int
    grid_drawn: float
    last_saved: int | None

    def sample(self, save: bool = True) -> object: ...

    def save(self) -> None: ...

    def flush(self) -> None: ...

    def seconds_since_save(self) -> float: ...

    def set_knobs(self, knobs: Knobs) -> None: ...


class Hook:
    """Something done after each step and when the loop closes; subclasses override what they need."""

    def after_step(self, loop: LoopView, step: StepResult) -> None:
        pass

    def close(self, loop: LoopView) -> None:
        pass


class MetricsHook(Hook):
    """Each step's metrics into the recorder; they stay on the device until recorded in a block."""

    def after_step(self, loop: LoopView, step: StepResult) -> None:
        loop.recorder.add(step, loop.knobs.flip_prob)


def checkpoint_due(loop: LoopView) -> bool:
    """Every checkpoint_every iterations, and at least every CHECKPOINT_SECONDS."""
    it = loop.iteration
    every = bool(it) and it % loop.config.checkpoint_every == 0 and loop.last_saved != it
    return every or loop.seconds_since_save() > CHECKPOINT_SECONDS


class AlonePolicy(Hook):
    """A process training alone records its metrics in blocks (about 4 a second: one device sync each) and
    checkpoints as they fall due. (A group of processes does both at a boundary, once the metrics up to it are
    agreed: the driver decides there.)"""

    def after_step(self, loop: LoopView, step: StepResult) -> None:
        if loop.recorder.due:
            loop.flush()
        if checkpoint_due(loop):
            loop.save()


class GridHook(Hook):
    """The fixed latents' grid at iteration 1 and every sample_every, saved; in between, on a slow model, a live
    one at least every LIVE_GRID_SECONDS (one no-grad pass of the fixed latents), so the monitor keeps moving."""

    def after_step(self, loop: LoopView, step: StepResult) -> None:
        if step.iteration == 1 or step.iteration % loop.config.sample_every == 0:
            loop.sample()
        elif time.monotonic() - loop.grid_drawn > LIVE_GRID_SECONDS:
            loop.sample(save=False)


class ScheduleHook(Hook):
    """Knob changes at the iterations a schedule names (a replay), each applied after the iteration before it,
    as the original's boundary applied it; logged as any change is."""

    def __init__(self, schedule: dict[int, dict]):
        self.schedule = schedule

    def after_step(self, loop: LoopView, step: StepResult) -> None:
        changes = self.schedule.get(step.iteration + 1)
        if changes:
            loop.set_knobs(loop.knobs.replace(**changes))


class QualityHook(Hook):
    """Sample-quality metrics every so often, within a budget of the training thread's CPU time; the first
    measurement that reaches the recognisable mark (gan_core.milestone) is logged, once per run.

    An image data set's classifier is loaded from its cache on the training thread itself, when the first
    measurement is due (about a second, charged to the budget). Only when it has never been trained on this
    machine is it trained in a background thread on one low-priority CPU thread: any second thread pool beside
    the training's own would slow it (bench/README.md)."""

    def __init__(self, loop: LoopView):
        config = loop.config
        self.monitor = QualityMonitor(loop.data, loop.device, config.z_dim, loop.trainer.arch.conditional,
                                      config.data_dir, every=config.eval_every, seed=config.seed)  # fmt: skip
        self.note: str | None = self.monitor.note  # why there are no quality metrics, if there are none
        self._stop, self._thread = threading.Event(), None
        self._folder, self._iteration = loop.folder, loop.iteration
        self.mark = milestone.find(loop.folder.read_events())  # resumed or branched: it may have one already
        # The budget counts CPU time of the thread that steps the loop: time paused, stopped or lent to other
        # processes neither earns measurements nor is charged for them.
        self._cpu_started = time.thread_time()
        if self.monitor.kind == "image" and config.eval_every != 0 and not self.monitor.cached:
            self._thread = threading.Thread(target=self._train_classifier, name="gan-quality", daemon=True)
            self._thread.start()

    def _train_classifier(self) -> None:
        with contextlib.suppress(AttributeError, OSError):  # Linux: this thread yields the cores to training
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            self.monitor.prepare(self._stop)
        except InterruptedError:
            pass
        except Exception as exc:  # training goes on without the metrics; say why
            self._unavailable(exc)
        finally:
            torch.set_num_threads(threads)  # torch keeps the count process-wide for threads started later

    def _unavailable(self, exc: Exception) -> None:
        self.note = f"quality metrics unavailable: {type(exc).__name__}: {exc}"
        self._folder.log(Event.QUALITY, self._iteration, note=self.note)

    def after_step(self, loop: LoopView, step: StepResult) -> None:
        self._iteration = step.iteration
        if not self.monitor.wants(step.iteration, time.thread_time() - self._cpu_started):
            return
        if not self.monitor.ready and self._thread is None and self.note is None:
            try:
                self.monitor.prepare()  # cached: loaded here, on the training thread
            except Exception as exc:
                self._unavailable(exc)
                return
        if self.monitor.ready:
            values = self.monitor.measure(loop.trainer.shown_generator)
            loop.recorder.add_quality(step.iteration, values)
            self._mark(loop, step.iteration, values)

    def _mark(self, loop: LoopView, iteration: int, values: dict[str, float]) -> None:
        detail = None if self.mark is not None else self.monitor.reached(values)
        if detail is not None:
            self.mark = milestone.log(loop.folder, iteration, loop.recorder.elapsed_now(), detail)

    def close(self, loop: LoopView) -> None:
        self._stop.set()  # a classifier still training for this run stops, and is waited for
        if self._thread is not None:
            self._thread.join()


def default_hooks(loop, asked: tuple[Hook, ...] = (), extra: tuple[Hook, ...] = ()) -> tuple[Hook, ...]:
    """The hooks of a run, in the order they run: the writing process's grids, sample quality and the hooks its
    settings asked for (`asked`: TensorBoard); metrics; alone, the recording and checkpoint policy; `extra`; last a
    replay's knob changes, applied as a boundary would apply them."""
    writing = (loop.quality, GridHook(), *asked) if loop.main else ()
    policy = (AlonePolicy(),) if loop.group is None else ()
    schedule = (ScheduleHook(loop.plan.schedule),) if loop.plan.schedule else ()
    return (*writing, MetricsHook(), *policy, *extra, *schedule)
