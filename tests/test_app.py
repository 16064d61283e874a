"""The Train page under Streamlit's AppTest: start, watch, tune live, stop; bad input starts nothing."""

from pathlib import Path

import numpy as np
import pytest
from conftest import wait_for, write_idx
from PIL import Image
from streamlit.testing.v1 import AppTest

from dashboard.drawing import DRAW
from dashboard.form import FOLDER, UPLOAD, check
from dashboard.registry import registry
from gan_core.engine import idx
from gan_core.engine.presets import resolve
from gan_core.folder.run_folder import RunFolder

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120  # importing torch alone takes longer than AppTest's default 3 s


pytestmark = pytest.mark.usefixtures("fresh_registry")


def write_images(folder: Path, count: int, start: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + count):
        Image.new("L", (8, 8), i % 256).save(folder / f"{i:03d}.png")
    return folder


def labels_of(node) -> list[str]:
    """The labels of every widget in an element (a row of columns), in order."""
    children = getattr(node, "children", None)
    if children is None:
        return [getattr(node, "label", "")]
    return [label for child in children.values() for label in labels_of(child)]


def row_above_error(at: AppTest, text: str) -> list[str]:
    """The widget labels of the row the Set-up form shows just above the error box holding `text`."""
    setup = next(e for e in at.expander if e.label == "Set-up")
    rows = list(setup.children.values())
    above = [
        row for row, node in zip(rows, rows[1:], strict=False) if node.type == "error" and text in node.value
    ]
    assert len(above) == 1, f"no error box holding {text!r}"
    return labels_of(above[0])


def train_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    return at


def test_page_renders_with_offline_default_and_empty_monitor():
    at = train_page()
    assert at.selectbox(key="form-preset").value == "pytorch-mlp"
    assert at.selectbox(key="form-pytorch-mlp-dataset").value == "digits"
    assert any("No run yet" in info.value for info in at.info)
    assert not at.button(key="start").disabled


def test_the_data_sets_found_here_come_first_and_the_others_say_they_download(tmp_path, monkeypatch):
    monkeypatch.setattr(
        idx, "SYSTEM_FOLDERS", {"mnist": tmp_path / "none", "fashion-mnist": tmp_path / "system"}
    )
    monkeypatch.setenv("GAN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    write_idx(
        tmp_path / "system", np.zeros((1, 28, 28)), np.zeros(1), gz=True
    )  # as the Debian package has it
    (tmp_path / "data" / "cifar-10-batches-py").mkdir(parents=True)
    at = train_page()
    box = at.selectbox(key="form-pytorch-mlp-dataset")
    downloads = [f"{name} — downloads on first use" for name in ("mnist", "flowers")]
    others = [FOLDER, UPLOAD, DRAW]
    assert box.options == ["digits", "fashion-mnist", "cifar10", "ring", "grid", *downloads, *others]
    assert box.value == "digits"  # the default is unchanged
    box.set_value("fashion-mnist").run()
    assert not at.exception and not at.error and not at.button(key="start").disabled


def test_start_runs_in_the_background_and_the_monitor_shows_it(runs_dir):
    at = train_page()
    at.button(key="start").click().run()
    assert not at.exception, at.exception
    run = registry().active_run()
    assert run is not None and run.run_dir.parent == runs_dir
    assert wait_for(lambda: len(run.history) >= 5)
    at.run()
    assert any(h.value.startswith("Epoch: ") and "Iteration: " in h.value for h in at.subheader)
    assert len(at.get("plotly_chart")) >= 1 and len(at.get("image")) >= 1
    first = len(run.history)
    assert wait_for(lambda: len(run.history) > first)  # it advances by itself

    name = run.run_dir.name
    at.number_input(key=f"live-{name}-lr_d").set_value(1e-4).run()
    assert run.knobs.lr_d == 1e-4
    at.slider(key=f"live-{name}-flip_prob").set_value(0.3).run()
    assert run.knobs.flip_prob == 0.3
    assert wait_for(lambda: any(e["changes"].get("flip_prob") == 0.3 for e in run.snapshot().events))

    at.button(key="live-stop").click().run()
    assert run.wait(10) and run.status == "stopped"
    at.run()
    assert any("stopped" in s.value for s in at.success)


