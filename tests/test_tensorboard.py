"""TensorBoard event files beside a run's own files (optional): what they hold, and a clear refusal without the
package."""

import pytest
from conftest import tiny_points
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gan_core.cli import main
from gan_core.config import ConfigError
from gan_core.engine import presets
from gan_core.engine.presets import resolve
from gan_core.folder.status import Status
from gan_core.training import plan
from gan_core.training.loop import TrainingLoop


def test_a_run_writes_its_curves_and_grids_as_tensorboard_events(tmp_path):
    config, knobs = resolve("ring", device="cpu", threads=1, iterations=40, sample_every=10, eval_every=0,
                            batch_size=64, tensorboard=True)  # fmt: skip
    loop = TrainingLoop(plan.new_run(config, knobs, runs_dir=tmp_path, name="tb", data=tiny_points()))
    while not loop.done:
        loop.step()
    assert loop.close() is Status.FINISHED
    events = EventAccumulator(str(loop.folder.tensorboard_dir), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    assert {"scores/generator", "scores/discriminator", "losses/generator", "knobs/lr D"} <= set(
        events.Tags()["scalars"]
    )
    steps = [s.step for s in events.Scalars("scores/generator")]
    assert steps == sorted(steps) and steps[-1] == 40  # the last row is written when the run ends
    columns, rows = loop.folder.read_metrics()
    last = rows[rows[:, 0] == 40][0]
    assert events.Scalars("scores/generator")[-1].value == pytest.approx(
        last[columns.index("score_g")], rel=1e-5
    )
    assert [i.step for i in events.Images("samples/fixed latents")] == [1, 10, 20, 30, 40]  # the saved grids


def test_without_the_package_tensorboard_is_refused_with_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(presets.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="pip install tensorboard"):
        resolve("ring", tensorboard=True)
    code = main(["train", "--preset", "ring", "--tensorboard", "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: tensorboard: the tensorboard package is not installed")
    assert len(err.splitlines()) == 1 and not (tmp_path / "runs").exists()
