"""The recognisable mark (gan_core.folder.milestone): the rule against held-out real images' share, the one event a run
logs at its first measurement that reaches it, kept through a resume and a branch, read back by a watcher of the
folder; `evaluate` prints the real images' share; the monitor names the iteration and draws it on the quality
charts."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_points
from streamlit.testing.v1 import AppTest
from test_cli import cli

from dashboard.registry import registry
from gan_core.engine.data import to_model_range
from gan_core.engine.presets import resolve
from gan_core.folder import milestone
from gan_core.folder.milestone import Mark
from gan_core.folder.run_folder import RunFolder
from gan_core.folder.status import Status
from gan_core.folder.watch import FolderRun
from gan_core.quality.metrics import ImageEvaluator, _split
from gan_core.training import plan
from gan_core.training.loop import TrainingLoop
from gan_core.training.recorder import CSV_COLUMNS
from gan_core.training.run import resume_run, start_run

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = (
    0.1,
    0.4,
    0.5,
    0.9,
    0.3,
    1.0,
)  # each measurement's recognisable share, as a fraction of the real one


def marks(path) -> list[dict]:
    return [e for e in RunFolder(path).read_events() if e["event"] == "recognisable"]


def finish(run: plan.RunPlan) -> TrainingLoop:
    loop = TrainingLoop(run)
    while not loop.done:
        loop.step()
    assert loop.close() is Status.FINISHED, loop.reason
    return loop


# ---- the rule, and the log read back


def test_samples_are_recognisable_from_half_the_real_share_on():
    assert milestone.reached({"recognisable": 0.3}, real=0.6) == {"recognisable": 0.3, "real": 0.6}
    assert milestone.reached({"recognisable": 0.2999}, real=0.6) is None
    assert milestone.reached({"recognisable": 0.0}, real=0.0) is None  # a classifier that recognises nothing
    assert milestone.reached({"modes": 7.0}, modes_total=8) is None
    assert milestone.reached({"modes": 8.0}, modes_total=8) == {"modes": 8, "modes_total": 8}


def test_the_real_share_is_that_of_the_held_out_images_by_the_same_rule(digits_evaluator):
    evaluator, digits = digits_evaluator
    _, test_idx = _split(digits)
    _, probs = evaluator.features(to_model_range(digits.x[test_idx[:300]]))
    by_hand = float((probs.max(1).values >= 0.9).float().mean())
    assert evaluator.real_recognisable == by_hand and 0.5 < by_hand <= 1


def test_the_first_mark_counts_until_a_resume_goes_back_before_it():
    detail = {"recognisable": 0.4, "real": 0.7}
    events = [{"event": "start", "iteration": 0}, {"event": "recognisable", "iteration": 60, "elapsed_s": 4.2, **detail},
              {"event": "recognisable", "iteration": 80, "elapsed_s": 5.0, **detail}]  # fmt: skip
    assert milestone.find(events) == Mark(60, 4.2, detail)
    assert milestone.find([*events, {"event": "resume", "iteration": 60, "from_iteration": 60}]) == Mark(
        60, 4.2, detail
    )
    resumed = [*events[:2], {"event": "resume", "iteration": 40, "from_iteration": 40}]
    assert milestone.find(resumed) is None  # trained again from iteration 40: not recognisable yet
    assert milestone.find([*resumed, events[2]]) == Mark(80, 5.0, detail)


def test_a_watcher_reads_the_mark_from_the_folder_as_it_is_appended(tmp_path):
    folder = RunFolder.create(tmp_path, "run")
    folder.log("start", 0)
    watcher = FolderRun(folder.path)
    assert watcher.snapshot().recognisable is None
    folder.log("recognisable", 1234, elapsed_s=41.2, recognisable=0.31, real=0.53)
    assert watcher.snapshot().recognisable == Mark(1234, 41.2, {"recognisable": 0.31, "real": 0.53})
    folder.log("resume", 1000, from_iteration=1000)
    assert watcher.snapshot().recognisable is None


# ---- runs


@pytest.fixture
def scripted(monkeypatch, digits_evaluator):
    """Measurements whose recognisable share follows SCRIPT, the rest measured for real; the digits classifier is
    cached (digits_evaluator), so a run measures on its training thread from its first due measurement on."""
    shares = iter(SCRIPT)
    measure = ImageEvaluator.__call__

    def call(self, images, requested=None):
        return measure(self, images, requested) | {"recognisable": next(shares) * self.real_recognisable}

    monkeypatch.setattr(ImageEvaluator, "__call__", call)


def test_an_image_run_logs_its_first_recognisable_measurement_once(
    runs_dir, data_dir, scripted, digits_evaluator
):
    evaluator, digits = digits_evaluator
    _, probs = evaluator.features(to_model_range(digits.x[_split(digits)[1]]))  # all 360 held-out images
    real = float((probs.max(1).values >= 0.9).float().mean())
    config, knobs = resolve(None, arch="mlp", dataset="digits", device="cpu", threads=1, batch_size=16, iterations=8,
                            eval_every=2, checkpoint_every=4, data_dir=str(data_dir))  # fmt: skip
    run = start_run(config, knobs, runs_dir=runs_dir, name="digits")
    assert run.wait(120) and run.status == "finished", run.reason
    [event] = marks(run.run_dir)  # measured at 2, 4, 6 (0.5 x real: the first at half), 8
    assert event["iteration"] == 6 and event["real"] == pytest.approx(real, abs=1e-4)
    assert event["recognisable"] == pytest.approx(0.5 * real, abs=1e-4)
    columns, rows = RunFolder(run.run_dir).read_metrics()
    elapsed = rows[:, columns.index("elapsed_s")]
    assert elapsed[4] - 1e-3 <= event["elapsed_s"] <= elapsed[5] + 1e-3  # iteration 6's, as its row has it
    detail = {"recognisable": event["recognisable"], "real": event["real"]}
    assert run.snapshot().recognisable == Mark(6, event["elapsed_s"], detail)

    again = resume_run(run.run_dir, iterations=12)  # measures at 10 and 12 (0.3 and 1.0 x real)
    assert again.wait(120) and again.status == "finished", again.reason
    assert marks(run.run_dir) == [event] and again.snapshot().recognisable == Mark(
        6, event["elapsed_s"], detail
    )

    early, late = (
        plan.branch(run.run_dir, 4),
        plan.branch(run.run_dir, 8),
    )  # a branch inherits it when past it
    early.release(), late.release()
    assert marks(early.folder.path) == [] and milestone.find(late.folder.read_events()) == Mark(
        6, event["elapsed_s"], detail
    )


def test_a_toy_run_marks_the_first_measurement_with_every_mode(tmp_path, monkeypatch):
    modes = iter([3.0, 8.0, 5.0])
    monkeypatch.setattr(
        "gan_core.quality.metrics.toy_metrics", lambda points, dataset: {"modes": next(modes)}
    )
    config, knobs = resolve("ring", device="cpu", threads=1, iterations=6, eval_every=2, batch_size=32)
    loop = finish(plan.new_run(config, knobs, runs_dir=tmp_path, name="ring", data=tiny_points()))
    [event] = marks(loop.folder.path)
    assert (event["iteration"], event["modes"], event["modes_total"]) == (4, 8, 8)


def test_evaluate_prints_the_real_images_recognisable_share(
    tmp_path, data_dir, digits_evaluator, monkeypatch
):
    monkeypatch.setattr(
        "gan_core.quality.metrics.inception_fid", lambda *args: "not computed: no network in a test"
    )
    config, knobs = resolve(None, arch="mlp", dataset="digits", device="cpu", threads=1, iterations=2, eval_every=0,
                            batch_size=16, data_dir=str(data_dir))  # fmt: skip
    loop = finish(plan.new_run(config, knobs, runs_dir=tmp_path, name="eval"))
    code, out, err = cli("evaluate", loop.folder.path, "--n", 300, "--device", "cpu")
    assert code == 0, err
    printed = dict(line.split(None, 1) for line in out.splitlines())
    assert (
        printed["recognisable_real"] == f"{digits_evaluator[0].real_recognisable:.4g}"
    )  # the same 300 images


# ---- the monitor


def test_the_monitor_marks_the_iteration_on_its_progress_line_and_quality_chart(runs_dir, fresh_registry):
    config, knobs = resolve(None, arch="mlp", dataset="digits", device="cpu", threads=1, iterations=2, batch_size=16,
                            eval_every=0)  # fmt: skip
    run = start_run(config, knobs, runs_dir=runs_dir, name="marked")
    assert run.wait(60) and run.status == "finished", run.reason
    folder = RunFolder(
        run.run_dir
    )  # a longer history, measured every 250 iterations, as another process wrote it
    rows = np.full((1500, len(CSV_COLUMNS)), np.nan, np.float32)
    rows[:, :13] = [0, 1, 0, 0.5, 0.5, 0.7, 0.7, np.nan, 2e-4, 2e-4, 0, 1, 500]
    rows[:, 0], rows[:, 2] = np.arange(1, 1501), np.arange(1, 1501) * 0.033
    rows[249::250, CSV_COLUMNS.index("recognisable")] = [0.02, 0.1, 0.2, 0.25, 0.3, 0.4]
    folder.write_metrics(CSV_COLUMNS, rows, append=False)
    folder.log("recognisable", 1250, elapsed_s=41.2, recognisable=0.3, real=0.55)
    registry().watch(folder.path)
    at = AppTest.from_file(str(ROOT / "pages" / "0_Train.py"), default_timeout=120).run()
    assert not at.exception, at.exception
    assert at.get("progress")[0].proto.text.endswith(" · recognisable from iteration 1,250 (41 s)")
    at.segmented_control(key="more-charts").set_value("quality").run()
    [chart] = [spec for spec in (json.loads(c.proto.spec) for c in at.get("plotly_chart"))
               if spec["data"][0]["name"] == "recognisable"]  # fmt: skip
    assert [(shape["x0"], shape["x1"]) for shape in chart["layout"]["shapes"]] == [(1250, 1250)]
    assert [note["text"] for note in chart["layout"]["annotations"]] == ["recognisable at 1,250 (41 s)"]


def test_presentation_view_names_the_iteration_under_the_curves_once_the_run_has_it(runs_dir, fresh_registry):
    config, knobs = resolve(None, arch="mlp", dataset="digits", device="cpu", threads=1, iterations=2, batch_size=16,
                            eval_every=0)  # fmt: skip
    run = start_run(config, knobs, runs_dir=runs_dir, name="presented")
    assert run.wait(60) and run.status == "finished", run.reason
    registry().watch(run.run_dir)
    at = AppTest.from_file(str(ROOT / "pages" / "0_Train.py"), default_timeout=120).run()
    at.toggle(key="presentation").set_value(True).run()
    assert not at.exception, at.exception
    assert at.title[0].value.startswith("Epoch: ")
    marked = [c.value for c in at.caption if "ecognisable" in c.value]
    assert not marked  # not recognisable yet: nothing to point at

    RunFolder(run.run_dir).log("recognisable", 1250, elapsed_s=41.2, recognisable=0.3, real=0.55)
    at.run()
    assert not at.exception, at.exception
    kinds = [node.type for node in at.main]  # depth first: title, grid, curves, what is under them
    [(where, caption)] = [(i, node.value) for i, node in enumerate(at.main) if node.type == "caption"
                          and "ecognisable" in node.value]  # fmt: skip
    assert caption == "Recognisable from iteration 1,250 (41 s)"
    assert kinds.index("plotly_chart") < where < kinds.index("popover")  # under the curves, above Controls
