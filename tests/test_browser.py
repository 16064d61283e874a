"""The app in a real Chromium: start a run, watch it train, tune it live, download a PNG from Samples.

Set SAVE_SCREENSHOT=1 to also (re)write the README's pictures: docs/monitor.png (the live monitor), docs/branch.png
(a branch beside its parent) and docs/fashion.png (tf-cdcgan's demo setting on Fashion-MNIST after a minute).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from dashboard import monitor

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else shutil.which("chromium")
if CHROMIUM is None:
    pytest.skip(
        "no Chromium: /usr/bin/chromium and `chromium` on PATH are both absent", allow_module_level=True
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
VIEWPORT = {"width": 1366, "height": 768}  # a laptop or projector at the front of a room
SERVER_START_S = 60
SHOW_S = 60  # first appearance of the chart and image: includes importing torch and loading the data
SCREENSHOT_WAIT_S = 90
LATER_GRID = re.compile(r"Generated Images \(iteration [1-9]\d+\)")
HEADING = re.compile(r"Epoch: (\d+), Iteration: (\d+), Elapsed: \d+:\d\d:\d\d")
NEW_LR_D = 1.5e-4
MAIN = '[data-testid="stMain"]'


# ---- the server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.read().decode().strip() == "ok"
    except OSError:
        return False


def stop(server: subprocess.Popen) -> None:
    """End the server and anything it started (its own process group)."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(server.pid, sig)
            server.wait(wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """(URL, runs folder) of `streamlit run app.py` on a free port, writing its runs to a temp folder."""
    tmp = tmp_path_factory.mktemp("browser")
    runs, log_path, port = tmp / "runs", tmp / "server.log", free_port()
    env = {**os.environ, "GAN_RUNS_DIR": str(runs)}
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
               "--server.address", "127.0.0.1", "--server.headless", "true"]  # fmt: skip
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while not healthy(url):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Streamlit server did not answer {url}/_stcore/health with 'ok' within "
                            f"{SERVER_START_S} s:\n{log_path.read_text()[-3000:]}")  # fmt: skip
            time.sleep(0.2)
        yield url, runs
    finally:
        stop(server)


@pytest.fixture
def page(app):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        yield context.new_page()
        browser.close()


# ---- helpers


def visible(locator, what: str, timeout_s: float) -> None:
    """Wait for a locator to be visible; on time-out, fail saying what was missing."""
    try:
        locator.first.wait_for(state="visible", timeout=timeout_s * 1000)
    except sync_api.TimeoutError:
        shown = locator.page.locator(MAIN).first.inner_text(timeout=5_000)[-1500:]
        pytest.fail(f"{what} did not appear within {timeout_s:g} s; the page showed:\n{shown}")


def iteration(page) -> int:
    """The iteration in the monitor's heading 'Epoch: e, Iteration: i, Elapsed: hh:mm:ss'."""
    text = page.get_by_text(HEADING).first.inner_text()
    match = HEADING.search(text)
    assert match, f"the monitor heading reads {text!r}"
    return int(match.group(2))


def knob_changes(run_dir: Path) -> list[dict]:
    path = run_dir / "events.jsonl"
    if not path.is_file():
        return []
    events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [e["changes"] for e in events if e.get("event") == "knobs"]