def test_pause_and_step(runs_dir):
    at = train_page()
    at.button(key="start").click().run()
    run = registry().active_run()
    assert wait_for(lambda: run.iteration >= 2)
    at.button(key="live-pause").click().run()
    assert wait_for(lambda: run.status == "paused")
    done = run.iteration
    at.run()
    at.button(key="live-step").click().run()
    assert wait_for(lambda: run.iteration == done + 1) and run.status == "paused"


def test_bad_input_shows_its_message_and_starts_nothing(runs_dir):
    at = train_page()
    at.number_input(key="form-pytorch-mlp-lr_g").set_value(-1.0).run()
    assert any("lr_g -1.0 is out of range: allowed [0, 1]" in e.value for e in at.error)
    assert at.button(key="start").disabled
    at.number_input(key="form-pytorch-mlp-lr_g").set_value(2e-4).run()
    at.number_input(key="form-pytorch-mlp-batch").set_value(0).run()
    assert any("batch_size 0 is out of range" in e.value for e in at.error)
    assert at.button(key="start").disabled
    assert registry().active_run() is None and not runs_dir.exists()


def test_weight_clipping_is_greyed_out_and_unused_unless_the_loss_is_wasserstein(runs_dir):
    at = train_page()
    at.selectbox(key="form-preset").set_value("keras-wgan").run()
    clip = at.number_input(key="form-keras-wgan-clip")
    assert clip.value == 0.01 and not clip.disabled
    at.selectbox(key="form-keras-wgan-loss").set_value("wgan-gp").run()
    assert at.number_input(key="form-keras-wgan-clip").disabled
    assert not at.error and not at.button(key="start").disabled  # the preset's clip no longer blocks Start
    at.selectbox(key="form-keras-wgan-loss").set_value("wasserstein").run()
    assert not at.number_input(key="form-keras-wgan-clip").disabled


def test_batch_larger_than_the_data_is_refused_at_start(runs_dir):
    at = train_page()
    at.number_input(key="form-pytorch-mlp-batch").set_value(5000).run()
    message = "batch_size 5000 is larger than data set 'digits': allowed [1, 1797]"
    assert [e.value for e in at.error] == [message]
    assert "Batch size" in row_above_error(at, message)  # beside the batch size, before Start is pressed
    assert at.button(key="start").disabled
    assert registry().active_run() is None and not runs_dir.exists()
    at.number_input(key="form-pytorch-mlp-batch").set_value(1796).run()  # the whole set (pack 2: even)
    assert not at.error and not at.button(key="start").disabled


def test_missing_folder_is_refused_beside_the_data_set(runs_dir, tmp_path):
    at = train_page()
    at.selectbox(key="form-pytorch-mlp-dataset").set_value(FOLDER).run()
    assert [e.value for e in at.error] == ["Type the path of a folder of images."]
    missing = tmp_path / "no-such-folder"
    at.text_input(key="form-pytorch-mlp-folder").input(str(missing)).run()
    message = f"image folder {missing} does not exist: give a folder of images or of class sub-folders"
    assert [e.value for e in at.error] == [message]
    assert "Data set" in row_above_error(at, message)
    assert at.button(key="start").disabled
    assert registry().active_run() is None and not runs_dir.exists()


def test_folder_is_counted_before_start_and_again_when_it_changes(runs_dir, tmp_path):
    folder = write_images(tmp_path / "faces", 2)
    at = train_page()
    at.selectbox(key="form-pytorch-mlp-dataset").set_value(FOLDER).run()
    at.text_input(key="form-pytorch-mlp-folder").input(str(folder)).run()
    message = f"batch_size 100 is larger than data set 'folder:{folder}': allowed [1, 2]"
    assert [e.value for e in at.error] == [message] and "Batch size" in row_above_error(at, message)
    assert at.button(key="start").disabled
    write_images(folder, 98, start=2)  # the folder changed: it is listed again, not taken from the cache
    at.run()
    assert not at.error and not at.button(key="start").disabled
    assert registry().active_run() is None and not runs_dir.exists()


