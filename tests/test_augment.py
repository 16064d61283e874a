"""DiffAugment: shifts and cut-outs that keep the image's content, let gradients through, and reach D."""

import pytest
import torch

from gan_core.engine.augment import augment, cutout, translate
from gan_core.engine.data import Data
from gan_core.engine.presets import resolve
from gan_core.engine.trainer import Trainer


def rng(seed=0):
    return torch.Generator().manual_seed(seed)


def test_translation_moves_each_image_by_at_most_an_eighth_without_changing_it():
    x = torch.zeros(400, 1, 16, 16)
    x[:, 0, 8, 8] = 1.0  # one lit pixel in the middle
    out = translate(x, rng())
    assert out.shape == x.shape and torch.all(out.sum(dim=(1, 2, 3)) == 1)  # moved, never lost or smeared
    where = out[:, 0].flatten(1).argmax(1)
    dy, dx = where // 16 - 8, where % 16 - 8
    assert set(dy.tolist()) == set(dx.tolist()) == {-2, -1, 0, 1, 2}  # 16 / 8 = 2 pixels either way


def test_translation_fills_with_zeros_and_keeps_the_rest_in_place():
    x = torch.arange(1.0, 1 + 2 * 3 * 8 * 8).reshape(2, 3, 8, 8)
    out = translate(x, rng(3))
    for image, shifted in zip(x, out, strict=True):
        kept = shifted[shifted != 0]
        assert len(kept) >= 3 * 7 * 7  # at most one row and one column (8 / 8) fall off
        assert torch.isin(kept, image).all()  # only the image's own values, moved
        assert torch.equal(shifted.sum(0) != 0, shifted[0] != 0)  # all channels move together


def test_cutout_zeroes_one_square_of_up_to_half_the_side():
    x = torch.ones(300, 2, 28, 28)
    out = cutout(x, rng())
    holes = out[:, 0] == 0
    assert torch.equal(holes, out[:, 1] == 0)
    rows, cols = holes.any(2), holes.any(1)
    assert torch.equal(holes.sum((1, 2)), rows.sum(1) * cols.sum(1))  # a rectangle
    # up to 14 x 14, clipped at the borders
    assert rows.sum(1).max() == 14 and cols.sum(1).max() == 14 and rows.sum(1).min() < 14


def test_gradients_flow_through_to_the_image():
    x = torch.randn(8, 1, 28, 28, requires_grad=True)
    augment(x, "translation+cutout", rng()).sum().backward()
    assert set(x.grad.unique().tolist()) <= {0.0, 1.0} and x.grad.sum() > 8 * 28 * 28 / 3


def test_none_is_the_identity():
    x = torch.randn(4, 1, 28, 28)
    assert augment(x, "none", rng()) is x


@pytest.mark.parametrize("policy", ["none", "translation+cutout"])
def test_the_discriminator_is_shown_augmented_images(policy):
    data = Data("tiny", torch.randint(0, 256, (32, 1, 28, 28), dtype=torch.uint8), None, 1, ("all",))
    config, knobs = resolve(arch="dcgan28", dataset="digits", batch_size=8, augment=policy, device="cpu")
    trainer = Trainer(config, knobs, data, torch.device("cpu"))
    shown = []
    trainer.discriminator.register_forward_hook(lambda module, args, out: shown.append(args[0]))
    trainer.iteration(knobs, 1)
    assert len(shown) == 3  # D on real, on fake, then on fake for G's update
    for images in shown:
        assert images.shape == (8, 1, 28, 28)
        # zero fill and holes; uint8 data maps to k / 127.5 - 1 and the generator's output is never exactly 0
        assert ((images == 0).float().mean() > 0.05) == (policy != "none")
