"""The Samples and Runs pages, driven by Streamlit's AppTest over real (tiny) runs made by the engine."""

import base64
import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
import torch
from PIL import Image
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from dashboard.pages_common import NO_RUNS
from dashboard.registry import registry
from gan_core.engine.presets import resolve
from gan_core.folder.history import COLUMNS
from gan_core.folder.run_folder import RunFolder, list_runs
from gan_core.training.run import start_run

ROOT = Path(__file__).resolve().parent.parent
SAMPLES, RUNS = str(ROOT / "pages" / "1_Samples.py"), str(ROOT / "pages" / "2_Runs.py")
TINY = {  # name -> (preset, overrides); made oldest first, so the pages list them in reverse
    "images": ("cntk-dcgan", dict(dataset="digits", iterations=4, batch_size=16, sample_every=2)),
    "conditional": ("tf-cdcgan", dict(dataset="digits", iterations=2, batch_size=16, sample_every=2)),
    "points": ("ring", dict(iterations=3)),
}


@pytest.fixture(scope="module")
def made_runs(tmp_path_factory):
    """Three finished runs, made once; each test gets its own copy of the folder."""
    root = tmp_path_factory.mktemp("made")
    for name, (preset, overrides) in TINY.items():
        config, knobs = resolve(preset, device="cpu", threads=1, **overrides)
        run = start_run(config, knobs, runs_dir=root, name=name)
        assert run.wait(60) and run.status == "finished", run.reason
    return root


@pytest.fixture
def runs(made_runs, runs_dir):
    shutil.copytree(made_runs, runs_dir)
    return runs_dir


@pytest.fixture(autouse=True)
def fresh_registry():
    """No run or cached generator leaks from one test into the next (st.cache_resource is process-wide)."""
    _reset()
    yield
    _reset()


