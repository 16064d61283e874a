"""Why a run trained slower in a background thread: `Trainer.iteration` timed in the thread layouts a process
can have, each layout in its own fresh process, rounds alternating the order, medians reported.

Layouts (the data set is loaded with torch ops before training, as every driver does):
  main          load and train in the main thread (the CLI since issue 13)
  later         load in the main thread, train in a second thread while the main thread lives on (the CLI before)
  later-exited  load in a helper thread that has ended, train in a second thread (an app run: Streamlit's
                script thread loads and ends)
  main-1        the main thread's torch ops on 1 intra-op thread, training in a second thread on all of them
  idle-pool     train in the main thread while a second, idle thread keeps the OpenMP pool it used once
  passive       `main` with OMP_WAIT_POLICY=PASSIVE (workers sleep at once instead of spinning)

    .venv/bin/python bench/threads.py [--arch mlp] [--batch-size 100] [--rounds 5] [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LAYOUTS = ("main", "later", "later-exited", "main-1", "idle-pool", "passive")


def rate(arch: str, batch_size: int, seconds: float) -> float:
    """it/s of Trainer.iteration in the calling thread, after a short warm-up."""
    import torch

    from gan_core.engine.data import load_dataset
    from gan_core.engine.presets import resolve
    from gan_core.engine.trainer import Trainer

    config, knobs = resolve(None, arch=arch, dataset="digits", batch_size=batch_size, device="cpu")
    trainer = Trainer(config, knobs, load_dataset("digits", 28), torch.device("cpu"))
    it = 0
    for it in range(1, 6):
        trainer.iteration(knobs, it)
    t0, start = time.perf_counter(), it
    while time.perf_counter() - t0 < seconds:
        it += 1
        trainer.iteration(knobs, it)
    return (it - start) / (time.perf_counter() - t0)


def in_thread(target, *args):
    out = []
    thread = threading.Thread(target=lambda: out.append(target(*args)))
    thread.start()
    thread.join()
    return out[0]


def layout(name: str, arch: str, batch_size: int, seconds: float) -> float:
    import torch

    from gan_core.engine.data import load_dataset

    if name in ("main", "passive"):
        load_dataset("digits", 28)
        return rate(arch, batch_size, seconds)
    if name == "later":
        load_dataset("digits", 28)
        return in_thread(rate, arch, batch_size, seconds)
    if name == "later-exited":
        in_thread(load_dataset, "digits", 28)
        return in_thread(rate, arch, batch_size, seconds)
    if name == "main-1":
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        load_dataset("digits", 28)

        def train():
            torch.set_num_threads(threads)
            return rate(arch, batch_size, seconds)

        return in_thread(train)
    if name == "idle-pool":
        done = threading.Event()
        helper = threading.Thread(target=lambda: (torch.randn(512, 512) @ torch.randn(512, 512), done.wait()))
        helper.start()
        try:
            return rate(arch, batch_size, seconds)
        finally:
            done.set()
            helper.join()
    raise ValueError(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="mlp")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--layouts", default=",".join(LAYOUTS))
    parser.add_argument("--layout", help=argparse.SUPPRESS)  # the worker
    args = parser.parse_args()
    if args.layout:
        print(layout(args.layout, args.arch, args.batch_size, args.seconds))
        return
    names = args.layouts.split(",")
    rates: dict[str, list[float]] = {name: [] for name in names}
    for i in range(args.rounds):
        for name in names if i % 2 == 0 else names[::-1]:
            env = {**os.environ, **({"OMP_WAIT_POLICY": "PASSIVE"} if name == "passive" else {})}
            command = [sys.executable, __file__, "--layout", name, "--arch", args.arch, "--batch-size",
                       str(args.batch_size), "--seconds", str(args.seconds)]  # fmt: skip
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True, cwd=ROOT)
            rates[name].append(float(out.stdout.strip().splitlines()[-1]))
        print(f"  round {i + 1}: " + ", ".join(f"{n} {rates[n][-1]:.1f}" for n in names), flush=True)
    base = statistics.median(rates[names[0]])
    print(
        f"\n{args.arch}, batch {args.batch_size}, {os.cpu_count()} CPUs, {args.rounds} rounds; it/s (median)"
    )
    for name in names:
        median = statistics.median(rates[name])
        print(
            f"{name:<14} {median:8.1f}  {median / base:5.2f}x {names[0]}   ({', '.join(f'{r:.1f}' for r in rates[name])})"
        )


if __name__ == "__main__":
    main()
