"""A run's report in one HTML file: what it holds (settings, knob log, curves, time-lapse, hints, a branch's parent),
its limits (2,000 points a curve, 200 grids), the command line's `report`, and its Download button on both pages."""

import base64
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import cli
from streamlit.testing.v1 import AppTest

from gan_core.config import Knobs, RunConfig
from gan_core.folder.history import COLUMNS
from gan_core.folder.run_folder import RunFolder
from gan_core.report import MAX_FRAMES, MAX_POINTS, build_report, figures, hint_spans, spread

ROOT = Path(__file__).resolve().parents[1]
FRAMES = re.compile(r"const FRAMES = (\[.*?\]);", re.S)
PLOTLY_JS = "plotly.js v"  # the banner at the head of the inlined library


@pytest.fixture(scope="module")
def branched(tmp_path_factory) -> tuple[Path, Path]:
    """(parent, branch): a 60-iteration ring run and a branch of it at 30 with lr D changed, made by the CLI."""
    root = tmp_path_factory.mktemp("report")
    common = ("--runs-dir", root, "--threads", 1, "--device", "cpu")
    code, out, err = cli("train", "--preset", "ring", "--iterations", 60, "--sample-every", 10,
                         "--checkpoint-every", 30, "--eval-every", 20, "--name", "parent", *common)  # fmt: skip
    assert code == 0, err
    code, out, err = cli(
        "train", "--branch", f"{root / 'parent'}@30", "--lr-d", "5e-4", "--name", "child", *common
    )
    assert code == 0, err
    return root / "parent", root / "child"


def frames_of(page: str) -> list[list]:
    return json.loads(FRAMES.search(page).group(1))


def test_a_branch_report_holds_its_settings_knob_log_curves_grids_and_parent(branched):
    parent, child = branched
    page = build_report(child)
    assert page.count(PLOTLY_JS) == 1  # the library inlined once, for every chart
    assert page.count('class="plotly-graph-div"') >= 3  # scores, losses, modes (a 2-D toy's quality)
    assert "lr_d = 0.0005" in page  # the knob log: the branch's change, at the iteration it took effect
    assert "<td>branched_at</td><td>30</td>" in page
    # the parent's curve up to the branch point (its name JSON-escaped in the figure's data)
    assert "parent (parent) \\u00b7 Generator" in page
    frames = frames_of(page)
    grids = RunFolder(child).grids()
    assert [it for it, _ in frames] == [it for it, _ in grids]  # 7 grids: all of them, in order
    first = base64.b64decode(frames[0][1].removeprefix("data:image/png;base64,"))
    assert first == grids[0][1].read_bytes()  # the PNG as saved, at its native size
    final = re.search(r'id="final-grid"[^>]*src="([^"]+)"', page)
    assert final.group(1) == frames[-1][1]  # the final grid: the last one saved


def test_the_branch_curves_start_at_the_branch_point_and_the_parent_ends_there(branched):
    _, child = branched
    folder = RunFolder(child)
    names, table = folder.read_metrics()
    columns = {name: table[:, i] for i, name in enumerate(names)}
    scores = figures(folder, columns, [])[0]
    by_name = {trace.name: trace for trace in scores.data}
    assert min(by_name["Generator"].x) == 30 and max(by_name["Generator"].x) == 60
    assert min(by_name["parent (parent) · Generator"].x) == 1
    assert max(by_name["parent (parent) · Generator"].x) == 30


