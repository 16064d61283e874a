"""Sample-quality metrics: toy modes, Fréchet distance, precision / recall / density / coverage and KID on sets with
known answers, the classifier's view of real and collapsed samples."""

import math

import numpy as np
import pytest
import torch
from conftest import tiny_points, wait_for

from gan_core.engine.data import TOYS, to_model_range
from gan_core.engine.presets import resolve
from gan_core.engine.sampling import load_sampler
from gan_core.folder.run_folder import RunFolder
from gan_core.quality.feature_metrics import kernel_inception_distance, knn_radii, prdc
from gan_core.quality.hints import quality_hints
from gan_core.quality.metrics import (
    _split,
    evaluate_sampler,
    frechet_distance,
    gaussian,
    toy_metrics,
)
from gan_core.training.loop import TrainingLoop
from gan_core.training.plan import new_run
from gan_core.training.run import start_run


def test_toy_metrics_count_modes_and_quality():
    centres, std = TOYS["ring"]
    on_modes = centres.repeat_interleave(25, dim=0) + std * torch.randn(200, 2).clamp(-2, 2)
    assert toy_metrics(on_modes, "ring") == {"modes": 8.0, "high_quality": 1.0}
    collapsed = centres[:1].expand(100, 2) + 0.01 * torch.randn(100, 2)
    far = torch.zeros(100, 2)  # the ring's centre: near no mode
    result = toy_metrics(torch.cat([collapsed, far]), "ring")
    assert result["modes"] == 1 and result["high_quality"] == pytest.approx(0.5)
    few = centres[1:2].expand(19, 2)  # 19 points: below the 20 a mode needs
    assert toy_metrics(few, "ring")["modes"] == 0


def test_frechet_distance_matches_the_closed_form():
    # 1-D: N(0, 1) vs N(1, 4): (0 - 1)^2 + 1 + 4 - 2 * sqrt(1 * 4) = 2
    a = (torch.tensor([0.0]), torch.tensor([[1.0]]))
    b = (torch.tensor([1.0]), torch.tensor([[4.0]]))
    assert frechet_distance(a, b) == pytest.approx(2.0)
    x = torch.randn(500, 8, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(gaussian(x), gaussian(x)) == pytest.approx(0.0, abs=1e-6)
    # diagonal covariances: sum((mu_a - mu_b)^2) + sum((sqrt(va) - sqrt(vb))^2)
    va, vb = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 1.0])
    got = frechet_distance((torch.zeros(3), torch.diag(va)), (torch.ones(3), torch.diag(vb)))
    assert got == pytest.approx(3 + float(((va.sqrt() - vb.sqrt()) ** 2).sum()))


# ---- precision, recall, density, coverage and KID on feature sets with known answers


def test_prdc_counts_k_nn_balls_as_by_hand():
    # k = 1 on a line. Real radii (nearest other real): 0, 1, 2, 3 -> 1; 12 -> 9. Fake radii: 0.5, 1.8 -> 1.3;
    # 20, 21 -> 1. Fakes in a real ball: 0.5 (balls of 0, 1), 1.8 (1, 2), 20 (12: 8 < 9), not 21 (9 < 9 fails).
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0], [12.0]])
    fake = torch.tensor([[0.5], [1.8], [20.0], [21.0]])
    assert knn_radii(real, k=1).tolist() == [1, 1, 1, 1, 9]
    got = prdc(real, fake, k=1)
    assert got["precision"] == pytest.approx(3 / 4)  # 21 is in no real ball
    assert got["recall"] == pytest.approx(4 / 5)  # 12 is in no fake ball; 3 is in 1.8's (1.2 < 1.3)
    assert got["density"] == pytest.approx((2 + 2 + 1 + 0) / (4 * 1))
    assert got["coverage"] == pytest.approx(4 / 5)  # 3's ball holds no fake
    assert all(math.isnan(v) for v in prdc(real, fake).values())  # k = 5 needs more than 5 points a side


def feature_set(n: int = 600, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 32, generator=torch.Generator().manual_seed(seed))


