"""The Train page's 2-D extras under AppTest: drawing a data set (a shape, edits, pasted points) and its refusals
before Start; the monitor's gradient and manifold layers and the KL/JS curve; D-only and G-only steps."""

import base64
import json
from pathlib import Path

import numpy as np
import pandas  # noqa: F401  # imported once here: Plotly imports it lazily, and two script threads at once fail
import pytest
import torch
from conftest import wait_for
from streamlit.testing.v1 import AppTest

from dashboard.charts import ARROWS, MESH
from dashboard.drawing import ADD, DRAW, ERASE, apply_selection, lattice, parse_points
from dashboard.registry import registry
from gan_core import DataError
from gan_core.engine.points import SHAPE_POINTS, shape_points
from gan_core.folder.run_folder import RunFolder

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120
K = "form-ring-"  # the ring preset's widget keys

pytestmark = pytest.mark.usefixtures("fresh_registry")


def ring_page(draw: bool = False) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.run()
    at.selectbox(key="form-preset").set_value("ring").run()
    if draw:
        at.selectbox(key=K + "dataset").set_value(DRAW).run()
    assert not at.exception, at.exception
    return at


def traces(chart) -> list[str]:
    """The trace names of a Plotly chart element."""
    return [t.get("name", "") for t in json.loads(chart.proto.spec)["data"]]


