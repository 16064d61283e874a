"""The engine on a GPU: every architecture and speed option trains there without a host sync per iteration; a run
trains, samples, exports and measures its sample quality there; its checkpoint resumes on the CPU and back; the app
picks the GPU by itself. Marked `cuda` and skipped without one; bench/gpu.sh runs them on a lent GPU, and its dry
run runs them on the CPU (GAN_TEST_DEVICE=cpu) so that they cannot rot."""

import io
import math
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_images, wait_for
from PIL import Image

from gan_core.cli import main
from gan_core.config import Knobs
from gan_core.engine.data import to_model_range
from gan_core.engine.devices import available_devices
from gan_core.engine.models import ARCHS
from gan_core.engine.presets import resolve
from gan_core.engine.sampling import generate, latents, load_sampler
from gan_core.engine.trainer import Trainer
from gan_core.folder.run_folder import RunFolder
from gan_core.folder.status import Status
from gan_core.quality.metrics import image_evaluator, load_or_train_classifier
from gan_core.training import plan
from gan_core.training.loop import TrainingLoop

DEVICE = os.environ.get("GAN_TEST_DEVICE", "cuda")
ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(DEVICE not in available_devices(), reason=f"no {DEVICE} device here"),
]


def trainer(arch: str = "dcgan28", **options) -> Trainer:
    data = tiny_images(ARCHS[arch].image_size)
    config, knobs = resolve(
        None, arch=arch, dataset="digits", batch_size=8, width=0.25, device=DEVICE, **options
    )
    return Trainer(config, knobs, data, torch.device(DEVICE))


def iterate(t: Trainer, first: int, count: int) -> torch.Tensor:
    return torch.stack([t.iteration(Knobs(), first + i).metrics for i in range(count)])


def without_host_sync(t: Trainer) -> torch.Tensor:
    """Iterations 2-4 under CUDA's sync debugging: any read back to the host in them raises (the permutation of
    the epoch is drawn at iteration 1). The metrics stay on the device until the recorder reads a block."""
    iterate(t, 1, 1)
    if t.device.type == "cuda":
        torch.cuda.set_sync_debug_mode("error")
    try:
        metrics = iterate(t, 2, 3)
    finally:
        if t.device.type == "cuda":
            torch.cuda.set_sync_debug_mode("default")
    assert metrics.device.type == DEVICE
    return metrics.cpu()


@pytest.mark.parametrize("arch", list(ARCHS))
def test_every_architecture_trains_on_the_device_without_a_host_sync(arch):
    t = trainer(arch)
    assert torch.isfinite(without_host_sync(t)).all()
    samples = t.sample_fixed()
    assert samples.shape[1:] == t.data.data_shape and samples.abs().max() <= 1


SPEED_OPTIONS = {
    "bf16": dict(precision="bf16"),
    "channels-last": dict(channels_last=True),
    "no-fused": dict(fused=False),
    "compile": dict(compile="default"),
    "cuda-graphs": dict(compile="reduce-overhead"),
    "all": dict(precision="bf16", channels_last=True, compile="default"),
}


@pytest.mark.parametrize("name", SPEED_OPTIONS)
def test_each_speed_option_trains_on_the_device_without_a_host_sync(name):
    reference = without_host_sync(trainer())
    metrics = without_host_sync(trainer(**SPEED_OPTIONS[name]))
    assert torch.isfinite(metrics).all()
    # the same seed: the first iteration's losses agree (bf16 to its precision; TF32 and kernels vary a little)
    np.testing.assert_allclose(metrics[0, :2].numpy(), reference[0, :2].numpy(), rtol=0.05, atol=0.05)


# ---- a run: train, sample, export, measure, resume on the CPU and back


def new_run(tmp_path, data_dir: Path) -> TrainingLoop:
    config, knobs = resolve(None, arch="dcgan28", dataset="digits", batch_size=16, width=0.25, device=DEVICE,
                            iterations=4, checkpoint_every=2, sample_every=2, eval_every=4,
                            data_dir=str(data_dir))  # fmt: skip
    return TrainingLoop(plan.new_run(config, knobs, runs_dir=tmp_path, name="run", data=SOME_DIGITS))


def finish(loop: TrainingLoop) -> Status:
    while not loop.done:
        loop.step()
    return loop.close()


# 200 of the digits: their classifier (cached by their content) trains in a few seconds even on a CPU
SOME_DIGITS = tiny_images(n=200)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir) -> Path:
    """A run of 4 iterations on the device, its sample-quality metrics measured there at 4 (the classifier trained
    there first, so that the run measures at its first due iteration)."""
    load_or_train_classifier(SOME_DIGITS, torch.device(DEVICE), data_dir)
    loop = new_run(tmp_path_factory.mktemp("runs"), data_dir)
    assert loop.device.type == DEVICE and finish(loop) is Status.FINISHED, loop.reason
    return loop.folder.path


