"""Images out of a run: sample grids, 2-D scatter pictures, PNG/ZIP/GIF/NPY exports."""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torchvision.utils import make_grid

from ..config import ConfigError
from ..folder.storage import png_bytes

# ---- images


def to_uint8(samples: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> uint8 (N, H, W, C)."""
    x = ((samples.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def grid_image(samples: torch.Tensor, nrow: int | None = None) -> np.ndarray:
    """A tile of samples in [-1, 1] as uint8 (H, W, 3), nrow images a row (default: a square)."""
    nrow = nrow or math.ceil(math.sqrt(len(samples)))
    grid = make_grid(samples.detach().float().cpu().clamp(-1, 1), nrow=nrow, padding=2, normalize=True,
                     value_range=(-1, 1))  # fmt: skip
    return grid.mul(255).add(0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def picture(
    samples: torch.Tensor, nrow: int | None = None, real: np.ndarray | None = None,
    field: np.ndarray | None = None, bounds: float = 3.0,
) -> np.ndarray:  # fmt: skip
    """Generator output as one uint8 (H, W, 3) picture: images as a grid (nrow a row), 2-D points as a
    scatter over the real points (and D's field, when given). Every grid the project shows or saves is this."""
    if samples.dim() == 2:
        real = np.zeros((0, 2), np.float32) if real is None else np.asarray(real)
        return points_image(real, samples.detach().float().cpu().numpy(), field, bounds)
    return grid_image(samples, nrow)


def _colour(field: np.ndarray) -> np.ndarray:
    """D's probability -> RGB: purple where D says fake, green where it says real (as GAN Lab)."""
    fake, real = np.array([222, 203, 228], np.float32), np.array([204, 235, 197], np.float32)
    t = np.nan_to_num(field[..., None].astype(np.float32), nan=0.5)  # a diverged D has no opinion
    return (fake * (1 - t) + real * t).astype(np.uint8)


def points_image(real: np.ndarray, fake: np.ndarray, field: np.ndarray | None, bounds: float,
                 size: int = 400) -> np.ndarray:  # fmt: skip
    """2-D data: D's output as a heat-map, real points in green, generated ones in purple; uint8 (H, W, 3)."""
    if field is None:
        canvas = Image.new("RGB", (size, size), "white")
    else:  # field rows run from y = -bounds (bottom of the picture) to +bounds
        canvas = Image.fromarray(_colour(np.flipud(field))).resize((size, size), Image.BILINEAR)
    draw = ImageDraw.Draw(canvas)
    for points, colour in ((real, (27, 120, 55)), (fake, (118, 42, 131))):
        pixels = (np.asarray(points, np.float32) / bounds + 1) * size / 2
        for x, y in pixels[:, :2]:
            draw.ellipse((x - 2, size - y - 2, x + 2, size - y + 2), fill=colour)
    return np.asarray(canvas)


# ---- exports


def zip_bytes(samples: torch.Tensor | np.ndarray, progress: Callable[[float], None] | None = None) -> bytes:
    """Each sample as its own PNG (sample_00000.png ...) in one ZIP; samples in [-1, 1] or already uint8 (N, H, W, C)."""
    images = samples if isinstance(samples, np.ndarray) else to_uint8(samples)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # PNGs are compressed already
        for i, image in enumerate(images):
            archive.writestr(f"sample_{i:05d}.png", png_bytes(image))
            if progress is not None and (i % 100 == 0 or i == len(images) - 1):
                progress((i + 1) / len(images))
    return buffer.getvalue()


def gif_bytes(grids: list[tuple[int, Path]], max_frames: int = 300, frame_ms: int = 200) -> bytes:
    """A run's saved grids, (iteration, path) in order, as an animated GIF captioned with each iteration."""
    if not grids:
        raise ConfigError(
            "the run has no sample grids yet: one is saved at iteration 1 and every sample_every"
        )
    if len(grids) > max_frames:
        grids = [grids[round(i)] for i in np.linspace(0, len(grids) - 1, max_frames)]
    frames = [_captioned(Image.open(path).convert("RGB"), f"Iteration {it}") for it, path in grids]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=frame_ms, loop=0)
    return buffer.getvalue()


def _captioned(image: Image.Image, caption: str) -> Image.Image:
    framed = Image.new("RGB", (image.width, image.height + 16), "white")
    framed.paste(image, (0, 16))
    ImageDraw.Draw(framed).text((4, 2), caption, fill="black")
    return framed


def npy_bytes(samples: torch.Tensor) -> bytes:
    """float32 samples as .npy: images (N, C, H, W) in [-1, 1], or 2-D points (N, 2) as they are."""
    samples = samples.detach().float().cpu()
    buffer = io.BytesIO()
    np.save(buffer, (samples.clamp(-1, 1) if samples.dim() > 2 else samples).numpy())
    return buffer.getvalue()
