"""Everything a lent GPU should run, in one command of at most 8 minutes; bench/gpu.sh installs the carried wheels and
runs this. `--dry-run` runs every step on the CPU with tiny sizes, in under 2 minutes, so that it cannot rot.

    bash bench/gpu.sh [--dry-run] [--steps env,tests,quality,app,engine]

Steps, each under its own time cap (in this order; quality trains beside tests and app, which time nothing):
  env      nvidia-smi, torch and CUDA versions, the optional packages (streamlit, plotly, tensorboard) and where from
  tests    tests/test_cuda.py (marked `cuda`): every architecture and speed option without a host sync per
           iteration, a run, sampling, export, quality metrics, a CUDA checkpoint resumed on the CPU and back
  quality  matlab-dcgan, keras-wgan, cntk-dcgan on digits and Fashion-MNIST (.data/, carried), all at once for
           QUALITY_SECONDS, then `evaluate` each, judged by bench/quality.py's bars
  app      the Train page under AppTest with device auto: it picks the GPU, the monitor's grid and curves move
  engine   bench/engine.py alone on the GPU: mlp, dcgan28, cdcgan, dcgan64 at their presets' batches, the engine
           against the bare loop, each speed option on and off, GPU busy share, TFLOP/s and MFU

Writes into $OUT (a temporary folder when unset) at most 8 files: summary.md, env.txt, tests.txt, quality.txt,
app.txt, engine.txt, engine.json; prints the summary table last. Exits 1 when a step failed or ran out of time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]  # gan_core, and bench/quality.py's bars
STEPS = ("env", "tests", "quality", "app", "engine")
QUALITY_PRESETS = ("matlab-dcgan", "keras-wgan", "cntk-dcgan")
OPTIONS = "precision=bf16,channels-last,compile=default,compile=reduce-overhead,no-fused"
PREPARE = """
import json, sys, torch
from gan_core.engine.data import load_dataset
from gan_core.quality.metrics import load_or_train_classifier
device, data, needs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
for name, size in needs:
    load_or_train_classifier(load_dataset(name, size, data), torch.device(device), data)
    print("classifier ready:", name, size, flush=True)
"""


@dataclass(frozen=True)
class Sizes:
    """How big each step is: a GPU's 8 minutes, or the CPU's dry run."""

    device: str
    test_filter: str  # pytest -k of the tests step
    quality_runs: tuple[tuple[str, str], ...]  # (preset, data set)
    quality_seconds: float
    train_flags: tuple[str, ...]  # added to every quality run
    evaluate_n: int
    engine: tuple[str, ...]  # bench/engine.py's arguments
    caps: dict[str, float] = field(default_factory=dict)  # seconds each step may take


GPU = Sizes(
    device="cuda", test_filter="not app",
    quality_runs=tuple((p, d) for d in ("digits", "fashion-mnist") for p in QUALITY_PRESETS),
    quality_seconds=150, train_flags=(), evaluate_n=2000,
    engine=("--archs", "dcgan28,dcgan64,mlp,cdcgan", "--options", OPTIONS, "--processes", "1", "--pairs", "3",
            "--seconds", "1", "--settle", "0.25", "--warmup", "1"),
    caps={"env": 30, "tests": 130, "quality": 45, "app": 40, "engine": 230},  # with the 150 s: 8 minutes at most
)  # fmt: skip
# The dry run: two architectures of the tests' six (tests/test_run.py trains them all on the CPU), the two 28-px
# presets at 1/16 width (a 64-px classifier or Fashion-MNIST's would take minutes to train on a CPU), compile left
# to tests/test_speed_options.py (40 s a model on a cold CPU cache).
DRY = Sizes(
    device="cpu", test_filter="not app and not compile and not graphs and not all and not acgan and not cdcgan "
    "and not dcgan64 and not cntk",
    quality_runs=(("cntk-dcgan", "digits"), ("keras-wgan", "digits")), quality_seconds=15,
    train_flags=("--width", "0.0625", "--batch-size", "16", "--eval-every", "0", "--threads", "1"), evaluate_n=100,
    engine=("--archs", "mlp", "--options", "precision=bf16,channels-last,no-fused", "--processes", "1", "--pairs",
            "2", "--seconds", "0.5", "--settle", "0.2", "--warmup", "0.5", "--eval-every", "0"),
    caps={"env": 30, "tests": 150, "quality": 60, "app": 60, "engine": 120},
)  # fmt: skip


class Step(NamedTuple):
    name: str
    status: str  # ok, failed (exit N), timed out, skipped (why)
    seconds: float
    result: str


# ---- running a command under a cap


def run(command: list[str], log: Path, cap: float, env: dict) -> tuple[str, float]:
    """Run with stdout and stderr into `log`; at the cap Ctrl-C (a run or the bench saves and ends), then kill."""
    began = time.monotonic()
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)  # fmt: skip
        try:
            code = process.wait(cap)
        except subprocess.TimeoutExpired:
            stop(process)
            return "timed out", time.monotonic() - began
    return ("ok" if code == 0 else f"failed (exit {code})"), time.monotonic() - began


def stop(process: subprocess.Popen, grace: float = 30) -> int:
    """Ctrl-C, as a person would: a run stops after its iteration with a checkpoint (exit 130); then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
        os.killpg(process.pid, signal.SIGINT)
    try:
        return process.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait()