def wait_until(predicate, timeout_s: float, interval_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()


def in_view_box(locator) -> bool:
    """Drawn, and wholly inside the laptop's screen without scrolling."""
    box = locator.bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= VIEWPORT["height"]


def redraws_while_watching(page, seconds: float) -> tuple[int, list[float]]:
    """(times the monitor's heading changed, the seconds at which Plotly drew the score chart) over `seconds` of
    watching."""
    page.evaluate("""() => {
        window.chartDraws = [];
        const t0 = performance.now();
        new MutationObserver(() => {
            const chart = document.querySelector('.stPlotlyChart .js-plotly-plot');
            if (chart && !chart.counted) {
                chart.counted = true;
                chart.on('plotly_afterplot', () => window.chartDraws.push((performance.now() - t0) / 1000));
            }
        }).observe(document.body, {childList: true, subtree: true});
    }""")
    seen, deadline = set(), time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.add(page.get_by_text(HEADING).first.inner_text())
        time.sleep(0.2)
    return len(seen) - 1, page.evaluate("window.chartDraws")


def redraw_bursts(times: list[float], gap_s: float = 0.5) -> int:
    """Draws closer than `gap_s` are one redraw (Plotly draws once or twice a rerun)."""
    return sum(1 for i, t in enumerate(times) if i == 0 or t - times[i - 1] > gap_s)


def save_monitor_screenshot(page) -> None:
    """docs/monitor.png: the main column from the monitor's heading down to the live-tuning row."""
    page.get_by_label("lr D", exact=True).blur()
    page.mouse.move(0, 0)  # no hover toolbars in the picture
    # the whole monitor is in view on this screen (asserted after Start): no scrolling
    # between two refreshes, so no element is drawn faded as stale
    page.wait_for_function(
        f"!document.querySelector('{MAIN} [data-stale=\"true\"]')", polling=50, timeout=10_000
    )
    main = page.locator('[data-testid="stMainBlockContainer"]').bounding_box()
    top = page.get_by_text(HEADING).first.bounding_box()
    controls = page.locator('[data-testid="stNumberInput"]', has=page.get_by_label("lr D", exact=True))
    controls = controls.bounding_box()
    x0, y0 = main["x"], max(0, top["y"] - 16)
    y1 = controls["y"] + controls["height"] + 16
    path = ROOT / "docs" / "monitor.png"
    path.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(path), clip={"x": x0, "y": y0, "width": main["width"], "height": y1 - y0})


def save_compare_screenshot(page, branch: Path) -> None:
    """docs/branch.png: the Runs page's Compare and Side by side sections, a branch beside its parent."""
    assert wait_until(lambda: '"status": "finished"' in (branch / "events.jsonl").read_text(), 60)
    page.set_viewport_size({"width": VIEWPORT["width"], "height": 2400})  # all in view: no scrolling
    page.reload()  # the charts with the branch's whole curve
    visible(page.get_by_text("parent-at-40 at iteration 60"), "The branch's grid side by side", 30)
    page.mouse.move(0, 0)
    top = page.get_by_role("heading", name="Compare").bounding_box()
    last = page.get_by_text("parent-at-40 at iteration 60").bounding_box()
    main = page.locator('[data-testid="stMainBlockContainer"]').bounding_box()
    page.screenshot(path=str(ROOT / "docs" / "branch.png"),
                    clip={"x": main["x"], "y": top["y"] - 8, "width": main["width"],
                          "height": last["y"] + last["height"] + 16 - (top["y"] - 8)})  # fmt: skip
    page.set_viewport_size(VIEWPORT)


# ---- the test


