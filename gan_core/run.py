"""A training run in a background thread: live knobs, pause/step/stop, snapshots for a UI, a folder on disk."""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import signal
import threading
import time
import traceback
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from . import storage
from .config import ConfigError, Knobs, RunConfig
from .data import Data, load_dataset
from .export import grid_image, points_image, save_png
from .losses import LOSSES
from .metrics import QualityMonitor
from .models import ARCHS
from .presets import check_compatible, check_data
from .recorder import Recorder
from .trainer import Trainer, device_label, points_bounds, resolve_device

_RUNS: weakref.WeakSet[Run] = weakref.WeakSet()


@atexit.register
def _stop_all_runs() -> None:
    """At interpreter exit, stop and save every run still training (no thread is cut off mid-step)."""
    for run in list(_RUNS):
        run.stop(timeout=10)


FLUSH_ROWS, FLUSH_SECONDS = 256, 0.25  # how often device metrics are read back (one sync each)
CHECKPOINT_SECONDS = 120  # a slow run also checkpoints at least this often


@dataclass(frozen=True)
class Snapshot:
    """What a UI needs to draw a run, as plain CPU data (numbers, numpy views, uint8 images)."""

    status: str
    reason: str
    iteration: int
    epoch: int
    elapsed_s: float
    target: int
    images_per_s: float
    config: RunConfig
    knobs: Knobs
    run_dir: Path
    device: str
    history: dict[str, np.ndarray]
    quality: dict[str, np.ndarray]  # sparse: the iterations where sample quality was measured
    grid: np.ndarray | None  # uint8 (H, W, 3): the latest fixed-latent grid (or 2-D scatter picture)
    grid_iteration: int
    points: dict | None  # 2-D data: real, fake (n, 2), field (s, s) of D's probability, bounds
    quality_note: str | None  # why quality metrics are absent, if they are
    num_classes: int
    events: tuple[dict, ...]

    @property
    def active(self) -> bool:
        return self.status in ("running", "paused")