def last_line(log: Path, pattern: str) -> str:
    lines = [line.strip() for line in log.read_text().splitlines() if re.search(pattern, line)]
    return lines[-1].strip("= ") if lines else ""


# ---- the steps


ENV_SCRIPT = """
import importlib, platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "CUDA", torch.version.cuda,
      "cuDNN", torch.backends.cudnn.version() if torch.cuda.is_available() else None)
print("device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU",
      torch.cuda.get_device_capability(0) if torch.cuda.is_available() else "")
for name in ("streamlit", "plotly", "tensorboard", "torchvision", "torchmetrics", "sklearn"):
    try:
        module = importlib.import_module(name)
        print(f"{name} {getattr(module, '__version__', '?')} from {module.__file__}")
    except ImportError as exc:
        print(f"{name} missing: {exc}")
"""


def env_step(sizes: Sizes, out: Path, env: dict) -> Step:
    log = out / "env.txt"
    if shutil.which("nvidia-smi"):
        run(["nvidia-smi"], log, sizes.caps["env"], env)
    status, seconds = run([sys.executable, "-c", ENV_SCRIPT], log, sizes.caps["env"], env)
    versions, device = last_line(log, r"^python "), last_line(log, r"^device ")
    return Step("env", status, seconds, f"{versions}; {device.removeprefix('device ')}")


def pytest_step(name: str, selection: str, sizes: Sizes, out: Path, env: dict) -> Step:
    """tests/test_cuda.py on the step's device, in this process's order (no workers: the runs share one GPU)."""
    log = out / f"{name}.txt"
    command = [sys.executable, "-m", "pytest", "-o", "addopts=", "-ra", "-q", "-p", "no:cacheprovider",
               "tests/test_cuda.py", "-k", selection]  # fmt: skip
    status, seconds = run(command, log, sizes.caps[name], env | {"GAN_TEST_DEVICE": sizes.device})
    return Step(name, status, seconds, last_line(log, r"\d+ (passed|failed|error)"))


class Training(NamedTuple):
    preset: str
    dataset: str
    process: subprocess.Popen | None  # None: skipped, for the reason in `why`
    why: str = ""


