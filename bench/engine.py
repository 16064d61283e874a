"""Engine overhead: gan_core's background run (metrics, CSV, grids on) against a bare PyTorch loop, it/s and ratio.

Both sides train the same architecture from `gan_core.models.build_models` on the offline `digits` set,
batch 64, BCE, Adam 2e-4 (0.5, 0.999), one D and one G update an iteration, each in a background thread
with the same torch thread count. Measurements alternate (engine, bare, engine, bare ...) so machine noise
hits both; each side's result is the median of its rounds.

    .venv/bin/python bench/engine.py [--device cpu|cuda|auto] [--seconds S] [--archs dcgan28,mlp]
                                     [--batch-size B] [--threads N] [--rounds R] [--warmup W]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

from gan_core.data import Data, load_dataset  # noqa: E402
from gan_core.models import ARCHS, ModelSpec, build_models  # noqa: E402
from gan_core.presets import resolve  # noqa: E402
from gan_core.run import start_run  # noqa: E402
from gan_core.trainer import resolve_device  # noqa: E402

ITERATIONS = 100_000_000  # the engine run's target: never reached, the bench stops it
LR, BETAS, Z_DIM, SEED = 2e-4, (0.5, 0.999), 100, 0

# ---- timing


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def window(count, device: torch.device, warmup: float, seconds: float) -> tuple[int, int]:
    """The iterations (a, b] a background loop whose progress `count()` reads trains in `seconds` after `warmup`.

    On CUDA the device is drained at both boundaries, so neither end runs far ahead of the device.
    """
    time.sleep(warmup)
    sync(device)
    start = count()
    time.sleep(seconds)
    sync(device)
    return start, count()


def rate(times, start: int, end: int) -> float:
    """it/s from the end times of iterations `start` and `end`: whole iterations, no rounding at the edges.

    A slow model (dcgan28 on two CPU cores: ~3 it/s) trains only a few dozen iterations in a window, so
    counting them would be off by up to one; the time between two iteration ends is exact.
    """
    if start < 1 or end <= start:
        raise RuntimeError(f"only iterations ({start}, {end}] in the window: raise --warmup or --seconds")
    return (end - start) / (float(times[end]) - float(times[start]))


# ---- the engine: gan_core's background run, as the dashboard starts it


def engine_rate(arch: str, data: Data, args, runs_dir: Path) -> float:
    config, knobs = resolve(
        arch=arch, dataset="digits", loss="bce", batch_size=args.batch_size, iterations=ITERATIONS,
        z_dim=Z_DIM, optimizer="adam", lr_g=LR, lr_d=LR, beta1=BETAS[0], beta2=BETAS[1], d_iters=1,
        g_steps=1, sample_every=args.sample_every, checkpoint_every=args.checkpoint_every,
        device=args.device, threads=args.threads, seed=SEED,
    )  # fmt: skip
    run = start_run(config, knobs, runs_dir=runs_dir, data=data)
    try:
        start, end = window(lambda: run.iteration, run.device, args.warmup, args.seconds)
    finally:
        run.stop()
    if run.status != "stopped":
        raise RuntimeError(f"engine run ended {run.status}: {run.reason}")
    check_outputs(run.run_dir, run.iteration)
    history = run.snapshot().history  # row i: iteration i + 1, elapsed_s taken as it ended
    times = {int(it): t for it, t in zip(history["iteration"], history["elapsed_s"], strict=True)}
    return rate(times, start, end)


def check_outputs(run_dir: Path, iterations: int) -> None:
    """The point of the comparison is that the engine records as it trains: make sure it did."""
    rows = (run_dir / "metrics.csv").read_text().count("\n") - 1  # less the header
    grids = len(list((run_dir / "samples").glob("iter_*.png")))
    if rows != iterations or grids < 2:
        raise RuntimeError(
            f"engine run {run_dir}: {rows} metric rows for {iterations} iterations, {grids} grids"
        )


# ---- the bare loop: the standard PyTorch DCGAN step, nothing else


class BareLoop:
    """The same models, data on the device as uint8, random batches; no metrics, no host syncs."""

    def __init__(self, arch: str, data: Data, device: torch.device, batch_size: int, threads: int):
        self.arch, self.data, self.device = arch, data, device
        self.batch_size, self.threads = batch_size, threads
        self.iteration = 0
        self.times = [0.0]  # times[i]: perf_counter() when iteration i ended (0: when training began)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=f"bare-{arch}", daemon=True)

    def start(self) -> BareLoop:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        try:
            if self.device.type == "cpu":  # as the engine's training thread does with RunConfig.threads
                torch.set_num_threads(self.threads)
            self._train()
        except BaseException as exc:  # re-raised in the main thread by stop()
            self._error = exc

    def _train(self) -> None:
        device, size = self.device, self.batch_size
        torch.manual_seed(SEED)
        spec = ModelSpec(Z_DIM, self.data.data_shape, self.data.num_classes)
        generator, discriminator = (m.to(device) for m in build_models(self.arch, spec))
        opt_g = torch.optim.Adam(generator.parameters(), lr=LR, betas=BETAS)
        opt_d = torch.optim.Adam(discriminator.parameters(), lr=LR, betas=BETAS)
        x = self.data.x.to(device)  # (N, C, H, W) uint8
        ones, zeros = torch.ones(size, device=device), torch.zeros(size, device=device)
        self.times[0] = time.perf_counter()
        while not self._stop.is_set():
            real = x[torch.randint(len(x), (size,), device=device)].float() / 127.5 - 1.0
            fake = generator(torch.randn(size, Z_DIM, device=device))
            real_out, _ = discriminator(real)
            fake_out, _ = discriminator(fake.detach())
            loss_d = F.binary_cross_entropy_with_logits(real_out, ones) + F.binary_cross_entropy_with_logits(
                fake_out, zeros
            )
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            out, _ = discriminator(fake)
            loss_g = F.binary_cross_entropy_with_logits(out, ones)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            self.times.append(time.perf_counter())
            self.iteration += 1


def bare_rate(arch: str, data: Data, args) -> float:
    loop = BareLoop(arch, data, resolve_device(args.device), args.batch_size, args.threads).start()
    try:
        start, end = window(lambda: loop.iteration, loop.device, args.warmup, args.seconds)
    finally:
        loop.stop()
    return rate(loop.times, start, end)


# ---- main


def compare(arch: str, args, runs_dir: Path) -> tuple[float, float]:
    """Median engine and bare it/s over args.rounds alternating rounds."""
    data = load_dataset("digits", ARCHS[arch].image_size)
    engine, bare = [], []
    for i in range(args.rounds):
        engine.append(engine_rate(arch, data, args, runs_dir))
        bare.append(bare_rate(arch, data, args))
        print(f"  {arch} round {i + 1}: engine {engine[-1]:.1f} it/s, bare {bare[-1]:.1f} it/s", flush=True)
    return statistics.median(engine), statistics.median(bare)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per round and side")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds trained before each measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is reported")
    parser.add_argument("--archs", default="dcgan28,mlp")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="default: all cores")
    parser.add_argument("--sample-every", type=int, default=100, help="engine: a grid every N iterations")
    parser.add_argument("--checkpoint-every", type=int, default=1000, help="engine: a checkpoint every N")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    device = resolve_device(args.device)
    args.device = device.type
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, device {device.type}, threads {args.threads}, batch {args.batch_size}, "
          f"{args.rounds} x ({args.warmup:g} s warm-up + {args.seconds:g} s) per side", flush=True)  # fmt: skip
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as runs_dir:
        for arch in args.archs.split(","):
            results[arch] = compare(arch, args, Path(runs_dir))
    print(f"\n{'arch':<10} {'device':<7} {'bare it/s':>10} {'engine it/s':>12} {'engine/bare':>12}")
    for arch, (engine, bare) in results.items():
        print(f"{arch:<10} {device.type:<7} {bare:>10.1f} {engine:>12.1f} {engine / bare:>12.2f}")
    print()
    for arch, (engine, bare) in results.items():
        line = f"engine {engine:.1f} it/s, bare {bare:.1f} it/s, ratio {engine / bare:.2f}"
        print(f"{arch} {device.type}: {line}")


if __name__ == "__main__":
    main()
