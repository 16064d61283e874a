"""Does every preset learn? Train each on data available offline and print its sample-quality table.

    .venv/bin/python bench/quality.py                       # every preset, the issue's budgets
    .venv/bin/python bench/quality.py --presets ring,grid --minutes 2
    .venv/bin/python bench/quality.py --presets grid --seeds 0,1,2      # a toy on several seeds
    .venv/bin/python bench/quality.py --presets tf-cdcgan --datasets fashion-mnist
    .venv/bin/python bench/quality.py --live-cost --presets cntk-dcgan,pytorch-mlp   # one live measurement's cost

Image presets train on `digits` (28 px, or 64 px for matlab-dcgan) and, the 28-px ones, on Fashion-MNIST (when
found offline; `apt-get install dataset-fashion-mnist`); the toys on their own data, once per seed. Each run
gets a wall-clock budget (toys 5 min, images 10 min by default; with --cpu-clock counted in the training thread's
CPU time instead, the same on an idle machine and fairer on a busy one) on the device chosen, and trains its preset's
iterations or until the budget ends, whichever comes first; the table reports the metrics measured at that
END (not the best moment; the run's own measurements along the way are printed under each row) with
`python -m gan_core evaluate`'s protocol (2,500 points for the toys; 2,000 images for the classifier metrics),
beside the targets:

- ring: 8/8 modes, high-quality >= 0.90;  grid: >= 24/25 modes, high-quality >= 0.85
- 28-px image presets on digits: >= 80% recognisable (class prob >= 0.9), 10/10 classes, none above 25%;
  conditional presets: the classifier agrees with the requested class on >= 90%; classifier FD shown
  beside the floor (the FD of real held-out images).
- on Fashion-MNIST, whose real images are less often recognisable at that confidence: recognisable at least 0.8
  of the held-out real images' own share, 10/10 classes, none above 20%, conditional agreement >= 85%.
This is a benchmark: it exits 0 whether or not a target is met.

--live-cost trains nothing: it times one live measurement (1,000 fixed latents, as a run measures within its 2%
budget) of each image preset's untrained generator on `digits`, in the thread's CPU time as the run counts it,
and the share of it that precision / recall / density / coverage and KID take (median of the repeats).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan_core.config import RunConfig  # noqa: E402
from gan_core.engine.data import TOYS, offline_source  # noqa: E402
from gan_core.engine.devices import resolve_device  # noqa: E402
from gan_core.engine.presets import DEMO_SUFFIX, PRESETS, resolve  # noqa: E402
from gan_core.engine.sampling import load_sampler  # noqa: E402
from gan_core.folder.status import Status  # noqa: E402
from gan_core.quality.feature_metrics import kernel_inception_distance, prdc  # noqa: E402
from gan_core.quality.metrics import QualityMonitor, evaluate_sampler  # noqa: E402
from gan_core.training.loop import TrainingLoop  # noqa: E402
from gan_core.training.plan import new_run  # noqa: E402

TOY_MINUTES, IMAGE_MINUTES = 5.0, 10.0


FASHION_PRESETS = ("pytorch-mlp", "cntk-dcgan", "tf-cdcgan")  # the 28-px designs


def train(preset: str, dataset: str, minutes: float, device: str, runs_dir: Path, seed: int | None = None,
          cpu_clock: bool = False):  # fmt: skip
    """The preset's run, driven in this main thread as the CLI drives it, until done or out of time."""
    config, knobs = resolve(preset, dataset=dataset, device=device, checkpoint_every=10**8, seed=seed)
    loop = TrainingLoop(new_run(config, knobs, runs_dir=runs_dir, name=preset))
    clock = time.thread_time if cpu_clock else time.monotonic
    began, error = clock(), None
    try:
        while not loop.done and clock() - began < minutes * 60:
            loop.step()
    except Exception as exc:  # ends the run as failed (or diverged): the table says so
        error = exc
    loop.close(error)
    return loop, clock() - began


def verdict(preset: str, dataset: str, m: dict) -> str:
    if preset == "ring":
        ok = m["modes"] == 8 and m["high_quality"] >= 0.90
    elif preset == "grid":
        ok = m["modes"] >= 24 and m["high_quality"] >= 0.85
    elif dataset == "fashion-mnist":  # judged against what real images score
        ok = m["recognisable"] >= 0.8 * m["recognisable_real"] and m["class_coverage"] == 10
        ok = ok and m["max_class_share"] <= 0.20 and not m["class_agreement"] < 0.85
    else:
        ok = m["recognisable"] >= 0.8 and m["class_coverage"] == 10 and m["max_class_share"] <= 0.25
        ok = ok and not m["class_agreement"] < 0.9  # NaN (unconditional) passes
    return "PASS" if ok else "MISS"


def row(preset: str, dataset: str, iterations: int, seconds: float, m: dict, name: str | None = None) -> str:
    """One table line; name: how the line names the run (a toy's seed), preset: what its metrics and bars are."""
    if preset in TOYS:
        values = f"modes {m['modes']:.0f}/{m['modes_total']}  high-quality {m['high_quality']:.3f}"
    else:
        agree = "" if math.isnan(m["class_agreement"]) else f"  agree {m['class_agreement']:.2f}"
        values = (f"recognisable {m['recognisable']:.2f} (real {m['recognisable_real']:.2f})  classes {m['class_coverage']:.0f}/10  "
                  f"max share {m['max_class_share']:.2f}{agree}  FD {m['fd']:.2f} (floor {m['fd_real_floor']:.2f})  "
                  f"diversity {m['diversity']:.2f}  precision {m['precision']:.2f}  recall {m['recall']:.2f}  "
                  f"density {m['density']:.2f}  coverage {m['coverage']:.2f}  "
                  f"KID {m['kid']:.4g} (floor {m['kid_real_floor']:.4g})")  # fmt: skip
    label = name or preset
    return f"{label:<13} {dataset:<13} {iterations:>7} it  {seconds / 60:5.1f} min  {values}  {verdict(preset, dataset, m)}"


