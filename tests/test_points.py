"""Drawn 2-D data (`points:FILE.npy`): the shapes a drawing starts from, the checks, and a run on it that keeps its
points in the run folder, so resume, branch, replay and `sample` find them."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import cli

from gan_core.config import DataError
from gan_core.engine import points
from gan_core.engine.data import data_facts, dataset_kind, load_dataset
from gan_core.folder.run_folder import RunFolder


@pytest.mark.parametrize("name", list(points.SHAPES))
def test_shapes_are_valid_drawings(name):
    drawn = points.shape_points(name, n=300)
    assert drawn.shape == (300, 2) and drawn.dtype == np.float32
    assert np.array_equal(points.check_points(drawn), drawn)
    assert np.abs(drawn).max() < 4  # inside the monitor's square at the toys' scale
    assert np.array_equal(drawn, points.shape_points(name, n=300))  # the same every time


def test_shapes_differ_in_form():
    ring, line = points.shape_points("ring", noise=0), points.shape_points("line", noise=0)
    assert np.allclose(np.hypot(*ring.T), 2.0, atol=1e-5)  # on the circle of radius 2
    assert np.allclose(line[:, 1], line[:, 0] / 2, atol=1e-5)  # on y = x / 2
    grid = points.shape_points("grid", noise=0)
    assert len(np.unique(grid, axis=0)) == 9


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((5, 2)), "has 5 points: allowed [20, 100000]"),
        (np.zeros((30, 3)), "has shape (30, 3): points need shape (n, 2)"),
        (
            np.where(np.arange(60).reshape(30, 2) == 7, np.nan, 0.0),
            "has 1 points with NaN or infinite coordinates: allowed finite values",
        ),
        (np.full((30, 2), 12.5), "has a coordinate of 12.5: allowed [-10, 10]"),
        (np.array([["a", "b"]] * 30), "holds <U1 values: points need real numbers"),
    ],
)
def test_bad_drawings_are_refused(array, message):
    with pytest.raises(DataError, match=re.escape(f"the drawing {message}")):
        points.check_points(array)


def test_points_file_loads_tiled(tmp_path):
    drawn = points.shape_points("spiral", n=50)
    np.save(tmp_path / "s.npy", drawn)
    name = f"points:{tmp_path / 's.npy'}"
    assert dataset_kind(name) == "points"
    data = load_dataset(name)
    assert data.points and data.y is None and data.num_classes == 1
    assert len(data) == 20_000  # repeated whole, each point 400 times
    rows, counts = np.unique(data.x.numpy(), axis=0, return_counts=True)
    assert np.array_equal(rows, np.unique(drawn, axis=0)) and set(counts) == {400}
    assert len(np.unique(data.real_points().numpy(), axis=0)) >= 45  # the monitor's real points spread
    assert data_facts(name) == (name, 20_000, False)


def test_cli_refuses_bad_points(tmp_path):
    np.save(tmp_path / "few.npy", np.zeros((3, 2)))
    for path, message in ((tmp_path / "few.npy", "has 3 points: allowed [20, 100000]"),
                          (tmp_path / "none.npy", "does not exist"),
                          (tmp_path / "few.npy.txt", "does not exist")):  # fmt: skip
        code, out, err = cli("train", "--preset", "ring", "--dataset", f"points:{path}", "--runs-dir",
                             tmp_path / "runs", "--iterations", 5)  # fmt: skip
        assert code == 2 and out == "" and message in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    (tmp_path / "text.npy").write_text("1,2\n3,4\n")
    code, _, err = cli("train", "--preset", "ring", "--dataset", f"points:{tmp_path / 'text.npy'}")
    assert code == 2 and "is not a .npy array" in err
    assert not (tmp_path / "runs").exists()  # nothing written


def test_run_keeps_its_points(tmp_path):
    drawn = points.shape_points("two moons", n=120)
    np.save(tmp_path / "moons.npy", drawn)
    runs = tmp_path / "runs"
    common = ("--batch-size", 32, "--sample-every", 10, "--eval-every", 0, "--checkpoint-every", 10)
    code, out, err = cli("train", "--preset", "ring", "--dataset", f"points:{tmp_path / 'moons.npy'}",
                         "--iterations", 20, "--runs-dir", runs, *common)  # fmt: skip
    assert code == 0, err
    run = Path(out.strip().splitlines()[-1])
    assert "points-moons" in run.name
    assert np.array_equal(np.load(run / "data.npy"), drawn)
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["dataset"] == f"points:{(run / 'data.npy').resolve()}"
    (tmp_path / "moons.npy").unlink()  # the drawing is gone: the run still has its own copy
    code, _, err = cli("train", "--resume", run, "--iterations", 30)
    assert code == 0 and "finished: reached 30 iterations" in err, err
    code, out, err = cli("train", "--branch", f"{run}@20", "--iterations", 25)
    assert code == 0, err
    branch = Path(out.strip().splitlines()[-1])
    assert np.array_equal(np.load(branch / "data.npy"), drawn)
    assert json.loads((branch / "config.json").read_text())["config"]["dataset"] == (
        f"points:{(branch / 'data.npy').resolve()}"
    )
    code, out, err = cli("train", "--replay", run)
    assert code == 0, err
    code, _, err = cli("sample", run, "--n", 40, "--out", tmp_path / "s.npy")
    assert code == 0 and np.load(tmp_path / "s.npy").shape == (40, 2)
    spec = RunFolder.open(run).load_checkpoint("cpu")["spec"]  # the networks work in the drawing's own units
    assert spec["point_scale"] == pytest.approx(
        float(np.sqrt(((drawn - drawn.mean(0)) ** 2).mean())), rel=1e-4
    )
    assert np.allclose(spec["point_shift"], drawn.mean(0), atol=1e-5)
    code, out, err = cli("evaluate", run, "--json", "--device", "cpu")
    report = json.loads(out)
    assert code == 0 and err == "" and report["iteration"] == 30
    assert 0 < report["js"] <= 1 and report["kl"] > 0 and "modes" not in report  # no modes on a drawing
