"""The first minute of a demo: how soon after Start each image preset's samples are recognisable, and how
they look 60 s after Start, in its published and its demo setting, on digits and Fashion-MNIST.

    .venv/bin/python bench/demo.py                                   # every image preset, both data sets
    .venv/bin/python bench/demo.py --presets tf-cdcgan --datasets fashion-mnist --cap 90
    .venv/bin/python bench/demo.py --settings demo                   # only the demo settings

Each run is its own process, as a run started in a server whose imports are done: the clock starts before
the run's plan is built (data load and models are counted), and the run trains in the process's main thread
with every setting of its preset, sample-quality metrics on their automatic budget and grids as a user's run
has them. Every `--every` seconds of that clock the process stops the clock, measures 1,000 samples from fixed
latents (seed 1; conditional models 100 per class) with the data set's own classifier (the metrics of
`evaluate`), and starts the clock again. The classifier is trained and cached by a process of its own before
any run, as after a user's first run on the data set.

"Recognisable" is the monitor's mark (gan_core/folder/milestone.py): at least half the share of recognisable images
(top class probability >= 0.9) that held-out real images score. The bars at 60 s: recognisable, at least 8
classes present, no class above 30%, conditional models with at least half the samples in the class asked for,
and on digits the classifier FD within 4x the real-vs-real floor. A benchmark: it exits 0 on a miss.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PRESETS = ("pytorch-mlp", "cntk-dcgan", "tf-cdcgan")
DATASETS = ("digits", "fashion-mnist")
DEMO_SECONDS = 60.0
DEMO_SUFFIX = "-demo"  # gan_core.engine.presets.DEMO_SUFFIX, without importing torch in the parent


def child(preset: str, dataset: str, cap: float, every: float, threads: int | None) -> None:
    """One run, measured along its clock; prints one JSON line per measurement."""
    import torch

    from gan_core.engine.models import ARCHS
    from gan_core.engine.presets import resolve
    from gan_core.folder import milestone
    from gan_core.quality.metrics import image_evaluator
    from gan_core.training.loop import TrainingLoop
    from gan_core.training.plan import new_run

    config, knobs = resolve(preset, dataset=dataset, iterations=10**8, threads=threads)
    runs = tempfile.mkdtemp(prefix="gan-demo-")
    began = time.monotonic()
    loop = TrainingLoop(new_run(config, knobs, runs_dir=runs, name=preset))  # loads the data: on the clock
    stopped = time.monotonic()
    evaluator = image_evaluator(loop.data, torch.device("cpu"), config.data_dir)  # cached classifier: off it
    z = torch.randn(1000, config.z_dim, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(1000) % loop.data.num_classes if ARCHS[config.arch].conditional else None
    paused = time.monotonic() - stopped
    next_mark = every
    while True:
        clock = time.monotonic() - began - paused
        if clock >= next_mark or clock >= cap:
            stopped = time.monotonic()
            # what the monitor shows: the moving average of G where the run keeps one (--ema)
            generator = loop.trainer.shown_generator
            with torch.no_grad():
                generator.eval()
                samples = generator(z, labels)
                generator.train()
            values = evaluator(samples, labels)
            record = {"t": round(clock, 2), "iteration": loop.iteration, "real": evaluator.real_recognisable,
                      "fd_floor": evaluator.fd_floor, "mark": milestone.recognisable(values["recognisable"],
                                                                                     evaluator.real_recognisable),
                      **{k: values[k] for k in ("recognisable", "class_coverage", "max_class_share",
                                                "class_agreement", "fd")}}  # fmt: skip
            print(json.dumps(record), flush=True)
            paused += time.monotonic() - stopped
            next_mark += every
            if clock >= cap:
                break
        loop.step()
    loop.close()


def prepare(dataset: str) -> None:
    """Train and cache the data set's classifier (once per machine), so that no run trains it while timed."""
    import torch

    from gan_core.config import RunConfig
    from gan_core.engine.data import load_dataset
    from gan_core.quality.metrics import load_or_train_classifier

    data_dir = RunConfig().data_dir
    load_or_train_classifier(load_dataset(dataset, 28, data_dir), torch.device("cpu"), data_dir)


def run_child(preset: str, dataset: str, args) -> list[dict]:
    command = [
        sys.executable,
        __file__,
        "--child",
        preset,
        dataset,
        "--cap",
        str(args.cap),
        "--every",
        str(args.every),
    ]
    if args.threads:
        command += ["--threads", str(args.threads)]
    out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=os.environ)
    records = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not records:
        print(f"{preset} on {dataset} failed: {out.stderr.strip().splitlines()[-1:]}", flush=True)
    return records


def at(records: list[dict], seconds: float) -> dict | None:
    """The measurement at `seconds` of the clock (the first at or after it)."""
    return next((r for r in records if r["t"] >= seconds - 1e-6), records[-1] if records else None)


def verdict(record: dict, dataset: str) -> bool:
    ok = record["mark"] and record["class_coverage"] >= 8 and record["max_class_share"] <= 0.30
    if not math.isnan(record["class_agreement"]):
        ok = ok and record["class_agreement"] >= 0.5
    if dataset == "digits":
        ok = ok and record["fd"] <= 4 * record["fd_floor"]
    return bool(ok)


def row(preset: str, dataset: str, records: list[dict], cap: float) -> str:
    if not records:
        return f"| {preset} | {dataset} | (failed) | | | | | | | |"
    first = next((r for r in records if r["mark"]), None)
    reached = f"{first['t']:.0f} s (it {first['iteration']:,})" if first else f"not in {cap:.0f} s"
    r = at(records, DEMO_SECONDS)
    agree = "" if math.isnan(r["class_agreement"]) else f"{r['class_agreement']:.2f}"
    recognisable = f"{r['recognisable']:.2f} ({r['recognisable'] / r['real']:.2f} of real {r['real']:.2f})"
    fd = f"{r['fd']:.1f} ({r['fd'] / r['fd_floor']:.1f}x)"
    cells = [preset, dataset, reached, f"{r['iteration']:,}", recognisable, f"{r['class_coverage']:.0f}",
             f"{r['max_class_share']:.2f}", agree, fd, "met" if verdict(r, dataset) else "missed"]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--settings", default="preset,demo", help="preset: as it is; demo: its demo setting")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--cap", type=float, default=180.0, help="seconds of each run's clock")
    parser.add_argument("--every", type=float, default=5.0, help="seconds of the clock between measurements")
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's, every core)")
    parser.add_argument("--child", nargs=2, metavar=("PRESET", "DATASET"), help=argparse.SUPPRESS)
    parser.add_argument("--prepare", metavar="DATASET", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child, args.cap, args.every, args.threads)
    if args.prepare:
        return prepare(args.prepare)
    header = ("| preset | data | recognisable after | it at 60 s | recognisable at 60 s | classes | max share | "
              "agreement | classifier FD (x floor) | bars at 60 s |\n" + "| --- " * 10 + "|")  # fmt: skip
    lines = []
    for dataset in args.datasets.split(","):
        subprocess.run([sys.executable, __file__, "--prepare", dataset], cwd=ROOT, check=True)
        for preset in args.presets.split(","):
            for setting in args.settings.split(","):
                name = preset + DEMO_SUFFIX if setting == "demo" else preset
                lines.append(row(name, dataset, run_child(name, dataset, args), args.cap))
                print(lines[-1], flush=True)
    print("\n" + header + "\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
