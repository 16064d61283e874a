"""A distance between 2-D densities that means something: Kullback-Leibler and Jensen-Shannon divergence between
the real and the generated points, each turned into a density on a grid (a histogram smoothed by a Gaussian of
one cell), in bits. Cheap (a histogram and a 5x5 convolution): measured with the toy metrics, inside their budget."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

BINS = 32  # cells a side over [-bounds, bounds]^2
SMOOTH = 1.0  # the Gaussian's std, in cells
FLOOR = 1e-6  # every cell's least probability: a KL with an empty cell stays finite


def _kernel(smooth: float) -> Tensor:
    offsets = torch.arange(-2, 3, dtype=torch.float64)
    weights = torch.exp(-0.5 * (offsets / smooth) ** 2)
    weights = weights / weights.sum()
    return torch.outer(weights, weights)[None, None]  # (1, 1, 5, 5)


def density(points: Tensor, bounds: float, bins: int = BINS, smooth: float = SMOOTH) -> Tensor:
    """The points' share in each cell (bins * bins, smoothed) and, last, the share outside the square: a
    probability vector of bins * bins + 1 (float64) with FLOOR in every entry before renormalising."""
    points = points.detach().double().cpu()
    cells = ((points + bounds) / (2 * bounds) * bins).floor().long()  # (n, 2): column (x), row (y)
    inside = ((cells >= 0) & (cells < bins)).all(1)
    index = cells[inside, 1] * bins + cells[inside, 0]
    counts = torch.bincount(index, minlength=bins * bins).double().reshape(1, 1, bins, bins)
    smoothed = F.conv2d(counts, _kernel(smooth), padding=2).flatten() if smooth > 0 else counts.flatten()
    smoothed = smoothed * (counts.sum() / smoothed.sum().clamp_min(1e-12))  # what leaked past an edge, back
    outside = torch.tensor([float(len(points) - int(inside.sum()))], dtype=torch.float64)
    vector = torch.cat([smoothed, outside])
    vector = vector / max(len(points), 1) + FLOOR
    return vector / vector.sum()


def kl_bits(p: Tensor, q: Tensor) -> float:
    """KL(p || q) in bits of two probability vectors (no zero entries)."""
    return float((p * (p / q).log2()).sum())


def js_bits(p: Tensor, q: Tensor) -> float:
    """Jensen-Shannon divergence in bits: 0 for equal densities, 1 for disjoint ones."""
    m = (p + q) / 2
    return 0.5 * kl_bits(p, m) + 0.5 * kl_bits(q, m)


class GridDivergence:
    """The real points' density, computed once; called with generated points, their KL (real || generated) and
    JS divergence, in bits."""

    def __init__(self, real: Tensor, bounds: float):
        self.bounds, self.real = bounds, density(real, bounds)

    def __call__(self, fake: Tensor) -> dict[str, float]:
        generated = density(fake, self.bounds)
        return {"kl": kl_bits(self.real, generated), "js": js_bits(self.real, generated)}
