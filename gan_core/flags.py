"""The command line's parser: every subcommand's flags, and the lists of what each way of training may be given."""

from __future__ import annotations

import argparse
import dataclasses

from .config import DEVICES, Knobs, UsageError, flag_fields

COMMANDS = {
    "train": "train",
    "sample": "sample",
    "evaluate": "evaluate",
    "report": "report",
    "list": "list_all",
}  # in commands.py
FLAG_TYPES = {"int": int, "float": float, "str": str}


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


def branch_arg(text: str) -> tuple[str, int | None]:
    """'runs/a@1500' -> ('runs/a', 1500); 'runs/a' -> ('runs/a', None): the latest checkpoint."""
    path, at, iteration = text.rpartition("@")
    if not at or not iteration.isdigit():
        return text, None
    return path, int(iteration)


def add_field_flags(parser: argparse.ArgumentParser, fields: list[dataclasses.Field]) -> None:
    """--name-with-dashes for each field, of the field's type (a bool: --X / --no-X), with its metadata's help and
    options. Unset flags stay None: the preset's or the run's value stands."""
    for f in fields:
        options = {"default": None, **f.metadata["flag"]}
        kind = f.type.split("|")[0].strip()
        if kind == "bool":
            options.setdefault("action", argparse.BooleanOptionalAction)
        elif "choices" not in options:
            options["type"] = FLAG_TYPES[kind]
        parser.add_argument("--" + f.name.replace("_", "-"), **options)


def build_parser() -> Parser:
    parser = Parser(prog="python -m gan_core", description="Train GANs, sample from them, list what exists.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for add in (_train, _control, _others):
        add(sub)
    return parser


def _train(sub) -> None:
    train = sub.add_parser("train", help="train a GAN; prints the run folder's path as its last line")
    train.add_argument("--preset", help="a reference design or toy (see `list`)")
    add_field_flags(train, flag_fields())
    train.add_argument("--d-iters", type=d_iters_arg, help="D updates per G update, or warmup[:K]")
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
        "--replay",
        metavar="RUN_DIR",
        help="a new run repeating RUN_DIR: its settings, seed and "
        "every knob change at the iteration it took effect",
    )
    train.add_argument(
        "--branch",
        metavar="RUN_DIR[@ITERATION]",
        type=branch_arg,
        help="a new run continuing RUN_DIR from its kept checkpoint of ITERATION (default: its "
        "latest); give the knobs or settings to change (--lr-d, --loss, --iterations ...)",
    )
    train.add_argument("--max-restarts", type=int, help="with --nproc: restart the processes this often after "
                       "a failure, from the last checkpoint (default 0)")  # fmt: skip


def _control(sub) -> None:
    control = sub.add_parser(
        "control", help="steer a live run: change its knobs, pause, step, continue, stop, save"
    )
    control.add_argument("run_dir")
    add_field_flags(control, flag_fields(Knobs))
    control.add_argument("--d-iters", type=d_iters_arg, help="D updates per G update, or warmup[:K]")
    action = control.add_mutually_exclusive_group()
    for flag in ("--pause", "--continue", "--stop", "--save"):
        action.add_argument(flag, dest="action", action="store_const", const=flag[2:])
    action.add_argument("--step", type=int, metavar="N", help="while paused, train N iterations")
    for player, name in (("d", "D"), ("g", "G")):
        action.add_argument(f"--step-{player}", type=int, metavar="N",
                            help=f"pause, then train only {name} for N updates (the other network stands still)")  # fmt: skip
    control.add_argument("--wait", action="store_true", help="exit once applied; print the iteration")
    control.add_argument("--timeout", type=float, default=60.0, help="seconds --wait waits (default 60)")


def _others(sub) -> None:
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
    _report_parser(sub)
    sub.add_parser("list", help="architectures, losses, data sets, presets")


def _report_parser(sub) -> None:
    report = sub.add_parser("report", help="one self-contained HTML file of a run: curves, time-lapse, hints")
    report.add_argument("run_dir")
    report.add_argument("--out", required=True, help="the HTML file to write (e.g. run.html)")