class QualityRuns:
    """Every quality run at once, each its own process as a user starts it, stopped at their deadline with a
    Ctrl-C (each saves its checkpoint), whatever else runs meanwhile."""

    def __init__(self, sizes: Sizes, work: Path, data: Path, env: dict):
        self.sizes, self.work, self.env = sizes, work, env
        self.began, self.ended = time.monotonic(), {}  # (preset, data set) -> (seconds, exit code)
        self.runs = [self._start(preset, dataset, data) for preset, dataset in sizes.quality_runs]
        self._classifiers = self._prepare(data)
        self._timer = threading.Timer(sizes.quality_seconds, self._stop)
        self._timer.start()

    def _start(self, preset: str, dataset: str, data: Path) -> Training:
        from gan_core.engine.data import offline_source

        if offline_source(dataset, data) is None:
            return Training(
                preset, dataset, None, f"no {dataset} files in {data}: run bench/gpu.sh --prepare here"
            )
        command = [sys.executable, "-m", "gan_core", "train", "--preset", preset, "--dataset", dataset,
                   "--data-dir", str(data), "--runs-dir", str(self.work / "runs"), "--name", f"{preset}-{dataset}",
                   "--device", self.sizes.device, *self.sizes.train_flags]  # fmt: skip
        with (self.work / f"{preset}-{dataset}.log").open("w") as log:
            process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log, env=self.env,
                                       start_new_session=True)  # fmt: skip
        return Training(preset, dataset, process)

    def _prepare(self, data: Path) -> subprocess.Popen:
        """Each data set's classifier trained (once, then cached) while the runs train, for `evaluate` to find."""
        from gan_core.engine.models import ARCHS
        from gan_core.engine.presets import PRESETS

        needs = sorted({(dataset, ARCHS[PRESETS[preset]["settings"]["arch"]].image_size)
                        for (preset, dataset), r in zip(self.sizes.quality_runs, self.runs, strict=True)
                        if r.process is not None})  # fmt: skip
        command = [sys.executable, "-c", PREPARE, self.sizes.device, str(data), json.dumps(needs)]
        with (self.work / "classifiers.log").open("w") as log:
            return subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log, env=self.env)

    def _stop(self) -> None:
        """At the deadline, stop every run; one that has not yet trained (a loaded CPU still importing torch or
        loading the data) gets up to the step's cap to begin: a run stopped before it has nothing to judge."""
        deadline = time.monotonic() + self.sizes.caps["quality"]
        for r in self.runs:
            if r.process is not None:
                metrics = self.work / "runs" / f"{r.preset}-{r.dataset}" / "metrics.csv"
                while not metrics.is_file() and r.process.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.2)
                code = r.process.poll()
                code = stop(r.process) if code is None else code
                self.ended[r.preset, r.dataset] = (time.monotonic() - self.began, code)

    def finish(self, out: Path) -> Step:
        """After the deadline: evaluate every run at once, judge each by bench/quality.py's bars."""
        self._timer.join()
        try:
            self._classifiers.wait(self.sizes.caps["quality"])
        except subprocess.TimeoutExpired:  # evaluate trains what is missing, in its own time
            self._classifiers.kill()
        evaluations = {(r.preset, r.dataset): evaluate(r, self.sizes, self.work, self.env)
                       for r in self.runs if r.process is not None}  # fmt: skip
        rows = [self._row(r, evaluations.get((r.preset, r.dataset))) for r in self.runs]
        (out / "quality.txt").write_text("\n".join(rows) + "\n")
        judged = sum(row.endswith(("PASS", "MISS")) for row in rows)
        passed = sum(row.endswith("PASS") for row in rows)
        skipped = sum(r.process is None for r in self.runs)
        status = "ok" if judged + skipped == len(self.runs) else "failed"
        result = f"{passed}/{judged} meet the bars" + (f", {skipped} skipped (no data)" if skipped else "")
        return Step("quality", status, time.monotonic() - self.began, result)

    def _row(self, r: Training, evaluation: subprocess.Popen | None) -> str:
        name = f"{r.preset}/{r.dataset}"
        seconds, code = self.ended.get((r.preset, r.dataset), (0.0, None))
        if evaluation is None:
            return f"{name:<27} skipped: {r.why}"
        if code not in (0, 130):
            evaluation.kill()
            return f"{name:<27} train exited {code}: {self.work / (name.replace('/', '-') + '.log')}"
        return quality_row(r, evaluation, seconds, self.sizes.caps["quality"])


