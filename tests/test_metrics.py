"""Sample-quality metrics: toy modes, Fréchet distance, the classifier's view of real and collapsed samples."""

import math

import numpy as np
import pytest
import torch
from conftest import tiny_points, wait_for

from gan_core.data import TOYS, load_dataset, to_model_range
from gan_core.folder import RunFolder
from gan_core.hints import quality_hints
from gan_core.metrics import ImageEvaluator, frechet_distance, gaussian, image_evaluator, toy_metrics
from gan_core.presets import resolve
from gan_core.run import start_run


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


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def digits_evaluator(data_dir) -> tuple[ImageEvaluator, object]:
    digits = load_dataset("digits", 28)
    return image_evaluator(digits, torch.device("cpu"), data_dir, samples=300), digits


def test_classifier_learns_digits_and_real_images_score_as_real(digits_evaluator):
    evaluator, digits = digits_evaluator
    assert evaluator.classifier_accuracy >= 0.9
    real = to_model_range(digits.x[-300:])
    result = evaluator(real, digits.y[-300:])
    assert result["recognisable"] >= 0.7 and result["class_coverage"] == 10
    assert result["class_entropy"] > 0.95 and result["class_agreement"] >= 0.9
    assert result["fd"] < 3 * evaluator.fd_floor + 1 and 0.8 < result["diversity"] < 1.2


def test_a_collapsed_generator_is_caught(digits_evaluator):
    evaluator, digits = digits_evaluator
    one_image = to_model_range(digits.x[:1]).expand(300, -1, -1, -1)
    result = evaluator(one_image)
    real = evaluator(to_model_range(digits.x[-300:]))
    assert result["class_coverage"] == 1 and result["max_class_share"] == 1.0
    assert result["diversity"] < 0.01 and result["fd"] > 5 * real["fd"]
    assert math.isnan(result["class_agreement"])
    quality = {k: np.array([v], np.float32) for k, v in {"iteration": 700, **result}.items()}
    (hint,) = quality_hints(quality, num_classes=10)
    assert hint.title == "Mode collapse suspected" and "Only 1 of 10 classes appear" in hint.text
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
    finally:
        run.stop()
    assert len(list((data_dir / "classifiers").glob("digits-1x28x28-*.pt"))) == 1, "one cached classifier"