def test_train_watch_tune_and_download_in_a_browser(app, page, tmp_path):
    url, runs = app
    page.goto(url)
    start = page.get_by_role("button", name="Start", exact=True)
    visible(start, "The Train page's Start button", SHOW_S)
    start.click()

    visible(page.locator(".stPlotlyChart .js-plotly-plot"), "The Plotly score chart", SHOW_S)
    visible(page.locator('[data-testid="stImage"] img'), "The 'Generated Images' grid", SHOW_S)
    visible(page.get_by_text("Generated Images (iteration", exact=False), "The image grid's caption", 5)
    visible(page.get_by_text(HEADING), "The heading 'Epoch: e, Iteration: i, Elapsed: hh:mm:ss'", 5)

    # after Start the whole monitor is in view without scrolling: title, grid, curves, buttons, knobs
    in_view = {
        "the heading": page.get_by_text(HEADING).first,
        "the grid": page.locator('[data-testid="stImage"] img').first,
        "the score chart": page.locator(".stPlotlyChart .js-plotly-plot").first,
        "Stop": page.get_by_role("button", name="Stop", exact=True),
        "lr D": page.get_by_label("lr D", exact=True),
    }
    for what, locator in in_view.items():
        # a refresh may be redrawing it (no box for a moment, or a slider drawn before the grid shrinks to
        # make room for it): measure it once it is drawn and the redraw is over
        assert wait_until(lambda locator=locator: in_view_box(locator), 5), (
            f"{what} is not in view on a {VIEWPORT['width']}x{VIEWPORT['height']} screen after Start: "
            f"{locator.bounding_box()}"
        )

    first = iteration(page)
    assert wait_until(lambda: iteration(page) > first, 10), (
        f"the monitor's iteration stayed at {first} for 10 s: the heading does not update"
    )

    # the heading and grid redraw every REFRESH_SECONDS, the score chart (the browser's costliest redraw) only
    # every STEERING_SECONDS: 6 redraws in 12 s when it reran with the heading, 2 or 3 now (and one more when the
    # page redraws as the run's status changes early on)
    watched = 12
    headings, draws = redraws_while_watching(page, seconds=watched)
    assert headings >= watched / monitor.REFRESH_SECONDS - 2 and 1 <= redraw_bursts(draws) <= (
        watched / monitor.STEERING_SECONDS + 2
    ), (
        f"in {watched} s the heading changed {headings} times and the score chart was drawn at {draws} s: expected the "
        f"heading about every {monitor.REFRESH_SECONDS:g} s and the chart every {monitor.STEERING_SECONDS:g} s"
    )

    run_dirs = [p for p in runs.iterdir() if (p / "config.json").is_file()]
    assert len(run_dirs) == 1, f"expected one run folder in {runs}, found {run_dirs}"
    lr_d = page.get_by_label("lr D", exact=True)
    visible(lr_d, "The live 'lr D' number input", 5)
    lr_d.fill(f"{NEW_LR_D:.6f}")
    lr_d.press("Enter")
    assert wait_until(lambda: any("lr_d" in c for c in knob_changes(run_dirs[0])), 10), (
        f"no knobs event with lr_d in {run_dirs[0] / 'events.jsonl'} within 10 s of setting lr D"
    )
    changed = [c["lr_d"] for c in knob_changes(run_dirs[0]) if "lr_d" in c]
    assert changed[-1] == pytest.approx(NEW_LR_D), f"lr_d changed to {changed[-1]}, not {NEW_LR_D}"

    if os.environ.get("SAVE_SCREENSHOT"):
        # a grid past the first (iteration 1, plain noise), and curves with some shape
        visible(page.get_by_text(LATER_GRID), "A generated-images grid after iteration 1", SCREENSHOT_WAIT_S)
        save_monitor_screenshot(page)

    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Samples").click()
    visible(page.get_by_role("heading", name="Samples"), "The Samples page's title", 30)
    latest = page.get_by_role("button", name="Use the latest weights")
    visible(latest, "The Samples page's 'Use the latest weights' button (for the run training here)", 30)
    latest.click()
    download = page.get_by_role("button", name="This picture (PNG)")
    visible(download, "The Samples page's 'This picture (PNG)' download button", 60)
    with page.expect_download(timeout=30_000) as info:
        download.click()
    saved = tmp_path / info.value.suggested_filename
    info.value.save_as(saved)

    assert saved.suffix == ".png" and saved.stat().st_size > 0
    with Image.open(io.BytesIO(saved.read_bytes())) as png:
        assert png.format == "PNG"
        assert png.width > 8 and png.height > 8


