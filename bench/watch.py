"""The cost of watching: training it/s with 0, 1 and 2 browser tabs on the Train page, Start to first grid, memory.

One process drives `streamlit run app.py` (a free port, runs in a temp folder) with Debian's Chromium:

1. Throughput. One tab starts the default preset (pytorch-mlp on digits) with a target it never reaches;
   then the training rate is measured in windows with 0, 1 and 2 tabs on the Train page (the others on
   about:blank, so their sessions get no reruns), and again with 1 and 2 tabs of a second Chromium run
   under `nice -n 19`, which yields the cores to the server: if that costs as much, the cost is the
   server's own (the fragment reruns and the GIL they hold), not the browser's drawing. Conditions alternate in order
   round by round so drifting machine speed hits all; the ratio is the median of per-round ratios to the
   round's 0-tab window. Rates come from metrics.csv: iterations over the training thread's own clock.
2. Start to first grid: a new tab, Start with the default preset, until a grid of the new run is drawn
   (median of N, warm server); the first Start of phase 1 (cold server: imports, data load) is reported too.
3. Memory (a fresh server): its resident memory (VmRSS) over a long run of the ring preset with a tab
   open (default 100,000 iterations, capped in time; growth is also given per 100,000 iterations), then
   before and after ten cycles of Start, a grid on screen, Stop, stopped.
4. The app against the CLI: the default preset started from the Train page with one tab watching, once with
   the form's CPU threads at cores - 1 and once at every core, against `python -m gan_core train` with the
   same settings as its own process (nothing else training). Sides alternate in order round by round; each
   side starts fresh, trains `--warmup` seconds, then its rate is read by its own clock over a window; a ratio
   is the median of per-round ratios to that round's CLI.

The browser and the server share the machine, as on a laptop. A benchmark, not a test: it exits 0 on a miss.
STREAMLIT_* variables reach the server, e.g. STREAMLIT_RUNNER_POST_SCRIPT_GC=false to compare a setting.

    .venv/bin/python bench/watch.py [--quick] [--rounds R] [--window S] [--long-iterations N] ...
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan_core.folder.run_folder import RunFolder  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
VIEWPORT = {"width": 1400, "height": 1000}
HUGE = 10_000_000  # phase 1's iteration target: never reached, the bench stops the run
TICK = os.sysconf("SC_CLK_TCK")
TARGETS = {"watch": 0.10, "first_grid_s": 5.0, "growth_mb": 300.0, "cycles": 0.10, "app_vs_cli": 0.90}
STOPPED = "The run stopped"
CLICK_S = 15  # a Start that makes no run folder in this long was lost

# ---- the server and /proc


class Server:
    """`streamlit run app.py` on a free port in its own process group, runs written under `runs`."""

    def __init__(self, runs: Path, log: Path):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.url, self.runs = f"http://127.0.0.1:{port}", runs
        command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                   "--server.address", "127.0.0.1", "--server.headless", "true"]  # fmt: skip
        with open(log, "wb") as out:
            self.process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "GAN_RUNS_DIR": str(runs)},
                                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        self.pid = self.process.pid
        deadline = time.monotonic() + 90
        while not self._healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                return response.read().strip() == b"ok"
        except OSError:
            return False

    def close(self) -> None:
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.pid, sig)
                self.process.wait(wait)
                return
            except ProcessLookupError:
                return
            except subprocess.TimeoutExpired:
                continue

    def newest_run(self) -> Path | None:
        runs = sorted(self.runs.glob("*/config.json"), key=lambda p: p.stat().st_mtime)
        return runs[-1].parent if runs else None


def rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1)) / 1024


def cpu_s(stat_path: str) -> float:
    """utime + stime of a /proc stat file, in seconds (0 once the process or thread is gone)."""
    try:
        fields = Path(stat_path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def thread_cpu(pid: int) -> dict[int, float]:
    return {int(t.name): cpu_s(f"{t}/stat") for t in Path(f"/proc/{pid}/task").iterdir()}


def descendants(root: int, skip: int) -> list[int]:
    """Every process below `root` (the browsers and Playwright's driver), leaving out `skip`'s tree."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child != skip:
                found.append(child)
                todo.append(child)
    return found


def browsers_cpu(server: Server) -> float:
    return sum(cpu_s(f"/proc/{pid}/stat") for pid in descendants(os.getpid(), server.pid))


def last_row(run_dir: Path) -> tuple[int, float]:
    """(iteration, elapsed_s) of the run's last metrics row: the training thread's own clock."""
    row = RunFolder(run_dir).last_metrics()
    return (int(row["iteration"]), row["elapsed_s"]) if row else (0, 0.0)


def wait_until(predicate, timeout_s: float, what: str, interval_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise TimeoutError(f"{what}: not within {timeout_s:g} s")


# ---- the page

# The newest grid of a run on screen: a decoded image (or the 2-D panel) in a container that is not stale,
# whose caption differs from `old` (the last run's grid), with no "The run stopped" alert left over.
NEW_GRID_JS = """([old, selector, stopped]) => {
  const fresh = (e) => { const box = e.closest('[data-testid="stElementContainer"]');
                         return !(box && box.getAttribute('data-stale') === 'true'); };
  const main = document.querySelector('[data-testid="stMain"]');
  if (!main) return null;
  for (const alert of main.querySelectorAll('[data-testid="stAlert"]'))
    if (fresh(alert) && alert.innerText.includes(stopped)) return null;
  for (const el of main.querySelectorAll(selector)) {
    if (!fresh(el) || el.getBoundingClientRect().width === 0) continue;
    if (el.tagName === 'IMG' && !(el.complete && el.naturalWidth > 0)) continue;
    const block = el.closest('[data-testid="stVerticalBlock"]');
    const caption = [...(block ? block.querySelectorAll('[data-testid="stCaptionContainer"]') : [])]
      .map((c) => c.innerText).join(' | ');
    if (caption.includes('iteration') && caption !== old) return caption;
  }
  return null;
}"""
GRID = '[data-testid="stImage"] img'
POINTS = '.st-key-points [data-testid="stPlotlyChart"]'


def grid_caption(page: Page, selector: str) -> str | None:
    return page.evaluate(NEW_GRID_JS, [None, selector, "\u0000"])


def button(page: Page, key: str):
    """A keyed button; during a rerun the old element may linger beside its replacement, marked stale."""
    return page.locator(f'.st-key-{key}:not([data-stale="true"]) button').first


def open_train(page: Page, url: str) -> None:
    page.goto(url)  # the page's title shows only while no run trains; its Set-up section always does
    page.locator('[data-testid="stExpander"] summary', has_text="Set-up").wait_for(timeout=90_000)


def show_setup(page: Page) -> None:
    """The Set-up expander starts closed on a tab opened while a run trains."""
    start = button(page, "start")
    start.wait_for(state="attached", timeout=60_000)  # in the page, open or not: then look whether it shows
    if not start.is_visible():
        page.locator('[data-testid="stExpander"] summary', has_text="Set-up").click()
    start.wait_for(state="visible", timeout=30_000)


def choose_preset(page: Page, preset: str) -> None:
    box = page.get_by_role("combobox", name="Preset")
    box.click()
    page.get_by_role("option", name=re.compile(rf"^{re.escape(preset)} — ")).click()
    page.locator(f".st-key-form-{preset}-its").wait_for(state="attached", timeout=30_000)


def set_number(page: Page, key: str, value: int) -> None:
    """Type into a number input (opening More settings if needed) and commit it with Enter."""
    box = page.locator(f".st-key-{key} input")
    if not box.is_visible():
        page.locator('[data-testid="stExpander"] summary', has_text="More settings").click()
    box.fill(str(value))
    box.press("Enter")
    time.sleep(1.0)  # the rerun that takes the value in; Start's rerun would queue behind it anyway


def start_and_time(page: Page, server: Server, selector: str, timeout_s: float = 120) -> tuple[float, str]:
    """Click Start; (seconds until a grid of the new run is on screen, its caption).

    A click that starts no run within CLICK_S (seen now and then on a tab that has just loaded, while
    its fragments rerun) is reported and repeated; the time runs from the click that took.
    """
    show_setup(page)
    old = grid_caption(page, selector)
    count = len(list(server.runs.glob("*/config.json")))
    for attempt in range(1, 4):
        t0 = time.perf_counter()
        button(page, "start").click()
        try:
            wait_until(lambda: len(list(server.runs.glob("*/config.json"))) > count, CLICK_S, "a new run")
            break
        except TimeoutError:
            print(
                f"  (click {attempt} on Start started no run within {CLICK_S:g} s: clicking again)",
                flush=True,
            )
    try:
        page.wait_for_function(
            NEW_GRID_JS, arg=[old, selector, STOPPED], polling="raf", timeout=timeout_s * 1000
        )
    except PlaywrightTimeout:
        text = page.locator('[data-testid="stMain"]').inner_text()[-1500:]
        raise RuntimeError(
            f"no new grid {timeout_s:g} s after Start (last: {old!r}); the page:\n{text}"
        ) from None
    return time.perf_counter() - t0, grid_caption(page, selector)


def stop_run(page: Page, timeout_s: float = 90) -> None:
    button(page, "live-stop").click()
    main = page.locator('[data-testid="stMain"]')
    main.locator('[data-testid="stAlert"]', has_text=STOPPED).first.wait_for(timeout=timeout_s * 1000)


def check_config(run_dir: Path, **expected) -> None:
    config, _ = RunFolder(run_dir).read_config()
    for name, value in expected.items():
        if getattr(config, name) != value:
            raise RuntimeError(f"{run_dir.name}: config.json says {name}={getattr(config, name)}, not {value}: "
                               "the form missed it")  # fmt: skip


# ---- 1. throughput against watchers


@dataclass
class Window:
    rate: float  # it/s by the training thread's clock
    server_cpu: float  # cores' worth of CPU: the whole server process
    other_cpu: float  # the server less its busiest thread (training): Streamlit, Tornado, the reruns
    browser_cpu: float  # both Chromiums and Playwright's driver


@dataclass
class Watchers:
    """Pages per browser; a condition is how many of each show the Train page, the rest about:blank."""

    url: str
    normal: list[Page]
    niced: list[Page]
    showing: set = field(default_factory=set)

    def show(self, normal: int, niced: int) -> None:
        wanted = {id(p) for p in self.normal[:normal] + self.niced[:niced]}
        for page in self.normal + self.niced:
            if id(page) in wanted and id(page) not in self.showing:
                open_train(page, self.url)
                page.locator(GRID).first.wait_for(timeout=60_000)
            elif id(page) not in wanted and id(page) in self.showing:
                page.goto("about:blank")
        self.showing = wanted


def measure(server: Server, run_dir: Path, seconds: float) -> Window:
    """One window: the training rate and who used the CPU meanwhile."""
    before = (
        cpu_s(f"/proc/{server.pid}/stat"),
        thread_cpu(server.pid),
        browsers_cpu(server),
        last_row(run_dir),
    )
    t0 = time.monotonic()
    time.sleep(seconds)
    after = (
        cpu_s(f"/proc/{server.pid}/stat"),
        thread_cpu(server.pid),
        browsers_cpu(server),
        last_row(run_dir),
    )
    wall = time.monotonic() - t0
    # The process's own count keeps the time of threads that ended: Streamlit runs each rerun in a new one.
    total = after[0] - before[0]
    training = max(cpu - before[1].get(tid, 0.0) for tid, cpu in after[1].items())  # the busiest thread
    (it0, el0), (it1, el1) = before[3], after[3]
    return Window(
        rate=(it1 - it0) / max(el1 - el0, 1e-9), server_cpu=total / wall, other_cpu=(total - training) / wall,
        browser_cpu=(after[2] - before[2]) / wall,
    )  # fmt: skip


CONDITIONS = {
    "0 tabs": (0, 0),
    "1 tab": (1, 0),
    "2 tabs": (2, 0),
    "1 tab, niced": (0, 1),
    "2 tabs, niced": (0, 2),
}


def throughput(server: Server, watchers: Watchers, starter: Page, args) -> tuple[dict, float]:
    """Start the default preset from `starter`; windows per condition; (per-condition windows, cold first grid)."""
    open_train(starter, server.url)
    set_number(starter, "form-pytorch-mlp-its", HUGE)
    cold, caption = start_and_time(starter, server, GRID)
    print(f"  cold start (first Start of this server): first grid after {cold:.2f} s ({caption})", flush=True)
    run_dir = server.newest_run()
    check_config(run_dir, iterations=HUGE)
    starter.goto("about:blank")
    names = [n for n in CONDITIONS if args.niced or "niced" not in n]
    windows: dict[str, list[Window]] = {n: [] for n in names}
    for i in range(args.rounds):
        for name in names if i % 2 == 0 else names[::-1]:
            watchers.show(*CONDITIONS[name])
            time.sleep(args.settle)
            w = windows[name]
            w.append(measure(server, run_dir, args.window))
            print(f"  round {i + 1} {name:<14} {w[-1].rate:7.1f} it/s | server {w[-1].server_cpu:4.0%} "
                  f"(outside training {w[-1].other_cpu:4.0%}), browser {w[-1].browser_cpu:4.0%} of a core",
                  flush=True)  # fmt: skip
    watchers.show(1, 0)
    stop_run(watchers.normal[0])
    watchers.show(0, 0)
    return windows, cold


def summarise(windows: dict[str, list[Window]]) -> dict[str, dict[str, float]]:
    base = windows["0 tabs"]
    return {
        name: {
            "rate": statistics.median(w.rate for w in ws),
            "ratio": statistics.median(w.rate / b.rate for w, b in zip(ws, base, strict=True)),
            "server": statistics.median(w.server_cpu for w in ws),
            "other": statistics.median(w.other_cpu for w in ws),
            "browser": statistics.median(w.browser_cpu for w in ws),
        }
        for name, ws in windows.items()
    }


# ---- 2. Start to first grid


def first_grids(server: Server, context, tries: int) -> list[float]:
    times = []
    for i in range(tries):
        page = context.new_page()
        open_train(page, server.url)
        seconds, caption = start_and_time(page, server, GRID)
        times.append(seconds)
        print(f"  try {i + 1}: first grid after {seconds:.2f} s ({caption})", flush=True)
        stop_run(page)
        page.close()
    return times


# ---- 3. memory


@dataclass
class Memory:
    iterations: int = 0
    seconds: float = 0.0
    samples: list[tuple[int, float]] = field(default_factory=list)  # (iteration, RSS MB)
    before_cycles: float = 0.0
    after_cycles: float = 0.0
    cycles: int = 0
    idle_start: float = 0.0

    @property
    def per_100k(self) -> float:
        """Least-squares slope of RSS over iterations, MB per 100,000 iterations."""
        xs, ys = zip(*self.samples, strict=True)
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        var = sum((x - mx) ** 2 for x in xs)
        return 1e5 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def settled_rss(pid: int, seconds: float = 3.0) -> float:
    samples = []
    for _ in range(3):
        time.sleep(seconds / 3)
        samples.append(rss_mb(pid))
    return statistics.median(samples)


def memory(server: Server, page: Page, args) -> Memory:
    mem = Memory(idle_start=settled_rss(server.pid))
    open_train(page, server.url)
    choose_preset(page, "ring")
    set_number(page, "form-ring-its", args.long_iterations)
    if args.long_batch:
        set_number(page, "form-ring-batch", args.long_batch)
    start_and_time(page, server, POINTS)
    run_dir = server.newest_run()
    check_config(run_dir, iterations=args.long_iterations)
    t0 = time.monotonic()
    while time.monotonic() - t0 < args.long_seconds:
        iteration = last_row(run_dir)[0]
        mem.samples.append((iteration, rss_mb(server.pid)))
        if iteration >= args.long_iterations:
            break
        time.sleep(1.0)
    mem.iterations, mem.seconds = last_row(run_dir)[0], time.monotonic() - t0
    if mem.iterations < args.long_iterations:
        stop_run(page)
    else:
        page.locator('[data-testid="stAlert"]', has_text="The run finished").first.wait_for(timeout=60_000)
    mem.samples.append((last_row(run_dir)[0], rss_mb(server.pid)))
    print(f"  long run: {mem.iterations:,} iterations in {mem.seconds:.0f} s; RSS {mem.samples[0][1]:.0f} MB "
          f"at the first grid, peak {max(r for _, r in mem.samples):.0f}, end {mem.samples[-1][1]:.0f}", flush=True)  # fmt: skip
    mem.before_cycles = settled_rss(server.pid)
    for i in range(args.cycles):
        start_and_time(page, server, POINTS)
        stop_run(page)
        print(f"  cycle {i + 1}: RSS {rss_mb(server.pid):.0f} MB", flush=True)
    mem.cycles = args.cycles
    mem.after_cycles = settled_rss(server.pid, 5.0)
    return mem


# ---- 4. the app against the CLI


def rate_window(run_dir: Path, warmup: float, seconds: float) -> float:
    """it/s by the run's own clock (metrics.csv), over `seconds` once it has trained `warmup` seconds."""
    wait_until(
        lambda: last_row(run_dir)[1] >= warmup and last_row(run_dir)[0] >= 3, 120, f"{run_dir.name} warm-up"
    )
    it0, t0 = last_row(run_dir)
    time.sleep(seconds)
    it1, t1 = last_row(run_dir)
    return (it1 - it0) / max(t1 - t0, 1e-9)


def app_side(server: Server, context, threads: int, args) -> float:
    """The default preset from the Train page, the form's CPU threads set; the tab keeps watching."""
    page = context.new_page()
    try:
        open_train(page, server.url)
        set_number(page, "form-pytorch-mlp-its", HUGE)
        set_number(page, "form-pytorch-mlp-threads", threads)
        start_and_time(page, server, GRID)
        run_dir = server.newest_run()
        check_config(run_dir, iterations=HUGE, threads=threads)
        return rate_window(run_dir, args.warmup, args.window)
    finally:
        stop_run(page)
        page.close()


def cli_side(runs: Path, threads: int, args) -> float:
    """`python -m gan_core train` with the same settings as the app's default preset, as its own process."""
    name = f"cli-{time.monotonic_ns()}"
    command = [sys.executable, "-m", "gan_core", "train", "--preset", "pytorch-mlp", "--dataset", "digits",
               "--iterations", str(HUGE), "--runs-dir", str(runs), "--name", name, "--threads", str(threads)]  # fmt: skip
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    try:
        return rate_window(runs / name, args.warmup, args.window)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)


def same_settings(app_run: Path, cli_run: Path) -> None:
    """The comparison holds only if both trained the same thing: config.json alike but for threads."""
    (a, knobs_a), (b, knobs_b) = (RunFolder(run).read_config() for run in (app_run, cli_run))
    if (a.replace(threads=None), knobs_a) != (b.replace(threads=None), knobs_b):
        raise RuntimeError(f"the app's and the CLI's settings differ:\n{a}\n{b}")


def app_vs_cli(server: Server, context, args) -> dict[str, list[float]]:
    """Rates of the app's run and the CLI's at each thread count (cores - 1 and all), rounds alternating."""
    cores = os.cpu_count() or 1
    sides = {}
    for threads in sorted({max(1, cores - 1), cores}):
        sides[f"cli, {threads}"] = lambda t=threads: cli_side(server.runs / "cli", t, args)
        sides[f"app, {threads}"] = lambda t=threads: app_side(server, context, t, args)
    rates: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for i in range(args.rounds):
        for name in names if i % 2 == 0 else names[::-1]:
            rates[name].append(sides[name]())
        if i == 0:
            apps = sorted(server.runs.glob("2*"), key=lambda p: p.stat().st_mtime)
            same_settings(apps[-1], max((server.runs / "cli").glob("cli-*"), key=lambda p: p.stat().st_mtime))
        print("  round " + str(i + 1) + ": " + ", ".join(f"{n} threads {rates[n][-1]:.1f} it/s" for n in names),
              flush=True)  # fmt: skip
    return rates


def app_rows(rates: dict[str, list[float]]) -> list[tuple[str, str, bool]]:
    """The app's run against the CLI's at the same thread count, and against the CLI's default (every core)."""
    cores, rows = os.cpu_count() or 1, []
    for name, values in rates.items():
        if not name.startswith("app"):
            continue
        threads = int(name.split(", ")[1])
        for cli_threads in sorted({threads, cores}):
            cli = rates[f"cli, {cli_threads}"]
            ratios = [a / c for a, c in zip(values, cli, strict=True)]
            rows.append((f"app ({threads} threads, 1 tab) >= 0.9x CLI ({cli_threads} threads)",
                         f"{statistics.median(ratios):.3f} ({statistics.median(values):.1f} vs "
                         f"{statistics.median(cli):.1f} it/s; per round {', '.join(f'{r:.2f}' for r in ratios)})",
                         statistics.median(ratios) >= TARGETS["app_vs_cli"]))  # fmt: skip
    return rows


# ---- main


def nice_chromium(folder: Path) -> str:
    """A wrapper that starts Chromium (and so every process it forks) at the lowest CPU priority."""
    path = folder / "chromium-nice"
    path.write_text(f'#!/bin/sh\nexec nice -n 19 {CHROMIUM} "$@"\n')
    path.chmod(0o755)
    return str(path)


def print_windows(summary: dict) -> None:
    print(f"\n{'watchers':<15} {'it/s':>7} {'vs 0 tabs':>10} {'server CPU':>11} {'training':>9} "
          f"{'outside training':>17} {'browser CPU':>12}")  # fmt: skip
    for name, s in summary.items():
        print(f"{name:<15} {s['rate']:>7.1f} {s['ratio']:>10.3f} {s['server']:>11.0%} {s['server'] - s['other']:>9.0%} "
              f"{s['other']:>17.0%} {s['browser']:>12.0%}")  # fmt: skip
    print("(CPU in cores' worth, 100% = one core, medians over rounds. Training CPU that falls while the rest stays\n"
          " small means the training thread waits: for the GIL, or for a core that others hold.)")  # fmt: skip


def speed_rows(summary: dict, cold: float, grids: list[float]) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for watching and the first grid."""
    rows = []
    base = summary["0 tabs"]["rate"]
    for name in ("1 tab", "2 tabs", "1 tab, niced", "2 tabs, niced"):
        if name in summary:
            cost = 1 - summary[name]["ratio"]
            rows.append((f"watching costs < 10% of it/s ({name})",
                         f"{cost:+.1%} ({summary[name]['rate']:.1f} vs {base:.1f} it/s)", cost < TARGETS["watch"]))  # fmt: skip
    median = statistics.median(grids)
    rows.append((f"first grid < 5 s (median of {len(grids)}, warm)",
                 f"{median:.2f} s ({', '.join(f'{t:.2f}' for t in grids)}; cold {cold:.2f} s)",
                 median < TARGETS["first_grid_s"]))  # fmt: skip
    return rows


def memory_rows(mem: Memory, args) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for memory; a long run cut short is judged on its slope per 100k iterations."""
    rss = [r for _, r in mem.samples]
    growth = rss[-1] - rss[0]
    judged = mem.per_100k if mem.iterations < args.long_iterations else growth
    change = mem.after_cycles / mem.before_cycles - 1
    return [
        (f"RSS growth < 300 MB over {args.long_iterations:,} its",
         f"{growth:+.0f} MB over {mem.iterations:,} its ({rss[0]:.0f} -> peak {max(rss):.0f} -> {rss[-1]:.0f} MB);"
         f" slope {mem.per_100k:+.0f} MB/100k its", judged < TARGETS["growth_mb"]),
        (f"RSS after {mem.cycles} start/stop cycles within 10%",
         f"{change:+.1%} ({mem.before_cycles:.0f} -> {mem.after_cycles:.0f} MB)", abs(change) < TARGETS["cycles"]),
    ]  # fmt: skip


def report(
    summary: dict | None, cold: float, grids: list[float], mem: Memory | None, app: dict | None, args
) -> None:
    if summary is not None:
        print_windows(summary)
    rows = speed_rows(summary, cold, grids) if summary is not None else []
    rows += (memory_rows(mem, args) if mem else []) + (app_rows(app) if app else [])
    width = max(len(r[0]) for r in rows)
    print(f"\n{'target':<{width}}  {'measured':<72} result")
    for target, measured, ok in rows:
        print(f"{target:<{width}}  {measured:<72} {'PASS' if ok else 'MISS'}")
    if mem and mem.iterations < args.long_iterations:
        print(f"(the long run reached {mem.iterations:,} of {args.long_iterations:,} iterations within "
              f"{args.long_seconds:g} s: its target is judged on the slope per 100,000 iterations)")  # fmt: skip
    if mem:
        print(f"(server RSS idle before any run: {mem.idle_start:.0f} MB)")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter windows; a short long run")
    parser.add_argument(
        "--rounds", type=int, help="alternating rounds of all conditions (default 3, quick 1)"
    )
    parser.add_argument("--window", type=float, help="measured seconds a condition (default 10, quick 6)")
    parser.add_argument(
        "--settle", type=float, default=3.0, help="seconds after tabs change, before measuring"
    )
    parser.add_argument(
        "--no-niced",
        dest="niced",
        action="store_false",
        help="skip the niced-browser conditions (quick skips them)",
    )
    parser.add_argument("--tries", type=int, default=3, help="Start-to-first-grid tries (median)")
    parser.add_argument(
        "--long-iterations", type=int, help="the ring run's target (default 100000, quick 5000)"
    )
    parser.add_argument("--long-seconds", type=float, help="cap on the long run (default 240, quick 45)")
    parser.add_argument("--long-batch", type=int, default=32,
                        help="the ring run's batch size (the preset's is larger): speed grows with it, memory does not")  # fmt: skip
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip phase 3 (memory)")
    parser.add_argument("--cycles", type=int, help="start/stop cycles (default 10, quick 5)")
    parser.add_argument("--no-app-vs-cli", dest="app_vs_cli", action="store_false", help="skip phase 4")
    parser.add_argument("--only-app-vs-cli", action="store_true", help="phase 4 alone")
    parser.add_argument("--warmup", type=float, default=3.0, help="phase 4: seconds trained before a window")
    args = parser.parse_args(argv)
    defaults = dict(rounds=(3, 1), window=(10.0, 6.0), long_iterations=(100_000, 5_000),
                    long_seconds=(240.0, 45.0), cycles=(10, 5))  # fmt: skip
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    args.niced = args.niced and not args.quick
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    began = time.monotonic()
    options = {k: v for k, v in os.environ.items() if k.startswith("STREAMLIT_")}  # passed on to the server
    if options:
        print("server options from the environment:", ", ".join(f"{k}={v}" for k, v in options.items()))
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {args.rounds} rounds x {args.window:g} s windows "
          f"({args.settle:g} s settle), niced browser {'on' if args.niced else 'off'}", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmp, sync_playwright() as p:
        tmp = Path(tmp)
        normal = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        niced = (
            p.chromium.launch(executable_path=nice_chromium(tmp), args=CHROMIUM_ARGS) if args.niced else None
        )
        context = normal.new_context(viewport=VIEWPORT)
        windows = cold = grids = mem = app = None
        if not args.only_app_vs_cli:
            server = Server(tmp / "runs-1", tmp / "server-1.log")
            try:
                print("1. throughput against watchers (pytorch-mlp on digits)", flush=True)
                niced_pages = (
                    [niced.new_context(viewport=VIEWPORT).new_page() for _ in range(2)] if niced else []
                )
                watchers = Watchers(server.url, [context.new_page() for _ in range(2)], niced_pages)
                windows, cold = throughput(server, watchers, context.new_page(), args)
                print(f"  ({time.monotonic() - began:.0f} s so far)", flush=True)
                print("2. Start to first grid (pytorch-mlp on digits, warm server)", flush=True)
                grids = first_grids(server, context, args.tries)
                print(f"  ({time.monotonic() - began:.0f} s so far)", flush=True)
            finally:
                server.close()
            if args.memory:
                print("3. memory (ring preset, a fresh server)", flush=True)
                server = Server(tmp / "runs-2", tmp / "server-2.log")
                try:
                    mem = memory(server, context.new_page(), args)
                finally:
                    server.close()
        if args.app_vs_cli:
            print(
                "4. the app against the CLI (pytorch-mlp on digits, one tab watching the app's run)",
                flush=True,
            )
            server = Server(tmp / "runs-3", tmp / "server-3.log")
            try:
                app = app_vs_cli(server, context, args)
            finally:
                server.close()
    report(summarise(windows) if windows else None, cold, grids, mem, app, args)
    print(
        f"\n(bench took {time.monotonic() - began:.0f} s; load average at the end "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}: other work on the machine slows every figure)"
    )


if __name__ == "__main__":
    main()