def test_samples_equal_to_the_real_set_score_as_real():
    real = feature_set()
    got = prdc(real, real.clone(), knn_radii(real))
    # each real ball holds its own point and k - 1 others (strictly inside): density exactly 1
    assert got == {"precision": 1.0, "recall": 1.0, "density": 1.0, "coverage": 1.0}
    assert frechet_distance(gaussian(real), gaussian(real.clone())) == pytest.approx(0.0, abs=1e-6)
    disjoint = kernel_inception_distance(real, real + 10)
    assert abs(kernel_inception_distance(real, real.clone())) < 1e-3 * disjoint


def test_samples_collapsed_onto_one_real_point_have_no_recall_and_almost_no_coverage():
    real = feature_set()
    got = prdc(real, real[:1].expand(600, -1).clone(), knn_radii(real))
    assert got["precision"] == 1.0  # every sample is realistic ...
    assert got["recall"] == 0.0 and got["coverage"] < 0.05  # ... and they are all the same one
    assert kernel_inception_distance(real, real[:1].expand(600, -1)) > 100 * abs(kernel_inception_distance(
        real, feature_set(seed=1)))  # fmt: skip


def test_disjoint_sets_score_zero_and_a_large_kid():
    real = feature_set()
    got = prdc(real, feature_set(seed=1) + 10)
    assert got == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    near = kernel_inception_distance(real, feature_set(seed=1))
    assert kernel_inception_distance(real, real + 10) > 1000 * abs(near)


def test_kid_is_the_unbiased_mmd_of_the_cubic_kernel_on_whole_sets_and_leaves_the_random_stream_alone():
    real, fake = feature_set(50), feature_set(50, seed=1) + 0.5
    kernel = lambda a, b: (a.double() @ b.double().T / 32 + 1) ** 3  # noqa: E731
    k_rr, k_ff, k_rf = kernel(real, real), kernel(fake, fake), kernel(real, fake)
    off = lambda k: (k.sum() - k.trace()) / (50 * 49)  # noqa: E731
    expected = float(off(k_rr) + off(k_ff) - 2 * k_rf.mean())
    torch.manual_seed(3)
    untouched = torch.rand(3)
    torch.manual_seed(3)
    assert kernel_inception_distance(real, fake) == pytest.approx(expected, rel=1e-4)
    assert torch.equal(torch.rand(3), untouched)
    # larger sets: random subsets per side, drawn from a fixed seed (the same value twice), estimate the same
    big_real, big_fake = feature_set(300), feature_set(400, seed=1) + 0.5
    subsets = kernel_inception_distance(big_real, big_fake, subset_size=200, subsets=20)
    assert subsets == kernel_inception_distance(big_real, big_fake, subset_size=200, subsets=20)
    assert subsets != kernel_inception_distance(big_real, big_fake, subset_size=200, subsets=20, seed=1)
    assert subsets == pytest.approx(expected, rel=0.2)


# ---- the classifier's feature space


# data_dir, digits_evaluator: conftest's (the classifier trained once a session)


def test_classifier_learns_digits_and_real_images_score_as_real(digits_evaluator):
    evaluator, digits = digits_evaluator
    assert evaluator.classifier_accuracy >= 0.9
    real = to_model_range(digits.x[-300:])
    result = evaluator(real, digits.y[-300:])
    assert result["recognisable"] >= 0.7 and result["class_coverage"] == 10
    assert result["class_entropy"] > 0.95 and result["class_agreement"] >= 0.9
    assert result["fd"] < 3 * evaluator.fd_floor + 1 and 0.8 < result["diversity"] < 1.2
    assert result["precision"] > 0.9 and result["recall"] > 0.9 and result["coverage"] > 0.9
    assert 0.8 < result["density"] < 1.2 and abs(result["kid"]) < 0.05 * evaluator(one_digit(digits))["kid"]


def one_digit(digits, n: int = 300):
    return to_model_range(digits.x[:1]).expand(n, -1, -1, -1)


def test_the_reference_images_themselves_score_exactly_as_real(digits_evaluator):
    evaluator, digits = digits_evaluator
    train_idx, _ = _split(digits)
    assert len(evaluator.reference) == 300  # as many real images as the evaluator's samples
    result = evaluator(to_model_range(digits.x[train_idx[:300]]))
    assert (result["precision"], result["recall"], result["coverage"]) == (1.0, 1.0, 1.0)
    assert result["density"] == pytest.approx(1.0, abs=0.01)
    assert abs(result["kid"]) < 0.01 * evaluator(one_digit(digits))["kid"]


