"""Settings: ranges, incompatible combinations, presets, JSON round trip."""

import dataclasses
import json

import pytest
import torch

from gan_core.config import ConfigError, Knobs, RunConfig, from_dict, to_json
from gan_core.engine.models import ModelSpec, build_models
from gan_core.engine.presets import DEMO_CHANGES, PRESETS, demo_variant, resolve


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lr_g": -1.0}, "lr_g -1.0 is out of range: allowed [0, 1]"),
        ({"flip_prob": 1.5}, "flip_prob 1.5 is out of range: allowed [0, 1]"),
        ({"d_iters": 0}, "d_iters 0 is out of range: allowed [1, 1000]"),
        ({"d_iters": 2.5}, "d_iters must be a whole number"),
    ],
)
def test_knobs_refuse_values_out_of_range(changes, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        Knobs().replace(**changes)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"arch": "nosuch"}, "arch 'nosuch' is unknown: allowed mlp, dcgan28"),
        ({"loss": "nosuch"}, "loss 'nosuch' is unknown"),
        ({"batch_size": 0}, "batch_size 0 is out of range"),
        ({"arch": "dcgan28", "dataset": "ring"}, "needs images; 'ring' is 2-D points"),
        ({"arch": "dcgan28", "loss": "wgan-gp"}, "needs a critic without batch norm"),
        ({"loss": "bce", "clip_value": 0.01}, "applies only to loss 'wasserstein'"),
        ({"dataset": "nosuch"}, "nosuch"),
        ({"pack": 9}, "pack 9 is out of range"),
        ({"width": 0}, "width 0 is out of range: allowed \\[0.0625, 4\\]"),
        ({"augment": "flips"}, "augment 'flips' is unknown: allowed none, translation, translation\\+cutout"),
        (
            {"arch": "mlp", "dataset": "ring", "augment": "translation"},
            "'ring' is 2-D points: use augment 'none'",
        ),
        ({"batch_size": 30, "pack": 4}, "batch_size 30 must be a multiple of pack 4"),
        ({"arch": "cdcgan", "pack": 2}, "pack 2 needs a discriminator without labels"),
        (
            {"arch": "acgan-wgan", "loss": "wasserstein", "pack": 2},
            "pack 2 needs a discriminator without labels",
        ),
    ],
)
def test_bad_combinations_are_refused_with_a_reason(overrides, message):
    with pytest.raises(ValueError, match=message):
        resolve(None, **overrides)


def test_keras_warmup_schedule():
    knobs = Knobs(d_iters=5, d_warmup=True)
    # generator iteration it (1-based) is the Keras loop's it - 1
    assert [knobs.d_iters_at(i) for i in (1, 25, 26, 501, 502, 1001, 1026)] == [100, 100, 5, 100, 5, 100, 5]
    assert Knobs(d_iters=3).d_iters_at(1) == 3


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_resolve_and_take_overrides(name):
    config, knobs = resolve(name, dataset="ring" if name in ("ring", "grid") else "digits", lr_d=1e-5)
    assert config.preset == name and knobs.lr_d == 1e-5


def test_reference_schedules_are_in_the_presets():
    cntk, _ = resolve("cntk-dcgan")
    assert (cntk.arch, cntk.batch_size, cntk.g_steps) == ("dcgan28", 128, 2)
    matlab, knobs = resolve("matlab-dcgan")
    assert (matlab.arch, matlab.dataset, knobs.flip_prob, matlab.hflip) == ("dcgan64", "flowers", 0.35, True)
    keras, knobs = resolve("keras-wgan")
    assert (keras.optimizer, keras.clip_value, knobs.d_warmup, knobs.lr_d, keras.seed) == (
        "rmsprop",
        0.01,
        True,
        5e-5,
        777,
    )
    tf, _ = resolve("tf-cdcgan")
    assert (tf.arch, tf.lr_schedule, tf.batch_size) == ("cdcgan", "staircase", 100)


