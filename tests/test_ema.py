"""A moving average of G's weights (`--ema DECAY`): what the grid, the metrics and the exports show, kept in the
checkpoint and carried through a resume."""

import pytest
import torch
from conftest import tiny_images

from gan_core.config import ConfigError
from gan_core.engine.presets import resolve
from gan_core.engine.sampling import load_sampler
from gan_core.engine.trainer import Trainer
from gan_core.training import plan
from gan_core.training.loop import TrainingLoop

DECAY = 0.5  # far from 0 and 1: every update shows in the average


def dcgan(**settings):
    return resolve(None, arch="dcgan28", dataset="digits", batch_size=8, width=0.25, device="cpu", **settings)


def weights(net) -> list[torch.Tensor]:
    return [t.detach().clone() for t in [*net.parameters(), *net.buffers()] if t.is_floating_point()]


def test_the_shown_generator_is_the_moving_average_of_g():
    """After the n-th G update e = d * e + (1 - d) * w with d = min(decay, (1 + n) / (10 + n)) (the first copies w),
    parameters and batch-norm statistics alike; G itself trains as without it."""
    config, knobs = dcgan(ema=DECAY)
    trainer = Trainer(config, knobs, tiny_images(), torch.device("cpu"))
    expected = None
    for n, it in enumerate(range(1, 11)):
        trainer.iteration(knobs, it)
        now = weights(trainer.generator)
        d = min(DECAY, (1 + n) / (10 + n))  # warming up: 2/11, 3/12, ... 8/17, then 0.5
        expected = (
            now if expected is None else [d * e + (1 - d) * w for e, w in zip(expected, now, strict=True)]
        )
    shown = weights(trainer.shown_generator)
    assert trainer.shown_generator is not trainer.generator
    assert all(torch.allclose(s, e, atol=1e-6) for s, e in zip(shown, expected, strict=True))
    assert any(not torch.allclose(s, w) for s, w in zip(shown, weights(trainer.generator), strict=True))
    plain_config, _ = dcgan()
    plain = Trainer(plain_config, knobs, tiny_images(), torch.device("cpu"))
    for it in range(1, 11):
        plain.iteration(knobs, it)
    assert plain.shown_generator is plain.generator
    assert all(
        torch.equal(a, b) for a, b in zip(weights(plain.generator), weights(trainer.generator), strict=True)
    )
    fixed = trainer.sample_fixed()
    with torch.no_grad():
        trainer.shown_generator.eval()
        assert torch.equal(fixed, trainer.shown_generator(trainer.fixed_z, None))


def test_the_average_is_checkpointed_resumed_and_exported(tmp_path):
    config, knobs = dcgan(
        ema=DECAY, iterations=6, checkpoint_every=3, sample_every=3, eval_every=0, threads=1
    )
    loop = TrainingLoop(plan.new_run(config, knobs, runs_dir=tmp_path, name="ema", data=tiny_images()))
    while not loop.done:
        loop.step()
    average = weights(loop.trainer.shown_generator)
    loop.close()
    sampler = load_sampler(tmp_path / "ema")  # `sample` and the exports: the average, not G
    assert all(torch.equal(a, b) for a, b in zip(weights(sampler.generator), average, strict=True))

    resumed = TrainingLoop(plan.resume(tmp_path / "ema", iterations=7))
    assert all(
        torch.equal(a, b) for a, b in zip(weights(resumed.trainer.shown_generator), average, strict=True)
    )
    assert int(resumed.trainer.ema.n_averaged) == 6  # one G update an iteration, none lost
    resumed.close()


def test_the_decay_is_checked():
    with pytest.raises(ConfigError, match=r"ema 1 is out of range: allowed \[0, 0.9999\]"):
        dcgan(ema=1)
    assert resolve("cntk-dcgan-demo", dataset="digits")[0].ema == 0.995
