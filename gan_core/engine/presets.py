"""The five reference designs and the 2-D toys as presets, and the checks that refuse bad combinations."""

from __future__ import annotations

import importlib.util

from ..config import ConfigError, Knobs, RunConfig, check_choice
from .data import DATASETS, DataFacts, dataset_kind
from .losses import LOSSES
from .models import ARCHS


def resolve(preset: str | None = None, **overrides) -> tuple[RunConfig, Knobs]:
    """Config and knobs of a preset (or the defaults), with explicit overrides applied and checked.

    Overrides may name any RunConfig field or knob; None values are ignored.
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    settings: dict = {}
    if preset is not None:
        check_choice("preset", preset, list(PRESETS))
        settings.update(preset_settings(preset, overrides.get("dataset")), preset=preset)
    settings.update(overrides)
    if settings.get("loss") != "wasserstein" and "clip_value" not in overrides:
        settings.pop("clip_value", None)  # a preset's weight clipping belongs to its wasserstein loss
    knob_fields = Knobs.__dataclass_fields__
    knobs = Knobs(**{k: v for k, v in settings.items() if k in knob_fields})
    config_settings = {k: v for k, v in settings.items() if k not in knob_fields}
    unknown = set(config_settings) - set(RunConfig.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"unknown setting {sorted(unknown)[0]!r}")
    config = RunConfig(**config_settings)
    check_compatible(config, knobs)
    return config, knobs


def preset_settings(preset: str, dataset: str | None = None) -> dict:
    """A preset's settings on `dataset` (default: its own), with the adjustments measured for that data set."""
    entry = PRESETS[preset]
    return entry["settings"] | entry.get("on", {}).get(dataset or entry["settings"]["dataset"], {})


def check_tensorboard() -> None:
    """ConfigError, saying what to install, when TensorBoard's writer cannot be had."""
    if importlib.util.find_spec("tensorboard") is None:
        raise ConfigError("tensorboard: the tensorboard package is not installed: pip install tensorboard "
                          "(or leave TensorBoard off)")  # fmt: skip


def check_compatible(config: RunConfig, knobs: Knobs) -> None:
    """Refuse combinations that cannot train as asked, with a message that says what would."""
    check_choice("arch", config.arch, list(ARCHS))
    check_choice("loss", config.loss, list(LOSSES))
    if config.tensorboard:
        check_tensorboard()
    arch, loss = ARCHS[config.arch], LOSSES[config.loss]
    kind = dataset_kind(config.dataset)
    if kind == "points" and not arch.points:
        raise ConfigError(
            f"arch {config.arch!r} needs images; {config.dataset!r} is 2-D points: use arch 'mlp'"
        )
    if kind == "points" and arch.conditional:
        raise ConfigError(
            f"arch {config.arch!r} is conditional; {config.dataset!r} has no classes to condition on"
        )
    if loss.gradient_penalty and arch.batch_norm_in_d:
        raise ConfigError(
            f"loss 'wgan-gp' needs a critic without batch norm (its penalty is per sample); arch "
            f"{config.arch!r} has batch norm in its discriminator: use loss 'wasserstein' or arch 'mlp'/'acgan-wgan'"
        )
    if kind == "points" and config.augment != "none":
        raise ConfigError(
            f"augment {config.augment!r} shifts and cuts images; {config.dataset!r} is 2-D points: use augment 'none'"
        )
    if config.pack > 1 and (arch.d_takes_labels or arch.aux_classifier):
        raise ConfigError(
            f"pack {config.pack} needs a discriminator without labels; arch {config.arch!r} gives D "
            "per-sample labels: use pack 1"
        )
    if config.batch_size % config.pack:
        raise ConfigError(
            f"batch_size {config.batch_size} must be a multiple of pack {config.pack} (D sees batch_size / pack "
            "packed samples)"
        )
    if config.clip_value is not None and config.loss != "wasserstein":
        raise ConfigError(
            f"clip_value (weight clipping) applies only to loss 'wasserstein', not {config.loss!r}"
            + (": wgan-gp uses its gradient penalty instead" if config.loss == "wgan-gp" else "")
        )