def test_branch_a_run_then_scrub_back_through_its_grids_in_a_browser(app, page):
    """A run trained from the command line; on the Runs page, a branch from its checkpoint of iteration 40 with
    another lr D; on the Train page, the branch's scrub slider back to its first grid (inherited from the parent)."""
    url, runs = app
    env = {**os.environ, "GAN_RUNS_DIR": str(runs)}
    subprocess.run([sys.executable, "-m", "gan_core", "train", "--arch", "mlp", "--dataset", "digits",
                    "--iterations", "60", "--checkpoint-every", "20", "--sample-every", "10", "--eval-every", "0",
                    "--device", "cpu", "--name", "parent"], cwd=ROOT, env=env, check=True, capture_output=True)  # fmt: skip
    page.goto(url)
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Runs").click()
    visible(page.get_by_role("heading", name="Branch"), "The Runs page's Branch section", 30)

    branch_from = page.locator('[data-testid="stSlider"]', has_text="From its checkpoint of iteration")
    visible(branch_from, "The 'From its checkpoint of iteration' slider (the newest run is 'parent')", 10)
    branch_from.get_by_role("slider").press("ArrowLeft")  # kept: 20, 40, 60; from 60 to 40
    visible(page.get_by_text("continues parent from iteration 40"), "The branch point moved to 40", 10)
    lr_d = page.get_by_label("lr D", exact=True)
    visible(lr_d, "The branch's 'lr D' input for iteration 40", 10)
    lr_d.fill("1.00e-03")
    lr_d.press("Enter")
    page.wait_for_function(
        f"!document.querySelector('{MAIN} [data-stale=\"true\"]')", polling=50, timeout=10_000
    )
    page.get_by_role("button", name="Branch", exact=True).click()
    visible(
        page.get_by_text("Branched parent at iteration 40 as parent-at-40"),
        "The branch's success message",
        30,
    )

    branch = runs / "parent-at-40"
    config = json.loads((branch / "config.json").read_text())["config"]
    assert (config["parent"], config["branched_at"]) == (str((runs / "parent").resolve()), 40)
    assert knob_changes(branch) == [{"lr_d": pytest.approx(1e-3)}]
    visible(
        page.get_by_text("parent-at-40 branches from parent"), "The branch point on the overlaid curves", 30
    )

    if os.environ.get("SAVE_SCREENSHOT"):
        save_compare_screenshot(page, branch)

    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Train").click()
    visible(page.get_by_text(HEADING), "The Train page's monitor of the branch", 30)
    assert wait_until(lambda: '"status": "finished"' in (branch / "events.jsonl").read_text(), 60), (
        "the branch did not finish within 60 s"
    )
    sliders = page.get_by_role("slider")  # the set-up's and live knobs' label-flip sliders, and the scrub's
    assert wait_until(lambda: "60" in [s.get_attribute("aria-valuetext") for s in sliders.all()], 30), (
        "no scrub slider at the run's last grid (60) under the monitor's grid"
    )
    [scrub] = [s for s in sliders.all() if s.get_attribute("aria-valuetext") == "60"]
    scrub.press("Home")  # the saved grids: 1, 10, ... 60
    visible(page.get_by_text("Generated Images (iteration 1; the run is at", exact=False),
            "The grid of iteration 1, scrubbed back to", 30)  # fmt: skip


# ---- the demo setting on the real Fashion-MNIST

FASHION = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
FASHION_ITERATIONS = 600  # the tf-cdcgan demo's grid shows clothes by then (about a minute on a 2-core CPU)
FASHION_CAP_S = 100  # CI's budget for the training, whatever the iteration reached by then


def settled(tab) -> None:
    """Wait until the app's script has finished its rerun (no 'Running' widget, nothing drawn stale)."""
    tab.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]') && "
                          "!document.querySelector('[data-stale=\"true\"]')", polling=100, timeout=60_000)  # fmt: skip


def choose(page, label: str, option: str | re.Pattern, tries: int = 3) -> None:
    """Pick an option of the select box with this label (Streamlit's: click it open, click the option), once the
    page has settled, and see the box show it: mid-rerun a redrawn box and its stale copy stand side by side, and
    a click on the stale one is lost. Again if a rerun intervened."""
    box = page.locator('[data-testid="stSelectbox"]').filter(has=page.get_by_text(label, exact=True)).first
    wanted = option if isinstance(option, re.Pattern) else re.compile(f"^{re.escape(option)}")
    for _ in range(tries):
        settled(page)
        try:
            box.click()
            page.get_by_role("option", name=wanted).first.click(timeout=10_000)
        except sync_api.TimeoutError:
            page.keyboard.press("Escape")
        if wait_until(lambda: wanted.search(box.locator("input").first.input_value()) is not None, 10):
            settled(page)
            return
    pytest.fail(f"{label!r}: {option!r} not chosen after {tries} tries")


