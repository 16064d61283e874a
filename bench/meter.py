"""What bench/engine.py reads beside the rates: the GPU's busy share while a side runs, and the FLOP an iteration
costs (so a rate implies a model FLOP utilisation)."""

from __future__ import annotations

import statistics
import threading
import time

import torch

SAMPLE_SECONDS = 0.05
# dense bf16 tensor-core peak, TFLOP/s, by device name (the vendor's figure; fp32 runs use TF32 at half of it)
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


class BusyMeter:
    """Samples the GPU's utilisation (NVML's: the share of the last sample period in which any kernel ran, through
    torch.cuda.utilization) in a background thread while entered; `share` is their mean, None without CUDA."""

    def __init__(self, device: torch.device):
        self.available = device.type == "cuda" and self._readable(device)
        self.device, self.samples = device, []
        self._stop = threading.Event()

    @staticmethod
    def _readable(device: torch.device) -> bool:
        try:
            torch.cuda.utilization(device)
            return True
        except Exception:  # no NVML bindings (nvidia-ml-py), or a driver that refuses: no share, say so
            return False

    def __enter__(self) -> BusyMeter:
        self.samples, self._stop = [], threading.Event()
        if self.available:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.samples.append(torch.cuda.utilization(self.device) / 100)
            time.sleep(SAMPLE_SECONDS)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self.available:
            self._thread.join()

    @property
    def share(self) -> float | None:
        return statistics.fmean(self.samples) if self.samples else None


def iteration_flops(arch: str, batch_size: int, z_dim: int = 100) -> float:
    """FLOP of one bare-loop iteration on `digits` (D on real and fake, forward and backward; G forward, and backward
    through a frozen D), counted by torch's FlopCounterMode on meta tensors: no memory, no time."""
    from torch.utils.flop_counter import FlopCounterMode

    from gan_core.engine.models import ARCHS, ModelSpec, build_models

    shape = (1, ARCHS[arch].image_size, ARCHS[arch].image_size)
    with torch.device("meta"):
        generator, discriminator = build_models(arch, ModelSpec(z_dim, shape, 10))
        z, real = torch.randn(batch_size, z_dim), torch.randn(batch_size, *shape)
        labels = torch.zeros(batch_size, dtype=torch.long)
        with FlopCounterMode(display=False) as counter:
            fake = generator(z, labels)
            (
                discriminator(real, labels)[0].mean() + discriminator(fake.detach(), labels)[0].mean()
            ).backward()
            discriminator.requires_grad_(False)
            discriminator(fake, labels)[0].mean().backward()
    return float(counter.get_total_flops())


def peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_TFLOPS.items() if key in name), None)
