"""Engine against a bare PyTorch loop, each as its own process: `python -m gan_core train` vs a plain loop.

Both sides train the same architecture (`gan_core.engine.models.build_models`) on the offline `digits` set, BCE, Adam
2e-4 (0.5, 0.999) with the fused step, one D and one G update an iteration, the same batch and torch's default
thread count, each in a process started the way a user starts it. The engine side is the CLI with its defaults
(metrics every iteration into metrics.csv, a grid every 100 iterations, a checkpoint every 1000, sample-quality
metrics on their automatic ~2% budget, their classifier cached beforehand as after a first run). The bare side is this file run with `--bare`: no metrics, no host
reads, D frozen in G's step as the engine does (`--bare-standard` computes D's weight gradients there and drops
them, as the textbook loop does).

A/B in slots. On a shared VM the speed of a 2-s stretch swings by +-25% with the host's load, whatever runs.
So both processes are started together, and only one runs at a time: the other is held with SIGSTOP. Slots
alternate A B B A ... (`--seconds` each, after `--settle` seconds back); a slot's rate is iterations over time
by the side's own clock between two of its reports inside the slot (the engine's metrics.csv rows, the bare
loop's stdout lines every 0.25 s, on CUDA after a device sync). Each pair of neighbouring slots gives a ratio;
the figure is the median over `--pairs` pairs in each of `--processes` fresh pairs of processes.

Speed options (`--options precision=bf16,channels-last,compile=default,no-fused`): each is one more engine process
with that `train` flag (`name=value` -> `--name value`, `name` -> `--name`), in the same rotation; with more than two
sides a round runs each once, the order reversed every other round, and an option's ratio is to the plain engine in
the same round. On CUDA the GPU's busy share of each slot is sampled from NVML (bench/meter.py), and the FLOP an
iteration costs gives the engine's TFLOP/s and its share of the card's peak (MFU).

    .venv/bin/python bench/engine.py [--device cpu|cuda|auto] [--archs mlp,dcgan28] [--pairs 10]
                                     [--processes 2] [--seconds 3] [--eval-every 0] [--bare-standard]
                                     [--options precision=bf16,channels-last] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
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

from meter import BusyMeter, iteration_flops, peak_tflops  # noqa: E402  (bench/meter.py)

from gan_core.config import DEVICES  # noqa: E402
from gan_core.folder.run_folder import RunFolder  # noqa: E402

LR, BETAS, Z_DIM, SEED = 2e-4, (0.5, 0.999), 100, 0
# mlp: the issue's own measurement; cdcgan, dcgan64: their presets' (tf-cdcgan, matlab-dcgan); others 64 (cntk-dcgan's
# on digits)
BATCH = {"mlp": 100, "cdcgan": 100, "dcgan64": 128}
REPORT_SECONDS = 0.25  # the bare loop's report interval, as often as the engine flushes its metrics
MIN_ITERATIONS = 3  # the first iterations build kernels and caches: never time them


# ---- the bare loop (this file with --bare, in its own process)


def bare(arch: str, batch_size: int, device_name: str, standard: bool, iterations: int | None = None) -> None:
    """The same models and optimiser in a plain loop; prints 'iteration seconds' every REPORT_SECONDS; ends
    after `iterations` (a whole-process timing) or never."""
    import torch
    import torch.nn.functional as F

    from gan_core.engine.data import load_dataset
    from gan_core.engine.devices import FUSED_DEVICES, resolve_device
    from gan_core.engine.models import ARCHS, ModelSpec, build_models

    device = resolve_device(device_name)
    if device.type == "cuda":  # the engine's Trainer sets these for its run: the bare loop gets them too
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    data = load_dataset("digits", ARCHS[arch].image_size)
    torch.manual_seed(SEED)
    generator, discriminator = (
        m.to(device) for m in build_models(arch, ModelSpec(Z_DIM, data.data_shape, 10))
    )
    fused = device.type in FUSED_DEVICES
    opt_g = torch.optim.Adam(generator.parameters(), lr=LR, betas=BETAS, fused=fused)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=LR, betas=BETAS, fused=fused)
    x = data.x.to(device)  # (N, C, H, W) uint8
    ones, zeros = torch.ones(batch_size, device=device), torch.zeros(batch_size, device=device)
    bce = F.binary_cross_entropy_with_logits
    t0 = report = time.perf_counter()
    iteration = 0
    while iteration != iterations:
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
    """A training process, the latest (iteration, seconds) it reported, and SIGSTOP/SIGCONT to hold it."""

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
            from gan_core.folder.storage import last_row

            row = last_row(self.metrics) if self.metrics.exists() else {}
            if row:
                self.last = (int(row["iteration"]), float(row["elapsed_s"]))
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.process.args[:4]} ended early:\n{self.process.stderr.read()[-2000:]}")
        return self.last

    def hold(self) -> None:
        os.killpg(self.process.pid, signal.SIGSTOP)

    def go(self) -> None:
        os.killpg(self.process.pid, signal.SIGCONT)

    def warm_up(self, seconds: float) -> None:
        """Run alone until it has trained `seconds` by its own clock (and a few iterations), then hold."""
        self.go()
        while self.report()[0] < MIN_ITERATIONS or self.report()[1] < seconds:
            time.sleep(0.05)
        self.hold()

    def slot(self, settle: float, seconds: float, meter: BusyMeter) -> float:
        """Run alone for a slot; it/s between two reports made inside it (the GPU's busy share in `meter`)."""
        self.go()
        time.sleep(settle)  # back to speed, and a report written since it went on
        start = self.report()
        with meter:
            time.sleep(seconds)
        end = self.report()
        while end[0] - start[0] < MIN_ITERATIONS:  # a slow model: wait for enough iterations to count
            time.sleep(0.05)
            end = self.report()
        self.hold()
        return (end[0] - start[0]) / (end[1] - start[1])

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)  # the engine saves and exits 130; the bare loop just ends
        self.go()
        try:
            return self.process.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait()


