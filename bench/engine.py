"""Engine overhead: gan_core's background run (metrics, CSV, grids on) against a bare PyTorch loop, it/s and ratio.

Both sides train the same architecture from `gan_core.models.build_models` on the offline `digits` set,
batch 64, BCE, Adam 2e-4 (0.5, 0.999), one D and one G update an iteration, each in its own background
thread with the same torch thread count, one after the other in this process. Rounds alternate the order
(engine then bare, bare then engine, ...) so drifting machine speed hits both sides; the ratio reported is
the median of the per-round ratios, each taken from two measurements made back to back.

    .venv/bin/python bench/engine.py [--device cpu|cuda|auto] [--seconds S] [--archs dcgan28,mlp]
                                     [--batch-size B] [--threads N] [--rounds R] [--warmup W] [--bare-frozen-d]
"""

from __future__ import annotations

import argparse
import os
import shutil
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
from gan_core.trainer import FUSED_DEVICES, device_label, resolve_device  # noqa: E402

ITERATIONS = 100_000_000  # the engine run's target: never reached, the bench stops it
LR, BETAS, Z_DIM, SEED = 2e-4, (0.5, 0.999), 100, 0
MIN_WARMUP_ITERATIONS = 3  # the first iterations build kernels and caches; never time them

# ---- timing


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def edge(count) -> tuple[int, float, float]:
    """Wait for the next iteration to end: (iterations done, wall clock, this process's CPU time) just then.

    Both ends of a window sit at an iteration's end, so a slow model (dcgan28 on two CPU cores: a few
    it/s, a few dozen iterations a window) is not off by a part of one.
    """
    done = count()
    while count() == done:
        time.sleep(0.001)
    return count(), time.perf_counter(), time.process_time()


def window(count, device: torch.device, warmup: float, seconds: float) -> tuple[float, float]:
    """(it/s, it per CPU-second) of a background loop whose progress `count()` reads, after `warmup`.

    CPU time counts every thread of this process (the training thread and its intra-op workers); other
    processes on a shared machine slow the wall clock a lot more than they change it.
    On CUDA the device is drained at both ends, so neither end is far ahead of the device.
    """
    time.sleep(warmup)
    while count() < MIN_WARMUP_ITERATIONS:
        time.sleep(0.01)
    sync(device)
    start, t0, cpu0 = edge(count)
    time.sleep(seconds)
    sync(device)
    end, t1, cpu1 = edge(count)
    return (end - start) / (t1 - t0), (end - start) / (cpu1 - cpu0)


# ---- the engine: gan_core's background run, as the dashboard starts it


def engine_rate(arch: str, data: Data, args, runs_dir: Path) -> tuple[float, float]:
    config, knobs = resolve(
        arch=arch, dataset="digits", loss="bce", batch_size=args.batch_size, iterations=ITERATIONS,
        z_dim=Z_DIM, optimizer="adam", lr_g=LR, lr_d=LR, beta1=BETAS[0], beta2=BETAS[1], d_iters=1,
        g_steps=1, sample_every=args.sample_every, checkpoint_every=args.checkpoint_every,
        device=args.device, threads=args.threads, seed=SEED, eval_every=args.eval_every,
    )  # fmt: skip
    run = start_run(config, knobs, runs_dir=runs_dir, data=data)
    try:
        rates = window(lambda: run.iteration, run.device, args.warmup, args.seconds)
    finally:
        run.stop()
    if run.status != "stopped":
        raise RuntimeError(f"engine run ended {run.status}: {run.reason}")
    check_outputs(run.run_dir, run.iteration)
    shutil.rmtree(run.run_dir)  # a dcgan28 checkpoint is ~100 MB: do not let them pile up
    return rates


def check_outputs(run_dir: Path, iterations: int) -> None:
    """The point of the comparison is that the engine records as it trains: make sure it did."""
    rows = (run_dir / "metrics.csv").read_text().count("\n") - 1  # less the header
    grids = len(list((run_dir / "samples").glob("iter_*.png")))
    if rows != iterations or grids < 2:
        raise RuntimeError(f"{run_dir}: {rows} metric rows for {iterations} iterations, {grids} grids")


# ---- the bare loop: the standard PyTorch DCGAN step, nothing else


class BareLoop:
    """The same models, data on the device as uint8, random batches; no metrics, no host syncs.

    frozen_d: skip D's weight gradients in G's step, as the engine does (the standard loop computes them
    and throws them away), so the ratio shows the engine's bookkeeping alone.
    """

    def __init__(self, arch: str, data: Data, device: torch.device, args):
        self.arch, self.data, self.device = arch, data, device
        self.batch_size, self.threads, self.frozen_d = args.batch_size, args.threads, args.bare_frozen_d
        self.iteration = 0
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
            if self.device.type == "cpu":  # as the engine's training thread applies RunConfig.threads
                torch.set_num_threads(self.threads)
            self._train()
        except BaseException as exc:  # re-raised in the main thread by stop()
            self._error = exc

    def _train(self) -> None:
        device, size = self.device, self.batch_size
        torch.manual_seed(SEED)
        spec = ModelSpec(Z_DIM, self.data.data_shape, self.data.num_classes)
        generator, discriminator = (m.to(device) for m in build_models(self.arch, spec))
        fused = device.type in FUSED_DEVICES  # the same optimiser step as the engine's: the same work
        opt_g = torch.optim.Adam(generator.parameters(), lr=LR, betas=BETAS, fused=fused)
        opt_d = torch.optim.Adam(discriminator.parameters(), lr=LR, betas=BETAS, fused=fused)
        x = self.data.x.to(device)  # (N, C, H, W) uint8
        real_target, fake_target = torch.ones(size, device=device), torch.zeros(size, device=device)
        bce = F.binary_cross_entropy_with_logits
        while not self._stop.is_set():
            real = x[torch.randint(len(x), (size,), device=device)].float() / 127.5 - 1.0  # (B, C, H, W)
            fake = generator(torch.randn(size, Z_DIM, device=device))
            real_out, _ = discriminator(real)  # (B,) logits
            fake_out, _ = discriminator(fake.detach())
            loss_d = bce(real_out, real_target) + bce(fake_out, fake_target)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            if self.frozen_d:
                discriminator.requires_grad_(False)
            loss_g = bce(discriminator(fake)[0], real_target)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            if self.frozen_d:
                discriminator.requires_grad_(True)
            self.iteration += 1