def array(values) -> np.ndarray:
    """A trace's coordinates, as Plotly writes them: a list, or a typed array in base64 ({dtype, bdata})."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"]))
    return np.array(values, dtype=float)


# ---- drawing


def test_a_shape_is_drawn_checked_and_trained(runs_dir):
    at = ring_page(draw=True)
    at.selectbox(key=K + "draw-shape").set_value("spiral").run()
    assert not at.error and not at.button(key="start").disabled
    assert any(c.value.startswith(f"{SHAPE_POINTS} points, within ±") for c in at.caption)
    canvas = next(c for c in at.get("plotly_chart") if traces(c) == ["drawn", "canvas"])
    drawn = json.loads(canvas.proto.spec)["data"][0]
    assert np.allclose(array(drawn["x"]), shape_points("spiral")[:, 0])
    at.number_input(key=K + "lr_d").set_value(1e-3).run()  # any change: the drawing stays as it was
    at.button(key="start").click().run()
    assert not at.exception, at.exception
    run = registry().active_run()
    assert np.array_equal(np.load(run.run_dir / "data.npy"), shape_points("spiral"))
    assert "points-" in run.run_dir.name and run.data.points
    run.stop()


@pytest.mark.parametrize(
    ("pasted", "message"),
    [
        ("0, 0\n1, 1\n2, 2", "the drawing has 3 points: allowed [20, 100000]"),
        ("nan, 1\n" + "0, 0\n" * 24, "the drawing has 1 points with NaN or infinite coordinates"),
        ("50, 1\n" + "0, 0\n" * 24, "the drawing has a coordinate of 50: allowed [-10, 10]"),
        ("0, 0\nabc\n", "line 2 'abc' is not two numbers: write 'x, y' a line"),
    ],
)
def test_a_bad_drawing_is_refused_beside_the_canvas_before_start(runs_dir, pasted, message):
    at = ring_page(draw=True)
    shapes = sorted((runs_dir / "drawings").glob("*.npy"))  # the shape it starts from
    at.text_area(key=K + "draw-paste").input(pasted).run()
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert at.button(key="start").disabled
    assert registry().active_run() is None and sorted((runs_dir / "drawings").glob("*.npy")) == shapes


@pytest.mark.parametrize("n", [5, 200_000])
def test_a_shape_of_too_few_or_too_many_points_is_refused(runs_dir, n):
    at = ring_page(draw=True)
    at.number_input(key=K + "draw-n").set_value(n).run()
    assert any(f"points {n} is out of range: allowed [20, 100000]" in e.value for e in at.error)
    assert at.button(key="start").disabled


def test_pasted_points_replace_the_drawing(runs_dir):
    at = ring_page(draw=True)
    shapes = set((runs_dir / "drawings").glob("*.npy"))
    text = "\n".join(f"{np.cos(a):.3f}, {np.sin(a):.3f}" for a in np.linspace(0, 6, 30))
    at.text_area(key=K + "draw-paste").input(text).run()
    assert not at.error and any(c.value.startswith("30 points") for c in at.caption)
    (saved,) = set((runs_dir / "drawings").glob("*.npy")) - shapes
    assert np.allclose(np.load(saved), parse_points(text))


def test_selections_add_and_erase_points():
    drawn = shape_points("line", n=30)
    grid = lattice()
    added = apply_selection(drawn, [{"curve_number": 1, "point_index": 5}, {"curve_number": 0, "point_index": 0}],
                            ADD)  # fmt: skip
    assert len(added) == 31 and np.array_equal(added[:30], drawn)
    assert np.abs(added[30] - grid[5]).max() < 0.2  # near the lattice point clicked
    erased = apply_selection(drawn, [{"curve_number": 0, "point_index": i} for i in (0, 3)], ERASE)
    assert len(erased) == 28 and np.array_equal(erased, np.delete(drawn, [0, 3], axis=0))


def test_pasted_text_is_parsed_or_refused():
    assert parse_points("1, 2\n3 4\n").tolist() == [[1, 2], [3, 4]]
    with pytest.raises(DataError, match="line 1 '1, 2, 3' is not two numbers"):
        parse_points("1, 2, 3")


# ---- the 2-D monitor


def started_ring(at: AppTest):
    at.number_input(key=K + "its").set_value(100_000).run()
    at.button(key="start").click().run()
    run = registry().active_run()
    assert wait_for(lambda: (run.snapshot().points or {}).get("manifold") is not None, timeout=60)
    return run


def test_the_monitor_draws_gradients_manifold_and_js(runs_dir):
    at = ring_page()
    run = started_ring(at)
    assert wait_for(lambda: len(run.snapshot().quality["iteration"]) >= 1, timeout=60)
    at.run()
    assert not at.exception, at.exception
    charts = at.get("plotly_chart")
    picture = next(c for c in charts if "generated" in traces(c))
    assert (
        traces(picture)[:3] == ["", "real", "generated"]
        and MESH in traces(picture)
        and ARROWS in traces(picture)
    )
    spec = json.loads(picture.proto.spec)["data"]
    arrows = next(t for t in spec if t.get("name") == ARROWS)
    assert len(array(arrows["x"])) == 3 * 512  # a segment and a gap for each generated point
    assert any("JS divergence (bits)" in traces(c) for c in charts)  # beside the scores
    shown = run.snapshot().points
    assert any(c.value.startswith("Real (green) and generated (purple) points") and "G's gradients and G's "
               "manifold" in c.value for c in at.caption)  # fmt: skip
    assert shown["views_iteration"] <= shown["iteration"]
    layers = at.button_group(key="toy-layers")
    layers.set_value([MESH]).run()
    picture = next(c for c in at.get("plotly_chart") if "generated" in traces(c))
    assert MESH in traces(picture) and ARROWS not in traces(picture)
    run.stop()


def test_d_only_and_g_only_buttons_train_one_player(runs_dir):
    at = ring_page()
    run = started_ring(at)
    at.run()
    at.button(key="live-pause").click().run()
    assert wait_for(lambda: run.status == "paused")
    trainer = run._loop.trainer  # the run is paused: its weights stand still unless asked
    before = {name: [p.detach().clone() for p in getattr(trainer, name).parameters()]
              for name in ("generator", "discriminator")}  # fmt: skip
    at.run()
    at.button(key="live-solo-d").click().run()

    def solo() -> list[dict]:
        return [e for e in RunFolder(run.run_dir).read_events() if e["event"] == "solo"]

    def same(name: str) -> bool:
        now = getattr(trainer, name).parameters()
        return all(torch.equal(a, b) for a, b in zip(before[name], now, strict=True))

    assert wait_for(lambda: len(solo()) == 1) and solo()[0]["player"] == "d" and solo()[0]["updates"] == 10
    assert same("generator") and not same("discriminator")
    at.button(key="live-solo-g").click().run()
    assert wait_for(lambda: len(solo()) == 2) and solo()[1]["player"] == "g"
    assert not same("generator") and run.status == "paused"
    run.stop()