def test_check_puts_each_data_refusal_beside_its_widget(tmp_path):
    def errors(preset: str, dataset: str, batch_size: int = 100) -> dict[str, str]:
        return check({"preset": preset, "dataset": dataset, "batch_size": batch_size}, {}).errors

    assert errors("pytorch-mlp", "digits", 5000) == {
        "knobs": "batch_size 5000 is larger than data set 'digits': allowed [1, 1797]"
    }
    archive = write_images(tmp_path / "archive", 3)  # "arch" in the path: still the batch size's error
    assert errors("pytorch-mlp", f"folder:{archive}") == {
        "knobs": f"batch_size 100 is larger than data set 'folder:{archive}': allowed [1, 3]"
    }
    assert errors("pytorch-mlp", f"folder:{archive}", 2) == {}
    assert list(errors("tf-cdcgan", f"folder:{archive}", 2)) == ["choices"]  # conditional, no labels
    (tmp_path / "empty").mkdir()
    assert errors("pytorch-mlp", f"folder:{tmp_path / 'empty'}") == {
        "choices": f"data set 'folder:{tmp_path / 'empty'}' holds no images: add .png/.jpg files or class "
        "sub-folders"
    }
    assert errors("pytorch-mlp", f"folder:{tmp_path / 'gone'}") == {
        "choices": f"image folder {tmp_path / 'gone'} does not exist: give a folder of images or of class "
        "sub-folders"
    }


@pytest.mark.parametrize(
    ("field", "bad", "refusal", "good"),
    [
        ("width", 0.01, "width 0.01 is out of range: allowed [0.0625, 4]", 0.5),  # half-width networks
        ("ema", 1.0, "ema 1.0 is out of range: allowed [0, 0.9999]", 0.9),  # the average of G's weights
    ],
)
def test_a_number_from_the_form_is_checked_then_reaches_the_run(runs_dir, field, bad, refusal, good):
    at = train_page()
    at.number_input(key=f"form-pytorch-mlp-{field}").set_value(bad).run()
    assert any(refusal in e.value for e in at.error)
    assert at.button(key="start").disabled
    at.number_input(key=f"form-pytorch-mlp-{field}").set_value(good).run()
    at.button(key="start").click().run()
    run = registry().active_run()
    assert run is not None and getattr(run.config, field) == good
    assert wait_for(lambda: run.iteration >= 2)  # and it trains


def test_checkpoints_kept_from_the_form_reach_the_run(runs_dir):
    at = train_page()
    at.number_input(key="form-pytorch-mlp-keep").set_value(0).run()
    assert any("keep_checkpoints 0 is out of range: allowed [1, 1000]" in e.value for e in at.error)
    assert at.button(key="start").disabled
    at.number_input(key="form-pytorch-mlp-keep").set_value(2).run()
    at.number_input(key="form-pytorch-mlp-ckpt").set_value(3).run()
    at.number_input(key="form-pytorch-mlp-its").set_value(12).run()
    at.button(key="start").click().run()
    run = registry().active_run()
    assert run is not None and run.wait(60) and run.status == "finished"
    assert [it for it, _ in RunFolder(run.run_dir).kept_checkpoints()] == [9, 12]  # every 3, the newest 2


def test_processes_reach_the_config_and_each_process_needs_its_own_batch(runs_dir):
    at = train_page()
    at.number_input(key="form-pytorch-mlp-nproc").set_value(0).run()
    assert any("nproc 0 is out of range: allowed [1, 1024]" in e.value for e in at.error)
    assert at.button(key="start").disabled
    result = check({"preset": "pytorch-mlp", "dataset": "digits", "batch_size": 1000, "nproc": 2}, {})
    assert result.errors == {
        "knobs": "batch_size 1000 x 2 processes is larger than data set 'digits': allowed [1, 898]"
    }
    result = check({"preset": "pytorch-mlp", "dataset": "digits", "batch_size": 100, "nproc": 2}, {})
    assert result.ok and result.config.nproc == 2


def test_after_start_the_setup_folds_away_and_presentation_view_keeps_only_the_monitor(runs_dir):
    at = train_page()
    assert at.expander[0].label == "Set-up" and at.title[0].value == "Train a GAN"
    at.button(key="start").click().run()
    assert not at.exception and registry().active_run() is not None
    assert not at.expander[0].proto.expanded and not at.title  # the monitor has the screen
    at.toggle(key="presentation").set_value(True).run()
    assert not at.exception and not at.expander and not at.get("selectbox")  # no set-up form
    assert at.title[0].value.startswith("Epoch: ")  # the title in large type
    [popover] = at.get("popover")
    assert popover.proto.popover.label.startswith("Controls")
    assert {b.key for b in popover.button} >= {"live-pause", "live-step", "live-stop"}  # one click away
    at.button(key="live-stop").click().run()
    assert registry().active_run().wait(10)


