"""Generate from a saved run: load its generator from the checkpoint, sample, interpolate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import storage
from .config import ConfigError, RunConfig
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


def load_sampler(run_dir: str | Path, device: str | torch.device = "cpu") -> Sampler:
    """The generator of a run's latest checkpoint (checkpoints/last.pt)."""
    run_dir = Path(run_dir)
    config, _ = storage.read_config(run_dir)
    path = run_dir / "checkpoints" / "last.pt"
    if not path.is_file():
        raise ConfigError(f"{run_dir} has no checkpoint yet (checkpoints/last.pt)")
    state = storage.load_checkpoint(path, device)
    spec = ModelSpec(**{**state["spec"], "data_shape": tuple(state["spec"]["data_shape"])})
    generator, _ = build_models(config.arch, spec)
    generator.load_state_dict(state["trainer"]["generator"])
    generator.to(device).eval()
    labels = state["trainer"]["fixed_labels"]
    return Sampler(
        config=config, generator=generator, spec=spec, iteration=int(state["iteration"]),
        fixed_z=state["trainer"]["fixed_z"].to(device), fixed_labels=labels.to(device) if labels is not None else None,
        bounds=state.get("bounds"), device=torch.device(device),
    )  # fmt: skip


def latents(sampler: Sampler, n: int, seed: int = 0, class_index: int | None = None):
    """n random latents (and labels) from a seed; conditional models cycle through the classes."""
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
