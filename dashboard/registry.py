"""The process-wide registry of runs (st.cache_resource): every tab and page sees the same runs — those this
server trains in its threads, those it launched in their own processes, and any other run folder it is shown."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
from pathlib import Path

import streamlit as st

from gan_core import Knobs, Run, RunConfig, load_dataset, resume_run, start_run
from gan_core.config import to_json
from gan_core.folder.run_folder import RunFolder, list_runs, new_run_name
from gan_core.folder.snapshot import RunHandle
from gan_core.folder.storage import atomic_write, runs_root
from gan_core.folder.watch import FolderRun
from gan_core.training import plan as plans
from gan_core.training.loop import DEFAULT_THREADS

LAUNCHES = (
    ".launch"  # under the runs folder: the settings and output of runs this server started as processes
)

# Intra-op threads for a run on the CPU: torch's default, as the command line has it. Measured on 2 cores with a
# tab watching (bench/README.md, watch.py phase 4, 2026-12-07): the app's run at 2 threads trained at 0.92x the
# CLI's, at 1 thread (cores - 1, the default before) at 0.79x; watching had become cheap enough to share the cores.
CPU_THREADS = DEFAULT_THREADS


class Registry:
    """Runs by run folder: trained in this server's threads (`runs`) or seen through their folders (`watched`:
    launched by this server in their own processes, or started anywhere else). `active` is the one the monitor
    shows."""

    def __init__(self):
        self._lock = threading.Lock()
        self.runs: dict[Path, Run] = {}
        self.watched: dict[Path, FolderRun] = {}
        self.active: Path | None = None

    def start(self, config: RunConfig, knobs: Knobs, name: str | None = None) -> RunHandle:
        """Start a run (any previous active run keeps going unless stopped); raises ConfigError/DataError.
        One process: in a thread of this server. More: under torchrun, in a process group of its own."""
        if config.nproc > 1:
            return self.launch(config, knobs, name)
        if config.threads is None:
            config = config.replace(threads=CPU_THREADS)
        run = start_run(config, knobs, runs_dir=runs_root(), name=name)
        return self._add(run)

    def launch(self, config: RunConfig, knobs: Knobs, name: str | None = None) -> FolderRun:
        """`python -m gan_core train --nproc N` with these settings, in a session of its own (a server that
        stops leaves it training); its output goes to RUNS/.launch/NAME.log."""
        root = runs_root()
        name = _free_name(root, name or new_run_name(config))
        settings = root / LAUNCHES / f"{name}.json"
        atomic_write(settings, to_json(config, knobs))
        return self._spawn(root, name, ["--config", str(settings), "--nproc", str(config.nproc)])

    def replay(self, run_dir: Path) -> RunHandle:
        """A new run repeating `run_dir`'s settings and knob changes (gan_core.training.plan.replay), trained as the
        original was: in this server, or on as many processes."""
        original = RunFolder.open(run_dir)
        config, _ = original.read_config()
        root = runs_root()
        name = _free_name(root, new_run_name(replay_of=original.name))
        if config.nproc > 1:
            return self._spawn(root, name, ["--replay", str(original.path), "--nproc", str(config.nproc)])
        return self._add(Run(plans.replay(original.path, runs_dir=root, name=name)).start())

    def branch(self, run_dir: Path, iteration: int, settings: dict, knobs: dict) -> RunHandle:
        """A new run continuing `run_dir` from its kept checkpoint of `iteration` with these settings and knobs
        changed (gan_core.training.plan.branch), trained as the parent was: in this server, or on as many processes."""
        parent = RunFolder.open(run_dir)
        config, _ = parent.read_config()
        root = runs_root()
        name = _free_name(root, new_run_name(branch_of=parent.name, at=iteration))
        if config.nproc > 1:
            flags = [f"--{key.replace('_', '-')}={value}" for key, value in {**settings, **knobs}.items()
                     if key not in ("d_iters", "d_warmup")]  # fmt: skip
            if "d_iters" in knobs:  # (given with d_warmup: the flag sets both)
                flags.append(f"--d-iters={'warmup:' if knobs.get('d_warmup') else ''}{knobs['d_iters']}")
            return self._spawn(root, name, ["--branch", f"{parent.path}@{iteration}", *flags,
                                            "--nproc", str(config.nproc)])  # fmt: skip
        settings = {"threads": CPU_THREADS, **settings}
        return self._add(Run(plans.branch(parent.path, iteration, settings, knobs, root, name)).start())

    def _spawn(self, root: Path, name: str, flags: list[str]) -> FolderRun:
        log = root / LAUNCHES / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "gan_core", "train", *flags, "--name", name, "--runs-dir", str(root)]
        with open(log, "wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)  # fmt: skip
        run = FolderRun(root / name, process, log)
        with self._lock:
            self.watched[run.run_dir] = run
            self.active = run.run_dir
        return run

    def view(self, run_dir: Path) -> RunHandle:
        """The run in that folder: this server's own thread, else a view of its folder (made once)."""
        run_dir = Path(run_dir)
        run = self.runs.get(run_dir)
        if run is not None:
            return run
        with self._lock:
            return self.watched.setdefault(run_dir, FolderRun(run_dir))

    def watch(self, run_dir: Path) -> None:
        """Show this run on the monitor, wherever it trains (or trained)."""
        self.active = Path(run_dir)

    def resume(self, run_dir: Path, iterations: int | None = None) -> Run:
        """Continue a run; refused (ConfigError naming the live run) while any process trains into its folder."""
        return self._add(resume_run(run_dir, iterations=iterations, threads=CPU_THREADS))

    def _add(self, run: Run) -> Run:
        with self._lock:
            self.runs[run.run_dir] = run
            self.watched.pop(run.run_dir, None)
            self.active = run.run_dir
        return run

    def active_run(self) -> RunHandle | None:
        if self.active is None:
            return None
        if self.active not in self.runs and not self.active.exists() and self.active not in self.watched:
            return None  # deleted meanwhile
        return self.view(self.active)

    def running(self) -> list[Run]:
        """Runs training in this server's threads."""
        return [run for run in self.runs.values() if run.alive]

    def stop_all(self) -> None:
        for run in list(self.runs.values()):
            run.stop()

    def forget(self, run_dir: Path) -> None:
        """Drop a finished run (e.g. before deleting its folder); a live one is stopped first."""
        with self._lock:
            run = self.runs.pop(Path(run_dir), None)
            self.watched.pop(Path(run_dir), None)
            if self.active == Path(run_dir):
                self.active = None
        if run is not None:
            run.stop()


def _free_name(root: Path, name: str) -> str:
    """`name`, or name-2, name-3 ... when a run folder or a launch already has it."""
    RunFolder.check_new(root, name)
    base, n = name, 1
    while (root / name).exists() or (root / LAUNCHES / f"{name}.json").exists():
        n += 1
        name = f"{base}-{n}"
    return name


def _warm_up() -> None:
    """Load the offline default data set before anyone presses Start (the first Start then starts at once)."""
    load_dataset("digits", 28)


def _release(registry: Registry) -> None:  # "Clear cache" or shutdown: no thread is left training unseen
    registry.stop_all()


@st.cache_resource(on_release=_release, show_spinner=False)
def registry() -> Registry:
    gc.freeze()  # the imports' objects leave the GC's young generations: collections stay short
    threading.Thread(target=_warm_up, daemon=True).start()
    registry = Registry()
    live = [info for info in list_runs() if info.status is not None and info.status.active]
    if live:  # a restarted server shows the newest run still training (in its own process, or elsewhere)
        registry.watch(live[0].path)
    return registry
