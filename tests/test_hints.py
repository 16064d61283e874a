"""Tests for gan_core.quality.hints: synthetic histories for each failure mode, a healthy run, and the cost on 1e6 rows."""

import dataclasses
import time

import numpy as np
import pytest

from gan_core.quality.hints import Hint, failure_hints, quality_hints

RNG = np.random.default_rng(0)


def scores(n: int, score_g: float, score_d: float, noise: float = 0.03) -> tuple[np.ndarray, np.ndarray]:
    """n rows of (score_g, score_d) around the given values, clipped to [0, 1]."""
    g = np.clip(score_g + noise * RNG.standard_normal(n), 0, 1)
    d = np.clip(score_d + noise * RNG.standard_normal(n), 0, 1)
    return g, d


def healthy(n: int) -> tuple[np.ndarray, np.ndarray]:
    return scores(n, 0.5, 0.5, noise=0.05)


def dominated(n: int) -> tuple[np.ndarray, np.ndarray]:
    return scores(n, 0.03, 0.97, noise=0.01)


def history(*parts, lr_g=2e-4, lr_d=2e-4, flip_prob=0.0, d_iters=1, **columns) -> dict[str, np.ndarray]:
    """A history of the (score_g, score_d) parts in order; knob columns constant unless given."""
    score_g = np.concatenate([g for g, _ in parts])
    score_d = np.concatenate([d for _, d in parts])
    n = len(score_g)
    table = {
        "iteration": np.arange(1, n + 1), "score_g": score_g, "score_d": score_d,
        "loss_g": -np.log(np.maximum(score_g, 1e-3)), "loss_d": -np.log(np.maximum(score_d, 1e-3)),
        "lr_g": lr_g, "lr_d": lr_d, "flip_prob": flip_prob, "d_iters": d_iters,
    }  # fmt: skip
    table.update(columns)
    return {name: np.broadcast_to(np.asarray(v, np.float32), (n,)).copy() for name, v in table.items()}


def kinds(hints: list[Hint]) -> list[str]:
    return [h.kind for h in hints]


# ---- healthy runs and blips


def test_healthy_run_has_no_hint():
    assert failure_hints(history(healthy(1000))) == []


def test_empty_history_has_no_hint():
    assert failure_hints(history(healthy(0))) == []


def test_a_blip_of_dominance_is_no_hint():
    assert failure_hints(history(healthy(980), dominated(20))) == []


# ---- the discriminator dominates


def test_sustained_dominance_names_the_knobs_with_current_values():
    run = history(healthy(700), dominated(300), flip_prob=0.05, d_iters=2)
    run["lr_d"][-1] = 4e-4  # the current values are the last row's
    [hint] = failure_hints(run)
    assert (hint.kind, hint.level, hint.title) == (
        "discriminator-wins",
        "warning",
        "The discriminator dominates",
    )
    assert "raise flip_prob from 0.05 to 0.3" in hint.text
    assert "lower lr_d from 0.0004 to 0.0002" in hint.text
    assert "d_iters from 2 to 1" in hint.text
    assert "over the last 200 iterations" in hint.text.lower()


def test_dominance_hint_leaves_out_d_iters_already_1():
    [hint] = failure_hints(history(dominated(300), d_iters=1))
    assert "flip_prob from 0 to 0.3" in hint.text and "d_iters" not in hint.text


def test_dominance_hint_goes_when_the_run_recovers():
    assert kinds(failure_hints(history(healthy(500), dominated(300)))) == ["discriminator-wins"]
    assert failure_hints(history(healthy(500), dominated(300), healthy(300))) == []


def test_dominance_needs_both_the_means_and_80_percent_of_rows():
    flicker = np.where(np.arange(200) % 10 < 7, 1.0, 0.84)  # 70% of rows at 1.0: mean score_d 0.95
    assert failure_hints(history((1 - flicker, flicker))) == []
    assert failure_hints(history(scores(200, 0.13, 0.87, noise=0.004))) == []  # every row, but weak means


def test_dominance_needs_half_a_window_of_rows():
    assert failure_hints(history(dominated(99))) == []
    assert kinds(failure_hints(history(dominated(100)))) == ["discriminator-wins"]
    assert kinds(failure_hints(history(dominated(60)), window=100)) == ["discriminator-wins"]


# ---- divergence


def test_nan_loss_gives_the_diverged_error():
    run = history(healthy(500))
    run["loss_d"][-3:] = np.nan
    [hint] = failure_hints(run)
    assert (hint.kind, hint.level, hint.title) == ("diverged", "error", "Training diverged")
    assert "at iteration 498" in hint.text and "last good checkpoint" in hint.text
    assert "lr_g 0.0002" in hint.text


def test_diverged_status_shows_the_reason_and_only_that_hint():
    reason = "loss_g became inf at iteration 900; the last good checkpoint (iteration 800) is kept"
    hints = failure_hints(history(dominated(300)), status="diverged", reason=reason)
    assert kinds(hints) == ["diverged"] and hints[0].text.endswith(f"What happened: {reason}.")


