"""The engine: every architecture x loss trains; the background run's knobs, pause/step/stop, resume, failure."""

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_images, tiny_points, wait_for

from gan_core.config import ConfigError
from gan_core.engine.losses import LOSSES
from gan_core.engine.models import ARCHS
from gan_core.engine.presets import check_compatible, resolve
from gan_core.engine.trainer import Trainer
from gan_core.folder.history import History, downsample
from gan_core.folder.run_folder import RunFolder, run_info
from gan_core.training.run import resume_run, start_run


def compatible_pairs():
    for arch in ARCHS:
        for loss in LOSSES:
            try:
                check_compatible(*resolve(None, arch=arch, loss=loss, dataset="digits"))
            except ConfigError:
                continue
            yield arch, loss


@pytest.mark.parametrize(("arch", "loss"), list(compatible_pairs()))
def test_every_architecture_and_loss_trains(arch, loss):
    # a quarter of the filters: every layer and loss path runs, in a fraction of the time (test_models checks
    # the full-width layer stacks against their reference designs)
    config, knobs = resolve(None, arch=arch, loss=loss, dataset="digits", batch_size=8, device="cpu",
                            flip_prob=0.3, d_iters=2, width=0.25)  # fmt: skip
    data = tiny_images(ARCHS[arch].image_size, channels=3 if arch == "dcgan64" else 1)
    trainer = Trainer(config, knobs, data, torch.device("cpu"))
    rows = torch.stack([trainer.iteration(knobs, it).metrics for it in (1, 2)])
    loss_d, loss_g, p_real, p_fake = rows[:, :4].T
    assert torch.isfinite(rows).all()
    assert ((p_real >= 0) & (p_real <= 1) & (p_fake >= 0) & (p_fake <= 1)).all()
    samples = trainer.sample_fixed()
    expected = (100 if ARCHS[arch].conditional else 25, *data.data_shape)
    assert tuple(samples.shape) == expected and samples.abs().max() <= 1


@pytest.mark.parametrize(
    ("optimizer", "fast_path"), [("adam", "fused"), ("sgd", "fused"), ("rmsprop", "foreach")]
)
def test_optimisers_take_their_fast_step_on_the_cpu(optimizer, fast_path):
    config, knobs = resolve(None, arch="mlp", dataset="ring", optimizer=optimizer, batch_size=8, device="cpu")
    trainer = Trainer(config, knobs, tiny_points(), torch.device("cpu"))
    before = [p.detach().clone() for p in trainer.generator.parameters()]
    trainer.iteration(knobs, 1)
    for opt in (trainer.opt_g, trainer.opt_d):
        assert opt.defaults[fast_path] is True
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.generator.parameters(), strict=True))


def test_incompatible_pairs_exist_and_are_refused():
    pairs = set(compatible_pairs())
    assert ("dcgan28", "wgan-gp") not in pairs and ("acgan-wgan", "wgan-gp") in pairs
    bn_critics = [name for name, arch in ARCHS.items() if arch.batch_norm_in_d]
    assert len(bn_critics) == 4  # dcgan28, its published twin dcgan28-cntk, cdcgan, dcgan64
    assert len(pairs) == len(ARCHS) * len(LOSSES) - len(bn_critics)  # wgan-gp refused on each


def test_2d_points_train_with_the_mlp():
    config, knobs = resolve("ring", batch_size=32, device="cpu")
    trainer = Trainer(config, knobs, tiny_points(), torch.device("cpu"))
    done = trainer.iteration(knobs, 1)
    assert torch.isfinite(done.metrics).all() and done.d_updates == 1
    assert trainer.sample_fixed().shape == (512, 2)
    field = trainer.decision_field(3.0, size=16)
    assert field.shape == (16, 16) and 0 <= field.min() <= field.max() <= 1


@pytest.mark.parametrize(("arch", "data"), [("mlp", tiny_points), ("dcgan28", tiny_images)])
def test_packed_discriminator_judges_pack_samples_at_once(arch, data):
    config, knobs = resolve(None, arch=arch, dataset="ring" if arch == "mlp" else "digits", batch_size=12,
                            pack=3, device="cpu")  # fmt: skip
    trainer = Trainer(config, knobs, data(), torch.device("cpu"))
    seen = []
    trainer.discriminator.register_forward_hook(lambda module, args, out: seen.append(tuple(args[0].shape)))
    assert torch.isfinite(trainer.iteration(knobs, 1).metrics).all()
    channels = 2 if arch == "mlp" else 1
    assert seen and all(shape[:2] == (4, 3 * channels) for shape in seen)  # 12 samples as 4 packs of 3
    if arch == "mlp":
        assert trainer.decision_field(3.0, size=8).shape == (8, 8)