def bare_rate(arch: str, data: Data, args) -> tuple[float, float]:
    loop = BareLoop(arch, data, resolve_device(args.device), args).start()
    try:
        return window(lambda: loop.iteration, loop.device, args.warmup, args.seconds)
    finally:
        loop.stop()


# ---- main


def compare(arch: str, args, runs_dir: Path) -> dict[str, float]:
    """Medians over args.rounds rounds: each side's it/s, and the per-round ratios engine/bare."""
    data = load_dataset("digits", ARCHS[arch].image_size)
    measure = {
        "engine": lambda: engine_rate(arch, data, args, runs_dir),
        "bare": lambda: bare_rate(arch, data, args),
    }
    rates: dict[str, list[tuple[float, float]]] = {"engine": [], "bare": []}  # (it/s, it per CPU-s) a round
    for i in range(args.rounds):
        for side in ("engine", "bare") if i % 2 == 0 else ("bare", "engine"):
            rates[side].append(measure[side]())
        (engine, engine_cpu), (bare, bare_cpu) = rates["engine"][-1], rates["bare"][-1]
        print(
            f"  {arch} round {i + 1}: engine {engine:.1f} it/s, bare {bare:.1f} it/s, ratio {engine / bare:.2f}"
            f" | per CPU-second: engine {engine_cpu:.1f}, bare {bare_cpu:.1f}, ratio {engine_cpu / bare_cpu:.2f}",
            flush=True,
        )
    pairs = list(zip(rates["engine"], rates["bare"], strict=True))
    return {
        "engine": statistics.median(e for e, _ in rates["engine"]),
        "bare": statistics.median(b for b, _ in rates["bare"]),
        "ratio": statistics.median(e[0] / b[0] for e, b in pairs),
        "cpu_ratio": statistics.median(e[1] / b[1] for e, b in pairs),
    }


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--seconds", type=float, default=4.5, help="measured seconds per round and side")
    parser.add_argument("--warmup", type=float, default=1.5, help="seconds trained before each measurement")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; medians are reported")
    parser.add_argument("--archs", default="dcgan28,mlp")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="default: all cores")
    parser.add_argument("--sample-every", type=int, default=100, help="engine: a grid every N iterations")
    parser.add_argument("--checkpoint-every", type=int, default=1000, help="engine: a checkpoint every N")
    parser.add_argument(
        "--eval-every",
        type=int,
        help="engine: sample-quality metrics every N (0: off); default: the engine's own",
    )
    parser.add_argument(
        "--bare-frozen-d",
        action="store_true",
        help="bare loop skips D's weight gradients in G's step, as the engine",
    )
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    device = resolve_device(args.device)
    args.device = device.type
    torch.set_num_threads(args.threads)
    if device.type == "cuda":  # the engine's Trainer sets these process-wide: the bare loop gets them too
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    print(
        f"torch {torch.__version__}, {device_label(device)}, {args.threads} threads, batch {args.batch_size}, "
        f"{args.rounds} rounds of {args.warmup:g} s warm-up + {args.seconds:g} s per side"
        + (", bare loop with frozen D in G's step" if args.bare_frozen_d else ""),
        flush=True,
    )
    load_before = os.getloadavg()[0]
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as runs_dir:
        for arch in args.archs.split(","):
            results[arch] = compare(arch, args, Path(runs_dir))
    report(results, device)
    # Other processes on the machine slow whichever side they happen to overlap: say how busy it was.
    print(
        f"load average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, {os.cpu_count()} cores"
    )


def report(results: dict[str, dict[str, float]], device: torch.device) -> None:
    """A table, then one line per architecture; on the CPU also the ratio per CPU-second used."""
    cpu = device.type == "cpu"
    print(f"\n{'arch':<10} {'device':<7} {'bare it/s':>10} {'engine it/s':>12} {'engine/bare':>12}", end="")
    print(f" {'per CPU-s':>10}" if cpu else "")
    for arch, r in results.items():
        row = f"{arch:<10} {device.type:<7} {r['bare']:>10.1f} {r['engine']:>12.1f} {r['ratio']:>12.2f}"
        print(row + (f" {r['cpu_ratio']:>10.2f}" if cpu else ""))
    print()
    for arch, r in results.items():
        rates = f"engine {r['engine']:.1f} it/s, bare {r['bare']:.1f} it/s, ratio {r['ratio']:.2f}"
        print(f"{arch} {device.type}: {rates}" + (f" (per CPU-second {r['cpu_ratio']:.2f})" if cpu else ""))


if __name__ == "__main__":
    main()