def synthetic_run(root: Path, rows: int) -> RunFolder:
    """A run folder whose metrics.csv has `rows` iterations: D dominating (score_d about 0.95, score_g 0.05) from
    iteration 2,001 to 3,000, balanced elsewhere."""
    folder = RunFolder.create(root, "long")
    folder.write_config(RunConfig(dataset="digits", iterations=rows), Knobs())
    table = np.full((rows, len(COLUMNS)), np.nan, np.float32)
    column = {name: i for i, name in enumerate(COLUMNS)}
    iteration = np.arange(1, rows + 1)
    dominated = (iteration > 2000) & (iteration <= 3000)
    wobble = 0.02 * np.sin(iteration / 7.0)  # scores that never move would read as frozen
    values = dict(iteration=iteration, score_g=np.where(dominated, 0.05, 0.5) + wobble,
                  score_d=np.where(dominated, 0.95, 0.5) - wobble,
                  loss_g=np.sin(iteration / 50.0), loss_d=1.0, lr_g=2e-4, lr_d=2e-4, flip_prob=0.0, d_iters=1)  # fmt: skip
    for name, value in values.items():
        table[:, column[name]] = value
    folder.write_metrics(COLUMNS, table, append=False)
    return folder


def test_a_long_run_keeps_2000_points_a_curve_and_says_when_d_dominated(tmp_path):
    folder = synthetic_run(tmp_path, 5000)
    names, table = folder.read_metrics()
    columns = {name: table[:, i] for i, name in enumerate(names)}
    scores, losses = figures(folder, columns, [])
    assert [len(trace.x) for trace in scores.data] == [MAX_POINTS, MAX_POINTS]
    assert max(scores.data[0].x) == 5000
    spans = hint_spans(folder, columns)
    assert [span.hint.kind for span in spans] == ["discriminator-wins"]
    span = spans[0]
    assert 2100 <= span.first <= 2300 and 3000 <= span.last <= 3100, (span.first, span.last)


def test_at_most_200_grids_spread_over_the_run_first_and_last_among_them():
    picked = spread(list(range(1, 2001)), MAX_FRAMES)
    assert len(picked) == MAX_FRAMES and picked[0] == 1 and picked[-1] == 2000
    assert spread([5, 6], MAX_FRAMES) == [5, 6]


# ---- the command line


def test_cli_report_writes_one_file_and_prints_its_path(branched, tmp_path):
    out = tmp_path / "run.html"
    code, printed, err = cli("report", branched[0], "--out", out)
    assert (code, err) == (0, "")
    assert printed.strip() == str(out)
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<h1>parent</h1>" in page
    assert [it for it, _ in frames_of(page)] == [1, 10, 20, 30, 40, 50, 60]


@pytest.mark.parametrize(
    "target, expected",
    [
        ("not-a-run", "not-a-run is not a run folder: it has no config.json"),
        ("out-is-folder", "is a folder: give a file name, such as"),
        ("out-under-a-file", "file is not a folder to write it in"),
    ],
)
def test_cli_report_refuses_a_bad_run_or_out_with_one_line(branched, tmp_path, target, expected):
    run, out = branched[0], tmp_path / "run.html"
    if target == "not-a-run":
        run = tmp_path / "not-a-run"
        run.mkdir()
    elif target == "out-is-folder":
        out = tmp_path
    else:
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "run.html"
    code, printed, err = cli("report", run, "--out", out)
    assert code == 2 and printed == ""
    assert err.startswith("error: ") and expected in err and err.count("\n") == 1, err
    written = [p for p in tmp_path.rglob("*") if p.suffix in (".html", ".tmp")]
    assert written == []  # nothing written, no temporary file left


# ---- the Download buttons


def test_the_runs_page_offers_the_report_of_the_chosen_run(branched, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    shutil.copytree(branched[0].parent, runs)
    monkeypatch.setenv("GAN_RUNS_DIR", str(runs))
    at = AppTest.from_file(str(ROOT / "pages" / "2_Runs.py"), default_timeout=60).run()
    assert not at.exception
    assert at.selectbox(key="report_run").options == ["child", "parent"]
    assert "Report (HTML)" in [button.proto.label for button in at.get("download_button")]


def test_the_samples_page_offers_the_report(branched, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    shutil.copytree(branched[0].parent, runs)
    monkeypatch.setenv("GAN_RUNS_DIR", str(runs))
    at = AppTest.from_file(str(ROOT / "pages" / "1_Samples.py"), default_timeout=60).run()
    assert not at.exception
    assert "Report (HTML)" in [button.proto.label for button in at.get("download_button")]