def test_a_run_on_the_device_records_finite_metrics_grids_and_quality(trained):
    folder = RunFolder(trained)
    columns, rows = folder.read_metrics()
    assert rows[:, columns.index("iteration")].tolist() == [1, 2, 3, 4]
    assert np.isfinite(rows[:, [columns.index("loss_d"), columns.index("loss_g")]]).all()
    assert [it for it, _ in folder.grids()] == [1, 2, 4]
    recognisable = rows[:, columns.index("recognisable")]
    assert np.isfinite(recognisable[3]) and np.isnan(recognisable[:3]).all()


def test_sampling_and_export_on_the_device(trained, tmp_path, capsys):
    grid, archive = tmp_path / "grid.png", tmp_path / "images.zip"
    assert main(["sample", str(trained), "--n", "16", "--out", str(grid), "--device", DEVICE]) == 0
    assert main(["sample", str(trained), "--n", "5", "--out", str(archive), "--device", DEVICE]) == 0
    assert Image.open(grid).size[0] > 4 * 28
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
        assert len(names) == 5 and Image.open(io.BytesIO(z.read(names[0]))).size == (28, 28)


def test_sample_quality_metrics_on_the_device(trained, data_dir):
    device = torch.device(DEVICE)
    evaluator = image_evaluator(SOME_DIGITS, device, data_dir, samples=100)
    sampler = load_sampler(trained, device)
    result = evaluator(generate(sampler, latents(sampler, 100)[0]).to(device))
    real = evaluator(to_model_range(SOME_DIGITS.x[-100:]).to(device))
    assert 0 <= result["recognisable"] <= 1 and result["class_coverage"] >= 1 and real["class_coverage"] >= 8
    assert math.isfinite(result["kid"]) and result["fd"] > real["fd"] > 0  # 4 iterations: far from real


def test_a_device_checkpoint_resumes_on_the_cpu_and_back(trained, tmp_path):
    run = shutil.copytree(trained, tmp_path / "run")  # the other tests read the run as trained
    on_cpu = TrainingLoop(plan.resume(run, iterations=6, device="cpu"))
    assert on_cpu.device.type == "cpu" and finish(on_cpu) is Status.FINISHED, on_cpu.reason
    back = TrainingLoop(plan.resume(run, iterations=7, device=DEVICE))  # (no quality due at 5-7)
    assert back.device.type == DEVICE and finish(back) is Status.FINISHED, back.reason
    folder = RunFolder(run)
    columns, rows = folder.read_metrics()
    assert rows[:, columns.index("iteration")].tolist() == list(range(1, 8))
    assert np.isfinite(rows[:, [columns.index("loss_d"), columns.index("loss_g")]]).all()
    notes = [e["text"] for e in folder.read_events() if e["event"] == "note"]
    if DEVICE != "cpu":  # CPU and CUDA random streams differ: each move says it starts a new one
        assert notes == [f"resumed on cpu from a {DEVICE} checkpoint: a new random stream",
                         f"resumed on {DEVICE} from a cpu checkpoint: a new random stream"]  # fmt: skip


# ---- the app


@pytest.mark.usefixtures("fresh_registry")
def test_the_app_trains_on_the_device_auto_picks_and_its_monitor_updates(runs_dir):
    from streamlit.testing.v1 import AppTest

    from dashboard.registry import registry

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    assert at.selectbox(key="form-pytorch-mlp-device").value == "auto"
    at.button(key="start").click().run()
    assert not at.exception, at.exception
    run = registry().active_run()
    try:
        expected = next(d for d in ("cuda", "mps", "cpu") if d in available_devices())
        assert run.device.type == expected == DEVICE
        assert wait_for(lambda: len(run.history) >= 5)
        at.run()
        first, grid = shown_iteration(at), run.snapshot().grid_iteration
        assert len(at.get("plotly_chart")) >= 1 and len(at.get("image")) >= 1
        # the title and the grid move on: the next saved grid is due at the next hundred iterations
        assert wait_for(lambda: run.snapshot().grid_iteration > grid and len(run.history) > first, timeout=60)
        at.run()
        assert shown_iteration(at) > first and len(at.get("image")) >= 1
    finally:
        run.stop()


def shown_iteration(at) -> int:
    """The iteration in the monitor's title line 'Epoch: e, Iteration: i, Elapsed: hh:mm:ss'."""
    (title,) = [h.value for h in at.subheader if h.value.startswith("Epoch: ")]
    return int(title.split("Iteration: ")[1].split(",")[0])
