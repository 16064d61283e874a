"""The process-wide registry of runs (st.cache_resource): every tab and page sees the same runs."""

from __future__ import annotations

import gc
import os
import threading
from pathlib import Path

import streamlit as st

from gan_core import Knobs, Run, RunConfig, load_dataset, resume_run, start_run
from gan_core.storage import runs_root

# Intra-op threads for a run on the CPU: leave a core to the server and the browser watching it. Measured on
# 2 cores with a tab watching (bench/README.md, watch.py phase 4): 1 thread trains as fast as 2 and far more
# steadily, since the page's work preempts one of two busy OpenMP workers and stalls the other.
CPU_THREADS = max(1, (os.cpu_count() or 2) - 1)


class Registry:
    """Runs started from this server process, by run folder; `active` is the one the monitor shows."""

    def __init__(self):
        self._lock = threading.Lock()
        self.runs: dict[Path, Run] = {}
        self.active: Path | None = None

    def start(self, config: RunConfig, knobs: Knobs, name: str | None = None) -> Run:
        """Start a run (any previous active run keeps going unless stopped); raises ConfigError/DataError."""
        if config.threads is None:
            config = config.replace(threads=CPU_THREADS)
        run = start_run(config, knobs, runs_dir=runs_root(), name=name)
        return self._add(run)

    def resume(self, run_dir: Path, iterations: int | None = None) -> Run:
        """Continue a run; refused (ConfigError naming the live run) while any process trains into its folder."""
        return self._add(resume_run(run_dir, iterations=iterations, threads=CPU_THREADS))

    def _add(self, run: Run) -> Run:
        with self._lock:
            self.runs[run.run_dir] = run
            self.active = run.run_dir
        return run

    def active_run(self) -> Run | None:
        return self.runs.get(self.active) if self.active else None

    def running(self) -> list[Run]:
        return [run for run in self.runs.values() if run.alive]

    def stop_all(self) -> None:
        for run in list(self.runs.values()):
            run.stop()

    def forget(self, run_dir: Path) -> None:
        """Drop a finished run (e.g. before deleting its folder); a live one is stopped first."""
        with self._lock:
            run = self.runs.pop(Path(run_dir), None)
            if self.active == Path(run_dir):
                self.active = None
        if run is not None:
            run.stop()


def _warm_up() -> None:
    """Load the offline default data set before anyone presses Start (the first Start then starts at once)."""
    load_dataset("digits", 28)


def _release(registry: Registry) -> None:  # "Clear cache" or shutdown: no thread is left training unseen
    registry.stop_all()


@st.cache_resource(on_release=_release, show_spinner=False)
def registry() -> Registry:
    gc.freeze()  # the imports' objects leave the GC's young generations: collections stay short
    threading.Thread(target=_warm_up, daemon=True).start()
    return Registry()
