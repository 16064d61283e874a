"""The synchronous training loop and its drivers: named results, hooks, the end of a run, divergence; the CLI's
main-thread driver and the app's thread driver give the very same run."""

import numpy as np
import pytest
import torch
from conftest import tiny_images, tiny_points, wait_for

from gan_core.engine.presets import resolve
from gan_core.folder.status import Status
from gan_core.training import plan
from gan_core.training.hooks import Hook
from gan_core.training.loop import Diverged, TrainingLoop
from gan_core.training.recorder import StepResult
from gan_core.training.run import Run


def new_plan(tmp_path, name="run", data=None, **overrides):
    settings = dict(arch="mlp", dataset="digits", batch_size=16, device="cpu", iterations=6, sample_every=2,
                    checkpoint_every=4, eval_every=0, threads=1)  # fmt: skip
    settings.update(overrides)
    return plan.new_run(*resolve(None, **settings), runs_dir=tmp_path, name=name, data=data or tiny_images())


class Recording(Hook):
    def __init__(self):
        self.steps, self.closed = [], 0

    def after_step(self, loop, step):
        self.steps.append(step)

    def close(self, loop):
        self.closed += 1


def test_step_returns_a_named_result_and_hooks_see_every_step(tmp_path):
    hook = Recording()
    loop = TrainingLoop(new_plan(tmp_path), hooks=(hook,))
    first = loop.step()
    assert (
        isinstance(first, StepResult) and first.iteration == 1 and first.epoch == 1 and first.d_updates == 1
    )
    assert (first.lr_g, first.lr_d) == (2e-4, 2e-4) and first.metrics.shape == (6,)
    while not loop.done:
        loop.step()
    assert [s.iteration for s in hook.steps] == [1, 2, 3, 4, 5, 6]
    assert loop.folder.load_checkpoint()["iteration"] == 4  # checkpoint_every 4, before the end
    assert loop.close() is Status.FINISHED and hook.closed == 1
    assert loop.reason == "reached 6 iterations" and loop.folder.owner() is None  # the lock is released
    assert loop.folder.load_checkpoint()["iteration"] == 6
    assert [it for it, _ in loop.folder.grids()] == [1, 2, 4, 6]
    columns, rows = loop.folder.read_metrics()
    assert rows[:, columns.index("iteration")].tolist() == [1, 2, 3, 4, 5, 6]
    statuses = [e["status"] for e in loop.folder.read_events() if e["event"] == "status"]
    assert statuses == ["running", "finished"]


def test_closing_early_stops_with_a_checkpoint_where_it_stands(tmp_path):
    loop = TrainingLoop(new_plan(tmp_path))
    loop.step()
    loop.set_knobs(loop.knobs.replace(lr_d=1e-3))
    assert loop.step().lr_d == 1e-3
    assert loop.close() is Status.STOPPED and loop.reason == "stopped at iteration 2"
    assert loop.folder.load_checkpoint()["knobs"]["lr_d"] == 1e-3
    assert [e for e in loop.folder.read_events() if e["event"] == "knobs"][0]["iteration"] == 2


def test_a_nan_before_the_first_checkpoint_says_that_none_exists(tmp_path):
    data = tiny_points()
    loop = TrainingLoop(new_plan(tmp_path, dataset="ring", data=data, batch_size=32, checkpoint_every=100))
    loop.step()
    data.x[:] = float("nan")
    with pytest.raises(Diverged) as error:
        for _ in range(3):
            loop.step()
        loop.flush()
    assert "no checkpoint had been written yet" in str(error.value)
    assert loop.close(error.value) is Status.DIVERGED and not loop.folder.has_checkpoint()


def test_an_interruption_mid_iteration_saves_nothing_over_the_last_checkpoint(tmp_path):
    loop = TrainingLoop(new_plan(tmp_path, checkpoint_every=2))
    for _ in range(3):
        loop.step()
    assert loop.close(KeyboardInterrupt()) is Status.STOPPED
    assert loop.reason == "interrupted at once at iteration 3 (checkpoint of iteration 2 kept)"
    assert loop.folder.load_checkpoint()["iteration"] == 2