def test_a_collapsed_generator_is_caught(digits_evaluator):
    evaluator, digits = digits_evaluator
    result = evaluator(one_digit(digits))
    real = evaluator(to_model_range(digits.x[-300:]))
    assert result["class_coverage"] == 1 and result["max_class_share"] == 1.0
    assert result["diversity"] < 0.01 and result["fd"] > 5 * real["fd"]
    assert math.isnan(result["class_agreement"])
    assert result["precision"] == 1.0 and result["recall"] <= 1 / 300 and result["coverage"] < 0.05
    assert result["kid"] > 20 * abs(real["kid"])
    quality = {k: np.array([v], np.float32) for k, v in {"iteration": 700, **result}.items()}
    (hint,) = quality_hints(quality, num_classes=10)
    assert hint.title == "Mode collapse suspected" and "Only 1 of 10 classes appear" in hint.text
    assert f"only {result['coverage']:.0%} of the real images have a sample nearby" in hint.text
    healthy = {k: np.array([v], np.float32) for k, v in {"iteration": 900, **real}.items()}
    assert quality_hints(healthy, num_classes=10) == []  # the hint goes once the cause is gone


def test_toy_collapse_hint():
    quality = {"iteration": np.array([500.0]), "modes": np.array([3.0]), "high_quality": np.array([0.9])}
    (hint,) = quality_hints(quality, modes_total=8)
    assert "covers 3 of 8 modes" in hint.text
    quality["modes"][:] = 8
    assert quality_hints(quality, modes_total=8) == []


def test_a_run_records_quality_in_its_history_and_csv(runs_dir):
    config, knobs = resolve("ring", device="cpu", iterations=6, eval_every=2, batch_size=32)
    run = start_run(config, knobs, data=tiny_points())
    assert run.wait(60) and run.status == "finished", run.reason
    quality = run.snapshot().quality
    assert quality["iteration"].tolist() == [2, 4, 6]
    assert set(np.unique(quality["modes"])) <= set(range(9)) and np.isfinite(quality["high_quality"]).all()
    columns, rows = RunFolder(run.run_dir).read_metrics()
    measured = rows[np.isfinite(rows[:, columns.index("modes")]), columns.index("iteration")]
    assert measured.tolist() == [2, 4, 6]


def test_an_image_run_measures_with_the_cached_classifier(runs_dir, data_dir, digits_evaluator):
    config, knobs = resolve(None, arch="mlp", dataset="digits", device="cpu", iterations=100_000, eval_every=5,
                            batch_size=16, data_dir=str(data_dir))  # fmt: skip
    run = start_run(config, knobs)
    try:
        assert wait_for(lambda: len(run.snapshot().quality["iteration"]) >= 2, timeout=180)
        quality = run.snapshot().quality
        assert (quality["iteration"] % 5 == 0).all() and 0 <= quality["recognisable"][-1] <= 1
        assert 1 <= quality["class_coverage"][-1] <= 10 and quality["fd"][-1] > 0
        for name in ("precision", "recall", "coverage"):
            assert 0 <= quality[name][-1] <= 1, name
        assert quality["density"][-1] >= 0 and quality["kid"][-1] > 0  # an untrained generator: far from real
    finally:
        run.stop()
    assert len(list((data_dir / "classifiers").glob("digits-1x28x28-*.pt"))) == 1, "one cached classifier"


def test_evaluate_reports_precision_recall_density_coverage_and_kid_beside_the_floors(
    tmp_path, data_dir, digits_evaluator
):
    config, knobs = resolve(None, arch="mlp", dataset="digits", device="cpu", iterations=2, eval_every=0,
                            batch_size=16, data_dir=str(data_dir))  # fmt: skip
    loop = TrainingLoop(new_run(config, knobs, runs_dir=tmp_path, name="eval"))
    while not loop.done:
        loop.step()
    loop.close()
    result = evaluate_sampler(load_sampler(loop.folder.path, torch.device("cpu")), torch.device("cpu"), n=300)
    for name in ("precision", "recall", "coverage"):
        assert 0 <= result[name] <= 1, name
    assert result["density"] >= 0 and result["kid"] > 10 * abs(result["kid_real_floor"])  # 2 iterations
    assert math.isfinite(result["kid_real_floor"]) and result["fd"] > result["fd_real_floor"] > 0
