"""Generate from a saved run: load its generator from the checkpoint, sample, interpolate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import ConfigError, RunConfig
from ..folder.run_folder import CheckpointError, RunFolder
from .data import load_dataset
from .export import picture
from .models import ARCHS, ModelSpec, build_models


@dataclass
class Sampler:
    """A run's generator in inference mode, with what is needed to feed it."""

    config: RunConfig
    generator: nn.Module
    spec: ModelSpec
    iteration: int
    fixed_z: torch.Tensor
    fixed_labels: torch.Tensor | None
    bounds: float | None  # 2-D data: half-width of the picture
    device: torch.device

    @property
    def conditional(self) -> bool:
        return ARCHS[self.config.arch].conditional

    @property
    def points(self) -> bool:
        return len(self.spec.data_shape) == 1

    def picture(self, samples: torch.Tensor, nrow: int | None = None) -> np.ndarray:
        """Samples drawn as training draws them (2-D: over the run's real points)."""
        real = load_dataset(self.config.dataset).real_points().numpy() if self.points else None
        return picture(samples, nrow, real=real, bounds=self.bounds or 3.0)


def load_sampler(run_dir: str | Path, device: str | torch.device = "cpu") -> Sampler:
    """The generator of a run's latest checkpoint; ConfigError (CheckpointError) says why it cannot be had."""
    folder = RunFolder.open(run_dir)
    config, _ = folder.read_config()
    state = folder.load_checkpoint(device)
    try:
        spec = ModelSpec.saved(state["spec"])
        generator, _ = build_models(config.arch, spec)
        # a run that showed and measured the moving average of G's weights: so do its exports
        average = state["trainer"].get("generator_ema")
        generator.load_state_dict(
            state["trainer"]["generator"]
            if average is None
            else {k.removeprefix("module."): v for k, v in average.items() if k != "n_averaged"}
        )
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{folder.name}'s checkpoint does not hold a {config.arch} generator ({first})"
        ) from None
    generator.to(device).eval()
    labels = state["trainer"]["fixed_labels"]
    return Sampler(
        config=config, generator=generator, spec=spec, iteration=int(state["iteration"]),
        fixed_z=state["trainer"]["fixed_z"].to(device), fixed_labels=labels.to(device) if labels is not None else None,
        bounds=state.get("bounds"), device=torch.device(device),
    )  # fmt: skip


def latents(sampler: Sampler, n: int, seed: int = 0, class_index: int | None = None):
    """n random latents (and labels) from a seed; conditional models cycle through the classes."""
    if class_index is not None and not sampler.conditional:
        raise ConfigError(
            f"class {class_index}: only conditional runs draw a chosen class; this run's arch "
            f"{sampler.config.arch!r} is unconditional"
        )
    if class_index is not None and not 0 <= class_index < sampler.spec.num_classes:
        raise ConfigError(f"class {class_index} is out of range: allowed [0, {sampler.spec.num_classes - 1}]")
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, sampler.spec.z_dim, generator=gen)
    labels = None
    if sampler.conditional:
        labels = (
            torch.full((n,), class_index)
            if class_index is not None
            else torch.arange(n) % sampler.spec.num_classes
        )
    return z, labels


@torch.no_grad()
def generate(
    sampler: Sampler, z: torch.Tensor, labels: torch.Tensor | None = None, batch: int = 1000
) -> torch.Tensor:
    """Generator output for latents z (CPU float32; images in [-1, 1]), computed in batches."""
    out = []
    for i in range(0, len(z), batch):
        part = labels[i : i + batch].to(sampler.device) if labels is not None else None
        out.append(sampler.generator(z[i : i + batch].to(sampler.device), part).float().cpu())
    samples = torch.cat(out)
    return samples if sampler.points else samples.clamp(-1, 1)


def interpolate(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
    """Spherical interpolation between two latents (Gaussian latents keep their norm along the path)."""
    t = torch.linspace(0, 1, steps)[:, None]
    a, b = z0 / z0.norm(), z1 / z1.norm()
    omega = torch.arccos((a * b).sum().clamp(-1 + 1e-7, 1 - 1e-7))
    path = (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)
    return path