def engine_side(arch: str, args, runs: Path, name: str, flags: tuple[str, ...] = ()) -> Side:
    command = [sys.executable, "-m", "gan_core", "train", "--arch", arch, "--dataset", "digits", "--loss", "bce",
               "--batch-size", str(args.batch[arch]), "--lr-g", str(LR), "--lr-d", str(LR), "--beta1", str(BETAS[0]),
               "--beta2", str(BETAS[1]), "--d-iters", "1", "--z-dim", str(Z_DIM), "--seed", str(SEED),
               "--iterations", "100000000", "--device", args.device, "--runs-dir", str(runs), "--name", name]  # fmt: skip
    if args.eval_every is not None:
        command += ["--eval-every", str(args.eval_every)]
    return Side(command + list(flags), metrics=RunFolder(runs / name).metrics_path)


def option_flags(option: str) -> tuple[str, ...]:
    """'precision=bf16' -> ('--precision', 'bf16'); 'channels-last' -> ('--channels-last',)."""
    name, _, value = option.partition("=")
    return (f"--{name}", value) if value else (f"--{name}",)


def bare_side(arch: str, args) -> Side:
    command = [sys.executable, __file__, "--bare", arch, "--device", args.device,
               "--batch-size", str(args.batch[arch])] + (["--bare-standard"] if args.bare_standard else [])  # fmt: skip
    return Side(command)


def check_engine(run_dir: Path, code: int) -> None:
    """The point of the comparison is that the engine records as it trains: make sure it did, and stopped well."""
    folder = RunFolder(run_dir)
    columns, rows = folder.read_metrics()
    state = folder.load_checkpoint()
    if code != 130 or len(rows) != state["iteration"] or len(folder.grids()) < 2:
        raise RuntimeError(f"{run_dir}: exit {code}, {len(rows)} metric rows for {state['iteration']} iterations, "
                           f"{len(folder.grids())} grids")  # fmt: skip
    for path in folder.checkpoint.parent.glob("*.pt"):  # a dcgan28 checkpoint is ~100 MB: no pile-up
        path.unlink()