def start(runs_dir, **overrides):
    settings = dict(arch="mlp", dataset="digits", batch_size=16, device="cpu", iterations=100_000,
                    sample_every=5, checkpoint_every=1000, eval_every=0)  # fmt: skip
    data = overrides.pop("data", None) or tiny_images()
    settings.update(overrides)
    config, knobs = resolve(None, **settings)
    return start_run(config, knobs, runs_dir=runs_dir, data=data)


def test_knob_change_is_seen_by_the_next_iteration(runs_dir):
    run = start(runs_dir)
    try:
        assert wait_for(lambda: len(run.history) >= 3)
        run.pause()
        assert wait_for(lambda: run.status == "paused")
        done = run.iteration
        run.update(lr_g=1e-3, flip_prob=0.25, d_iters=3)
        run.step(2)
        assert wait_for(lambda: len(run.history) == done + 2)
        h = run.snapshot().history
        assert h["iteration"][-1] == done + 2
        assert (h["lr_g"][-2:] == np.float32(1e-3)).all() and (h["flip_prob"][-2:] == 0.25).all()
        assert (h["d_iters"][-2:] == 3).all() and h["lr_g"][-3] == np.float32(2e-4)
        event = run.snapshot().events[-1]
        assert event["iteration"] == done + 1 and event["changes"] == {
            "lr_g": 1e-3,
            "flip_prob": 0.25,
            "d_iters": 3,
        }
        assert run.status == "paused"
        with pytest.raises(ConfigError, match="flip_prob 2 is out of range"):
            run.update(flip_prob=2)
    finally:
        run.stop()


def test_stop_ends_the_thread_within_a_second_and_saves(runs_dir):
    run = start(runs_dir, arch="mlp")
    assert wait_for(lambda: run.iteration >= 2)
    began = time.monotonic()
    run.stop(wait=False)
    assert run.wait(timeout=1.0), "the training thread was still alive a second after stop()"
    assert time.monotonic() - began < 1.0
    assert run.status == "stopped" and str(run.iteration) in run.reason
    state = RunFolder(run.run_dir).load_checkpoint()
    assert state["iteration"] == run.iteration
    assert run._loop.trainer.generator is None  # models released


def test_resume_continues_the_count_and_the_curves(runs_dir):
    straight = start(runs_dir, iterations=12)
    assert straight.wait(30) and straight.status == "finished"
    first = start(runs_dir, iterations=6)
    assert first.wait(30) and first.status == "finished"
    resumed = resume_run(first.run_dir, iterations=12)
    assert resumed.wait(30) and resumed.status == "finished", resumed.reason
    columns, rows = RunFolder(resumed.run_dir).read_metrics()
    assert rows[:, columns.index("iteration")].tolist() == list(range(1, 13))
    _, reference = RunFolder(straight.run_dir).read_metrics()
    loss_d = columns.index("loss_d")
    np.testing.assert_allclose(rows[:, loss_d], reference[:, loss_d], rtol=1e-5)  # same seed, same curve
    assert len(resumed.history) == 12
    elapsed = rows[:, columns.index("elapsed_s")]
    assert (np.diff(elapsed) >= 0).all()


def test_resume_refuses_fewer_iterations_than_done(runs_dir):
    run = start(runs_dir, iterations=4)
    assert run.wait(30)
    with pytest.raises(ConfigError, match="below the 4 already done"):
        resume_run(run.run_dir, iterations=2)


def test_nan_loss_ends_the_run_as_diverged_and_keeps_the_last_good_checkpoint(runs_dir):
    data = tiny_points()
    run = start(runs_dir, arch="mlp", dataset="ring", data=data, checkpoint_every=2, batch_size=32)
    try:
        assert wait_for(lambda: run.iteration >= 4)
        run.pause()
        assert wait_for(lambda: run.status == "paused")
        good = RunFolder(run.run_dir).load_checkpoint()["iteration"]
        data.x[:] = float("nan")  # the data on the device is this very tensor (CPU)
        run.step(5)
        assert run.wait(10)
        assert run.status == "diverged" and "NaN" in run.reason.replace("nan", "NaN")
        assert f"checkpoint (iteration {good})" in run.reason
        assert RunFolder(run.run_dir).load_checkpoint()["iteration"] == good
    finally:
        run.stop()


def test_an_exception_fails_the_run_with_its_reason(runs_dir, monkeypatch):
    def broken(self, knobs, iteration, interrupted=None):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(Trainer, "iteration", broken)
    run = start(runs_dir)
    assert run.wait(10)
    assert run.status == "failed" and "RuntimeError: out of memory (simulated)" in run.reason
    events = RunFolder(run.run_dir).read_events()
    assert any(e["event"] == "traceback" and "simulated" in e["text"] for e in events)


