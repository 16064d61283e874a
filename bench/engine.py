"""Engine against a bare PyTorch loop, each as its own process: `python -m gan_core train` vs a plain loop.

Both sides train the same architecture (`gan_core.models.build_models`) on the offline `digits` set, BCE, Adam
2e-4 (0.5, 0.999) with the fused step, one D and one G update an iteration, the same batch and torch's default
thread count, each in a fresh process started the way a user starts it. The engine side is the CLI with its
defaults (metrics every iteration into metrics.csv, a grid every 100 iterations, a checkpoint every 1000,
sample-quality metrics on their automatic ~3% budget). The bare side is this file run with `--bare`: no
metrics, no host reads, D frozen in G's step as the engine does (`--bare-standard` computes D's weight
gradients there and drops them, as the textbook loop does).

Each side reports (iterations, seconds) pairs by its own clock: the engine in metrics.csv (iteration,
elapsed_s), the bare loop on stdout every 0.25 s (on CUDA after a device sync). A window opens once a side
has trained `--warmup` seconds and closes `--seconds` later; its rate is iterations over time between the
reports at the two ends. Pairs alternate the order (engine first, then bare first ...); the ratio is the
median of the per-pair ratios. Nothing else should run meanwhile.

    .venv/bin/python bench/engine.py [--device cpu|cuda|auto] [--archs mlp,dcgan28] [--pairs 5]
                                     [--warmup 2] [--seconds 5] [--eval-every 0] [--bare-standard]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere without installing

LR, BETAS, Z_DIM, SEED = 2e-4, (0.5, 0.999), 100, 0
BATCH = {"mlp": 100}  # the issue's own measurement; other architectures 64
REPORT_SECONDS = 0.25  # the bare loop's report interval, as often as the engine flushes its metrics
MIN_ITERATIONS = 3  # the first iterations build kernels and caches: never time them


# ---- the bare loop (this file with --bare, in its own process)


def bare(arch: str, batch_size: int, device_name: str, standard: bool) -> None:
    """The same models and optimiser in a plain loop; prints 'iteration seconds' every REPORT_SECONDS."""
    import torch
    import torch.nn.functional as F

    from gan_core.data import load_dataset
    from gan_core.models import ARCHS, ModelSpec, build_models
    from gan_core.trainer import FUSED_DEVICES, resolve_device

    device = resolve_device(device_name)
    if device.type == "cuda":  # the engine's Trainer sets these for its run: the bare loop gets them too
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    data = load_dataset("digits", ARCHS[arch].image_size)
    torch.manual_seed(SEED)
    generator, discriminator = (m.to(device) for m in build_models(arch, ModelSpec(Z_DIM, data.data_shape, 10)))
    fused = device.type in FUSED_DEVICES
    opt_g = torch.optim.Adam(generator.parameters(), lr=LR, betas=BETAS, fused=fused)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=LR, betas=BETAS, fused=fused)
    x = data.x.to(device)  # (N, C, H, W) uint8
    ones, zeros = torch.ones(batch_size, device=device), torch.zeros(batch_size, device=device)
    bce = F.binary_cross_entropy_with_logits
    t0 = report = time.perf_counter()
    iteration = 0
    while True:
        real = x[torch.randint(len(x), (batch_size,), device=device)].float() / 127.5 - 1.0
        fake = generator(torch.randn(batch_size, Z_DIM, device=device))
        loss_d = bce(discriminator(real)[0], ones) + bce(discriminator(fake.detach())[0], zeros)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        discriminator.requires_grad_(standard)
        loss_g = bce(discriminator(fake)[0], ones)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        discriminator.requires_grad_(True)
        iteration += 1
        if time.perf_counter() - report >= REPORT_SECONDS:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            report = time.perf_counter()
            print(iteration, report - t0, flush=True)


# ---- the two sides as processes, and their reports


class Side:
    """A training process and the latest (iteration, seconds) it reported."""

    def __init__(self, command: list[str], metrics: Path | None = None):
        self.metrics, self.last = metrics, (0, 0.0)
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, start_new_session=True)  # fmt: skip
        if metrics is None:  # the bare loop's stdout
            threading.Thread(target=self._read_stdout, daemon=True).start()

    def _read_stdout(self) -> None:
        for line in self.process.stdout:
            iteration, seconds = line.split()
            self.last = (int(iteration), float(seconds))

    def report(self) -> tuple[int, float]:
        if self.metrics is not None:  # the engine's metrics.csv: its last complete row
            from gan_core.storage import last_row

            row = last_row(self.metrics) if self.metrics.exists() else {}
            if row:
                self.last = (int(row["iteration"]), float(row["elapsed_s"]))
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.process.args[:4]} ended early:\n{self.process.stderr.read()[-2000:]}")
        return self.last

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)  # the engine saves and exits 130; the bare loop just ends
        try:
            return self.process.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait()


def window(side: Side, warmup: float, seconds: float) -> float:
    """it/s between two reports `seconds` apart, once the side has trained `warmup` seconds."""
    while True:
        iteration, t = side.report()
        if iteration >= MIN_ITERATIONS and t >= warmup:
            break
        time.sleep(0.05)
    start = side.report()
    time.sleep(seconds)
    end = side.report()
    while end[0] - start[0] < MIN_ITERATIONS:  # a slow model: wait for enough iterations to count
        time.sleep(0.05)
        end = side.report()
    return (end[0] - start[0]) / (end[1] - start[1])


def engine_rate(arch: str, args, runs: Path, n: int) -> float:
    name = f"{arch}-{n}"
    command = [sys.executable, "-m", "gan_core", "train", "--arch", arch, "--dataset", "digits", "--loss", "bce",
               "--batch-size", str(args.batch[arch]), "--lr-g", str(LR), "--lr-d", str(LR), "--beta1", str(BETAS[0]),
               "--beta2", str(BETAS[1]), "--d-iters", "1", "--z-dim", str(Z_DIM), "--seed", str(SEED),
               "--iterations", "100000000", "--device", args.device, "--runs-dir", str(runs), "--name", name]  # fmt: skip
    if args.eval_every is not None:
        command += ["--eval-every", str(args.eval_every)]
    side = Side(command, metrics=runs / name / "metrics.csv")
    try:
        rate = window(side, args.warmup, args.seconds)
    finally:
        code = side.stop()
    check_engine(runs / name, code)
    return rate


def check_engine(run_dir: Path, code: int) -> None:
    """The point of the comparison is that the engine records as it trains: make sure it did, and stopped well."""
    from gan_core.folder import RunFolder

    folder = RunFolder(run_dir)
    columns, rows = folder.read_metrics()
    state = folder.load_checkpoint()
    if code != 130 or len(rows) != state["iteration"] or len(folder.grids()) < 2:
        raise RuntimeError(f"{run_dir}: exit {code}, {len(rows)} metric rows for {state['iteration']} iterations, "
                           f"{len(folder.grids())} grids")  # fmt: skip
    for path in folder.checkpoint.parent.glob("*.pt"):  # a dcgan28 checkpoint is ~100 MB: no pile-up
        path.unlink()


def bare_rate(arch: str, args) -> float:
    command = [sys.executable, __file__, "--bare", arch, "--device", args.device,
               "--batch-size", str(args.batch[arch])] + (["--bare-standard"] if args.bare_standard else [])  # fmt: skip
    side = Side(command)
    try:
        return window(side, args.warmup, args.seconds)
    finally:
        side.stop()


# ---- main


def compare(arch: str, args, runs: Path) -> dict[str, float]:
    sides = {"engine": lambda n: engine_rate(arch, args, runs, n), "bare": lambda n: bare_rate(arch, args)}
    rates: dict[str, list[float]] = {"engine": [], "bare": []}
    for n in range(args.pairs):
        for name in ("engine", "bare") if n % 2 == 0 else ("bare", "engine"):
            rates[name].append(sides[name](n))
        engine, bare_ = rates["engine"][-1], rates["bare"][-1]
        print(f"  {arch} pair {n + 1}: engine {engine:.1f} it/s, bare {bare_:.1f} it/s, ratio {engine / bare_:.3f}",
              flush=True)  # fmt: skip
    return {
        "engine": statistics.median(rates["engine"]),
        "bare": statistics.median(rates["bare"]),
        "ratio": statistics.median(e / b for e, b in zip(rates["engine"], rates["bare"], strict=True)),
        "ratios": [e / b for e, b in zip(rates["engine"], rates["bare"], strict=True)],
    }


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    parser.add_argument("--archs", default="mlp,dcgan28")
    parser.add_argument("--pairs", type=int, default=5, help="A B A B pairs; medians are reported")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds trained before a window opens")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per side and pair")
    parser.add_argument("--batch-size", type=int, help="default: 100 for mlp (the issue's case), else 64")
    parser.add_argument("--eval-every", type=int, help="engine: sample quality every N (0: off); default its own")
    parser.add_argument("--bare-standard", action="store_true", help="bare loop computes D's grads in G's step")
    parser.add_argument("--bare", metavar="ARCH", help=argparse.SUPPRESS)  # the worker: run the bare loop
    args = parser.parse_args(argv)
    archs = args.archs.split(",")
    args.batch = {arch: args.batch_size or BATCH.get(arch, 64) for arch in archs + ([args.bare] if args.bare else [])}
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.bare:
        signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
        return bare(args.bare, args.batch[args.bare], args.device, args.bare_standard)
    import torch

    from gan_core.trainer import device_label, resolve_device

    device = resolve_device(args.device)
    args.device = device.type
    print(f"torch {torch.__version__}, {device_label(device)}, {torch.get_num_threads()} threads; "
          f"{args.pairs} pairs of {args.warmup:g} s warm-up + {args.seconds:g} s per side; engine eval_every "
          f"{'default' if args.eval_every is None else args.eval_every}; bare loop "
          f"{'standard (D grads in G step)' if args.bare_standard else 'D frozen in G step'}", flush=True)  # fmt: skip
    load_before = os.getloadavg()[0]
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as runs:
        for arch in args.archs.split(","):
            results[arch] = compare(arch, args, Path(runs))
    print(f"\n{'arch':<10} {'batch':>5} {'device':<7} {'bare it/s':>10} {'engine it/s':>12} {'engine/bare':>12}  per pair")
    for arch, r in results.items():
        pairs = ", ".join(f"{x:.2f}" for x in r["ratios"])
        print(f"{arch:<10} {args.batch[arch]:>5} {device.type:<7} {r['bare']:>10.1f} {r['engine']:>12.1f} "
              f"{r['ratio']:>12.3f}  {pairs}")  # fmt: skip
    print(f"load average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
