"""Command line: `python -m gan_core train | control | status | sample | evaluate | list` — the engine without
the web app. `train --nproc N` trains one run on N processes under torchrun."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

from . import distributed, export, plan, storage
from .config import DEVICES, ConfigError, check_range, from_dict
from .control import check_request
from .data import DATASETS, TOYS, DataError
from .driver import Driver
from .folder import RunFolder, Status, run_info
from .loop import TrainingLoop
from .losses import LOSSES
from .metrics import evaluate_sampler
from .models import ARCHS
from .presets import PRESETS, resolve
from .run import format_elapsed
from .sampling import generate, latents, load_sampler
from .trainer import resolve_device

# `train` flags that map one-to-one onto a RunConfig field or knob of the same name (dashes as underscores)
SETTING_FLAGS = [("--arch", str), ("--loss", str), ("--dataset", str), ("--iterations", int),
                 ("--batch-size", int), ("--lr-g", float), ("--lr-d", float), ("--flip-prob", float),
                 ("--z-dim", int), ("--sample-every", int), ("--seed", int), ("--threads", int),
                 ("--optimizer", str), ("--beta1", float), ("--beta2", float), ("--clip-value", float),
                 ("--checkpoint-every", int), ("--pack", int), ("--augment", str), ("--eval-every", int),
                 ("--width", float), ("--data-dir", str)]  # fmt: skip
RESUME_FLAGS = (
    "iterations",
    "device",
    "threads",
    "nproc",
    "max_restarts",
)  # what may change when a run continues
KNOB_FLAGS = (
    ("--lr-g", float),
    ("--lr-d", float),
    ("--flip-prob", float),
)  # `control`, as `train` spells them
PROGRESS_SECONDS = 2.0


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line on stderr, exit 2 (argparse would print the usage too)
        raise UsageError(message)


def d_iters_arg(text: str) -> tuple[int | None, bool]:
    """'5' -> five D updates; 'warmup' or 'warmup:5' -> the Keras schedule around a base of 5."""
    name, _, base = text.partition(":")
    if name == "warmup":
        return (int(base) if base else 5), True
    try:
        return int(text), False
    except ValueError:
        raise argparse.ArgumentTypeError(f"d-iters {text!r} is not a number or 'warmup[:K]'") from None


def build_parser() -> Parser:
    parser = Parser(prog="python -m gan_core", description="Train GANs, sample from them, list what exists.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    train = sub.add_parser("train", help="train a GAN; prints the run folder's path as its last line")
    train.add_argument("--preset", help="a reference design or toy (see `list`)")
    for flag, kind in SETTING_FLAGS:
        train.add_argument(flag, type=kind)
    train.add_argument("--d-iters", type=d_iters_arg, help="D updates per G update, or warmup[:K]")
    train.add_argument("--device", choices=DEVICES)
    train.add_argument("--runs-dir", help="default: $GAN_RUNS_DIR or ./runs")
    train.add_argument("--name", help="run folder name (default: time, preset, data set)")
    train.add_argument(
        "--config", metavar="CONFIG_JSON", help="start from a run's config.json (flags override it)"
    )
    train.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue this run up to --iterations in total (--device, --threads may change too)",
    )
    train.add_argument(
        "--nproc",
        type=int,
        help="processes that train the run together, under torchrun (one GPU each on CUDA); default 1",
    )
    train.add_argument(
        "--max-restarts",
        type=int,
        help="with --nproc: restart the processes this often after "
        "a failure, from the last checkpoint (default 0)",
    )
    control = sub.add_parser(
        "control", help="steer a live run: change its knobs, pause, step, continue, stop, save"
    )
    control.add_argument("run_dir")
    for flag, kind in KNOB_FLAGS:
        control.add_argument(flag, type=kind)
    control.add_argument("--d-iters", type=d_iters_arg, help="D updates per G update, or warmup[:K]")
    action = control.add_mutually_exclusive_group()
    for flag in ("--pause", "--continue", "--stop", "--save"):
        action.add_argument(flag, dest="action", action="store_const", const=flag[2:])
    action.add_argument("--step", type=int, metavar="N", help="while paused, train N iterations")
    control.add_argument("--wait", action="store_true", help="exit once applied; print the iteration")
    control.add_argument("--timeout", type=float, default=60.0, help="seconds --wait waits (default 60)")
    status = sub.add_parser("status", help="a run's status, iteration, process, host and heartbeat")
    status.add_argument("run_dir")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    sample = sub.add_parser("sample", help="export samples of a run: .png grid, .zip, .gif time-lapse, .npy")
    sample.add_argument("run_dir")
    sample.add_argument("--n", type=int, default=25)
    sample.add_argument("--out", required=True)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--class", dest="class_index", type=int)
    sample.add_argument("--device", default="cpu", choices=DEVICES)
    evaluate = sub.add_parser("evaluate", help="sample-quality metrics of a run's latest checkpoint")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--n", type=int, default=2000, help="generated samples to measure (toys: 2500)")
    evaluate.add_argument("--device", default="auto", choices=DEVICES)
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    sub.add_parser("list", help="architectures, losses, data sets, presets")
    return parser


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
    if args.resume or restart:
        given = [name for name, value in vars(args).items()
                 if value is not None and name not in ("command", "resume", "argv")]  # fmt: skip
        refused = [name for name in given if name not in RESUME_FLAGS]
        if args.resume and refused:
            raise UsageError(f"--{refused[0].replace('_', '-')} cannot change when a run resumes: with --resume, "
                             f"give only {', '.join('--' + f.replace('_', '-') for f in RESUME_FLAGS)}")  # fmt: skip
        return plan.resume(args.resume or restart, iterations=args.iterations, device=args.device,
                           threads=args.threads, nproc=world)  # fmt: skip
    config, knobs = _settings(args)
    return plan.new_run(config.replace(nproc=world), knobs, runs_dir=args.runs_dir, name=args.name)


def _settings(args):
    """RunConfig and Knobs from --config (a run's config.json), a preset, and the flags, checked."""
    settings = {
        name: getattr(args, name) for name in (flag[2:].replace("-", "_") for flag, _ in SETTING_FLAGS)
    }
    base: dict = {}
    if args.config:
        path = Path(args.config)
        try:
            config, knobs = from_dict(
                json.loads((path / "config.json" if path.is_dir() else path).read_text())
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
    return resolve(preset, **{**base, "d_iters": d_iters, "d_warmup": d_warmup, "device": args.device,
                              **overrides})  # fmt: skip


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
            print(f"failed: {type(exc).__name__}: {exc}", file=sys.stderr)
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
        config, _ = _settings(args)
        root = storage.runs_root(args.runs_dir)
        name = args.name or storage.timestamp_name(config.preset or config.arch, config.dataset)
        RunFolder.check_new(root, name)
        path = root / name
        argv = [*_without(argv, ("--name",)), "--name", name]
    command = distributed.torchrun_command(args.nproc or 1, args.max_restarts or 0, argv)
    previous = signal.signal(signal.SIGINT, lambda *_: None)  # Ctrl-C reaches torchrun and its processes
    try:
        code = subprocess.call(command)
    finally:
        signal.signal(signal.SIGINT, previous)
    status, _ = RunFolder(path).logged_status() if (path / "config.json").is_file() else (None, "")
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
        shared = {}
        if group.main:
            try:
                restart = _restarted_folder(args)
                run = _plan(args, group.world, restart=restart)
                run.group = group
                if restart or (args.resume and distributed.restart_count()):
                    run.folder.log("note", run.start_iteration, text=f"torchrun restart {distributed.restart_count()}: "
                                   f"resumed from the checkpoint of iteration {run.start_iteration}")  # fmt: skip
                shared = {"path": str(run.folder.path), "config": asdict(run.config), "knobs": asdict(run.knobs),
                          "checkpoint": run.checkpoint}  # fmt: skip
                _remember_folder(args, run.folder.path)
            except Exception as exc:
                group.share({"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__})
                raise
        shared = group.share(shared)
        if "error" in shared:
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


# ---- control and status: any process, on a run folder


def control(args) -> int:
    folder = RunFolder.open(args.run_dir)
    requests = []
    knobs = {k: getattr(args, k) for k in ("lr_g", "lr_d", "flip_prob") if getattr(args, k) is not None}
    if args.d_iters is not None:
        knobs["d_iters"], knobs["d_warmup"] = args.d_iters
    if knobs:
        requests.append(("knobs", knobs))
    if args.step is not None:
        requests.append(("step", args.step))
    elif args.action:
        requests.append((args.action, None))
    if not requests:
        raise UsageError("nothing to ask: give --lr-g, --lr-d, --flip-prob, --d-iters or one of --pause, "
                         "--continue, --step N, --stop, --save")  # fmt: skip
    for kind, value in requests:  # every value checked before anything is written
        check_request(kind, value)
    if args.wait:
        check_range("timeout", args.timeout, 0, 86_400, low_open=True)
    sent = [(kind, value, folder.send(kind, value, reply=args.wait)) for kind, value in requests]
    code = 0
    for kind, value, request in sent:
        shown = kind if value is None else f"{kind} {value}"
        if not args.wait:
            print(f"requested {shown}")
            continue
        reply = folder.reply(request, timeout=args.timeout)
        if reply is None:
            print(
                f"error: {shown}: no reply within {args.timeout:g} s (the run ended, or is busy)",
                file=sys.stderr,
            )
            code = 1
        elif not reply.applied:
            print(f"error: {shown}: {reply.message}", file=sys.stderr)
            code = 2
        else:
            print(f"applied {shown} at iteration {reply.iteration}")
    return code


def status(args) -> int:
    folder = RunFolder.open(args.run_dir)
    info = run_info(folder)
    beat = info.heartbeat
    report = {"run": str(folder.path), "status": str(info.status or "unknown"), "reason": info.reason,
              "iteration": info.iteration, "target": info.target,
              "pids": beat.get("pids", []), "host": beat.get("host", ""),
              "heartbeat_age_s": round(beat["age_s"], 1) if beat else None}  # fmt: skip
    if args.json:
        print(json.dumps(report))
        return 0
    pids = ", ".join(map(str, report["pids"])) or "?"
    age = f"{report['heartbeat_age_s']:g} s ago" if beat else "none"
    print(f"status      {report['status']}" + (f" ({info.reason})" if info.reason else ""))
    print(f"iteration   {info.iteration:,} / {info.target:,}")
    print(f"process     {pids} on {report['host'] or '?'}")
    print(f"heartbeat   {age}")
    return 0


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
    if sampler.config.dataset not in TOYS:
        print("preparing the data set's classifier (trained once, then cached) ...", file=sys.stderr)
    result = {"run": str(args.run_dir)} | evaluate_sampler(sampler, device, args.n, fid=True)
    if args.json:
        print(json.dumps(result))
    else:
        for name, value in result.items():
            print(f"{name:<20} {value:.4g}" if isinstance(value, float) else f"{name:<20} {value}")
    return 0


# ---- list


def list_all(_args) -> int:
    sections = [
        ("architectures", {k: v.description for k, v in ARCHS.items()}),
        ("losses", {k: v.description for k, v in LOSSES.items()}),
        (
            "data sets",
            {k: v.description for k, v in DATASETS.items()} | {"folder:PATH": "any folder of images"},
        ),
        ("presets", {k: v["description"] for k, v in PRESETS.items()}),
    ]
    for title, entries in sections:
        print(f"{title}:")
        for name, text in entries.items():
            print(f"  {name:<14} {text}")
    return 0


def main(argv=None) -> int:
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        args = build_parser().parse_args(argv)
        args.argv = argv
        commands = {"train": train, "control": control, "status": status, "sample": sample, "evaluate": evaluate,
                    "list": list_all}  # fmt: skip
        return commands[args.command](args)
    except (UsageError, ConfigError, DataError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before training began (loading data), or a second Ctrl-C as the loop started
        print("error: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a path that cannot be read or written
        print(
            f"error: {exc.filename or ''}: {exc.strerror or exc}".replace("error: : ", "error: "),
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