def check_data(config: RunConfig, facts: DataFacts) -> None:
    """Checks that need the data set's size and labels (Data.facts, or data_facts() before loading)."""
    if facts.size == 0:
        raise ConfigError(
            f"data set {config.dataset!r} holds no images: add .png/.jpg files or class sub-folders"
        )
    if (
        config.batch_size * config.nproc > facts.size
    ):  # each process takes its own batch of every global batch
        each = f" x {config.nproc} processes" if config.nproc > 1 else ""
        raise ConfigError(f"batch_size {config.batch_size}{each} is larger than data set {config.dataset!r}: "
                          f"allowed [1, {facts.size // config.nproc}]")  # fmt: skip
    if ARCHS[config.arch].conditional and not facts.labelled:
        raise ConfigError(
            f"arch {config.arch!r} is conditional; {config.dataset!r} has no labels (use class sub-folders)"
        )


def clip_value(config: RunConfig) -> float | None:
    """Weight clipping in force: the config's, else the loss's default."""
    return config.clip_value if config.clip_value is not None else LOSSES[config.loss].clip_value


def _toy(dataset: str, description: str, **settings) -> dict:
    return {
        "description": f"GAN Lab-style MLP on the 2-D {dataset} of Gaussians{description}",
        "settings": dict(
            arch="mlp",
            loss="bce",
            dataset=dataset,
            batch_size=512,
            z_dim=16,
            lr_g=1e-3,
            lr_d=1e-3,
            beta1=0.5,
            sample_every=50,
        )
        | settings,
    }


PRESETS: dict[str, dict] = {
    "cntk-dcgan": {
        "description": "CNTK DCGAN on MNIST: 2 D updates then 2 G updates on the same z per iteration",
        "settings": dict(
            arch="dcgan28",
            loss="bce",
            dataset="mnist",
            batch_size=128,
            lr_g=2e-4,
            lr_d=2e-4,
            beta1=0.5,
            d_iters=2,
            g_steps=2,
            iterations=10_000,
        ),
        # On the 1,797 digits D wins more and more (its score climbs to 0.8) and recognisable samples stall at
        # ~0.62 from iteration 600 on; showing D shifted, cut-out images (DiffAugment) cut classifier FD from ~180
        # to ~31 at 1,000 iterations (bench/README.md). Batch 64: the same progress per iteration at half the cost.
        "on": {"digits": dict(augment="translation+cutout", batch_size=64)},
    },
    "matlab-dcgan": {
        "description": "MATLAB DCGAN on Flowers, 64x64 RGB, label flipping 0.35 (the monitor's model; "
        "a GPU preset: ~450 GFLOP per iteration)",
        "settings": dict(
            arch="dcgan64",
            loss="bce",
            dataset="flowers",
            batch_size=128,
            lr_g=2e-4,
            lr_d=2e-4,
            beta1=0.5,
            beta2=0.999,
            flip_prob=0.35,
            hflip=True,
            iterations=14_000,  # 500 epochs of 28 full batches
        ),
    },
    "tf-cdcgan": {
        "description": "TensorFlow conditional DCGAN on MNIST, staircase learning-rate decay",
        "settings": dict(
            arch="cdcgan",
            loss="bce",
            dataset="mnist",
            batch_size=100,
            lr_g=2e-4,
            lr_d=2e-4,
            beta1=0.5,
            lr_schedule="staircase",
            iterations=18_000,  # 30 epochs of 600 batches
        ),
    },
    "keras-wgan": {
        "description": "Keras Wasserstein ACGAN on MNIST: RMSprop, clipping 0.01, 100-step critic warm-up "
        "(a GPU preset: ~1.3 TFLOP per iteration)",
        "settings": dict(
            arch="acgan-wgan",
            loss="wasserstein",
            dataset="mnist",
            batch_size=100,
            optimizer="rmsprop",
            lr_g=5e-5,
            lr_d=5e-5,
            clip_value=0.01,
            d_iters=5,
            d_warmup=True,
            iterations=20_000,
            seed=777,
            sample_every=250,
        ),
    },
    "pytorch-mlp": {
        "description": "PyTorch MLP GAN on MNIST (784-256-256-1), Adam 3e-4",
        "settings": dict(
            arch="mlp",
            loss="bce",
            dataset="mnist",
            batch_size=100,
            lr_g=3e-4,
            lr_d=3e-4,
            beta1=0.9,
            iterations=60_000,  # 100 epochs of 600 batches
        ),
        # On the 1,797 digits, Adam (0.9, 0.999) at 3e-4 collapses to one class within 1,000 iterations
        # (bench/quality.py); beta1 0.5, 2e-4 and 10% label flipping keep all ten classes, but late in the run
        # one class grows past a quarter of the samples; a discriminator judging pairs (PacGAN) holds them even.
        # On Fashion-MNIST the published settings collapse too (0.02 recognisable, one class 41% of the samples, at
        # 8,600 iterations); beta1 0.5, 5e-4 and pairs keep ten classes, none above 17%. Samples of a moving average
        # of G's weights at a constant rate are more often recognisable at the end than G's own at a cosine decay to
        # 0 (0.75 against 0.67-0.70 of the real images' share at 55,000-60,000 iterations), and a longer average
        # (0.9998) more than a shorter (0.9995): 0.02-0.03 more in each of three runs, at a lower FD (bench/README.md).
        "on": {
            "digits": dict(beta1=0.5, lr_g=2e-4, lr_d=2e-4, flip_prob=0.1, pack=2),
            "fashion-mnist": dict(beta1=0.5, lr_g=5e-4, lr_d=5e-4, pack=2, ema=0.9998),
        },
    },
    # Measured with bench/quality.py: a decaying rate lets the points settle on each mode. On the grid a plain
    # discriminator finds only 6-9 of the 25 modes; judging pairs of samples (PacGAN) with a slower (cosine) decay
    # finds 25 for some seeds. In the grid's raw units (+-4) G then left whole rows or columns empty for 2 of 3
    # seeds (15-20/25), with one D update per G update or two; with the points standardised (models.Standardise)
    # seeds 0, 1 and 2 find 25/25 with one (bench/README.md).
    "ring": _toy("ring", "", lr_schedule="staircase", iterations=6000),
    "grid": _toy(
        "grid",
        ", discriminator on pairs (PacGAN)",
        lr_schedule="cosine",
        pack=2,
        iterations=30_000,
    ),
}

