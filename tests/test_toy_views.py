"""What each network does on 2-D data: G's gradient arrows (checked against finite differences), G's manifold (a
grid of latents through G), the KL and JS divergences (checked against scipy's), and a run that publishes them."""

import numpy as np
import pytest
import torch
from conftest import tiny_points
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy

from gan_core.engine.data import load_dataset
from gan_core.engine.points import shape_points
from gan_core.engine.presets import resolve
from gan_core.engine.toy_views import MESH_SIZE, ToyViews, generator_gradients, manifold
from gan_core.engine.trainer import Trainer
from gan_core.quality.divergence import BINS, GridDivergence, density, js_bits, kl_bits
from gan_core.quality.metrics import QualityMonitor
from gan_core.training.run import start_run


def toy_trainer(**settings) -> Trainer:
    config, knobs = resolve(None, arch="mlp", dataset="ring", batch_size=32, device="cpu", **settings)
    return Trainer(config, knobs, tiny_points(256), torch.device("cpu"))


def g_loss_of(trainer: Trainer, points: torch.Tensor) -> torch.Tensor:
    """G's loss of each point (n,), D in inference mode, as the arrows see it."""
    trainer.discriminator.eval()
    with torch.no_grad():
        out, _ = trainer.discriminator(points.repeat(1, trainer.config.pack), None)
    trainer.discriminator.train()
    return trainer.loss.g(out).flatten()


@pytest.mark.parametrize("loss", ["bce", "hinge", "wasserstein"])
def test_arrows_are_minus_the_gradient_of_gs_loss(loss):
    trainer = toy_trainer(loss=loss)
    assert generator_gradients(trainer, torch.randn(40, 2)).dtype == np.float32
    trainer.discriminator.double()  # in float64, central differences are exact to many digits
    fake = torch.randn(40, 2, dtype=torch.float64)
    arrows = generator_gradients(trainer, fake)
    assert arrows.shape == (40, 2)
    eps = 1e-6
    for axis in range(2):
        step = torch.zeros(1, 2)
        step[0, axis] = eps
        numeric = (g_loss_of(trainer, fake + step) - g_loss_of(trainer, fake - step)) / (2 * eps)
        assert np.allclose(arrows[:, axis], -numeric.numpy(), atol=1e-6, rtol=1e-4)
    moved = fake + 1e-2 * torch.from_numpy(arrows) / np.abs(arrows).max()
    assert g_loss_of(trainer, moved).sum() < g_loss_of(trainer, fake).sum()  # along the arrows, G gains


def test_arrows_with_a_packed_discriminator():
    trainer = toy_trainer(pack=2)
    arrows = generator_gradients(trainer, torch.randn(10, 2))
    assert arrows.shape == (10, 2) and np.isfinite(arrows).all() and np.abs(arrows).sum() > 0


@pytest.mark.parametrize("z_dim", [2, 5])
def test_manifold_is_g_on_a_grid_of_latents(z_dim):
    trainer = toy_trainer(z_dim=z_dim)
    mesh = manifold(trainer, size=5)
    assert mesh.shape == (5, 5, 2)
    z = torch.zeros(1, z_dim)
    z[0, 0], z[0, 1] = -2.0, 1.0  # row 0 (z1 = -2), column 3 (z2 = -2 + 3 * 1)
    trainer.generator.eval()
    with torch.no_grad():
        expected = trainer.generator(z, None)[0].numpy()
    assert np.allclose(mesh[0, 3], expected, atol=1e-6)
    assert manifold(trainer).shape == (MESH_SIZE, MESH_SIZE, 2)


def test_views_are_recomputed_at_most_once_a_second():
    trainer, views = toy_trainer(), ToyViews(seconds=60)
    fake = torch.randn(8, 2)
    first = views(trainer, fake, 1)
    assert first["views_iteration"] == 1 and np.array_equal(first["arrows_from"], fake.numpy())
    assert views(trainer, torch.randn(8, 2), 2) is first  # within the interval: the same layers again
    views.stale()
    assert views(trainer, fake, 3)["views_iteration"] == 3
    assert views.cost > 0


