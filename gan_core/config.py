"""Run configuration: what is fixed at start (RunConfig) and what may change mid-run (Knobs)."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import MISSING, dataclass, field, fields


class ConfigError(ValueError):
    """A value out of range or an incompatible choice; the message is one line naming both."""


OPTIMIZERS = ("adam", "rmsprop", "sgd")
AUGMENTS = ("none", "translation", "translation+cutout")  # DiffAugment policies (gan_core.augment)
# staircase: x0.95 every 500 iterations (TensorFlow cDCGAN); cosine: from 1x down to 0 at the run's last iteration
LR_SCHEDULES = ("constant", "staircase", "cosine")
DEVICES = ("auto", "cpu", "cuda", "mps")
# Speed options (RunConfig.precision, .compile), off by default until a GPU measurement justifies one
# (bench/gpu.sh). bf16: both updates' forward passes under autocast (no loss scaling needed).
PRECISIONS = ("fp32", "bf16")
# torch.compile of the networks the updates call; reduce-overhead also replays them as CUDA graphs
COMPILE_MODES = ("none", "default", "reduce-overhead")


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit code 2."""


def setting(default=MISSING, help: str | None = None, *, factory=MISSING, **options):
    """A dataclass field that is also a `train` flag, --name-with-dashes (a knob's is a `control` flag too): its
    help and argparse options (choices, action) here, its type the field's, its range checked in __post_init__."""
    return field(default=default, default_factory=factory, metadata={"flag": {"help": help, **options}})


class DataError(ValueError):
    """A data set that cannot be loaded; the message is one line that says what to do."""


def check_range(name: str, value, low, high, *, low_open: bool = False, integer: bool = False) -> None:
    """Raise ConfigError unless low <= value <= high (low < value when low_open)."""
    if integer and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    if not integer and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    below = value <= low if low_open else value < low
    if below or value > high or value != value:
        bracket = "(" if low_open else "["
        raise ConfigError(f"{name} {value!r} is out of range: allowed {bracket}{low:g}, {high:g}]")


def check_choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} {value!r} is unknown: allowed {', '.join(map(str, allowed))}")


@dataclass(frozen=True)
class Knobs:
    """What the user may change while a run trains; read once per iteration by the training thread."""

    lr_g: float = setting(2e-4)
    lr_d: float = setting(2e-4)
    flip_prob: float = setting(0.0)  # each real sample's D target flipped with this probability (MATLAB)
    d_iters: int = 1  # discriminator updates per generator update
    d_warmup: bool = False  # Keras schedule: 100 D updates when it % 1000 < 25 or it % 500 == 0

    def __post_init__(self):
        check_range("lr_g", self.lr_g, 0, 1)
        check_range("lr_d", self.lr_d, 0, 1)
        check_range("flip_prob", self.flip_prob, 0, 1)
        check_range("d_iters", self.d_iters, 1, 1000, integer=True)
        if not isinstance(self.d_warmup, bool):
            raise ConfigError(f"d_warmup must be true or false, got {self.d_warmup!r}")

    def d_iters_at(self, iteration: int) -> int:
        """D updates for this (1-based) generator iteration, the warm-up schedule applied."""
        it = iteration - 1  # the Keras loop counts from 0
        if self.d_warmup and (it % 1000 < 25 or it % 500 == 0):
            return 100
        return self.d_iters

    def replace(self, **changes) -> Knobs:
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ConfigError(f"unknown knob {sorted(unknown)[0]!r}: allowed {', '.join(knob_names())}")
        return dataclasses.replace(self, **changes)


def knob_names() -> list[str]:
    return [f.name for f in fields(Knobs)]