# The two presets above that change their reference, as their authors published them (README: "As published, or
# as measured"): the same settings, no changes on digits, and the tutorial's single-filter conv for CNTK.
PRESETS["cntk-dcgan-published"] = {
    "description": "cntk-dcgan exactly as the tutorial published it: D's first conv with 1 filter, and no "
    "changes on digits",
    "settings": PRESETS["cntk-dcgan"]["settings"] | {"arch": "dcgan28-cntk"},
}
PRESETS["pytorch-mlp-published"] = {
    "description": "pytorch-mlp exactly as published: Adam 3e-4 (0.9, 0.999), D judges one sample at a time, "
    "no changes on digits",
    "settings": PRESETS["pytorch-mlp"]["settings"],
}

# Demo settings (README: "The first minute of a demo"): the changes that make a preset show recognisable samples
# within a minute of Start on a laptop's CPU, on digits and on Fashion-MNIST alike, measured with bench/demo.py.
# Sample quality is measured about every 5 s of a laptop's training (a few % of it), so that the monitor marks
# the moment the samples become recognisable when it comes. Each is offered as `PRESET-demo` (the form's "Demo
# setting" toggle): the preset with these changes (cntk-dcgan's also cuts out squares on the 1,797 digits, where
# translation alone let its samples collapse and recover; and shows the average of G's weights, whose classifier FD
# on digits held at 1.1-1.4x the floor where G's own swung between 3x and 8x).
DEMO_SUFFIX = "-demo"
DEMO_CHANGES: dict[str, dict] = {
    "pytorch-mlp": dict(beta1=0.5, lr_g=5e-4, lr_d=5e-4, pack=2, iterations=30_000, eval_every=1000),
    "cntk-dcgan": dict(width=0.25, batch_size=64, augment="translation", lr_g=5e-4, lr_d=5e-4, ema=0.995, iterations=5000, eval_every=150),
    "tf-cdcgan": dict(width=0.25, batch_size=64, lr_g=1e-3, lr_d=1e-3, iterations=5000, eval_every=150),
}  # fmt: skip


DEMO_ON = {"cntk-dcgan": {"digits": dict(augment="translation+cutout")}}  # as the preset itself on digits


def _demo(preset: str, changes: dict) -> dict:
    summary = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in changes.items())
    return {
        "description": f"{preset} for a live demo on a laptop CPU: recognisable within a minute ({summary})",
        "settings": PRESETS[preset]["settings"] | changes,
        "on": DEMO_ON.get(preset, {}),
    }


PRESETS |= {name + DEMO_SUFFIX: _demo(name, changes) for name, changes in DEMO_CHANGES.items()}


def demo_variant(preset: str) -> str | None:
    """The preset's demo setting (`PRESET-demo`), if it has one."""
    name = preset + DEMO_SUFFIX
    return name if name in PRESETS else None


__all__ = ["DATASETS", "PRESETS", "check_compatible", "check_data", "clip_value", "demo_variant", "resolve"]