class Run:
    """One training run. Create it with `start_run` or `resume_run`; it trains in its own thread."""

    def __init__(
        self, config: RunConfig, knobs: Knobs, data: Data, run_dir: Path, checkpoint: dict | None = None
    ):
        self.config, self.data, self.run_dir = config, data, Path(run_dir)
        self.device = resolve_device(config.device)
        self._knobs = knobs
        self._cond = threading.Condition()
        self._stop = self._paused = False
        self._steps = 0
        self._changes: dict = {}
        self._save_requests: list[threading.Event] = []
        self._status, self._reason = "running", "starting"
        self._checkpoint = checkpoint
        self.recorder = Recorder(self.run_dir / "metrics.csv", config.batch_size, LOSSES[config.loss].critic)
        self.history = self.recorder.history
        self.iteration = 0
        self.quality_note: str | None = None
        self._quality_stop, self._quality_thread = threading.Event(), None
        self._events: list[dict] = []
        self._grid: tuple[np.ndarray | None, int] = (None, 0)
        self._points: dict | None = None
        self._last_good = 0  # iteration of the last checkpoint written from finite metrics
        if checkpoint is not None:
            self.iteration = self._last_good = int(checkpoint["iteration"])
            self.recorder.restore(self.iteration)
            self._events = [e for e in storage.read_events(self.run_dir) if e.get("event") == "knobs"]
        self._done = threading.Event()
        # 2-D data: the picture's extent and the real points drawn behind the fakes, fixed for the run
        self._bounds = points_bounds(data) if data.points else None
        self._real_points = data.x[:: max(1, len(data) // 500)][:500].numpy() if data.points else None
        self._thread = threading.Thread(target=self._main, name=f"gan-run-{self.run_dir.name}", daemon=True)
        _RUNS.add(self)

    # ---- control (any thread)

    @property
    def knobs(self) -> Knobs:
        return self._knobs

    @property
    def status(self) -> str:
        return self._status

    @property
    def reason(self) -> str:
        return self._reason

    def update(self, **changes) -> Knobs:
        """Change knobs (lr_g, lr_d, flip_prob, d_iters, d_warmup); they apply from the next iteration."""
        with self._cond:
            if self._status not in ("running", "paused"):
                raise ConfigError(f"the run is {self._status}: its knobs can no longer change")
            knobs = self._knobs.replace(**changes)  # validates: raises ConfigError
            self._changes.update({k: v for k, v in asdict(knobs).items() if getattr(self._knobs, k) != v})
            self._knobs = knobs
        return knobs

    def pause(self) -> None:
        """Pause after the current iteration; the status reads 'paused' once the thread waits."""
        with self._cond:
            self._paused = not self._stop
            self._cond.notify_all()

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def step(self, n: int = 1) -> None:
        """While paused, train n more iterations, then pause again."""
        with self._cond:
            if self._paused:
                self._steps += max(0, int(n))
                self._cond.notify_all()

    def stop(self, wait: bool = True, timeout: float = 30.0) -> None:
        """End training; the thread saves a checkpoint and exits (within a second for small models)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if wait:
            self.wait(timeout)

    def checkpoint_now(self, timeout: float = 30.0) -> bool:
        """Ask the training thread to write checkpoints/last.pt now (e.g. to sample the latest weights).

        True once written; a run that has ended already has its final checkpoint, so True at once.
        """
        if not self.alive:
            return (self.run_dir / "checkpoints" / "last.pt").exists()
        done = threading.Event()
        with self._cond:
            self._save_requests.append(done)
            self._cond.notify_all()
        return done.wait(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run has ended and saved; True when it has.

        An Event, not Thread.join: after a join interrupted by Ctrl-C, CPython reports the thread dead
        while it still runs (seen on 3.11), and the process would exit under a training step.
        """
        if not self._done.wait(timeout):
            return False
        self._thread.join(1.0)  # its last instructions: no thread is mid-exit when the process ends
        return True

    @property
    def alive(self) -> bool:
        return not self._done.is_set()

    def snapshot(self) -> Snapshot:
        grid, grid_iteration = self._grid
        last = self.history.last()
        return Snapshot(
            status=self._status, reason=self._reason, iteration=int(last.get("iteration", 0)),
            epoch=int(last.get("epoch", 0)), elapsed_s=float(last.get("elapsed_s", 0.0)),
            target=self.config.iterations, images_per_s=self.recorder.images_per_s, config=self.config,
            knobs=self._knobs, run_dir=self.run_dir, device=device_label(self.device),
            history=self.history.view(), quality=self.recorder.quality.view(), grid=grid, grid_iteration=grid_iteration, points=self._points, quality_note=self.quality_note,
            num_classes=self.data.num_classes,
            events=tuple(self._events),
        )  # fmt: skip

    # ---- the training thread

    def _main(self) -> None:
        if hasattr(
            signal, "pthread_sigmask"
        ):  # Ctrl-C goes to the main thread, never to training or its workers
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        trainer = None
        try:
            if self.device.type == "cpu" and self.config.threads:
                torch.set_num_threads(self.config.threads)
            trainer = Trainer(self.config, self._knobs, self.data, self.device)
            if self._checkpoint is not None:
                trainer.load_state_dict(self._checkpoint["trainer"])
                self._checkpoint = None
            self._trainer = trainer
            self._quality = self._start_quality(trainer)
            self._set_status("running", "")
            self._loop(trainer)
        except Exception as exc:  # the run ends with the reason shown; the last good checkpoint stays
            self._set_status("failed", f"{type(exc).__name__}: {exc}")
            storage.append_event(self.run_dir, {"event": "traceback", "text": traceback.format_exc()})
        finally:
            self._quality_stop.set()  # a classifier still training for this run stops, and is waited for
            if self._quality_thread is not None:
                self._quality_thread.join()
            for done in self._save_requests:  # nobody waits for a save that will not come
                done.set()
            if trainer is not None:
                self._trainer = None
                trainer.release()
            self._done.set()

    def _loop(self, trainer: Trainer) -> None:
        self.recorder.start_clock()
        self._t_saved = self._t_trained = time.monotonic()
        if self.iteration > 0:  # resumed: show where it stands before the next grid is due
            self._sample(trainer, self.iteration)
        while True:
            if self._paused and not self._steps and not self._stop:
                self._flush()
                self._wait_while_paused()
            with self._cond:
                if self._stop:
                    break
                if self._paused and not self._steps:
                    continue
                self._steps = max(0, self._steps - 1)
                knobs, changes, self._changes = self._knobs, self._changes, {}
            if self.iteration >= self.config.iterations:
                break
            if self._save_requests and not self._save_requested():
                return
            if changes:  # recorded with the iteration that first uses them
                self._event("knobs", iteration=self.iteration + 1, changes=changes)
            if not self._train_one(trainer, knobs):
                return  # diverged: nothing more is saved over the last good checkpoint
        self._finish(trainer)

    def _wait_while_paused(self) -> None:
        self._flush()
        with self._cond:
            self._set_status("paused", f"paused at iteration {self.iteration}")
            waited = time.monotonic()
            while self._paused and not self._steps and not self._stop:
                self._cond.wait()
                if self._save_requests:
                    self._cond.release()  # save outside the lock; the UI may call in meanwhile
                    try:
                        self._save_requested()
                    finally:
                        self._cond.acquire()
            self.recorder.skip_time(time.monotonic() - waited)  # elapsed time leaves pauses out
            self._t_trained += time.monotonic() - waited
            if not self._paused:
                self._set_status("running", "")

    def _train_one(self, trainer: Trainer, knobs: Knobs) -> bool:
        it = self.iteration + 1
        row, n_d, (lr_g, lr_d) = trainer.iteration(knobs, it, lambda: self._stop)
        quality = None
        if self._quality.due(it, time.monotonic() - self._t_trained):
            quality = self._quality.measure(trainer.generator)
        self.recorder.add(
            row, (it, trainer.epoch, time.monotonic(), lr_g, lr_d, knobs.flip_prob, n_d), quality
        )
        self.iteration = it
        due = len(self.recorder) >= FLUSH_ROWS or self.recorder.seconds_since_flush() > FLUSH_SECONDS
        if (due or self._paused) and not self._flush():
            return False
        if it == 1 or it % self.config.sample_every == 0:
            self._sample(trainer, it)
        if it % self.config.checkpoint_every == 0 or time.monotonic() - self._t_saved > CHECKPOINT_SECONDS:
            return self._save(trainer)
        return True

    def _save_requested(self) -> bool:
        with self._cond:
            requests, self._save_requests = self._save_requests, []
        ok = self._save(self._trainer)
        for done in requests:
            done.set()
        return ok

    def _finish(self, trainer: Trainer) -> None:
        if not self._save(trainer):
            return
        if self._grid[1] != self.iteration:
            self._sample(trainer, self.iteration)
        if self.iteration >= self.config.iterations and not self._stop:
            self._set_status("finished", f"reached {self.config.iterations} iterations")
        else:
            self._set_status("stopped", f"stopped at iteration {self.iteration}")

    # ---- metrics, samples, checkpoints

    def _flush(self) -> bool:
        """Record pending metrics; False (and the run diverged) when a loss went non-finite."""
        bad = self.recorder.flush()
        if bad is None:
            return True
        it, which, value = bad
        self._set_status(
            "diverged",
            f"{which} became {value} at iteration {it}; the last good checkpoint (iteration {self._last_good}) "
            "is kept — try a lower learning rate",
        )
        return False

    def _start_quality(self, trainer: Trainer) -> QualityMonitor:
        """Sample-quality metrics; an image data set's classifier is prepared in the background."""
        quality = QualityMonitor(self.data, self.device, self.config.z_dim, trainer.arch.conditional,
                                 self.config.data_dir, every=self.config.eval_every, seed=self.config.seed)  # fmt: skip
        self.quality_note = quality.note
        if quality.kind == "image" and self.config.eval_every != 0:
            self._quality_thread = threading.Thread(
                target=self._prepare_quality, args=(quality,), daemon=True
            )
            self._quality_thread.start()
        return quality

    def _prepare_quality(self, quality: QualityMonitor) -> None:
        with contextlib.suppress(AttributeError, OSError):  # Linux: this thread yields the cores to training
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        try:
            quality.prepare(self._quality_stop)
        except InterruptedError:
            pass
        except Exception as exc:  # training goes on without the metrics; say why
            self.quality_note = f"quality metrics unavailable: {type(exc).__name__}: {exc}"
            self._event("quality", note=self.quality_note)

    def _sample(self, trainer: Trainer, it: int) -> None:
        samples = trainer.sample_fixed()
        if self.data.points:
            bounds, real = self._bounds, self._real_points
            field = trainer.decision_field(bounds).numpy()
            self._points = {
                "real": real,
                "fake": samples.numpy(),
                "field": field,
                "bounds": bounds,
                "iteration": it,
            }
            image = points_image(real, samples.numpy(), field, bounds)
        else:
            nrow = 10 if ARCHS[self.config.arch].conditional else None
            image = grid_image(samples, nrow)
        save_png(image, self.run_dir / "samples" / f"iter_{it:07d}.png")
        self._grid = (image, it)

    def _save(self, trainer: Trainer) -> bool:
        """Checkpoint atomically, but only after the metrics up to now are known to be finite."""
        if not self._flush():
            return False
        state = {
            "trainer": trainer.state_dict(), "iteration": self.iteration, "epoch": trainer.epoch,
            "elapsed_s": float(self.history.last().get("elapsed_s", 0.0)), "knobs": asdict(self._knobs),
            "config": asdict(self.config), "bounds": self._bounds,
            "spec": asdict(trainer.spec),  # what the networks were built for: sampling rebuilds them from it
        }  # fmt: skip
        storage.save_checkpoint(self.run_dir / "checkpoints" / "last.pt", state)
        self._last_good, self._t_saved = self.iteration, time.monotonic()
        return True

    # ---- status and events

    def _set_status(self, status: str, reason: str) -> None:
        changed = status != self._status or reason != self._reason
        self._status, self._reason = status, reason
        if changed:
            self._event("status", status=status, reason=reason)

    def _event(self, kind: str, **fields) -> None:
        event = {
            "event": kind,
            "iteration": fields.pop("iteration", self.iteration),
            "time": time.time(),
            **fields,
        }
        if kind == "knobs":
            self._events.append(event)
        storage.append_event(self.run_dir, event)


# ---- starting and resuming


def start_run(
    config: RunConfig, knobs: Knobs, runs_dir: str | Path | None = None, name: str | None = None,
    data: Data | None = None,
) -> Run:  # fmt: skip
    """Check the settings, load the data, create the run folder and start training in the background.

    Raises ConfigError (bad settings) or DataError (data that cannot be loaded) before anything starts.
    """
    check_compatible(config, knobs)
    data = data or load_dataset(config.dataset, ARCHS[config.arch].image_size, config.data_dir)
    check_data(config, data)
    try:
        resolve_device(config.device)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    root = storage.runs_root(runs_dir)
    run_dir = storage.new_run_dir(
        root, name or storage.timestamp_name(config.preset or config.arch, config.dataset)
    )
    storage.write_config(run_dir, config, knobs)
    run = Run(config, knobs, data, run_dir)
    run._event("start", device=str(run.device), samples=len(data), skipped=data.skipped)
    run._thread.start()
    return run


def resume_run(
    run_dir: str | Path, iterations: int | None = None, device: str | None = None, threads: int | None = None
) -> Run:
    """Continue a stopped or crashed run from its last checkpoint, up to `iterations` in total."""
    run_dir = Path(run_dir)
    config, _ = storage.read_config(run_dir)
    path = run_dir / "checkpoints" / "last.pt"
    if not path.is_file():
        raise ConfigError(f"{run_dir} has no checkpoint to resume from (checkpoints/last.pt)")
    checkpoint = storage.load_checkpoint(path)
    knobs = Knobs(**checkpoint["knobs"])
    done = int(checkpoint["iteration"])
    config = config.replace(
        iterations=iterations or max(config.iterations, done), device=device or config.device,
        threads=threads or config.threads,
    )  # fmt: skip
    if config.iterations < done:
        raise ConfigError(
            f"iterations {config.iterations} is below the {done} already done: allowed [{done}, ...]"
        )
    data = load_dataset(config.dataset, ARCHS[config.arch].image_size, config.data_dir)
    storage.write_config(run_dir, config, knobs)
    run = Run(config, knobs, data, run_dir, checkpoint=checkpoint)
    run._event("resume", from_iteration=done)
    run._thread.start()
    return run


def format_elapsed(seconds: float) -> str:
    """hh:mm:ss, as MATLAB's monitor shows it."""
    seconds = int(seconds) if math.isfinite(seconds) else 0
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