@dataclass(frozen=True)
class RunConfig:
    """Everything fixed at run start; with Knobs, enough to repeat a run."""

    arch: str = setting("dcgan28")
    loss: str = setting("bce")
    dataset: str = setting("digits")
    preset: str | None = None
    iterations: int = setting(2000)  # the run's total
    batch_size: int = setting(64)
    z_dim: int = setting(100)
    optimizer: str = setting("adam")
    beta1: float = setting(0.5)
    beta2: float = setting(0.999)
    lr_schedule: str = "constant"
    g_steps: int = 1  # generator updates per iteration on the same z (CNTK: 2)
    width: float = setting(1.0)  # every hidden layer's filters/units as a multiple of the reference design's
    # PacGAN: D judges `pack` samples at once, joined along channels (mode collapse costs more)
    pack: int = setting(1)
    # DiffAugment on every D input: "translation" or "translation+cutout" (images)
    augment: str = setting("none")
    ema: float = setting(
        0.0,
        "show, measure and export samples of a moving average of G's weights, with this decay per G update "
        "(0: G's own weights)",
    )
    clip_value: float | None = setting(None)  # critic weight clipping (wasserstein only)
    hflip: bool = False  # random horizontal flip of real images
    sample_every: int = setting(100)
    n_fixed: int | None = None  # fixed latents; None: 25, 10 per class (conditional), 512 (2-D)
    seed: int = setting(0)
    device: str = setting("auto", choices=DEVICES)
    threads: int | None = setting(None)  # torch intra-op threads on CPU; None: all cores
    # also write TensorBoard event files into RUN/tensorboard/ (optional package: refused without it)
    tensorboard: bool = setting(
        False,
        "also write TensorBoard event files into the run folder (needs: pip install tensorboard)",
        action="store_true",
    )
    # processes training the run together (torchrun); each D update sees nproc x batch_size
    nproc: int = setting(
        1, "processes that train the run together, under torchrun (one GPU each on CUDA); default 1"
    )
    checkpoint_every: int = setting(1000)
    keep_checkpoints: int = setting(5)  # the newest checkpoints kept along the run (iter_N.pt): branch points
    precision: str = setting("fp32")  # PRECISIONS
    channels_last: bool = setting(False, "image networks' weights and batches in channels-last (NHWC) layout")
    compile: str = setting("none")  # COMPILE_MODES
    # Adam's and SGD's fused (one-kernel) step where the device has one
    fused: bool = setting(
        True, "Adam's and SGD's fused one-kernel step (on by default; --no-fused for the per-tensor step)"
    )
    # sample-quality metrics: None = automatic (~2% of training time), 0 = off
    eval_every: int | None = setting(None)
    data_dir: str = setting(factory=lambda: os.environ.get("GAN_DATA_DIR", "data"))
    parent: str | None = None  # a branch: the run folder it continues (gan_core.plan.branch) ...
    branched_at: int | None = None  # ... from that run's checkpoint of this iteration

    def __post_init__(self):
        check_range("iterations", self.iterations, 1, 100_000_000, integer=True)
        check_range("batch_size", self.batch_size, 1, 65_536, integer=True)
        check_range("z_dim", self.z_dim, 1, 4096, integer=True)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_range("beta1", self.beta1, 0, 0.9999)
        check_range("beta2", self.beta2, 0, 0.9999)
        check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        check_range("g_steps", self.g_steps, 1, 10, integer=True)
        check_range("width", self.width, 0.0625, 4)
        check_range("pack", self.pack, 1, 8, integer=True)
        check_range("ema", self.ema, 0, 0.9999)
        check_choice("augment", self.augment, AUGMENTS)
        if self.clip_value is not None:
            check_range("clip_value", self.clip_value, 0, 10, low_open=True)
        check_range("sample_every", self.sample_every, 1, 10_000_000, integer=True)
        if self.n_fixed is not None:
            check_range("n_fixed", self.n_fixed, 1, 4096, integer=True)
        check_range("seed", self.seed, 0, 2**63 - 1, integer=True)
        check_choice("device", self.device, DEVICES)
        if self.threads is not None:
            check_range("threads", self.threads, 1, 256, integer=True)
        check_range("nproc", self.nproc, 1, 1024, integer=True)
        check_range("checkpoint_every", self.checkpoint_every, 1, 100_000_000, integer=True)
        if self.eval_every is not None:
            check_range("eval_every", self.eval_every, 0, 100_000_000, integer=True)
        check_range("keep_checkpoints", self.keep_checkpoints, 1, 1000, integer=True)
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("compile", self.compile, COMPILE_MODES)
        for name in ("channels_last", "fused"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if (self.parent is None) != (self.branched_at is None):
            raise ConfigError("parent and branched_at name a branch together: give both or neither")
        if self.branched_at is not None:
            check_range("branched_at", self.branched_at, 0, 100_000_000, integer=True)

    def replace(self, **changes) -> RunConfig:
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ConfigError(f"unknown setting {sorted(unknown)[0]!r}")
        return dataclasses.replace(self, **changes)


# ---- what may change, and the flags

# What continuing a run may change, by field name: in its own folder (resume), or in a new one from a kept
# checkpoint (branch: the knobs too, and the settings that leave the networks' and optimisers' shapes alone).
RESUME_SETTINGS = ("iterations", "device", "threads", "nproc")
BRANCH_SETTINGS = (
    "iterations", "loss", "clip_value", "augment", "hflip", "lr_schedule", "sample_every", "checkpoint_every",
    "keep_checkpoints", "eval_every", "tensorboard", "device", "threads", "nproc", "precision", "channels_last",
    "compile", "fused",
)  # fmt: skip


def flag_fields(*classes) -> list[dataclasses.Field]:
    """The fields of these dataclasses (default: RunConfig, then Knobs) that are command-line flags."""
    return [f for cls in classes or (RunConfig, Knobs) for f in fields(cls) if "flag" in f.metadata]


def flag_names(*classes) -> list[str]:
    return [f.name for f in flag_fields(*classes)]


# ---- JSON


def to_json(config: RunConfig, knobs: Knobs) -> str:
    effective_batch = config.batch_size * config.nproc  # what one D update sees, over all processes
    return json.dumps({"config": dataclasses.asdict(config), "knobs": dataclasses.asdict(knobs),
                       "effective_batch": effective_batch}, indent=2)  # fmt: skip


def from_dict(data: dict) -> tuple[RunConfig, Knobs]:
    """Inverse of to_json (after json.loads); unknown keys from newer versions are ignored."""
    config_keys = {f.name for f in fields(RunConfig)}
    knob_keys = {f.name for f in fields(Knobs)}
    config = RunConfig(**{k: v for k, v in data["config"].items() if k in config_keys})
    knobs = Knobs(**{k: v for k, v in data["knobs"].items() if k in knob_keys})
    return config, knobs