def test_the_scrub_slider_goes_back_through_saved_grids_and_follows_the_run_at_its_end(runs_dir):
    config, knobs = resolve("pytorch-mlp", dataset="digits", device="cpu", threads=1, iterations=40,
                            sample_every=10, eval_every=0)  # fmt: skip
    run = registry().start(config, knobs, name="scrub")
    assert run.wait(60)
    at = train_page()
    slider = at.select_slider(key="scrub-scrub")
    assert (
        list(slider.options) == ["1", "10", "20", "30", "40"] and slider.value == 40
    )  # at the end: following
    assert at.get("image")[0].proto.imgs[0].caption == "Generated Images (iteration 40)"
    slider.set_value(20).run()
    assert not at.exception
    assert at.get("image")[0].proto.imgs[0].caption == "Generated Images (iteration 20; the run is at 40)"
    shapes = at.get("plotly_chart")[0].proto.spec
    assert '"x0":20' in shapes.replace(" ", "")  # the curves mark the iteration shown
    at.select_slider(key="scrub-scrub").set_value(40).run()
    assert at.get("image")[0].proto.imgs[0].caption == "Generated Images (iteration 40)"


def test_the_demo_setting_is_one_toggle_away_and_reaches_the_run(runs_dir):
    at = train_page()
    at.selectbox(key="form-preset").set_value("ring").run()
    assert at.toggle(key="form-demo").disabled  # no demo setting: the toggle says so and does nothing
    at.selectbox(key="form-preset").set_value("pytorch-mlp").run()
    toggle = at.toggle(key="form-demo")
    assert not toggle.value and not toggle.disabled  # the default preset has a demo setting
    assert "pytorch-mlp-demo" not in at.selectbox(key="form-preset").options  # offered by the toggle alone
    toggle.set_value(True).run()
    demo = resolve("pytorch-mlp-demo")[0]
    assert at.number_input(key="form-pytorch-mlp-demo-lr_g").value == 5e-4  # the widgets show its settings
    assert at.number_input(key="form-pytorch-mlp-demo-width").value == demo.width
    at.number_input(key="form-pytorch-mlp-demo-its").set_value(5).run()
    at.button(key="start").click().run()
    run = registry().active_run()
    assert run is not None and run.wait(60) and run.status == "finished"
    assert run.config.preset == "pytorch-mlp-demo" and run.config.pack == demo.pack == 2


def test_choosing_a_data_set_the_preset_is_tuned_for_shows_its_values_there(runs_dir):
    at = train_page()
    assert at.number_input(key="form-pytorch-mlp-lr_g").value == 2e-4  # pytorch-mlp on digits
    at.selectbox(key="form-pytorch-mlp-dataset").set_value("fashion-mnist").run()
    assert at.number_input(key="form-pytorch-mlp-fashion-mnist-lr_g").value == 5e-4  # ... on Fashion-MNIST
    assert at.number_input(key="form-pytorch-mlp-fashion-mnist-ema").value == 0.9998
    at.selectbox(key="form-pytorch-mlp-dataset").set_value("digits").run()
    assert at.number_input(key="form-pytorch-mlp-lr_g").value == 2e-4


def test_the_scrub_slider_of_a_long_run_has_a_bounded_number_of_stops(tmp_path):
    from dashboard.monitor import SCRUB_STOPS, saved_grids

    folder = RunFolder(tmp_path / "run")
    for it in [1, *range(100, 45_001, 100)]:  # 451 grids
        folder.grid_path(it).parent.mkdir(parents=True, exist_ok=True)
        folder.grid_path(it).write_bytes(b"")
    stops = saved_grids(folder.path)
    assert len(stops) == SCRUB_STOPS and stops == sorted(stops)
    assert (stops[0], stops[-1]) == (1, 45_000)  # the first grid and the newest are always stops
    folder.grid_path(45_100).write_bytes(b"")
    assert saved_grids(folder.path)[-1] == 45_100  # a new grid is seen at once