def _reset():
    registry().stop_all()
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture
def media(monkeypatch):
    """The files the pages hand to Streamlit, by URL (images, eager downloads) or deferred id (callables)."""
    files, deferred = {}, {}
    add, add_deferred = MediaFileManager.add, MediaFileManager.add_deferred

    def record(self, data, mimetype, coordinates, file_name=None, is_for_static_download=False):
        url = add(self, data, mimetype, coordinates, file_name, is_for_static_download)
        files[url] = (data, file_name)
        return url

    def record_deferred(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        file_id = add_deferred(self, data_callable, mimetype, coordinates, file_name, **kwargs)
        deferred[file_id] = (data_callable, file_name)
        return file_id

    monkeypatch.setattr(MediaFileManager, "add", record)
    monkeypatch.setattr(MediaFileManager, "add_deferred", record_deferred)
    return files, deferred


def page(path: str) -> AppTest:
    at = AppTest.from_file(path, default_timeout=60).run()
    assert not at.exception, at.exception
    return at


def downloads(at: AppTest, media) -> dict[str, tuple[bytes, str]]:
    """Label -> (the bytes the button delivers, its file name), calling deferred builders as a click would."""
    files, deferred = media
    out = {}
    for button in at.get("download_button"):
        if button.proto.deferred_file_id:
            build, name = deferred[button.proto.deferred_file_id]
            out[button.label] = (build(), name)
        else:
            out[button.label] = files[button.proto.url]
    return out


def shown_image(at: AppTest, media, index: int = 0) -> Image.Image:
    data, _ = media[0][at.image[index].value[0]]
    return Image.open(io.BytesIO(data))


def plotted(values) -> np.ndarray:
    """A trace's values from a figure's JSON (Plotly writes numpy arrays as typed base64)."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), values["dtype"])
    return np.asarray(values)


def run_dir(runs_dir: Path, name: str) -> Path:
    return runs_dir / name


# ---- empty states


@pytest.mark.parametrize("path", [SAMPLES, RUNS])
def test_pages_without_runs_say_where_to_start_one(runs_dir, path):
    at = page(path)
    assert [info.value for info in at.info] == [NO_RUNS]
    assert not at.image and not at.dataframe


# ---- Samples


def test_samples_page_shows_a_grid_and_offers_every_export(runs, media):
    at = page(SAMPLES)
    at.selectbox(key="samples_run").set_value("images").run()
    assert not at.exception and not at.error
    assert len(at.image) == 3  # the grid, the history's saved grid, the interpolation
    files = downloads(at, media)
    assert set(files) == {"This picture (PNG)", "Time-lapse (GIF)", "Checkpoint (.pt)", "Metrics (CSV)",
                          "Report (HTML)"}  # fmt: skip
    report, name = files["Report (HTML)"]
    assert name == "images-report.html" and report.startswith(b"<!DOCTYPE html>")
    assert b"<h1>images</h1>" in report
    png, name = files["This picture (PNG)"]
    assert name == "images-samples.png" and png == media[0][at.image[0].value[0]][0]  # the very bytes shown
    assert Image.open(io.BytesIO(png)).size == (5 * 30 + 2, 5 * 30 + 2)  # 25 fixed latents, 28 px + padding
    gif, name = files["Time-lapse (GIF)"]
    assert name == "images-timelapse.gif" and gif[:6] == b"GIF89a"
    assert Image.open(io.BytesIO(gif)).n_frames == 3  # iterations 1, 2, 4
    checkpoint, name = files["Checkpoint (.pt)"]
    assert (
        name == "images-last.pt" and torch.load(io.BytesIO(checkpoint), weights_only=True)["iteration"] == 4
    )
    csv, name = files["Metrics (CSV)"]
    assert name == "images-metrics.csv" and csv.decode().startswith("iteration,")


def test_samples_history_slider_shows_each_saved_grid(runs, media):
    at = page(SAMPLES)
    at.selectbox(key="samples_run").set_value("images").run()
    slider = at.select_slider(key="history-images")
    assert (
        list(slider.options) == ["1", "2", "4"] and slider.value == 4
    )  # the run's saved grids, the last first
    slider.set_value(2).run()
    assert not at.exception
    [shown] = [i for i in at.image if i.proto.imgs[0].caption == "Generated Images (iteration 2 of 4)"]
    png = media[0][shown.value[0]][0]
    saved = np.asarray(Image.open(runs / "images" / "samples" / "iter_0000002.png").convert("RGB"))
    picture = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    factor = picture.shape[0] // saved.shape[0]
    assert factor >= 2 and np.array_equal(picture[::factor, ::factor], saved)  # that grid, enlarged


def test_samples_zip_holds_n_single_images(runs, media):
    at = page(SAMPLES)
    at.selectbox(key="samples_run").set_value("images").run()
    at.radio(key="source").set_value("New random").run()
    at.number_input(key="seed").set_value(7).run()
    at.number_input(key="file_count").set_value(12).run()
    assert "Download 12 single images (ZIP)" not in downloads(at, media)  # built only on request
    at.button(key="prepare").click().run()
    assert not at.exception
    data, name = downloads(at, media)["Download 12 single images (ZIP)"]
    assert name == "images-12-seed7.zip"
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        assert names == [f"sample_{i:05d}.png" for i in range(12)]
        assert Image.open(io.BytesIO(archive.read(names[0]))).size == (28, 28)


def test_samples_conditional_run_draws_one_row_a_class(runs, media):
    at = page(SAMPLES)
    at.selectbox(key="samples_run").set_value("conditional").run()
    assert shown_image(at, media).size == (10 * 30 + 2, 10 * 30 + 2)  # fixed: 10 a class, a row each
    at.radio(key="source").set_value("New random").run()
    at.number_input(key="count").set_value(3).run()
    assert at.selectbox(key="grid_class").value is None  # all classes
    assert shown_image(at, media).size == (3 * 30 + 2, 10 * 30 + 2)  # 3 columns, 10 rows
    at.selectbox(key="grid_class").set_value(4).run()
    assert not at.exception and shown_image(at, media).size == (2 * 30 + 2, 2 * 30 + 2)  # 3 of class 4
    assert shown_image(at, media, -1).size == (10 * 30 + 2, 30 + 2)  # interpolation (the last): one row of 10


def test_samples_points_run_shows_a_scatter_and_exports_points(runs, media):
    at = page(SAMPLES)  # the newest run is chosen first: the 2-D one
    assert at.selectbox(key="samples_run").value == "points"
    assert shown_image(at, media).size == (400, 400)
    at.number_input(key="file_count").set_value(50).run()
    at.button(key="prepare").click().run()
    data, name = downloads(at, media)["Download 50 points (NPY)"]
    assert name.endswith(".npy") and np.load(io.BytesIO(data)).shape == (50, 2)


def start_live_run():
    """A cntk-dcgan run on digits that trains until stopped and has no checkpoint yet."""
    config, knobs = resolve(
        "cntk-dcgan",
        dataset="digits",
        iterations=100_000,
        batch_size=16,
        device="cpu",
        checkpoint_every=10**7,
    )
    return registry().start(config, knobs, name="live")


def test_samples_use_the_latest_weights_of_a_live_run(runs, media):
    run = start_live_run()
    at = page(SAMPLES)
    assert at.selectbox(key="samples_run").value == "live"  # the active run comes first
    assert "no checkpoint yet" in at.info[0].value and not at.image
    at.button[0].click().run()  # "Use the latest weights"
    assert at.button[0].label == "Use the latest weights"
    assert not at.exception and not at.error and len(at.image) == 2
    assert (run.run_dir / "checkpoints" / "last.pt").is_file() and run.alive


def test_samples_reports_an_unreadable_checkpoint(runs):
    (run_dir(runs, "images") / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    at = page(SAMPLES)
    at.selectbox(key="samples_run").set_value("images").run()
    assert not at.exception and "Cannot load the generator of images" in at.error[0].value


# ---- Runs


def test_runs_table_lists_every_run_newest_first(runs):
    at = page(RUNS)
    table = at.dataframe[0].value
    assert list(table["Run"]) == ["points", "conditional", "images"]
    assert list(table["Iterations"]) == ["3 / 3", "2 / 2", "4 / 4"]
    assert all("finished" in status for status in table["Status"])
    assert list(table["Preset"]) == ["ring", "tf-cdcgan", "cntk-dcgan"]
    assert all(len(d) == 8 and d.count(":") == 2 for d in table["Duration"])


def test_runs_overlay_two_runs(runs):
    long = np.zeros((5000, len(COLUMNS)), np.float32)  # a long run's metrics: curves are cut to 2000 points
    long[:, COLUMNS.index("iteration")] = np.arange(1, 5001)
    RunFolder(run_dir(runs, "points")).write_metrics(COLUMNS, long, append=False)
    at = page(RUNS)
    at.multiselect(key="overlay").set_value(["images", "points"]).run()
    scores, losses = (json.loads(chart.proto.spec) for chart in at.get("plotly_chart"))
    assert [trace["name"] for trace in scores["data"]] == [
        "images · Generator", "images · Discriminator", "points · Generator", "points · Discriminator",
    ]  # fmt: skip
    assert scores["layout"]["yaxis"]["range"] == [0, 1]
    assert scores["layout"]["xaxis"]["title"]["text"] == "Iteration"
    assert scores["layout"]["yaxis"]["title"]["text"] == "Score"
    _, table = RunFolder(run_dir(runs, "images")).read_metrics()
    assert plotted(scores["data"][0]["y"]) == pytest.approx(table[:, 3])  # score_g, every iteration
    assert len(plotted(scores["data"][2]["x"])) == 2000 and plotted(scores["data"][2]["x"])[-1] == 5000
    assert len(losses["data"]) == 4


def test_runs_page_branches_a_run_and_overlays_it_on_its_parent(runs, media):
    at = page(RUNS)
    at.selectbox(key="branch_run").set_value("images").run()
    assert any("Kept checkpoints: 4." in c.value for c in at.caption)
    at.number_input(key="branch-lr_d-images-4").set_value(1e-3).run()
    at.number_input(key="branch-iterations-images-4").set_value(8).run()
    at.button(key="branch").click().run()
    assert not at.exception and not at.error, at.error
    assert any("Branched images at iteration 4 as images-at-4 (changed: lr_d 0.001, iterations 8)" in s.value
               for s in at.success)  # fmt: skip
    branch = registry().active_run()
    assert branch.run_dir == run_dir(runs, "images-at-4") and branch.wait(60) and branch.status == "finished"
    config, _ = RunFolder(branch.run_dir).read_config()
    assert (config.parent, config.branched_at, config.iterations) == (str(run_dir(runs, "images")), 4, 8)
    monitor = AppTest.from_file(str(ROOT / "pages" / "0_Train.py"), default_timeout=60).run()
    assert "8 / 8 iterations" in monitor.get("progress")[0].proto.text
    assert monitor.get("progress")[0].proto.text.endswith(" · branch of images at 4")  # the monitor says so

    at.run()  # the Compare charts now show the branch beside its parent, the branch from its branch point on
    assert at.multiselect(key="overlay").value == ["images-at-4", "images"]
    scores = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [t["name"] for t in scores["data"]] == [
        "images-at-4 · Generator", "images-at-4 · Discriminator", "images · Generator", "images · Discriminator",
    ]  # fmt: skip
    assert list(plotted(scores["data"][0]["x"])) == [4, 5, 6, 7, 8]
    assert scores["layout"]["shapes"][0]["x0"] == 4
    assert scores["layout"]["annotations"][0]["text"] == "images-at-4 branches from images"

    shutil.rmtree(run_dir(runs, "images"))  # without its parent, a branch shows its whole history
    at.run()
    scores = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [t["name"] for t in scores["data"]] == ["images-at-4 · Generator", "images-at-4 · Discriminator"]
    assert list(plotted(scores["data"][0]["x"])) == [1, 2, 3, 4, 5, 6, 7, 8] and not scores["layout"].get(
        "shapes"
    )


def test_runs_page_refuses_a_bad_branch_value_and_writes_nothing(runs):
    at = page(RUNS)
    at.selectbox(key="branch_run").set_value("images").run()
    at.number_input(key="branch-lr_d-images-4").set_value(7.0).run()
    at.button(key="branch").click().run()
    assert [e.value for e in at.error] == ["Cannot branch images: lr_d 7.0 is out of range: allowed [0, 1]"]
    assert sorted(p.name for p in runs.iterdir()) == ["conditional", "images", "points"]


def test_runs_page_shows_two_runs_side_by_side_at_one_iteration(runs, media):
    at = page(RUNS)
    assert (at.selectbox(key="side-a").value, at.selectbox(key="side-b").value) == ("points", "conditional")
    at.selectbox(key="side-b").set_value("images").run()
    slider = at.select_slider(key="side-points-images")
    assert list(slider.options) == ["1", "2", "3", "4"] and slider.value == 4
    captions = [i.proto.imgs[0].caption for i in at.image]
    assert captions == ["points at iteration 3 (its grid nearest before 4)", "images at iteration 4"]
    slider.set_value(2).run()
    assert [i.proto.imgs[0].caption for i in at.image] == [
        "points at iteration 1 (its grid nearest before 2)",
        "images at iteration 2",
    ]
    shown, _ = media[0][at.image[1].value[0]]
    assert shown == (run_dir(runs, "images") / "samples" / "iter_0000002.png").read_bytes()  # the saved grid


def test_runs_delete_needs_confirmation(runs):
    at = page(RUNS)
    at.selectbox(key="delete_run").set_value("conditional").run()
    assert at.button(key="delete").disabled
    at.checkbox(key="confirm_delete").check().run()
    at.button(key="delete").click().run()
    assert not at.exception and at.success[0].value == "Deleted conditional."
    assert not run_dir(runs, "conditional").exists()
    assert list(at.dataframe[0].value["Run"]) == ["points", "images"]
    assert at.checkbox(key="confirm_delete").value is False  # the next delete asks again


def test_runs_delete_stops_a_live_run_first(runs):
    run = start_live_run()
    at = page(RUNS)
    at.selectbox(key="delete_run").set_value("live").run()
    assert "will be stopped first" in at.warning[0].value
    at.checkbox(key="confirm_delete").check().run()
    at.button(key="delete").click().run()
    assert not run.alive and not run.run_dir.exists() and run.run_dir not in registry().runs


def test_runs_resume_continues_a_finished_run(runs):
    at = page(RUNS)
    at.selectbox(key="resume_run").set_value("images").run()
    at.number_input(key="resume_iterations_images").set_value(6).run()
    at.button(key="resume").click().run()
    assert not at.exception and at.toast[0].value == "Resumed images up to 6 iterations."
    assert "Train" in at.info[0].value
    run = registry().runs[run_dir(runs, "images")]
    assert run.wait(60) and run.status == "finished"
    columns, table = RunFolder(run.run_dir).read_metrics()
    assert table[-1, columns.index("iteration")] == 6
    assert [info.iteration for info in list_runs() if info.name == "images"] == [6]


# ---- damaged run folders: an error box or the run left out, never an exception


class Foreign:
    """Any class of this module: weights_only=True refuses to unpickle it."""


def damage_checkpoint(path: Path, how: str) -> str:
    """Damage a checkpoint file; returns words the error must hold."""
    if how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
        return "images/checkpoints/last.pt is truncated or not a checkpoint"
    if how == "empty":
        path.write_bytes(b"")
        return "images/checkpoints/last.pt is empty"
    torch.save({**torch.load(path, weights_only=True), "extra": Foreign()}, path)
    return "images/checkpoints/last.pt holds Python objects"


DAMAGES = ("truncated", "empty", "code")


def test_runs_page_survives_a_non_numeric_metrics_row(runs):
    metrics = run_dir(runs, "points") / "metrics.csv"  # the newest run: overlaid by default
    lines = metrics.read_text().splitlines()
    cells = lines[2].split(",")
    lines[2] = ",".join(["abc", *cells[1:]])  # iteration 2's row, by hand
    metrics.write_text("\n".join([*lines, ",".join("x" * len(cells))]) + "\n")  # and a row of letters
    at = page(RUNS)
    assert not at.error and at.multiselect(key="overlay").value == ["points"]
    assert list(at.dataframe[0].value["Run"]) == ["points", "conditional", "images"]
    assert at.dataframe[0].value["Iterations"][0] == "3 / 3"  # the last good row
    scores = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert list(plotted(scores["data"][0]["x"])) == [1, 3]  # the bad rows are left out of the curves
    at.selectbox(key="delete_run").set_value("points").run()
    at.checkbox(key="confirm_delete").check().run()
    at.button(key="delete").click().run()
    assert not at.exception and at.success[0].value == "Deleted points."
    assert list(at.dataframe[0].value["Run"]) == ["conditional", "images"]


def test_pages_leave_out_a_folder_whose_config_cannot_be_read(runs):
    shutil.copytree(run_dir(runs, "images"), run_dir(runs, "bad-json"))
    (run_dir(runs, "bad-json") / "config.json").write_text('{"config": {"arch": "dcgan28",')
    shutil.copytree(run_dir(runs, "images"), run_dir(runs, "out-of-range"))
    config = json.loads((run_dir(runs, "out-of-range") / "config.json").read_text())
    config["config"]["batch_size"] = -5
    (run_dir(runs, "out-of-range") / "config.json").write_text(json.dumps(config))
    at = page(RUNS)
    assert not at.error and list(at.dataframe[0].value["Run"]) == ["points", "conditional", "images"]
    assert at.selectbox(key="resume_run").options == ["points", "conditional", "images"]
    at = page(SAMPLES)
    assert not at.error and at.selectbox(key="samples_run").options == [
        "points · finished · 3/3", "conditional · finished · 2/2", "images · finished · 4/4",
    ]  # fmt: skip
    assert len(at.image) == 3  # the first run's grid, its saved grids' history, its interpolation


@pytest.mark.parametrize("how", DAMAGES)
def test_samples_page_names_a_run_with_a_damaged_checkpoint_and_keeps_working(runs, media, how):
    words = damage_checkpoint(run_dir(runs, "images") / "checkpoints" / "last.pt", how)
    at = page(SAMPLES)
    at.selectbox(key="samples_run").set_value("images").run()
    assert not at.exception and len(at.error) == 1 and not at.image
    assert (
        at.error[0].value.startswith("Cannot load the generator of images: ") and words in at.error[0].value
    )
    at.selectbox(key="samples_run").set_value("conditional").run()
    assert not at.exception and not at.error
    assert shown_image(at, media).size == (10 * 30 + 2, 10 * 30 + 2)


@pytest.mark.parametrize("how", DAMAGES)
def test_runs_resume_of_a_damaged_checkpoint_says_why(runs, how):
    folder = RunFolder(run_dir(runs, "images"))
    words = damage_checkpoint(folder.checkpoint, how)
    at = page(RUNS)
    at.selectbox(key="resume_run").set_value("images").run()
    at.button(key="resume").click().run()
    assert not at.exception and len(at.error) == 1
    assert at.error[0].value.startswith(f"Cannot resume images: {words}")
    assert not registry().runs and folder.owner() is None  # nothing started, the folder left free
    assert list(at.dataframe[0].value["Run"]) == ["points", "conditional", "images"]  # the page goes on


@pytest.mark.parametrize("how", DAMAGES)
def test_runs_resume_falls_back_to_the_previous_checkpoint(runs, how):
    folder = RunFolder(run_dir(runs, "images"))
    shutil.copyfile(folder.checkpoint, folder.previous_checkpoint)
    words = damage_checkpoint(folder.checkpoint, how)
    at = page(RUNS)
    at.selectbox(key="resume_run").set_value("images").run()
    at.number_input(key="resume_iterations_images").set_value(5).run()
    at.button(key="resume").click().run()
    assert not at.exception and not at.error
    assert at.success[0].value == "Resumed images up to 5 iterations."
    [warning] = at.warning
    assert warning.value.startswith(words)
    assert warning.value.endswith("; resuming from the previous checkpoint (iteration 4)")
    run = registry().runs[folder.path]
    assert run.wait(60) and run.status == "finished"
    assert folder.load_checkpoint()["iteration"] == 5


@pytest.mark.parametrize("path", [SAMPLES, RUNS])
def test_pages_survive_a_run_log_of_unforeseen_shape(runs, path):
    with open(run_dir(runs, "images") / "events.jsonl", "a") as log:  # a status that is a list, by hand
        log.write(json.dumps({"event": "status", "status": ["finished"], "iteration": 4}) + "\n")
    at = page(path)
    listed = any("cannot be listed" in e.value for e in at.error)  # the listing failed, said so; or else
    assert listed or (not at.error and (at.dataframe or at.image))  # the page shows what it can read


def test_the_pages_import_pandas_whole_before_any_figure():
    """Plotly takes pandas from sys.modules on its first figure: it must be whole by then, not half-imported by a
    replaced script thread (dashboard/__init__.py)."""
    code = "import sys, dashboard; assert hasattr(sys.modules['pandas'], 'Series')"
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