def run_folders(runs: Path) -> set[Path]:
    return {p for p in runs.iterdir() if (p / "config.json").is_file()} if runs.is_dir() else set()


def stop_live_runs(runs: Path) -> None:
    """Stop the runs the tests before left training (through each folder's control channel), so that the run
    below has the CPU to itself, as a demo would; a folder with no live run refuses, and is left as it is."""
    env = {**os.environ, "GAN_RUNS_DIR": str(runs)}
    for run_dir in run_folders(runs):
        subprocess.run([sys.executable, "-m", "gan_core", "control", str(run_dir), "--stop", "--wait"], cwd=ROOT,
                       env=env, capture_output=True, timeout=60)  # fmt: skip


@pytest.mark.skipif(not (FASHION / "train-images-idx3-ubyte.gz").is_file(),
                    reason=f"no Fashion-MNIST in {FASHION}: apt-get install dataset-fashion-mnist")  # fmt: skip
def test_the_tf_cdcgan_demo_on_fashion_mnist_shows_clothes_in_a_browser(app, page):
    """From the Train page: tf-cdcgan, its demo setting, Fashion-MNIST (offline), Start; the monitor a minute or so
    later. With SAVE_SCREENSHOT=1 it writes docs/fashion.png, the screen as a laptop shows it."""
    url, runs = app
    stop_live_runs(runs)
    page.goto(url)
    visible(page.get_by_role("button", name="Start", exact=True), "The Train page's Start button", SHOW_S)
    choose(page, "Preset", re.compile(r"^tf-cdcgan — "))
    page.get_by_text("Demo setting", exact=True).click()
    choose(page, "Data set", re.compile(r"^fashion-mnist$"))
    before = run_folders(runs)
    started = time.monotonic()
    page.get_by_role("button", name="Start", exact=True).click()

    assert wait_until(lambda: run_folders(runs) - before, SHOW_S), f"no new run folder in {runs} after Start"
    [run_dir] = run_folders(runs) - before
    config = json.loads((run_dir / "config.json").read_text())["config"]
    assert (config["preset"], config["dataset"], config["width"]) == ("tf-cdcgan-demo", "fashion-mnist", 0.25)
    wait_until(lambda: iteration(page) >= FASHION_ITERATIONS, FASHION_CAP_S - (time.monotonic() - started), 1)
    reached, seconds = iteration(page), time.monotonic() - started
    assert reached >= 100, f"the run reached iteration {reached} in {seconds:.0f} s"

    parts = {
        "the heading": page.get_by_text(HEADING).first,
        "the grid": page.locator('[data-testid="stImage"] img').first,
        "the score chart": page.locator(".stPlotlyChart .js-plotly-plot").first,
    }
    for what, locator in parts.items():  # drawn, and in view on the laptop's screen (once a redraw is over)
        assert wait_until(lambda locator=locator: in_view_box(locator), 5), (
            f"{what} is out of view: {locator.bounding_box()}"
        )
    visible(page.get_by_text(LATER_GRID), "A generated-images grid after iteration 1", 10)
    grid = parts["the grid"].bounding_box()
    assert grid["width"] >= 200 and grid["height"] >= 200, f"the grid is drawn {grid}"
    assert page.locator(".stPlotlyChart .js-plotly-plot .scatterlayer .trace").count() >= 2  # G's and D's

    if os.environ.get("SAVE_SCREENSHOT"):
        page.mouse.move(0, 0)  # no hover toolbars in the picture
        page.wait_for_function(
            f"!document.querySelector('{MAIN} [data-stale=\"true\"]')", polling=50, timeout=10_000
        )
        page.screenshot(path=str(ROOT / "docs" / "fashion.png"))  # the viewport: 1366x768
        shot = f"iteration {iteration(page)}, {time.monotonic() - started:.0f} s after Start"
        print(f"docs/fashion.png: {shot}")  # for the README's line under it (pytest -s)
    page.get_by_role("button", name="Stop", exact=True).click()  # the CPU back for the tests after this one