def test_a_presets_clipping_goes_with_its_loss():
    assert resolve("keras-wgan")[0].clip_value == 0.01
    config, _ = resolve("keras-wgan", loss="wgan-gp")  # the gradient penalty replaces the clipping
    assert (config.loss, config.clip_value) == ("wgan-gp", None)
    with pytest.raises(ConfigError, match="applies only to loss 'wasserstein'"):
        resolve("keras-wgan", loss="wgan-gp", clip_value=0.01)  # asked for explicitly: refused


def test_json_round_trip():
    config, knobs = RunConfig(arch="mlp", seed=7, clip_value=None), Knobs(lr_g=1e-3, d_warmup=True)
    assert from_dict(json.loads(to_json(config, knobs))) == (config, knobs)


def test_presets_adjust_for_the_small_digits_set_but_keep_the_reference_elsewhere():
    _, on_digits = resolve("pytorch-mlp", dataset="digits")
    assert (on_digits.lr_g, on_digits.flip_prob) == (2e-4, 0.1)
    config, on_mnist = resolve("pytorch-mlp")
    assert (config.beta1, on_mnist.lr_g, on_mnist.flip_prob) == (0.9, 3e-4, 0.0)
    _, explicit = resolve("pytorch-mlp", dataset="digits", flip_prob=0.0)
    assert explicit.flip_prob == 0.0


def test_presets_adjust_for_fashion_mnist_where_the_published_settings_collapse():
    config, knobs = resolve("pytorch-mlp", dataset="fashion-mnist")
    assert (config.beta1, config.pack, config.lr_schedule, config.ema, knobs.lr_g, knobs.flip_prob) == (
        0.5, 2, "constant", 0.9998, 5e-4, 0.0)  # fmt: skip
    config, knobs = resolve("pytorch-mlp-published", dataset="fashion-mnist")
    assert (config.beta1, config.pack, config.ema, knobs.lr_g) == (0.9, 1, 0.0, 3e-4)


@pytest.mark.parametrize("preset", list(DEMO_CHANGES))
def test_each_demo_setting_is_its_preset_with_the_measured_changes_on_both_data_sets(preset):
    assert demo_variant(preset) == preset + "-demo" and demo_variant("ring") is None
    for dataset in ("digits", "fashion-mnist"):
        config, knobs = resolve(preset + "-demo", dataset=dataset)
        reference, _ = resolve(preset, dataset="mnist")
        assert config.arch == reference.arch and config.loss == reference.loss  # the same design
        changed = {**dataclasses.asdict(config), **dataclasses.asdict(knobs)}
        expected = DEMO_CHANGES[preset] | PRESETS[preset + "-demo"]["on"].get(dataset, {})
        assert {k: changed[k] for k in expected} == expected
    on_digits, _ = resolve("cntk-dcgan-demo", dataset="digits")
    on_fashion, _ = resolve("cntk-dcgan-demo", dataset="fashion-mnist")
    assert (on_digits.augment, on_fashion.augment) == ("translation+cutout", "translation")


def test_the_published_variants_keep_the_published_networks_and_settings_on_digits():
    config, knobs = resolve("pytorch-mlp-published", dataset="digits")
    assert (config.pack, config.beta1, knobs.lr_g, knobs.lr_d, knobs.flip_prob) == (1, 0.9, 3e-4, 3e-4, 0.0)
    adjusted, adjusted_knobs = resolve(
        "pytorch-mlp", dataset="digits"
    )  # the measured improvement, for contrast
    assert (adjusted.pack, adjusted_knobs.flip_prob) == (2, 0.1)
    config, knobs = resolve("cntk-dcgan-published", dataset="digits")
    assert (config.arch, config.augment, config.batch_size, knobs.d_iters, config.g_steps) == (
        "dcgan28-cntk", "none", 128, 2, 2)  # fmt: skip
    _, discriminator = build_models(config.arch, ModelSpec(100, (1, 28, 28), 10))
    first = next(m for m in discriminator.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.out_channels == 1  # Convolution2D(dkernel, 1), as the tutorial has it