def start_sides(arch: str, args, runs: Path, p: int) -> dict[str, Side]:
    """The bare loop, the engine, and the engine with each option, started together."""
    sides = {"bare": bare_side(arch, args), "engine": engine_side(arch, args, runs, f"{arch}-{p}")}
    for n, option in enumerate(args.options):
        sides[option] = engine_side(arch, args, runs, f"{arch}-{p}-option{n}", option_flags(option))
    return sides


def reference(key: str) -> str | None:
    """What a side's ratio is to: the engine to the bare loop, an option to the plain engine."""
    return {"bare": None, "engine": "bare"}.get(key, "engine")


def rotate(
    arch: str, p: int, sides: dict[str, Side], args, meter: BusyMeter, rates: dict, busy: dict
) -> None:
    """Rounds of one slot per side, alone: A B, B A ... (with more sides A B C, C B A ...)."""
    keys = list(sides)
    for n in range(args.pairs):
        for key in keys if n % 2 == 0 else keys[::-1]:
            rates[key].append(sides[key].slot(args.settle, args.seconds, meter))
            busy[key].append(meter.share)
        shown = [f"{key} {rates[key][-1]:.1f} it/s" + (f" ({rates[key][-1] / rates[reference(key)][-1]:.3f})"
                                                      if reference(key) else "") for key in keys]  # fmt: skip
        print(f"  {arch} processes {p + 1}, round {n + 1}: {', '.join(shown)}", flush=True)


def compare(arch: str, args, runs: Path, meter: BusyMeter) -> dict:
    rates: dict[str, list[float]] = {}
    busy: dict[str, list[float | None]] = {}
    for p in range(args.processes):
        sides = start_sides(arch, args, runs, p)
        for key in sides:
            rates.setdefault(key, [])
            busy.setdefault(key, [])
        names = {key: side.metrics.parent.name for key, side in sides.items() if side.metrics is not None}
        try:
            for side in sides.values():  # all import and load the data meanwhile; then each warms up alone
                while side.report()[0] == 0:
                    time.sleep(0.05)
                side.hold()
            for side in sides.values():
                side.warm_up(args.warmup)
            rotate(arch, p, sides, args, meter, rates, busy)
        finally:
            codes = {key: side.stop() for key, side in sides.items()}
        for key, name in names.items():
            check_engine(runs / name, codes[key])
    return {key: summarise(key, rates, busy[key]) for key in rates}


def summarise(key: str, rates: dict[str, list[float]], busy: list[float | None]) -> dict:
    """A side's median rate, its ratio to its reference (median over the rounds, with quartiles), GPU busy share."""
    result = {"its": statistics.median(rates[key]), "rounds": len(rates[key])}
    shares = [b for b in busy if b is not None]
    result["busy"] = statistics.median(shares) if shares else None
    if reference(key):
        ratios = [a / b for a, b in zip(rates[key], rates[reference(key)], strict=True)]
        quartiles = (
            statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else [ratios[0]] * 3
        )
        result |= {"ratio": statistics.median(ratios), "quartiles": (quartiles[0], quartiles[2]),
                   "to": reference(key)}  # fmt: skip
    return result


def table(arch: str, batch: int, device, results: dict) -> list[str]:
    """The arch's rows: rate, ratio to its reference, GPU busy share, and the TFLOP/s and MFU the rate implies."""
    flops, peak = iteration_flops(arch, batch), peak_tflops(device)
    lines = []
    for key, r in results.items():
        ratio = (f"{r['ratio']:>7.3f} to {r['to']:<6} {r['quartiles'][0]:.3f}-{r['quartiles'][1]:.3f}"
                 if "ratio" in r else " " * 29)  # fmt: skip
        busy = "-" if r["busy"] is None else f"{r['busy']:.0%}"
        tflops = r["its"] * flops / 1e12
        mfu = "-" if peak is None else f"{tflops / peak:.1%}"
        lines.append(
            f"{arch:<8} {batch:>5} {key:<24} {r['its']:>9.1f} {ratio} {busy:>5} {tflops:>8.2f} {mfu:>6}"
        )
        r |= {
            "tflops": tflops,
            "mfu": None if peak is None else tflops / peak,
            "gflop_per_iteration": flops / 1e9,
        }
    return lines


