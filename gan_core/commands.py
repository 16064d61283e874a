"""The commands that train or sample (`train`, `sample`, `evaluate`, `list`): they import torch and the engine, so the
command line loads this module only for them (`control` and `status` start without it)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

from .config import ConfigError, RunConfig, UsageError, check_range, flag_names, from_dict
from .engine import export
from .engine.data import DATASETS, dataset_kind, offline_source
from .engine.devices import resolve_device
from .engine.losses import LOSSES
from .engine.models import ARCHS
from .engine.presets import PRESETS, resolve
from .engine.sampling import generate, latents, load_sampler
from .folder import storage
from .folder.names import Event
from .folder.run_folder import RunFolder, new_run_name
from .folder.status import Status
from .quality.metrics import evaluate_sampler
from .training import distributed, plan
from .training.driver import Driver
from .training.loop import TrainingLoop, failure_reason
from .training.run import format_elapsed

PROGRESS_SECONDS = 2.0

# ---- train: the loop in this process's main thread


def train(args) -> int:
    if args.nproc is not None:
        check_range("nproc", args.nproc, 1, 1024, integer=True)
    if args.max_restarts is not None:
        check_range("max_restarts", args.max_restarts, 0, 100, integer=True)
    if distributed.under_torchrun():
        return train_ranked(args)
    if (args.nproc or 1) > 1 or args.max_restarts:
        return launch(args)
    run = _plan(args)
    _announce(run)
    status = drive(run)
    print(run.folder.path)
    return EXIT_CODES.get(status, 1)


EXIT_CODES = {Status.FINISHED: 0, Status.STOPPED: 130}


def _announce(run: plan.RunPlan) -> None:
    for note in run.notes:
        print(f"note: {note}", file=sys.stderr)
    skipped = f" ({run.data.skipped} unreadable files skipped)" if run.data.skipped else ""
    where = (
        f"{run.group.world} processes on {run.group.device.type}"
        if run.group
        else resolve_device(run.config.device)
    )
    print(f"run {run.folder.path} on {where}: {len(run.data):,} samples of {run.config.dataset}{skipped}, "
          f"batch {run.config.batch_size} x {run.config.nproc}", file=sys.stderr)  # fmt: skip


def _plan(args, world: int = 1, restart: Path | None = None) -> plan.RunPlan:
    """The run a `train` command describes: new, resumed (--resume), or after a restart (`restart`: its folder)."""
    request = train_request(args)
    if not restart:
        request.check()
    if request.mode == "replay" and not restart:
        return plan.replay(args.replay, runs_dir=args.runs_dir, name=args.name)
    if request.mode == "branch" and not restart:
        (run_dir, at), (settings, knobs) = request.source, request.branch_changes()
        return plan.branch(
            run_dir, at, {**settings, "nproc": world}, knobs, runs_dir=args.runs_dir, name=args.name
        )
    if args.resume or restart:
        run = plan.resume(args.resume or restart, iterations=args.iterations, device=args.device,
                          threads=args.threads, nproc=world)  # fmt: skip
        if args.replay:  # a replay restarted by torchrun: its remaining changes
            later = plan.knob_schedule(RunFolder.open(args.replay).read_events()).items()
            run.schedule = {it: changes for it, changes in later if it > run.start_iteration} or None
        return run
    config, knobs = _settings(args)
    return plan.new_run(config.replace(nproc=world), knobs, runs_dir=args.runs_dir, name=args.name)


def train_request(args) -> plan.TrainRequest:
    """The TrainRequest of a parsed `train` command line: --d-iters given as d_iters and d_warmup."""
    given = {name: value for name, value in vars(args).items() if name not in ("command", "argv", "d_iters")}
    if args.d_iters is not None:
        given["d_iters"], given["d_warmup"] = args.d_iters
    return plan.TrainRequest.of(given)


def _settings(args):
    """RunConfig and Knobs from --config (a run's config.json), a preset, and the flags, checked."""
    settings = {name: getattr(args, name) for name in flag_names() if name != "nproc"}  # nproc: the world's
    base: dict = {}
    if args.config:
        path = Path(args.config)
        try:
            config, knobs = from_dict(
                json.loads((RunFolder(path).config_path if path.is_dir() else path).read_text())
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UsageError(
                f"--config {args.config}: not a run's config.json ({str(exc).splitlines()[0]})"
            ) from None
        base = asdict(config) | asdict(knobs)
        base.pop("nproc", None)
    d_iters, d_warmup = args.d_iters or (None, None)
    overrides = {k: v for k, v in settings.items() if v is not None}
    preset = args.preset or base.pop("preset", None)
    base.pop("preset", None)
    return resolve(preset, **{**base, "d_iters": d_iters, "d_warmup": d_warmup, **overrides})


def drive(run: plan.RunPlan) -> Status:
    """Train in this thread until the run ends; progress on stderr every 2 s. Ctrl-C (or SIGTERM) stops after
    the current iteration (checkpoint and metrics saved); a second stops at once. Requests from `control`
    apply at the next iteration."""
    stop, error, shown = StopSignals(), None, [0, time.monotonic() + PROGRESS_SECONDS]

    def progress(loop: TrainingLoop) -> None:
        if time.monotonic() > shown[1]:
            shown[:] = [_progress(loop, shown[0]), time.monotonic() + PROGRESS_SECONDS]

    with stop:
        try:  # a Ctrl-C while the networks are built stops before the first iteration
            loop = TrainingLoop(run)
        except Exception as exc:  # logged, with its traceback, in events.jsonl
            kept = run.start_iteration if run.checkpoint is not None else None
            print(f"failed: {failure_reason(exc, run.folder.path, kept)}", file=sys.stderr)
            return Status.FAILED
        driver = Driver(loop, stop_requested=stop.is_pressed, on_boundary=progress)
        try:
            if run.group is not None and distributed.max_restarts() and loop.last_saved is None:
                loop.save()  # a restart resumes from a checkpoint: the first one is of iteration 0
            driver.run()
        except BaseException as exc:  # the loop logs it and keeps the last good checkpoint
            error = exc
    status = driver.close(error)
    if loop.main:
        _progress(loop, shown[0])
        print(f"{status}: {loop.reason}", file=sys.stderr)
    return status


class StopSignals:
    """While entered (in the main thread): the first Ctrl-C or SIGTERM sets `pressed`, a second raises
    KeyboardInterrupt.

    A KeyboardInterrupt inside an optimiser step would leave the networks part of an iteration ahead of the
    iteration count a checkpoint records; a request honoured at the iteration's end leaves nothing half done."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)
    pressed = False

    def is_pressed(self) -> bool:
        return self.pressed

    def _handle(self, signum, frame) -> None:
        if (
            self.pressed and signum == signal.SIGTERM
        ):  # torchrun passes a Ctrl-C on as SIGTERM: the same request
            return
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True
        what = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
        print(
            f"\n{what}: stopping after this iteration (again to stop at once) ...",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> StopSignals:
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)


# ---- train on N processes: the shorthand that starts torchrun, and each process's part


def launch(args) -> int:
    """`train --nproc N`: check everything checkable here, then run this command again under torchrun."""
    missing = distributed.torchrun_missing()
    if missing:
        raise UsageError(f"--nproc {args.nproc} needs torchrun: {missing}")
    argv = _without(args.argv, ("--nproc", "--max-restarts"))
    if args.resume:
        folder = RunFolder.open(args.resume)
        if folder.owner() is not None:
            raise ConfigError(
                f"run {folder.name} is training in {folder.owner()}: it cannot be resumed twice"
            )
        path = folder.path
    else:
        if args.replay or args.branch:
            original = RunFolder.open(args.replay or args.branch[0])
            root = Path(args.runs_dir) if args.runs_dir else original.path.parent
            at = args.branch and (args.branch[1] if args.branch[1] is not None else
                                  int(original.branch_point()["iteration"]))  # fmt: skip
            name = args.name or (new_run_name(replay_of=original.name) if args.replay else
                                 new_run_name(branch_of=original.name, at=at))  # fmt: skip
            argv = [*_without(argv, ("--runs-dir",)), "--runs-dir", str(root)]
        else:
            config, _ = _settings(args)
            root = storage.runs_root(args.runs_dir)
            name = args.name or new_run_name(config)
        RunFolder.check_new(root, name)
        path = root / name
        argv = [*_without(argv, ("--name",)), "--name", name]
    command = distributed.torchrun_command(args.nproc or 1, args.max_restarts or 0, argv)
    previous = signal.signal(signal.SIGINT, lambda *_: None)  # Ctrl-C reaches torchrun and its processes
    try:
        code = subprocess.call(command)
    finally:
        signal.signal(signal.SIGINT, previous)
    status, _ = RunFolder(path).logged_status() if RunFolder(path).config_path.is_file() else (None, "")
    return EXIT_CODES.get(status, code or 1) if status else (code or 1)


def _without(argv: list[str], flags: tuple[str, ...]) -> list[str]:
    """argv without these flags and their values."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in flags:
            skip = True
        elif not arg.startswith(tuple(f + "=" for f in flags)):
            kept.append(arg)
    return kept


def train_ranked(args) -> int:
    """One of torchrun's processes: join the group; the first plans the run (after a restart: resumes it from its
    last checkpoint) and shares it; all train it together."""
    group = distributed.join(args.device or "auto")
    try:
        shared = None
        if group.main:
            try:
                restart = _restarted_folder(args)
                run = _plan(args, group.world, restart=restart)
                run.group = group
                if restart or (args.resume and distributed.restart_count()):
                    run.folder.log(Event.NOTE, run.start_iteration, text=f"torchrun restart {distributed.restart_count()}: "
                                   f"resumed from the checkpoint of iteration {run.start_iteration}")  # fmt: skip
                shared = plan.Planned.of(run)
                _remember_folder(args, run.folder.path)
            except Exception as exc:
                group.share(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)  # why, instead
                raise
        shared = group.share(shared)
        if not isinstance(shared, plan.Planned):
            return 2  # the first process says why
        if not group.main:
            run = plan.follow(shared, group)
        else:
            _announce(run)
        status = drive(run)
        if group.main:
            print(run.folder.path)
            if status not in (
                Status.FAILED,
                Status.INTERRUPTED,
            ):  # over for good: no restart will look for it
                _pointer(args).unlink(missing_ok=True)
        # torchrun restarts the group when a process exits non-zero: only an outcome a restart could mend says so
        return 1 if status in (Status.FAILED, Status.INTERRUPTED) else 0
    finally:
        group.close()


def _pointer(args) -> Path:
    """Where the first process notes which folder this torchrun job trains (read after a restart)."""
    return storage.runs_root(args.runs_dir) / ".torchrun" / distributed.run_id()


def _restarted_folder(args) -> Path | None:
    if args.resume or not distributed.restart_count():
        return None
    try:
        return Path(_pointer(args).read_text().strip())
    except OSError:
        return None  # it failed before its folder existed: start afresh


def _remember_folder(args, path: Path) -> None:
    if not args.resume:
        storage.atomic_write(_pointer(args), str(path.resolve()))


def _progress(loop: TrainingLoop, shown: int) -> int:
    """Print the latest recorded iteration's line unless it is `shown` already; return the iteration shown."""
    h = loop.recorder.history.last()
    if not h or int(h["iteration"]) == shown:
        return shown
    print(
        f"iter {int(h['iteration'])}/{loop.config.iterations}  epoch {int(h['epoch'])}  score_g {h['score_g']:.3f}  "
        f"score_d {h['score_d']:.3f}  loss_g {h['loss_g']:.3f}  loss_d {h['loss_d']:.3f}  "
        f"{loop.recorder.images_per_s:,.0f} img/s  {format_elapsed(h['elapsed_s'])}",
        file=sys.stderr,
        flush=True,
    )
    return int(h["iteration"])


# ---- sample


def sample(args) -> int:
    out = Path(args.out)
    suffix = out.suffix.lower()
    if suffix not in (".png", ".zip", ".gif", ".npy"):
        raise UsageError(f"--out {args.out!r} has an unknown type: allowed .png, .zip, .gif, .npy")
    if not 1 <= args.n <= 100_000:
        raise UsageError(f"--n {args.n} is out of range: allowed [1, 100000]")
    if suffix == ".gif":  # the run's own grids, not new samples
        storage.atomic_write(out, export.gif_bytes(RunFolder.open(args.run_dir).grids()))
        print(out)
        return 0
    sampler = load_sampler(args.run_dir, args.device)
    z, labels = latents(sampler, args.n, args.seed, args.class_index)
    samples = generate(sampler, z, labels)
    if suffix == ".npy":
        data = export.npy_bytes(samples)
    elif suffix == ".zip":
        if sampler.points:
            raise UsageError("a 2-D run has no images to zip: export .png (a scatter) or .npy (the points)")
        data = export.zip_bytes(samples)
    else:
        nrow = 10 if sampler.conditional and args.class_index is None else None
        data = export.png_bytes(sampler.picture(samples, nrow))
    storage.atomic_write(out, data)
    print(out)
    return 0


# ---- evaluate


def evaluate(args) -> int:
    if not 100 <= args.n <= 100_000:
        raise UsageError(f"--n {args.n} is out of range: allowed [100, 100000]")
    device = resolve_device(args.device)
    sampler = load_sampler(args.run_dir, device)
    if dataset_kind(sampler.config.dataset) == "image":  # 2-D sets (toys, drawings) need no classifier
        print("preparing the data set's classifier (trained once, then cached) ...", file=sys.stderr)
    result = {"run": str(args.run_dir)} | evaluate_sampler(sampler, device, args.n, fid=True)
    if args.json:
        print(json.dumps(result))
    else:
        for name, value in result.items():
            print(f"{name:<20} {value:.4g}" if isinstance(value, float) else f"{name:<20} {value}")
    return 0


# ---- list


def report(args) -> int:
    """One self-contained HTML file of a run; prints its path."""
    from .report import write_report  # plotly loads only for a report

    print(write_report(args.run_dir, args.out))
    return 0


def _dataset_line(name: str, data_dir: str) -> str:
    """A data set's description and whether it loads offline, and from where (default data_dir)."""
    where = offline_source(name, data_dir)
    state = "downloads on first use" if where is None else f"offline: {where}"
    return f"{DATASETS[name].description} ({state})"


def list_all(_args) -> int:
    data_dir = RunConfig().data_dir  # $GAN_DATA_DIR, else data/
    sections = [
        ("architectures", {k: v.description for k, v in ARCHS.items()}),
        ("losses", {k: v.description for k, v in LOSSES.items()}),
        (
            "data sets",
            {k: _dataset_line(k, data_dir) for k in DATASETS} | {"folder:PATH": "any folder of images"},
        ),
        ("presets", {k: v["description"] for k, v in PRESETS.items()}),
    ]
    for title, entries in sections:
        print(f"{title}:")
        for name, text in entries.items():
            print(f"  {name:<14} {text}")
    return 0