def test_old_nan_outside_the_window_is_forgotten():
    run = history(healthy(500))
    run["loss_g"][100] = np.inf
    assert failure_hints(run) == []


# ---- frozen scores


def test_frozen_scores_suggest_bce_or_a_higher_lr_g():
    run = history(scores(300, 0.5, 0.5, noise=0.0))
    [hint] = failure_hints(run)
    assert (hint.kind, hint.level, hint.title) == ("frozen", "warning", "Scores are frozen")
    assert "bce" in hint.text and "raise lr_g from 0.0002" in hint.text


def test_frozen_scores_with_a_zero_learning_rate_say_so():
    [hint] = failure_hints(history(scores(300, 0.5, 0.5, noise=1e-5), lr_g=0.0))
    assert "lr_g is 0" in hint.text and "bce" not in hint.text
    [hint] = failure_hints(history(scores(300, 0.5, 0.5, noise=0.0), lr_g=0.0, lr_d=0.0))
    assert "lr_g and lr_d are 0" in hint.text


def test_frozen_needs_a_full_window_and_a_running_status():
    still = scores(300, 0.5, 0.5, noise=0.0)
    assert failure_hints(history(still), status="paused") == []
    assert failure_hints(history((still[0][:150], still[1][:150]))) == []


def test_saturated_dominance_is_both_dominance_and_frozen():
    assert kinds(failure_hints(history(scores(300, 0.0, 1.0, noise=0.0)))) == ["discriminator-wins", "frozen"]


# ---- the generator wins; critic losses


def test_generator_wins_is_an_info_hint():
    [hint] = failure_hints(history(healthy(500), scores(300, 0.95, 0.25, noise=0.01)))
    assert (hint.kind, hint.level) == ("generator-wins", "info")
    assert hint.title == "The discriminator has stopped telling real from fake"
    assert "lower lr_g" in hint.text.lower()


def test_critic_losses_get_no_score_hints():
    run = history(dominated(300), wasserstein=1.5)  # a critic's sigmoid score is not a probability
    assert failure_hints(run) == []
    run["loss_d"][-1] = np.nan
    assert kinds(failure_hints(run)) == ["diverged"]


def test_hint_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Hint("frozen", "warning", "t", "x").title = "changed"


# ---- cost


def test_a_million_rows_cost_only_the_window():
    n = 1_000_000
    run = history(dominated(n - 300), healthy(300))
    for column in run.values():
        column.flags.writeable = False  # as History.view() hands them out: no hint may write
    assert failure_hints(run) == []
    times = []
    for _ in range(20):
        start = time.perf_counter()
        failure_hints(run)
        times.append(time.perf_counter() - start)
    assert (
        sorted(times)[10] < 0.05
    )  # median; a sanity bound, not a benchmark: the window is 200 rows whatever n is


# ---- sample quality: mode collapse read from precision, recall and coverage


def measured(**values) -> dict[str, np.ndarray]:
    """One image measurement: ten classes evenly, recognisable, as diverse as real, unless given."""
    row = {"iteration": 800, "recognisable": 0.9, "class_coverage": 10, "max_class_share": 0.12, "diversity": 1.0,
           "precision": 0.9, "recall": 0.8, "density": 1.0, "coverage": 0.9} | values  # fmt: skip
    return {name: np.array([value], np.float32) for name, value in row.items()}


def test_realistic_samples_near_few_real_images_are_a_collapse_though_every_class_appears():
    (hint,) = quality_hints(measured(coverage=0.2, recall=0.05))
    assert hint.kind == "mode-collapse" and hint.text.startswith(
        "90% of the samples lie among real images (precision) but only 20% of the real images have a sample "
        "nearby (coverage; recall 0.05) at iteration 800."
    )
    (hint,) = quality_hints(measured(recall=0.1))  # coverage fine, recall low: still too narrow
    assert "only 90% of the real images" in hint.text and "recall 0.10" in hint.text


def test_coverage_and_recall_above_their_limits_give_no_hint():
    assert quality_hints(measured()) == []
    assert quality_hints(measured(coverage=0.5, recall=0.3)) == []  # the limits themselves are healthy


def test_low_coverage_with_low_precision_is_an_unlearned_generator_not_a_collapse():
    assert quality_hints(measured(precision=0.3, coverage=0.05, recall=0.0)) == []
    assert quality_hints(measured(recognisable=0.2, coverage=0.05, recall=0.0)) == []  # not yet recognisable


def test_coverage_speaks_for_the_spread_where_it_was_measured_diversity_where_not():
    assert quality_hints(measured(diversity=0.3)) == []  # coverage 0.9: the samples are spread fine
    old_run = measured(diversity=0.3, precision=np.nan, recall=np.nan, density=np.nan, coverage=np.nan)
    (hint,) = quality_hints(old_run)
    assert "The samples are 30% as diverse as real images" in hint.text
    (hint,) = quality_hints(measured(class_coverage=1, max_class_share=1.0, coverage=0.01, recall=0.0))
    assert hint.text.startswith("Only 1 of 10 classes appear; one class makes up 100% of the samples; 90% of")