def evaluate(r: Training, sizes: Sizes, work: Path, env: dict) -> subprocess.Popen:
    command = [sys.executable, "-m", "gan_core", "evaluate", str(work / "runs" / f"{r.preset}-{r.dataset}"),
               "--json", "--n", str(sizes.evaluate_n), "--device", sizes.device]  # fmt: skip
    return subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def quality_row(r: Training, evaluation: subprocess.Popen, seconds: float, cap: float) -> str:
    name = f"{r.preset}/{r.dataset}"
    try:
        stdout, stderr = evaluation.communicate(timeout=cap)
        m = json.loads(stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        evaluation.kill()
        return f"{name:<27} evaluate failed: {evaluation.communicate()[1][-300:]!r}"
    agree = "" if m["class_agreement"] != m["class_agreement"] else f" agree {m['class_agreement']:.2f}"
    return (f"{name:<27} {m['iteration']:>7} it in {seconds:4.0f} s ({m['iteration'] / seconds:6.1f} it/s)  "
            f"recognisable {m['recognisable']:.2f} classes {m['class_coverage']:.0f}/10 max share "
            f"{m['max_class_share']:.2f}{agree} FD {m['fd']:.1f} (floor {m['fd_real_floor']:.1f})  "
            f"{judge(r.preset, r.dataset, m)}")  # fmt: skip


def judge(preset: str, dataset: str, m: dict) -> str:
    """PASS or MISS by bench/quality.py's bars (Fashion-MNIST's against real images' scores, where it has them)."""
    from quality import verdict

    return verdict(preset, dataset, m)


def engine_step(sizes: Sizes, out: Path, env: dict) -> Step:
    command = [sys.executable, "bench/engine.py", "--device", sizes.device, *sizes.engine,
               "--json", str(out / "engine.json")]  # fmt: skip
    status, seconds = run(command, out / "engine.txt", sizes.caps["engine"], env)
    return Step("engine", status, seconds, engine_headline(out / "engine.json"))


def engine_headline(path: Path) -> str:
    """Per architecture: the engine's it/s and ratio to the bare loop, and the best option's ratio to the engine."""
    if not path.is_file():
        return "no results"
    parts = []
    for arch, sides in json.loads(path.read_text())["results"].items():
        engine = sides["engine"]
        options = {k: v for k, v in sides.items() if k not in ("bare", "engine")}
        best = max(options.items(), key=lambda kv: kv[1]["ratio"], default=None)
        also = f", best {best[0]} {best[1]['ratio']:.2f}x" if best else ""
        parts.append(f"{arch} {engine['its']:.0f} it/s {engine['ratio']:.2f}x bare{also}")
    return "; ".join(parts)


# ---- the whole


def summary(steps: list[Step], sizes: Sizes, out: Path) -> str:
    lines = [f"# bench/gpu.sh{' --dry-run (CPU)' if sizes.device == 'cpu' else ''}", "",
             "| step | status | seconds | result |", "| --- | --- | ---: | --- |"]  # fmt: skip
    lines += [f"| {s.name} | {s.status} | {s.seconds:.0f} | {s.result} |" for s in steps]
    for name in ("quality.txt", "engine.txt"):
        if (out / name).is_file():
            text = (out / name).read_text()
            table = text[text.rfind("\narch ") + 1 :] if name == "engine.txt" and "\narch " in text else text
            lines += ["", f"## {name}", "", "```", table.rstrip(), "```"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="every step on the CPU, tiny sizes")
    parser.add_argument("--steps", default=",".join(STEPS), help=f"some of {','.join(STEPS)}")
    args = parser.parse_args(argv)
    sizes, chosen = (DRY if args.dry_run else GPU), args.steps.split(",")
    out = Path(os.environ.get("OUT") or tempfile.mkdtemp(prefix="gpu-out-"))
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu-work-"))
    data = work / "data" if args.dry_run else ROOT / ".data"  # the carried Fashion-MNIST; classifiers cached
    data.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"GAN_DATA_DIR": str(data), "GAN_TEST_DATA_DIR": str(data), "GAN_RUNS_DIR": str(work / "runs"),
                        "PYTHONUNBUFFERED": "1"}  # fmt: skip
    steps = run_steps(chosen, sizes, out, work, data, env)
    text = summary(steps, sizes, out)
    (out / "summary.md").write_text(text)
    print(text + f"\nfiles in {out}: {', '.join(sorted(p.name for p in out.iterdir()))}")
    return 0 if all(s.status == "ok" for s in steps if not s.status.startswith("skipped")) else 1


def run_steps(chosen: list[str], sizes: Sizes, out: Path, work: Path, data: Path, env: dict) -> list[Step]:
    steps = []
    if "env" in chosen:
        steps.append(env_step(sizes, out, env))
    training = QualityRuns(sizes, work, data, env) if "quality" in chosen else None
    if "tests" in chosen:  # beside the quality runs: neither times anything
        steps.append(pytest_step("tests", sizes.test_filter, sizes, out, env))
    if "app" in chosen:
        steps.append(pytest_step("app", "app", sizes, out, env))
    if training is not None:
        steps.append(training.finish(out))
    if "engine" in chosen:  # alone on the device: it times
        steps.append(engine_step(sizes, out, env))
    order = {name: i for i, name in enumerate(STEPS)}
    return sorted(steps, key=lambda s: order[s.name])


if __name__ == "__main__":
    sys.exit(main())
