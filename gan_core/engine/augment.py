"""Differentiable augmentation (DiffAugment, Zhao et al. 2020): the discriminator sees real and generated images
shifted and with a square cut out, the same random transforms on both, and the generator's gradient flows
through them. With little data (the 1,797 `digits`, a folder of a few hundred images) D can no longer
simply learn the training set by heart."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

SHIFT = 1 / 8  # the paper's ratios: shift by up to 1/8 of the side,
CUTOUT = 1 / 2  # cut out a square of half the side


def translate(x: Tensor, rng: torch.Generator) -> Tensor:
    """Shift each image (B, C, H, W) by up to 1/8 of its size in each direction, zero-filled."""
    b, _, h, w = x.shape
    sy, sx = max(1, int(h * SHIFT)), max(1, int(w * SHIFT))
    dy = torch.randint(-sy, sy + 1, (b, 1), generator=rng, device=x.device)
    dx = torch.randint(-sx, sx + 1, (b, 1), generator=rng, device=x.device)
    padded = F.pad(x, [sx, sx, sy, sy])  # (B, C, H + 2sy, W + 2sx)
    rows = torch.arange(h, device=x.device) + sy - dy  # (B, H): output row i reads padded row i + sy - dy
    cols = torch.arange(w, device=x.device) + sx - dx  # (B, W)
    batch = torch.arange(b, device=x.device)[:, None, None]
    shifted = padded[batch, :, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return shifted.permute(0, 3, 1, 2)


def cutout(x: Tensor, rng: torch.Generator) -> Tensor:
    """Zero a square of half the image's side at a random centre in each image (clipped at the border)."""
    b, _, h, w = x.shape
    ch, cw = int(h * CUTOUT), int(w * CUTOUT)
    cy = torch.randint(0, h + 1 - ch % 2, (b, 1, 1), generator=rng, device=x.device)
    cx = torch.randint(0, w + 1 - cw % 2, (b, 1, 1), generator=rng, device=x.device)
    y0, x0 = (cy - ch // 2).clamp(0, h), (cx - cw // 2).clamp(0, w)
    y1, x1 = (cy + (ch + 1) // 2).clamp(0, h), (cx + (cw + 1) // 2).clamp(0, w)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    hole = (ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1)  # (B, H, W)
    return x * (~hole)[:, None].to(x.dtype)


def augment(x: Tensor, policy: str, rng: torch.Generator) -> Tensor:
    """x (B, C, H, W) under `policy` (one of AUGMENTS); 'none' returns x itself."""
    if policy == "none":
        return x
    x = translate(x, rng)
    return cutout(x, rng) if policy == "translation+cutout" else x
