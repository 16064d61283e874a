"""What the 2-D monitor's extras cost the training thread: G's gradient arrows and manifold (once a second at most),
the KL/JS divergences (with each toy quality measurement), against an iteration of the ring preset.

    .venv/bin/python bench/toy_views.py [--iterations 600] [--repeats 50]

Prints, in one process and one thread: the median time of an iteration, of the picture the loop already draws
(the fixed latents and D's heat-map), of the new layers, of a toy quality measurement without and with KL/JS,
and what the layers cost the thread at one a second. Alternates the sides so host drift hits both alike."""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from gan_core.engine.data import load_dataset
from gan_core.engine.presets import resolve
from gan_core.engine.toy_views import generator_gradients, manifold
from gan_core.engine.trainer import Trainer, points_bounds
from gan_core.quality.divergence import GridDivergence
from gan_core.quality.metrics import TOY_SAMPLES, toy_metrics


def timed(fn, repeats: int) -> float:
    """Median seconds of fn() over repeats calls."""
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=600, help="warm-up iterations before measuring")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config, knobs = resolve("ring", device="cpu")
    data = load_dataset("ring")
    trainer = Trainer(config, knobs, data, torch.device("cpu"))
    for it in range(1, args.iterations + 1):
        trainer.iteration(knobs, it)
    bounds, step = points_bounds(data), [args.iterations]
    divergence = GridDivergence(data.x, bounds)
    with torch.no_grad():
        points = trainer.generator(torch.randn(TOY_SAMPLES, config.z_dim), None)

    def iterate():
        step[0] += 1
        trainer.iteration(knobs, step[0])

    sides = {
        "iteration": iterate,
        "picture (fixed latents + D's 64x64 heat-map)": lambda: (trainer.sample_fixed(), trainer.decision_field(bounds)),
        "layers (512 arrows + 21x21 manifold)": lambda: (generator_gradients(trainer, trainer.sample_fixed()),
                                                         manifold(trainer)),
        "toy metrics (2,500 points)": lambda: toy_metrics(points, "ring"),
        "KL + JS (2,500 points, 32x32 grid)": lambda: divergence(points),
    }  # fmt: skip
    medians = {name: [] for name in sides}
    for _ in range(5):  # alternate the sides: the host's speed drifts
        for name, fn in sides.items():
            medians[name].append(timed(fn, args.repeats))
    result = {name: statistics.median(values) for name, values in medians.items()}
    for name, seconds in result.items():
        print(f"{name:48s} {seconds * 1e3:8.3f} ms")
    layers = result["layers (512 arrows + 21x21 manifold)"]
    print(f"layers / iteration: {layers / result['iteration']:.2f}x; at one a second: "
          f"{layers * 100:.2f}% of the training thread")  # fmt: skip
    print(
        f"KL + JS / toy metrics: {result['KL + JS (2,500 points, 32x32 grid)'] / result['toy metrics (2,500 points)']:.2f}x"
    )


if __name__ == "__main__":
    main()
