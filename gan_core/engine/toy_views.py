"""What each network does to 2-D data, for the monitor: the direction G's update moves each shown fake point (the
gradient of G's loss with respect to the point, GAN Lab's arrows) and G's manifold (a regular grid of latents
through G, a warped mesh). Computed on the training thread with the fixed latents' picture, at most once a second."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import Tensor

from .trainer import Trainer

VIEW_SECONDS = 1.0  # the layers are recomputed at most this often (the monitor refreshes once a second)
BUDGET = 0.02  # ... and less often where they would take more than this share of the thread's time
MESH_SIZE = 21  # the manifold's grid of latents: MESH_SIZE x MESH_SIZE
Z_SPAN = 2.0  # latents in [-2, 2] (two standard deviations of the normal prior)


def generator_gradients(trainer: Trainer, fake: Tensor) -> np.ndarray:
    """-d(G's loss)/d(point) at each fake point (n, 2): the way G's update would move it. D in inference mode, as
    the heat-map draws it; a packed D sees `pack` copies of each point, as the heat-map does."""
    discriminator = trainer.discriminator
    dtype = next(discriminator.parameters()).dtype
    points = fake.detach().to(trainer.device, dtype).requires_grad_(True)
    discriminator.eval()
    try:
        out, _ = discriminator(points.repeat(1, trainer.config.pack), None)
        (grad,) = torch.autograd.grad(trainer.loss.g(out).sum(), points)  # per point: independent of n
    finally:
        discriminator.train()
    return (-grad).float().cpu().numpy()


@torch.no_grad()
def manifold(trainer: Trainer, size: int = MESH_SIZE) -> np.ndarray:
    """G's image of a size x size grid of latents over [-Z_SPAN, Z_SPAN]^2 (size, size, 2): with z_dim 2 the whole
    plane G folds; with more, the slice through z's first two coordinates, the rest 0."""
    axis = torch.linspace(-Z_SPAN, Z_SPAN, size, device=trainer.device)
    z1, z2 = torch.meshgrid(axis, axis, indexing="ij")
    z = torch.zeros(size * size, trainer.config.z_dim, device=trainer.device)
    z[:, 0], z[:, 1] = z1.flatten(), z2.flatten()
    generator = trainer.shown_generator
    generator.eval()
    try:
        out = generator(z, None)
    finally:
        generator.train()
    return out.float().cpu().numpy().reshape(size, size, 2)


class ToyViews:
    """The arrows and the mesh, recomputed when asked at most every VIEW_SECONDS, and no more often than keeps
    their CPU time under BUDGET of the thread's (or at once after `stale()`); in between the last ones are handed
    out again, the arrows still on the points they were computed at."""

    def __init__(self, seconds: float = VIEW_SECONDS, budget: float = BUDGET):
        self.seconds, self.budget = seconds, budget
        self._at, self.cost, self.last = -np.inf, 0.0, {}

    def stale(self) -> None:
        self._at = -np.inf

    def due(self) -> bool:
        return time.monotonic() - self._at >= max(self.seconds, self.cost / self.budget)

    def __call__(self, trainer: Trainer, fake: Tensor, iteration: int) -> dict:
        if self.due():
            began, self._at = time.thread_time(), time.monotonic()
            self.last = {"arrows_from": fake.numpy(), "arrows": generator_gradients(trainer, fake),
                         "manifold": manifold(trainer), "views_iteration": iteration}  # fmt: skip
            self.cost = time.thread_time() - began  # CPU time: a busy host's waits are not charged
        return self.last
