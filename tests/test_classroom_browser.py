"""The classroom in a real Chromium: a run's report opened from a file:// URL with the network blocked (curves drawn,
the time-lapse slider moving the picture), and the audience link beside the presenter's on a live run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gan_core.cli import main

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None
if CHROMIUM is None:
    pytest.skip("no Chromium at /usr/bin/chromium", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

from test_browser import CHROMIUM_ARGS, HEADING, VIEWPORT, free_port, healthy, stop, visible  # noqa: E402

pytestmark = pytest.mark.browser
ITERATIONS, SAMPLE_EVERY = 120, 10
KEY = re.compile(r"Presenter link \(keep it to yourself\): \S+\?key=(\S+)")
PLOT_POINTS = """el => Array.from(el.querySelectorAll('.scatterlayer .trace path.js-line'))
                     .map(p => (p.getAttribute('d').match(/[ML]/g) || []).length)"""


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def blocked_network(page) -> list[str]:
    """Abort every request that is not for a file:// URL; returns the list of those asked for."""
    asked: list[str] = []

    def route(route_):
        if route_.request.url.startswith(("file://", "data:")):
            route_.continue_()
        else:
            asked.append(route_.request.url)
            route_.abort()

    page.route("**/*", route)
    return asked


def test_a_report_opens_offline_with_its_curves_and_a_moving_time_lapse(browser, tmp_path):
    code = main(["train", "--preset", "ring", "--iterations", str(ITERATIONS), "--sample-every", str(SAMPLE_EVERY),
                 "--runs-dir", str(tmp_path), "--name", "lesson", "--threads", "1", "--device", "cpu"])  # fmt: skip
    assert code == 0
    report = tmp_path / "lesson.html"
    assert main(["report", str(tmp_path / "lesson"), "--out", str(report)]) == 0
    page = browser.new_context(viewport=VIEWPORT, offline=True).new_page()
    asked = blocked_network(page)
    page.goto(report.as_uri())
    plots = page.locator(".js-plotly-plot")
    visible(plots, "The report's first chart", 30)
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot .scatterlayer .trace').length >= 6")
    scores = plots.nth(0)
    assert "Scores" in scores.inner_text()
    # one point a recorded iteration (under 2,000: none merged), every one drawn into the line's SVG path
    assert scores.evaluate(PLOT_POINTS) == [ITERATIONS, ITERATIONS]
    assert plots.nth(1).evaluate(PLOT_POINTS) == [ITERATIONS, ITERATIONS]  # the losses
    assert plots.count() >= 3  # scores, losses, modes captured

    image, label, slider = (
        page.locator("#lapse-image"),
        page.locator("#lapse-label"),
        page.locator("#lapse-slider"),
    )
    assert label.inner_text() == f"iteration {ITERATIONS}"
    last = image.get_attribute("src")
    assert image.evaluate("img => img.complete && img.naturalWidth > 0")
    slider.focus()
    page.keyboard.press("Home")  # to the first saved grid, as a hand on the slider would
    assert label.inner_text() == "iteration 1"
    first = image.get_attribute("src")
    assert first != last and first.startswith("data:image/png;base64,")
    page.keyboard.press("ArrowRight")
    assert label.inner_text() == f"iteration {SAMPLE_EVERY}"
    assert image.evaluate("img => img.complete && img.naturalWidth > 0")
    assert asked == []  # nothing outside the file was even asked for


@pytest.fixture
def classroom(tmp_path):
    """(URL, log) of `streamlit run app.py --server.address 0.0.0.0` over a runs folder where a CLI run trains."""
    runs, port = tmp_path / "runs", free_port()
    env = {**os.environ, "GAN_RUNS_DIR": str(runs)}
    train = subprocess.Popen([sys.executable, "-m", "gan_core", "train", "--preset", "ring", "--iterations", "200000",
                              "--threads", "1", "--name", "lesson"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    log = tmp_path / "server.log"
    server = None
    try:
        assert wait_for_file(runs / "lesson" / "heartbeat.json", 60), "the CLI run did not start"
        with open(log, "wb") as out:
            server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                                       "--server.address", "0.0.0.0", "--server.headless", "true"], cwd=ROOT,
                                      env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while not healthy(url):
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
        yield url, log
    finally:
        for process in (server, train):
            if process is not None:
                stop(process)


def wait_for_file(path: Path, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not path.is_file() and time.monotonic() < deadline:
        time.sleep(0.2)
    return path.is_file()


def heading_iteration(page) -> int:
    return int(HEADING.search(page.get_by_text(HEADING).first.inner_text()).group(2))


def test_the_audience_watches_the_live_run_while_only_the_presenter_steers(browser, classroom):
    url, log = classroom
    audience = browser.new_context(viewport=VIEWPORT).new_page()
    audience.goto(url)
    visible(audience.get_by_text(HEADING), "The audience's monitor heading", 90)
    visible(audience.locator(".stPlotlyChart .js-plotly-plot"), "The audience's charts", 30)
    match = KEY.search(log.read_text())
    assert match, "the presenter link was not printed in the server's terminal"
    presenter = browser.new_context(viewport=VIEWPORT).new_page()  # another laptop: its own session
    presenter.goto(f"{url}/?key={match.group(1)}")
    visible(presenter.get_by_role("button", name="Pause", exact=True), "The presenter's Pause button", 60)
    visible(
        presenter.get_by_text("Presenting. Audience link (read only)"), "The presenter's sidebar note", 10
    )

    # the live grid (a CLI run's saved picture of the points over D's field) and the score curves
    visible(audience.locator('[data-testid="stImage"] img'), "The audience's grid", 10)
    visible(audience.locator(".stPlotlyChart .js-plotly-plot"), "The audience's score curves", 10)
    visible(audience.get_by_text("Audience view: read only", exact=False), "The audience's note", 10)
    for name in ("Pause", "Stop", "Start", "Step"):
        assert audience.get_by_role("button", name=name, exact=True).count() == 0, name
    assert audience.get_by_label("lr D", exact=True).count() == 0
    assert presenter.get_by_label("lr D", exact=True).count() == 1
    seen = heading_iteration(audience)
    audience.wait_for_function(
        f"[...document.querySelectorAll('h1, h2, h3')].some(h => /Iteration: (\\d+)/.test(h.textContent) "
        f"&& +h.textContent.match(/Iteration: (\\d+)/)[1] > {seen})",
        timeout=30_000,
    )  # the audience's monitor follows the run live