def test_snapshot_holds_plain_cpu_data(runs_dir):
    run = start(runs_dir, iterations=5)
    assert run.wait(30)
    snap = run.snapshot()
    assert snap.status == "finished" and snap.iteration == 5
    assert snap.grid.dtype == np.uint8 and snap.grid.shape == (5 * 30 + 2, 5 * 30 + 2, 3)  # 5x5, padding 2
    assert snap.grid_iteration == 5 and not snap.history["score_g"].flags.writeable
    saved = sorted(p.name for p in (run.run_dir / "samples").glob("*.png"))
    assert saved == ["iter_0000001.png", "iter_0000005.png"]


def test_conditional_grid_has_a_row_per_class(runs_dir):
    run = start(runs_dir, arch="cdcgan", iterations=1)
    assert run.wait(30)
    assert run.snapshot().grid.shape == (10 * 30 + 2, 10 * 30 + 2, 3)


def test_points_run_publishes_scatter_and_decision_field(runs_dir):
    run = start(runs_dir, arch="mlp", dataset="ring", data=tiny_points(), iterations=3, batch_size=32)
    assert run.wait(30)
    points = run.snapshot().points
    assert points["fake"].shape == (512, 2) and points["field"].shape == (64, 64)
    assert points["bounds"] == 3.0


def test_history_stays_compact_for_a_million_iterations():
    history = History()
    block = np.ones((10_000, len(history.columns)), np.float32)
    view = None
    for i in range(100):
        history.append(block * i)
        if i == 3:
            view = history.view()
    assert len(history) == 1_000_000 and history.nbytes() <= 100e6
    assert len(view["iteration"]) == 40_000 and view["iteration"][-1] == 3  # an old view stays valid


def test_downsample_keeps_shape_and_gaps():
    x = np.arange(100_000, dtype=np.float32)
    y = np.where(x < 50_000, 0.2, 0.8).astype(np.float32)
    y[:1000] = np.nan
    dx, dy = downsample(x, y, 2000)
    assert len(dx) == 2000 and dx[-1] == 99_999
    assert np.isnan(dy[0]) and dy[100] == pytest.approx(0.2) and dy[-1] == pytest.approx(0.8)


def test_checkpoint_now_saves_the_current_weights_even_when_paused(runs_dir):
    run = start(runs_dir)
    try:
        assert wait_for(lambda: run.iteration >= 3)
        run.pause()
        assert wait_for(lambda: run.status == "paused")
        assert run.checkpoint_now(timeout=10)
        state = RunFolder(run.run_dir).load_checkpoint()
        assert state["iteration"] == run.iteration and run.status == "paused"
    finally:
        run.stop()


def test_interpreter_exit_stops_and_saves_a_live_run(tmp_path):
    """A script that starts a run and simply ends: the run is stopped and saved, the exit is clean."""
    import subprocess
    import sys

    script = (
        "from gan_core.engine.presets import resolve; from gan_core.training.run import start_run; import time\n"
        "config, knobs = resolve('ring', device='cpu', iterations=10**6, batch_size=32)\n"
        f"run = start_run(config, knobs, runs_dir={str(tmp_path)!r}, name='live')\n"
        "while run.iteration < 5: time.sleep(0.01)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    assert proc.returncode == 0 and "terminate" not in proc.stderr, proc.stderr
    assert RunFolder(tmp_path / "live").load_checkpoint()["iteration"] >= 5
    assert run_info(RunFolder(tmp_path / "live")).status == "stopped"


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("constant", [1.0, 1.0, 1.0, 1.0]),
        ("staircase", [1.0, 0.95, 0.95**2, 0.95**20]),  # x0.95 every 500 iterations (TensorFlow)
        ("cosine", [1.0, 0.5 * (1 + np.cos(np.pi * 500 / 10_000)), 0.5 * (1 + np.cos(np.pi * 0.1)), 0.0]),
    ],
)
def test_learning_rate_schedules(schedule, expected):
    config, knobs = resolve(None, arch="mlp", dataset="ring", lr_schedule=schedule, iterations=10_000,
                            lr_g=1e-3, lr_d=2e-3, device="cpu")  # fmt: skip
    trainer = Trainer(config, knobs, tiny_points(), torch.device("cpu"))
    for iteration, factor in zip([1, 501, 1001, 10_001], expected, strict=True):
        lr_g, lr_d = trainer.learning_rates(knobs, iteration)
        assert lr_g == pytest.approx(1e-3 * factor, abs=1e-12) and lr_d == pytest.approx(
            2e-3 * factor, abs=1e-12
        )