def test_views_keep_within_their_budget():
    trainer, views = toy_trainer(), ToyViews(seconds=0.0, budget=0.02)
    views(trainer, torch.randn(8, 2), 1)
    views.cost = 0.5  # as if one took half a second of CPU: the next waits 25 s
    assert not views.due()
    views._at -= 26
    assert views.due()


# ---- KL and JS on a grid


def test_density_is_a_smoothed_histogram_with_an_outside_cell():
    points = torch.tensor([[0.01, 0.01]] * 9 + [[9.0, 0.0]])  # nine in one cell, one outside the square
    p = density(points, bounds=2.0, smooth=0)
    assert p.shape == (BINS * BINS + 1,) and p.sum().item() == pytest.approx(1.0)
    cell = (BINS // 2) * BINS + BINS // 2
    assert p[cell].item() == pytest.approx(0.9, abs=1e-3) and p[-1].item() == pytest.approx(0.1, abs=1e-3)
    smoothed = density(points, bounds=2.0)
    assert smoothed[cell] < p[cell] and smoothed[cell + 1] > p[cell + 1]  # spread to its neighbours
    assert smoothed[:-1].sum().item() == pytest.approx(0.9, abs=1e-3)  # the mass inside is kept


def test_kl_and_js_match_scipy():
    real, fake = density(torch.randn(500, 2), 3.0), density(torch.randn(500, 2) + 1, 3.0)
    assert kl_bits(real, fake) == pytest.approx(entropy(real.numpy(), fake.numpy(), base=2), rel=1e-9)
    assert js_bits(real, fake) == pytest.approx(
        jensenshannon(real.numpy(), fake.numpy(), base=2) ** 2, rel=1e-6
    )


def test_divergences_order_good_and_bad_generators():
    real = torch.from_numpy(shape_points("two moons", n=2000))
    divergence = GridDivergence(real, bounds=3.0)
    same = divergence(torch.from_numpy(shape_points("two moons", n=2000, seed=7)))
    off = divergence(torch.from_numpy(shape_points("line", n=2000)))
    far = divergence(real + 2.5)
    assert same["js"] < 0.05 and same["kl"] < 0.2
    assert same["js"] < off["js"] < far["js"] <= 1.0 and far["js"] > 0.8
    assert same["kl"] < off["kl"]


def test_quality_monitor_records_kl_and_js_for_drawn_points(tmp_path):
    drawn = shape_points("spiral", n=300)
    np.save(tmp_path / "s.npy", drawn)
    data = load_dataset(f"points:{tmp_path / 's.npy'}")
    trainer = Trainer(*resolve(None, arch="mlp", dataset="ring", batch_size=32, device="cpu"), data,
                      torch.device("cpu"))  # fmt: skip
    monitor = QualityMonitor(data, torch.device("cpu"), trainer.config.z_dim, False, tmp_path)
    values = monitor.measure(trainer.generator)
    assert set(values) == {"kl", "js"} and 0 < values["js"] <= 1 and values["kl"] > 0
    assert monitor.reached(values) is None  # no modes to count on a drawing
    ring = QualityMonitor(tiny_points(256), torch.device("cpu"), trainer.config.z_dim, False, tmp_path)
    assert set(ring.measure(trainer.generator)) == {"kl", "js", "modes", "high_quality"}


def test_a_2d_run_publishes_arrows_manifold_and_divergences(runs_dir):
    config, knobs = resolve(
        "ring", device="cpu", iterations=40, eval_every=10, batch_size=32, sample_every=10
    )
    run = start_run(config, knobs, data=tiny_points())
    assert run.wait(60) and run.status == "finished", run.reason
    snap = run.snapshot()
    points = snap.points
    assert points["arrows"].shape == points["arrows_from"].shape == points["fake"].shape == (512, 2)
    assert points["manifold"].shape == (MESH_SIZE, MESH_SIZE, 2)
    assert 1 <= points["views_iteration"] <= 40
    assert snap.quality["iteration"].tolist() == [10, 20, 30, 40]
    assert (
        np.isfinite(snap.quality["kl"]).all() and ((snap.quality["js"] > 0) & (snap.quality["js"] <= 1)).all()
    )