def test_an_exception_fails_the_run_and_logs_its_traceback(tmp_path):
    loop = TrainingLoop(new_plan(tmp_path))
    loop.step()
    assert loop.close(RuntimeError("device lost (simulated)")) is Status.FAILED
    assert loop.reason == "RuntimeError: device lost (simulated)" and loop.folder.owner() is None
    assert any(e["event"] == "traceback" and "simulated" in e["text"] for e in loop.folder.read_events())


def test_both_drivers_train_the_same_run(tmp_path):
    """The CLI's way (the loop in this thread) and the app's (a Run thread): one loop, one result, bit for bit."""
    here = TrainingLoop(new_plan(tmp_path, "here"))
    while not here.done:
        here.step()
    here.close()
    thread = Run(new_plan(tmp_path, "thread")).start()
    assert thread.wait(60) and thread.status is Status.FINISHED
    (columns, a), (_, b) = here.folder.read_metrics(), thread.plan.folder.read_metrics()
    trained = [columns.index(c) for c in ("score_g", "score_d", "loss_g", "loss_d")]
    np.testing.assert_array_equal(a[:, trained], b[:, trained])
    ga, gb = (f.load_checkpoint()["trainer"]["generator"] for f in (here.folder, thread.plan.folder))
    assert all(torch.equal(ga[k], gb[k]) for k in ga)


def test_the_thread_driver_pauses_steps_and_saves_on_request(tmp_path):
    run = Run(new_plan(tmp_path, iterations=10_000)).start()
    try:
        run.pause()
        assert wait_for(lambda: run.status is Status.PAUSED)
        done = run.iteration
        run.step(3)
        assert wait_for(lambda: run.iteration == done + 3) and run.status is Status.PAUSED
        # steps taken while paused are recorded without waiting for the run to go on (the flush may trail the count)
        assert wait_for(lambda: len(run.history) == done + 3) and run.status is Status.PAUSED
        assert run.checkpoint_now(10) and run.plan.folder.load_checkpoint()["iteration"] == done + 3
        run.unpause()
        assert wait_for(lambda: run.iteration > done + 10) and run.status is Status.RUNNING
    finally:
        run.stop()
    assert run.status is Status.STOPPED and run.plan.folder.owner() is None


def test_a_slow_run_draws_a_live_grid_between_saved_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(
        "gan_core.training.hooks.LIVE_GRID_SECONDS", 0.0
    )  # every iteration counts as slow here
    loop = TrainingLoop(new_plan(tmp_path, sample_every=1000))
    for _ in range(3):
        loop.step()
    assert loop.grid.iteration == 3  # the monitor's grid follows the run ...
    assert [it for it, _ in loop.folder.grids()] == [1]  # ... while the saved grids keep their schedule
    assert loop.folder.live_grid_path.is_file()
    loop.close()
    assert [it for it, _ in loop.folder.grids()] == [1, 3]  # the end is saved, as always


def test_a_replay_repeats_a_live_tuned_run_exactly_on_the_cpu(tmp_path):
    original = Run(new_plan(tmp_path, "original", iterations=60, checkpoint_every=1000)).start()
    assert wait_for(lambda: original.iteration >= 15, timeout=60)
    original.update(lr_d=1e-3)  # tuned by hand while it trains, at whatever iteration it has reached
    assert wait_for(lambda: original.iteration >= 35, timeout=60)
    original.update(flip_prob=0.2, d_iters=2)
    assert original.wait(60) and original.status is Status.FINISHED
    replayed = plan.replay(original.run_dir, name="again", data=tiny_images())
    assert replayed.schedule and len(replayed.schedule) == 2
    loop = TrainingLoop(replayed)
    while not loop.done:
        loop.step()
    assert loop.close() is Status.FINISHED
    (columns, theirs), (_, ours) = original.plan.folder.read_metrics(), loop.folder.read_metrics()
    timing = [columns.index(c) for c in ("elapsed_s", "images_per_s")]  # the clock's, not the training's
    np.testing.assert_array_equal(np.delete(ours, timing, axis=1), np.delete(theirs, timing, axis=1))
    assert knob_changes(loop.folder) == knob_changes(original.plan.folder)
    assert [e for e in loop.folder.read_events() if e["event"] == "replay"][0]["of"] == str(
        original.run_dir.resolve()
    )


def knob_changes(folder) -> list[tuple[int, dict]]:
    return [(e["iteration"], e["changes"]) for e in folder.read_events() if e["event"] == "knobs"]
