"""One synchronous training loop: `step()` trains an iteration and says what it did; metrics, grids, checkpoints
and sample quality hang on it as hooks. It knows nothing of threads or processes: a driver calls it (the CLI
from its main thread, the app from one background thread)."""

from __future__ import annotations

import contextlib
import shlex
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..config import Knobs
from ..engine.devices import resolve_device
from ..engine.export import picture
from ..engine.losses import LOSSES
from ..engine.models import ARCHS
from ..engine.solo import train_player
from ..engine.toy_views import ToyViews
from ..engine.trainer import Trainer, points_bounds
from ..folder import storage
from ..folder.names import Event
from ..folder.status import RunState, Status
from .hooks import Hook, QualityHook, default_hooks
from .plan import RunPlan
from .recorder import Recorder, StepResult

# torch's own default (the physical cores), read at import, before anyone sets it
DEFAULT_THREADS = torch.get_num_threads()


class Grid(NamedTuple):
    """The latest picture of the fixed latents; for 2-D data also its parts, for an interactive chart."""

    image: np.ndarray  # uint8 (H, W, 3)
    iteration: int
    points: dict | None  # real, fake (n, 2), D's field (s, s), bounds; arrows, manifold (toy_views)


class Diverged(Exception):
    """A loss became NaN or infinite; the message says which, when, and what checkpoint is kept."""


class Interrupted(Exception):
    """The run cannot go on, though nothing is wrong with it (another process of its group ended)."""


