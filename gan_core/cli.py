"""Command line: `python -m gan_core train | sample | list` — the engine without the web app."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path

from . import export, plan, storage
from .config import DEVICES, ConfigError
from .data import DATASETS, TOYS, DataError
from .folder import RunFolder, Status
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
RESUME_FLAGS = ("iterations", "device", "threads")  # what may change when a run continues
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
    train.add_argument("--resume", metavar="RUN_DIR",
                       help="continue this run up to --iterations in total (--device, --threads may change too)")  # fmt: skip
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
    run = _plan(args)
    for note in run.notes:
        print(f"note: {note}", file=sys.stderr)
    skipped = f" ({run.data.skipped} unreadable files skipped)" if run.data.skipped else ""
    print(f"run {run.folder.path} on {resolve_device(run.config.device)}: {len(run.data):,} samples of "
          f"{run.config.dataset}{skipped}", file=sys.stderr)  # fmt: skip
    status = drive(run)
    print(run.folder.path)
    return {Status.FINISHED: 0, Status.STOPPED: 130}.get(status, 1)


def _plan(args) -> plan.RunPlan:
    if args.resume:
        given = [
            name
            for name, value in vars(args).items()
            if value is not None and name not in ("command", "resume")
        ]
        refused = [name for name in given if name not in RESUME_FLAGS]
        if refused:
            raise UsageError(f"--{refused[0].replace('_', '-')} cannot change when a run resumes: with --resume, "
                             f"give only {', '.join('--' + f for f in RESUME_FLAGS)}")  # fmt: skip
        return plan.resume(args.resume, iterations=args.iterations, device=args.device, threads=args.threads)
    settings = {
        name: getattr(args, name) for name in (flag[2:].replace("-", "_") for flag, _ in SETTING_FLAGS)
    }
    d_iters, d_warmup = args.d_iters or (None, None)
    config, knobs = resolve(args.preset, d_iters=d_iters, d_warmup=d_warmup, device=args.device, **settings)
    return plan.new_run(config, knobs, runs_dir=args.runs_dir, name=args.name)


def drive(run: plan.RunPlan) -> Status:
    """Train in this thread until the run ends; progress on stderr every 2 s. Ctrl-C stops after the current
    iteration (checkpoint and metrics saved); a second Ctrl-C stops at once."""
    ctrl_c, error, shown, due = CtrlC(), None, 0, time.monotonic() + PROGRESS_SECONDS
    with ctrl_c:
        try:  # a Ctrl-C while the networks are built stops before the first iteration
            loop = TrainingLoop(run)
        except Exception as exc:  # logged, with its traceback, in events.jsonl
            print(f"failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return Status.FAILED
        try:
            while not loop.done and not ctrl_c.pressed:
                loop.step(interrupted=ctrl_c.is_pressed)
                if time.monotonic() > due:
                    shown, due = _progress(loop, shown), time.monotonic() + PROGRESS_SECONDS
        except BaseException as exc:  # the loop logs it and keeps the last good checkpoint
            error = exc
    status = loop.close(error)
    _progress(loop, shown)
    print(f"{status}: {loop.reason}", file=sys.stderr)
    return status


class CtrlC:
    """While entered (in the main thread): the first Ctrl-C sets `pressed`, a second raises KeyboardInterrupt.

    A KeyboardInterrupt inside an optimiser step would leave the networks part of an iteration ahead of the
    iteration count a checkpoint records; a request honoured at the iteration's end leaves nothing half done."""

    pressed = False

    def is_pressed(self) -> bool:
        return self.pressed

    def _handle(self, signum, frame) -> None:
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True
        print(
            "\nstopping after this iteration (Ctrl-C again to stop at once) ...", file=sys.stderr, flush=True
        )

    def __enter__(self) -> CtrlC:
        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


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
        args = build_parser().parse_args(argv)
        return {"train": train, "sample": sample, "evaluate": evaluate, "list": list_all}[args.command](args)
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