# ---- main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=DEVICES)
    parser.add_argument("--archs", default="mlp,dcgan28")
    parser.add_argument(
        "--pairs", type=int, default=10, help="rounds of slots (A/B pairs) per set of processes"
    )
    parser.add_argument("--processes", type=int, default=2, help="fresh sets of processes")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds each side trains before any slot")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds of a slot")
    parser.add_argument(
        "--settle", type=float, default=0.5, help="seconds a side runs in a slot before it counts"
    )
    parser.add_argument(
        "--batch-size", type=int, help="default: 100 for mlp and cdcgan, 128 for dcgan64, else 64"
    )
    parser.add_argument(
        "--eval-every", type=int, help="engine: sample quality every N (0: off); default its own"
    )
    parser.add_argument(
        "--bare-standard", action="store_true", help="bare loop computes D's grads in G's step"
    )
    parser.add_argument(
        "--bare", metavar="ARCH", help="run the bare loop alone (the worker this bench starts)"
    )
    parser.add_argument("--bare-iterations", type=int, help="with --bare: end after this many iterations")
    parser.add_argument("--options", default="", help="engine options to time on and off, comma-separated train "
                        "flags without their dashes: precision=bf16,channels-last,compile=default,no-fused")  # fmt: skip
    parser.add_argument("--json", metavar="PATH", help="also write the results here, after each architecture")
    args = parser.parse_args(argv)
    args.options = [option for option in args.options.split(",") if option]
    archs = args.archs.split(",")
    args.batch = {
        arch: args.batch_size or BATCH.get(arch, 64) for arch in archs + ([args.bare] if args.bare else [])
    }
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.bare:
        signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
        return bare(args.bare, args.batch[args.bare], args.device, args.bare_standard, args.bare_iterations)
    import torch

    from gan_core.engine.devices import device_label, resolve_device

    device = resolve_device(args.device)
    args.device = device.type
    print(f"torch {torch.__version__}, {device_label(device)}, {torch.get_num_threads()} threads; "
          f"{args.processes} x {args.pairs} pairs of {args.seconds:g}-s slots; engine eval_every "
          f"{'default' if args.eval_every is None else args.eval_every}; bare loop "
          f"{'standard (D grads in G step)' if args.bare_standard else 'D frozen in G step'}", flush=True)  # fmt: skip
    if args.eval_every != 0:  # as after a first run: the classifier of the quality metrics is cached
        from gan_core.config import RunConfig
        from gan_core.engine.data import load_dataset
        from gan_core.quality.metrics import load_or_train_classifier

        load_or_train_classifier(load_dataset("digits", 28), device, ROOT / RunConfig().data_dir)
    load_before = os.getloadavg()[0]
    results, lines = {}, []
    meter = BusyMeter(device)
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as runs:
        for arch in args.archs.split(
            ","
        ):  # each arch's table as soon as it is measured: a cut run keeps them
            results[arch] = compare(arch, args, Path(runs), meter)
            lines += table(arch, args.batch[arch], device, results[arch])
            print("\n".join([HEADER, *lines]), flush=True)
            if args.json:
                Path(args.json).write_text(json.dumps({"device": device_label(device), "results": results,
                                                       "batch": args.batch}, indent=1))  # fmt: skip
    print(f"{device_label(device)}; GPU busy: {'NVML utilisation' if meter.available else 'not measured here'}; "
          f"load average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, {os.cpu_count()} CPUs")  # fmt: skip


HEADER = (f"\n{'arch':<8} {'batch':>5} {'side':<24} {'it/s':>9} {'ratio':>7} {'to':<6} {'quartiles':<12} {'busy':>5} "
          f"{'TFLOP/s':>8} {'MFU':>6}")  # fmt: skip


if __name__ == "__main__":
    main()
