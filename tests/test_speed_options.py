"""The speed options a GPU engineer would try (bf16 autocast, channels-last, torch.compile, the fused step off), on
the CPU: each trains the same maths to finite losses, checkpoints and resumes, and leaves the samples' shapes and
metrics.csv's columns as they were. Their speed is measured on a GPU (bench/gpu.sh), not here."""

import numpy as np
import pytest
import torch
from conftest import tiny_images
from PIL import Image

from gan_core.cli import build_parser
from gan_core.commands import _settings
from gan_core.config import ConfigError, Knobs, RunConfig
from gan_core.engine.presets import resolve
from gan_core.engine.sampling import generate, latents, load_sampler
from gan_core.engine.trainer import Trainer
from gan_core.folder.status import Status
from gan_core.training import plan
from gan_core.training.loop import TrainingLoop

OPTIONS = {
    "bf16": dict(precision="bf16"),
    "channels-last": dict(channels_last=True),
    "compile": dict(compile="default"),
    "no-fused": dict(fused=False),
}
# compiling a convolutional pair takes ~40 s on this CPU, the MLP's ~12 s: the options that concern images use
# dcgan28, compile the MLP
ARCH = {"compile": "mlp"}


def settings(name: str, on: bool = True, **more) -> dict:
    """A tiny run's settings for trying option `name`, on or off."""
    return dict(arch=ARCH.get(name, "dcgan28"), dataset="digits", batch_size=8, width=0.0625, device="cpu",
                threads=1, **more, **(OPTIONS[name] if on else {}))  # fmt: skip


def trainer(name: str, on: bool = True) -> Trainer:
    config, knobs = resolve(None, **settings(name, on))
    return Trainer(config, knobs, tiny_images(), torch.device("cpu"))


def train(t: Trainer, iterations: int = 3) -> torch.Tensor:
    return torch.stack([t.iteration(Knobs(), i + 1).metrics for i in range(iterations)])


@pytest.mark.parametrize("name", OPTIONS)
def test_each_option_trains_the_same_maths_to_finite_losses(name):
    """The same seed with the option on and off: the same losses (bf16 to its precision, about 3 digits)."""
    reference, option = train(trainer(name, on=False)), train(trainer(name))
    assert option.dtype == torch.float32 and torch.isfinite(option).all()
    tolerance = 0.05 if name == "bf16" else 1e-4
    np.testing.assert_allclose(option.numpy(), reference.numpy(), rtol=tolerance, atol=tolerance)


def test_bf16_runs_both_updates_forward_passes_in_bf16_and_samples_in_fp32():
    t = trainer("bf16")
    seen = []
    for net in (t.generator, t.discriminator):
        net.register_forward_hook(lambda module, args, out: seen.append(_dtype(out)))
    train(t, 1)
    assert seen == [torch.bfloat16] * 4  # G's pass, D's on real and fake, D's in G's update
    assert t.sample_fixed().dtype == torch.float32


def _dtype(out) -> torch.dtype:
    return (out[0] if isinstance(out, tuple) else out).dtype


def test_channels_last_lays_out_the_image_networks_and_batches_and_leaves_an_mlp_alone():
    t = trainer("channels-last")
    conv = next(p for p in t.generator.parameters() if p.dim() == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    real, _ = t._real_batch()
    assert real.shape == (8, 1, 28, 28) and real.is_contiguous(memory_format=torch.channels_last)
    config, knobs = resolve(None, **{**settings("channels-last"), "arch": "mlp"})
    mlp = Trainer(config, knobs, tiny_images(), torch.device("cpu"))
    assert all(p.is_contiguous() for p in mlp.generator.parameters())


def test_compile_wraps_the_networks_the_updates_call_and_leaves_the_checkpoint_keys_alone():
    t = trainer("compile")
    for net in (t.g_net, t.d_net, t.d_bare):
        assert isinstance(net, torch._dynamo.eval_frame.OptimizedModule)
    assert t.d_net is t.d_bare  # one process: D compiled once
    assert t.state_dict()["generator"].keys() == trainer("compile", on=False).state_dict()["generator"].keys()


def test_fused_off_takes_the_per_tensor_step():
    on, off = trainer("no-fused", on=False), trainer("no-fused")
    assert on.opt_g.defaults["fused"] is True and on.opt_d.defaults["fused"] is True
    assert not off.opt_g.defaults["fused"] and not off.opt_d.defaults["fused"]


# ---- a run with each option: checkpoint, resume, the same files


def run_plan(tmp_path, name: str, on: bool, run: str):
    more = dict(iterations=4, checkpoint_every=2, sample_every=2, eval_every=0)
    config, knobs = resolve(None, **settings(name, on, **more))
    return plan.new_run(config, knobs, runs_dir=tmp_path, name=run, data=tiny_images())


def finish(loop: TrainingLoop, stop_at: int | None = None) -> Status:
    while not loop.done and loop.iteration != stop_at:
        loop.step()
    return loop.close()


@pytest.mark.parametrize("name", OPTIONS)
def test_a_run_with_each_option_checkpoints_resumes_and_writes_the_same_files(tmp_path, name):
    default = TrainingLoop(run_plan(tmp_path, name, False, "default"))
    assert finish(default) is Status.FINISHED
    first = TrainingLoop(run_plan(tmp_path, name, True, "option"))
    assert finish(first, stop_at=2) is Status.STOPPED and first.folder.load_checkpoint()["iteration"] == 2
    resumed = TrainingLoop(plan.resume(first.folder.path, iterations=4))
    assert resumed.trainer.config == first.config and finish(resumed) is Status.FINISHED
    columns, rows = resumed.folder.read_metrics()
    assert columns == default.folder.read_metrics()[0]
    assert rows[:, columns.index("iteration")].tolist() == [1, 2, 3, 4]
    assert np.isfinite(rows[:, [columns.index("loss_d"), columns.index("loss_g")]]).all()
    grids, reference = resumed.folder.grids(), default.folder.grids()
    assert [it for it, _ in grids] == [it for it, _ in reference] == [1, 2, 4]
    shapes = [Image.open(path).size for _, path in grids + reference]
    assert len(set(shapes)) == 1, shapes
    samplers = [load_sampler(loop.folder.path) for loop in (resumed, default)]
    samples = [generate(sampler, latents(sampler, 5)[0]) for sampler in samplers]
    assert samples[0].shape == samples[1].shape == (5, 1, 28, 28) and samples[0].dtype == torch.float32


# ---- the command line


def parsed(*flags: str) -> RunConfig:
    return _settings(build_parser().parse_args(["train", "--arch", "dcgan28", *flags]))[0]


def test_the_options_are_flags_of_train_and_off_by_default():
    assert (parsed().precision, parsed().channels_last, parsed().compile, parsed().fused) == (
        "fp32",
        False,
        "none",
        True,
    )
    config = parsed("--precision", "bf16", "--channels-last", "--compile", "reduce-overhead", "--no-fused")
    assert (config.precision, config.channels_last, config.compile, config.fused) == (
        "bf16",
        True,
        "reduce-overhead",
        False,
    )
    assert parsed("--channels-last", "--no-channels-last").channels_last is False
    with pytest.raises(ConfigError, match="precision 'fp16' is unknown: allowed fp32, bf16"):
        parsed("--precision", "fp16")
    with pytest.raises(ConfigError, match="compile 'max' is unknown: allowed none, default, reduce-overhead"):
        parsed("--compile", "max")
