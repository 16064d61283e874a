"""The 2-D monitor in a real Chromium: draw a data set from a shape, train it with z of size 2, and see G's gradient
arrows and manifold over D's heat-map; Train D only pauses the run and trains D alone.

Set SAVE_SCREENSHOT=1 to also (re)write docs/toy.png, the README's picture of it."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from test_browser import MAIN, ROOT, app, choose, page, settled, visible, wait_until  # noqa: F401  (fixtures)

from dashboard.charts import ARROWS, MESH
from dashboard.drawing import DRAW

pytestmark = pytest.mark.browser

SHOW_S = 90
SCREENSHOT_ITERATION = 800  # the moons taken shape (z of size 2, the ring preset's other settings)
HEADING = re.compile(r"Epoch: \d+, Iteration: (\d+), Elapsed")
CHECK_LINE = re.compile(r"^(\d+) points, within")


def lasso(tab, x: float, y: float, size: float = 40) -> None:
    """Drag a lasso (the canvas's default tool) round a square at (x, y), as shares of the canvas's plot area."""
    area = tab.locator(".js-plotly-plot .nsewdrag").first
    area.scroll_into_view_if_needed()
    box = area.bounding_box()
    x0, y0 = box["x"] + box["width"] * x, box["y"] + box["height"] * y
    tab.mouse.move(x0, y0)
    tab.mouse.down()
    for dx, dy in ((size, 0), (size, size), (0, size), (0, 0)):
        tab.mouse.move(x0 + dx, y0 + dy, steps=5)
    tab.mouse.up()


def drawn_count(tab) -> int:
    """The number of points the drawing's check line ('N points, within ±...') reports; -1 while it is not shown."""
    line = tab.get_by_text(CHECK_LINE)
    match = CHECK_LINE.search(line.first.inner_text()) if line.count() else None
    return int(match.group(1)) if match else -1


def lasso_until(tab, counted, what: str, tries: int = 3) -> None:
    """Lasso the canvas's lower right corner until the check line's count satisfies `counted` (a lasso drawn
    while the page redraws the chart may go unseen)."""
    for _ in range(tries):
        settled(tab)
        lasso(tab, 0.8, 0.8)
        if wait_until(lambda: counted(drawn_count(tab)), 15):
            return
    pytest.fail(f"{what}: not seen after {tries} lassos (the check line counts {drawn_count(tab)})")


def set_number(tab, label: str, value: str) -> None:
    field = tab.get_by_label(label, exact=True)
    field.fill(value)
    field.press("Tab")


def shown_iteration(tab) -> int:
    match = HEADING.search(tab.get_by_text(HEADING).first.inner_text())
    return int(match.group(1)) if match else 0


def events(run_dir: Path, kind: str) -> list[dict]:
    path = run_dir / "events.jsonl"
    lines = path.read_text().splitlines() if path.is_file() else []
    return [e for e in map(json.loads, filter(None, lines)) if e.get("event") == kind]


def save_toy_screenshot(tab) -> None:
    """docs/toy.png: the monitor from its heading down to the buttons, the 2-D picture with both layers."""
    tab.get_by_text(HEADING).first.scroll_into_view_if_needed()
    tab.mouse.move(0, 0)  # no hover toolbars in the picture
    tab.wait_for_function(
        f"!document.querySelector('{MAIN} [data-stale=\"true\"]')", polling=50, timeout=10_000
    )
    main = tab.locator('[data-testid="stMainBlockContainer"]').bounding_box()
    top = tab.get_by_text(HEADING).first.bounding_box()
    bottom = tab.get_by_role("button", name=re.compile("Train G only")).bounding_box()
    y0 = max(0, top["y"] - 16)
    tab.screenshot(path=str(ROOT / "docs" / "toy.png"),
                    clip={"x": main["x"], "y": y0, "width": main["width"],
                          "height": bottom["y"] + bottom["height"] + 16 - y0})  # fmt: skip


def test_draw_train_and_watch_what_each_network_does(app, page):  # noqa: F811
    url, runs = app
    page.goto(url)
    visible(page.get_by_role("button", name="Start", exact=True), "The Train page's Start button", SHOW_S)
    choose(page, "Preset", "ring")
    choose(page, "Data set", DRAW)
    choose(page, "Start from", "two moons")
    visible(page.get_by_text(CHECK_LINE), "The drawing's check line", 60)
    drawn = drawn_count(page)  # the shape's 400 points (a stray click on the canvas would add one)
    assert drawn >= 400
    # an empty corner of the canvas: lattice points come in
    lasso_until(page, lambda n: n > drawn, "More points after a lasso")
    page.locator('[data-testid="stButtonGroup"]').get_by_text("erase", exact=True).click()
    # the same corner: the points drawn there go
    lasso_until(page, lambda n: n == drawn, "The drawing as it was after erasing")
    page.get_by_text("More settings").click()
    set_number(page, "Latent size z", "2")
    set_number(page, "Iterations", "100000")
    start = page.get_by_role("button", name="Start", exact=True)
    wait_until(lambda: start.is_enabled(), 10)
    start.click()

    visible(page.get_by_text(ARROWS), "The legend entry of G's gradient arrows", SHOW_S)
    visible(page.get_by_text(MESH), "The legend entry of G's manifold", 10)
    visible(page.get_by_text("JS divergence (bits)"), "The JS curve beside the scores", SHOW_S)
    (run_dir,) = [p for p in runs.iterdir() if (p / "data.npy").is_file()]
    assert json.loads((run_dir / "config.json").read_text())["config"]["z_dim"] == 2
    # the arrows are drawn: one path per trace; the mesh's and the arrows' traces hold lines
    assert page.locator(".js-plotly-plot .scatterlayer .trace path.js-line").count() >= 2

    if os.environ.get("SAVE_SCREENSHOT"):
        wait_until(lambda: shown_iteration(page) >= SCREENSHOT_ITERATION, 300)
        save_toy_screenshot(page)

    page.get_by_role("button", name=re.compile("Train D only")).click()
    assert wait_until(lambda: events(run_dir, "solo"), 20), "no solo event after Train D only"
    assert events(run_dir, "solo")[0]["player"] == "d"
    visible(page.get_by_text("Paused ("), "The paused note after Train D only", 20)