class TrainingLoop:
    """Trains the run a plan describes, one `step()` at a time; `close()` ends it, saved, with its status."""

    def __init__(self, plan: RunPlan, hooks: tuple[Hook, ...] = ()):
        self.plan, self.folder, self.config, self.data = plan, plan.folder, plan.config, plan.data
        self.group = plan.group  # one of N processes training this run (torchrun), or None
        self.main = self.group is None or self.group.main  # the process that writes the folder
        self.knobs = plan.knobs
        self.iteration = plan.start_iteration
        self.events: tuple[dict, ...] = ()  # knob changes, as logged (the curves mark them)
        self.grid: Grid | None = None
        self.grid_drawn = time.monotonic()  # when self.grid was drawn
        self.saved_grid: int | None = None  # the iteration of the last grid saved in samples/
        self.bounds = points_bounds(self.data) if self.data.points else None  # 2-D: the picture's half-width
        self.views = ToyViews() if self.data.points else None  # 2-D: G's arrows and manifold, once a second
        self.last_saved: int | None = None  # iteration of the last checkpoint written from finite metrics
        self._saved_knobs: Knobs | None = None
        self._state = RunState(Status.RUNNING, "starting")
        self._build(plan)
        # only the process that writes the folder draws grids, measures sample quality, and writes what was asked
        asked = tuple(make(self) for make in plan.asked_hooks()) if self.main else ()
        self.hooks = default_hooks(self, asked, hooks)
        self._saved_at = time.monotonic()
        self.recorder.start_clock()
        self._set_status(Status.RUNNING, "")
        if self.iteration and self.main:  # resumed: show where it stands before the next grid is due
            self.sample()

    def _build(self, plan: RunPlan) -> None:
        """The device, networks, recorder and quality hook, the checkpoint restored; a failure here ends the run
        before its first step, with the reason logged."""
        try:
            self.device = self.group.device if self.group else resolve_device(self.config.device)
            # set in the thread that steps the loop: torch keeps its thread count per thread
            if self.device.type == "cpu":
                torch.set_num_threads(self.config.threads or DEFAULT_THREADS)
            replicas = self.group.replicas() if self.group else None
            self.trainer = Trainer(self.config, self.knobs, self.data, self.device, replicas)
            critic = LOSSES[self.config.loss].critic
            self.recorder = Recorder(self.folder, self.config.batch_size * self.trainer.world, critic)
            if plan.checkpoint is not None:
                self._restore(plan.checkpoint)
            self.quality = QualityHook(self)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                self._set_status(Status.STOPPED, "interrupted before its first iteration")
            else:
                self._fail(exc)
            plan.release()
            raise

    def _restore(self, checkpoint: dict) -> None:
        note = self.trainer.load_state_dict(checkpoint["trainer"])
        if note:
            self.folder.log(Event.NOTE, self.iteration, text=note)
        self.recorder.restore(self.iteration)
        self.events = tuple(e for e in self.folder.read_events() if e.get("event") == Event.KNOBS)
        self.last_saved = self.iteration

    # ---- state

    @property
    def status(self) -> Status:
        return self._state[0]

    @property
    def reason(self) -> str:
        return self._state[1]

    @property
    def state(self) -> RunState:
        """(status, reason), read together."""
        return self._state

    @property
    def done(self) -> bool:
        return self.iteration >= self.config.iterations

    @property
    def epoch(self) -> int:
        return self.trainer.epoch

    def _set_status(self, status: Status, reason: str) -> None:
        if (status, reason) != self._state:
            self._state = RunState(status, reason)
            self.folder.log(Event.STATUS, self.iteration, status=status.value, reason=reason)

    # ---- training

    def step(self, interrupted: Callable[[], bool] | None = None) -> StepResult:
        """Train one iteration with the knobs in force. Raises Diverged when a recorded loss is not finite."""
        done = self.trainer.iteration(self.knobs, self.iteration + 1, interrupted)
        self.iteration += 1
        step = StepResult(
            self.iteration, self.trainer.epoch, done.d_updates, done.lr_g, done.lr_d, done.metrics
        )
        for hook in self.hooks:
            hook.after_step(self, step)
        return step

    def set_knobs(self, knobs: Knobs) -> None:
        """New knobs from the next iteration on, logged with the iteration that first uses them."""
        changes = {k: v for k, v in asdict(knobs).items() if getattr(self.knobs, k) != v}
        if changes:
            self.events += (self.folder.log(Event.KNOBS, self.iteration + 1, changes=changes),)
        self.knobs = knobs

    def pause(self) -> None:
        self.flush()
        self._set_status(Status.PAUSED, f"paused at iteration {self.iteration}")

    def unpause(self) -> None:
        self._set_status(Status.RUNNING, "")

    def train_player(self, player: str, updates: int) -> None:
        """Train D alone ('d') or G alone ('g') for `updates` updates; the iteration stays, the change is logged
        and the picture of the fixed latents redrawn (a paused run's D-only and G-only steps)."""
        self.flush()
        train_player(self.trainer, player, updates, self.knobs.flip_prob)
        self.folder.log(Event.SOLO, self.iteration, player=player, updates=updates)
        if self.views is not None:  # the arrows and the mesh show the change at once
            self.views.stale()
        if self.main:
            self.sample(save=False)

    def skip_time(self, seconds: float) -> None:
        """Leave time spent waiting (paused) out of the elapsed time and the rates."""
        self.recorder.skip_time(seconds)

    # ---- metrics, samples, checkpoints

    def flush(self) -> None:
        """Record the pending metrics (one device sync); Diverged if a loss among them is not finite.
        In a group, rows are recorded only as the mean over its processes, at a boundary (`record`): a flush
        between boundaries (an interruption) drops them."""
        block = self.recorder.take()
        if block is not None and self.group is None:
            self.record(block)

    def record(self, block: Tensor) -> None:
        """Record the rows last taken from the recorder with these metrics (n, 6); Diverged as in flush."""
        bad = self.recorder.record(block)
        if bad is None:
            return
        kept = (f"the last good checkpoint (iteration {self.last_saved}) is kept" if self.last_saved is not None
                else "no checkpoint had been written yet")  # fmt: skip
        raise Diverged(
            f"{bad.loss} became {bad.value} at iteration {bad.iteration}; {kept} — try a lower learning rate"
        )

    def sample(self, save: bool = True) -> Grid:
        """Draw the fixed latents now: publish the picture and save it as samples/iter_N.png (save=False: only as
        the folder's live picture, for watchers; the saved grids and the GIF keep their iteration schedule)."""
        samples = self.trainer.sample_fixed()
        points = None
        if self.data.points:
            bounds, real = self.bounds, self.data.real_points().numpy()
            field = self.trainer.decision_field(bounds).numpy()
            points = {"real": real, "fake": samples.numpy(), "field": field, "bounds": bounds,
                      "iteration": self.iteration, **self.views(self.trainer, samples, self.iteration)}  # fmt: skip
            image = picture(samples, real=real, field=field, bounds=bounds)
        else:
            image = picture(samples, 10 if ARCHS[self.config.arch].conditional else None)
        if save:
            self.folder.save_grid(image, self.iteration)
            self.saved_grid = self.iteration
        else:
            self.folder.save_live_grid(image)
        self.grid = Grid(image, self.iteration, points)
        self.grid_drawn = time.monotonic()
        return self.grid

    def save(self) -> None:
        """Checkpoint now, atomically, once the metrics up to now are known to be finite."""
        self.flush()
        if self.group is not None:  # every checkpoint checks that the processes still hold the same weights
            identical = self.group.check_replicas(self.trainer)
            self.folder.log(Event.REPLICAS, self.iteration, processes=self.group.world, identical=identical)
        state = {
            "trainer": self.trainer.state_dict(), "iteration": self.iteration, "epoch": self.trainer.epoch,
            "elapsed_s": float(self.recorder.history.last().get("elapsed_s", 0.0)), "knobs": asdict(self.knobs),
            "config": asdict(self.config), "spec": asdict(self.trainer.spec), "bounds": self.bounds,
        }  # fmt: skip
        # a second save at one iteration overwrites last.pt alone: previous.pt stays the older checkpoint
        self.folder.save_checkpoint(
            state, rotate=self.last_saved != self.iteration, keep=self.config.keep_checkpoints
        )
        self.last_saved, self._saved_at, self._saved_knobs = self.iteration, time.monotonic(), self.knobs

    def seconds_since_save(self) -> float:
        return time.monotonic() - self._saved_at

    # ---- the end

    def close(self, error: BaseException | None = None) -> Status:
        """End the run and say why: saved and finished or stopped (no error), or failed, diverged, interrupted at
        once (a second Ctrl-C) with the last good checkpoint kept. Releases the networks and the folder."""
        try:
            self._end(error)
        except Diverged as exc:
            with contextlib.suppress(OSError):  # a full disk may refuse the log: the reason is still this
                self._set_status(Status.DIVERGED, str(exc))
        except Exception as exc:  # saving failed (a full disk ...): say so
            self._fail(exc)
        finally:
            for hook in self.hooks:
                with contextlib.suppress(OSError):  # a full disk ends no hook's close before the release
                    hook.close(self)
            self.trainer.release()
            self.plan.release()
        return self.status

    def _end(self, error: BaseException | None) -> None:
        if isinstance(error, KeyboardInterrupt):  # mid-iteration: the networks may be half a step ahead
            with contextlib.suppress(Diverged):
                self.flush()
            kept = (
                f"checkpoint of iteration {self.last_saved} kept"
                if self.last_saved is not None
                else "no checkpoint"
            )
            self._set_status(Status.STOPPED, f"interrupted at once at iteration {self.iteration} ({kept})")
        elif isinstance(error, Interrupted):
            kept = (
                f"last good checkpoint: iteration {self.last_saved}"
                if self.last_saved is not None
                else "no checkpoint"
            )
            self._set_status(Status.INTERRUPTED, f"{error} at iteration {self.iteration} ({kept})")
        elif error is not None:
            raise error
        else:
            if self.last_saved != self.iteration or self.knobs != self._saved_knobs:  # not saved here already
                self.save()
            if self.saved_grid != self.iteration:
                self.sample()
            if self.done:
                self._set_status(Status.FINISHED, f"reached {self.config.iterations} iterations")
            else:
                self._set_status(Status.STOPPED, f"stopped at iteration {self.iteration}")

    def _fail(self, exc: BaseException) -> None:
        """Failed, with the reason; events.jsonl also gets the traceback, where the disk still takes it."""
        try:
            self._set_status(Status.FAILED, failure_reason(exc, self.folder.path, self.last_saved))
            self.folder.log(Event.TRACEBACK, self.iteration, text="".join(traceback.format_exception(exc)))
        except OSError:  # a full disk: the status holds the reason, for the caller to show
            pass


def failure_reason(exc: BaseException, run_dir: Path | None = None, kept: int | None = None) -> str:
    """Why a run failed, in a line. A full disk says which folder, about how much the write needed, what is kept
    (`kept`: the last good checkpoint's iteration) and how to go on: torch's own text for it ('[enforce fail at
    inline_container.cc:...] unexpected pos ...') says none of that."""
    full = storage.full_error(exc)
    if full is None:
        return f"{type(exc).__name__}: {exc}"
    if isinstance(full, storage.DiskFull):
        where = full.describe(run_dir)
    else:  # written outside storage's writers (TensorBoard's event files ...)
        where = f"no space left on the device{f' writing {full.filename}' if full.filename else ''}"
    if kept is None or run_dir is None:
        return f"disk full: {where}; no checkpoint had been written yet: free space and start the run again"
    resume = f"python -m gan_core train --resume {shlex.quote(str(Path(run_dir).absolute()))}"
    return (f"disk full: {where}; the last good checkpoint (iteration {kept}) is kept; free space and run "
            f"`{resume}` to continue")  # fmt: skip