def trajectory(loop: TrainingLoop, preset: str, points: int = 6) -> str:
    """The run's own measurements along the way (about `points` of them, evenly spread): did it hold?"""
    q = loop.recorder.quality.view()
    if not len(q["iteration"]):
        return "  (no measurements during the run)"
    toy = preset in TOYS
    legend = "modes/high-quality" if toy else "recognisable/classes/max share"

    def cell(i: int) -> str:
        if toy:
            return f"{q['modes'][i]:.0f}/{q['high_quality'][i]:.2f}"
        return f"{q['recognisable'][i]:.2f}/{q['class_coverage'][i]:.0f}/{q['max_class_share'][i]:.2f}"

    picks = sorted({round(i) for i in np.linspace(0, len(q["iteration"]) - 1, points)})
    cells = [f"it {int(q['iteration'][i])}: {cell(i)}" for i in picks]
    return f"  along the way ({legend}): " + ", ".join(cells)


def live_cost(preset: str, device: str, runs_dir: Path, repeats: int = 7) -> str:
    """One live measurement of the preset's untrained generator, and the new metrics' share of it (CPU time)."""
    config, knobs = resolve(preset, dataset="digits", device=device)
    loop = TrainingLoop(new_run(config, knobs, runs_dir=runs_dir, name=f"{preset}-cost"))
    monitor = QualityMonitor(
        loop.data, loop.device, config.z_dim, loop.trainer.arch.conditional, config.data_dir
    )
    began = time.thread_time()
    monitor.prepare()  # the classifier (trained the first time), the reference's radii, torchmetrics' import
    prepared = time.thread_time() - began
    generator, evaluator = loop.trainer.shown_generator, monitor.evaluator
    with torch.no_grad():
        generator.eval()
        features, _ = evaluator.features(generator(monitor.z, monitor.labels))
        generator.train()
    whole, prdc_s, kid_s = [], [], []
    for _ in range(repeats):
        began = time.thread_time()
        monitor.measure(generator)
        whole.append(time.thread_time() - began)
        began = time.thread_time()
        prdc(evaluator.reference, features, evaluator.reference_radii)
        prdc_s.append(time.thread_time() - began)
        began = time.thread_time()
        kernel_inception_distance(evaluator.reference, features)
        kid_s.append(time.thread_time() - began)
    loop.close()
    total, p, k = (statistics.median(t) for t in (whole, prdc_s, kid_s))
    return (f"{preset:<13} one live measurement {total:.3f} s CPU ({len(features)} samples): precision / recall / "
            f"density / coverage {p:.3f} s ({p / total:.0%}), KID {k:.3f} s ({k / total:.0%}); "
            f"prepared once in {prepared:.1f} s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", default=",".join(p for p in PRESETS if not p.endswith(DEMO_SUFFIX)))
    parser.add_argument("--minutes", type=float, help="budget per preset (default: toys 5, images 10)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--datasets", default="digits,fashion-mnist", help="for the image presets")
    parser.add_argument("--cpu-clock", action="store_true",
                        help="count the budget in the training thread's CPU time, not the wall clock")  # fmt: skip
    parser.add_argument("--seeds", help="toys: the seeds to train, e.g. 0,1,2 (default: the preset's)")
    parser.add_argument("--live-cost", action="store_true", help="time one live measurement per image preset")
    args = parser.parse_args()
    device = resolve_device(args.device)
    runs_dir = Path(tempfile.mkdtemp(prefix="gan-quality-"))
    print(f"device {device}, runs in {runs_dir}", flush=True)
    if args.live_cost:
        for preset in (p for p in args.presets.split(",") if p not in TOYS):
            print(live_cost(preset, args.device, runs_dir), flush=True)
        return
    lines = []
    for preset, dataset, seed in plan(args):
        minutes = args.minutes or (TOY_MINUTES if preset in TOYS else IMAGE_MINUTES)
        loop, seconds = train(preset, dataset, minutes, args.device, runs_dir, seed, args.cpu_clock)
        name = preset if seed is None else f"{preset} s{seed}"
        if loop.status not in (Status.STOPPED, Status.FINISHED):
            lines.append(f"{name:<13} {dataset:<13} {loop.iteration:>7} it  {loop.status}: {loop.reason}")
        else:
            metrics = evaluate_sampler(load_sampler(loop.folder.path, device), device)
            lines.append(row(preset, dataset, loop.iteration, seconds, metrics, name))
        print(lines[-1], flush=True)
        print(trajectory(loop, preset), flush=True)
    print(
        "\n".join(
            ["", "preset        data          iterations  wall   metrics at the end of the budget", *lines]
        )
    )


def plan(args) -> list[tuple[str, str, int | None]]:
    """(preset, data set, seed) of every run: toys on their own points once per seed (None: the preset's);
    image presets on each data set asked for that suits them and is at hand."""
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [None]
    runs = []
    for preset in args.presets.split(","):
        if preset in TOYS:
            runs += [(preset, preset, seed) for seed in seeds]
            continue
        for dataset in args.datasets.split(","):
            suits = dataset == "digits" or preset.removesuffix("-published") in FASHION_PRESETS
            if suits and offline_source(dataset, RunConfig().data_dir) is not None:
                runs.append((preset, dataset, None))
    return runs


if __name__ == "__main__":
    main()
