"""The command line's parser: every subcommand's flags, and the lists of what each way of training may be given."""

from __future__ import annotations

import argparse

from .config import DEVICES, UsageError

# `train` flags that map one-to-one onto a RunConfig field or knob of the same name (dashes as underscores)
SETTING_FLAGS = [("--arch", str), ("--loss", str), ("--dataset", str), ("--iterations", int),
                 ("--batch-size", int), ("--lr-g", float), ("--lr-d", float), ("--flip-prob", float),
                 ("--z-dim", int), ("--sample-every", int), ("--seed", int), ("--threads", int),
                 ("--optimizer", str), ("--beta1", float), ("--beta2", float), ("--clip-value", float),
                 ("--checkpoint-every", int), ("--keep-checkpoints", int), ("--pack", int), ("--augment", str), ("--eval-every", int),
                 ("--width", float), ("--data-dir", str), ("--precision", str), ("--compile", str)]  # fmt: skip
# `train` switches onto a RunConfig field of the same name: --X sets it, --no-X clears it
SWITCH_FLAGS = {
    "--channels-last": "image networks' weights and batches in channels-last (NHWC) layout",
    "--fused": "Adam's and SGD's fused one-kernel step (on by default; --no-fused for the per-tensor step)",
}
RESUME_FLAGS = (
    "iterations",
    "device",
    "threads",
    "nproc",
    "max_restarts",
)  # what may change when a run continues
COMMANDS = {
    "train": "train",
    "sample": "sample",
    "evaluate": "evaluate",
    "list": "list_all",
}  # in commands.py
REPLAY_FLAGS = ("runs_dir", "name", "nproc", "max_restarts")  # what a replay may be given
KNOB_FLAGS = (
    ("--lr-g", float),
    ("--lr-d", float),
    ("--flip-prob", float),
)  # `control`, as `train` spells them


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


def build_parser() -> Parser:
    parser = Parser(prog="python -m gan_core", description="Train GANs, sample from them, list what exists.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    train = sub.add_parser("train", help="train a GAN; prints the run folder's path as its last line")
    train.add_argument("--preset", help="a reference design or toy (see `list`)")
    for flag, kind in SETTING_FLAGS:
        train.add_argument(flag, type=kind)
    train.add_argument("--d-iters", type=d_iters_arg, help="D updates per G update, or warmup[:K]")
    for flag, text in SWITCH_FLAGS.items():
        train.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
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
        "--tensorboard",
        action="store_true",
        default=None,
        help="also write TensorBoard event files into the run folder (needs: pip install tensorboard)",
    )
    train.add_argument("--replay", metavar="RUN_DIR", help="a new run repeating RUN_DIR: its settings, seed and "
                       "every knob change at the iteration it took effect")  # fmt: skip
    train.add_argument("--branch", metavar="RUN_DIR[@ITERATION]", type=branch_arg,
                       help="a new run continuing RUN_DIR from its kept checkpoint of ITERATION (default: its "
                       "latest); give the knobs or settings to change (--lr-d, --loss, --iterations ...)")  # fmt: skip
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
    for player, name in (("d", "D"), ("g", "G")):
        action.add_argument(f"--step-{player}", type=int, metavar="N",
                            help=f"pause, then train only {name} for N updates (the other network stands still)")  # fmt: skip
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
