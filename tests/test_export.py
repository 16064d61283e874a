"""Pictures out: a grid PNG keeps every pixel, grey grids as one channel."""

import io

import numpy as np
import torch
from PIL import Image

from gan_core.engine.export import picture, png_bytes


def decode(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def test_a_grey_grid_is_saved_as_one_channel_with_every_pixel_kept():
    image = picture(torch.rand(16, 1, 28, 28) * 2 - 1)  # (H, W, 3), three equal channels
    png = decode(png_bytes(image))
    assert png.mode == "L" and np.array_equal(np.asarray(png), image[..., 0])


def test_a_colour_picture_stays_rgb_with_every_pixel_kept():
    image = picture(torch.rand(16, 3, 28, 28) * 2 - 1)
    assert not np.array_equal(image[..., 0], image[..., 1])
    png = decode(png_bytes(image))
    assert png.mode == "RGB" and np.array_equal(np.asarray(png), image)


def test_points_over_the_real_data_stay_rgb():
    image = picture(
        torch.randn(200, 2), real=np.random.default_rng(0).normal(size=(300, 2)).astype(np.float32)
    )
    png = decode(png_bytes(image))
    assert png.mode == "RGB" and np.array_equal(np.asarray(png), image)
