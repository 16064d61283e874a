"""Failure-mode hints in plain words, read from the trailing window of a run's history (after MATLAB's GAN guide)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..folder.status import Status

SUSTAINED = 0.8  # share of the window's rows that must show a pattern: a blip is not a failure mode
FROZEN_STD = 1e-3
# Mode collapse in the classifier's feature space (k = 5): samples that look real (precision) but come near few
# real images (coverage) or leave most of them out of every sample's neighbourhood (recall). Real images score
# about 0.98 precision / 0.97 recall / 0.8-1 coverage on digits; one class only, 0.99 / 0.0 / 0.11.
REALISTIC_PRECISION, COLLAPSED_COVERAGE, COLLAPSED_RECALL = 0.5, 0.5, 0.3


@dataclass(frozen=True)
class Hint:
    """One piece of advice for the UI: kind is a stable id, level 'warning', 'error' or 'info'."""

    kind: str
    level: str
    title: str
    text: str


def failure_hints(
    history: dict[str, np.ndarray], status: str = Status.RUNNING, reason: str = "", window: int = 200
) -> list[Hint]:
    """Hints for what the last `window` rows of a history show; [] for a healthy run.

    history holds equal-length columns (iteration, score_g, score_d, loss_g, loss_d, lr_g, lr_d,
    flip_prob, d_iters; NaN allowed). Only views of the trailing window are read, so the cost does not
    grow with the run. A diverged run gets that one hint; the score hints are skipped for critic losses
    (a finite 'wasserstein' column), whose sigmoid scores are not probabilities.
    """
    tail = {name: column[-window:] for name, column in history.items()}  # views, never copies
    last = {name: float(column[-1]) if len(column) else float("nan") for name, column in tail.items()}
    diverged = _diverged(tail, last, status, reason)
    if diverged:
        return [diverged]
    if np.isfinite(last.get("wasserstein", np.nan)):
        return []
    hints = [_discriminator_wins(tail, last, window), _generator_wins(tail, window)]
    return [hint for hint in [*hints, _frozen(tail, last, status, window)] if hint]


# ---- the checks: each returns a Hint or None


def _diverged(tail: dict, last: dict, status: str, reason: str) -> Hint | None:
    finite = np.isfinite(tail["loss_g"]) & np.isfinite(tail["loss_d"])
    if status != Status.DIVERGED and finite.all():
        return None
    if not reason and not finite.all():
        reason = f"a loss became NaN or infinite at iteration {tail['iteration'][~finite][0]:.0f}"
    text = (
        f"Lower the learning rates (halve lr_g {_g(last, 'lr_g')} and lr_d {_g(last, 'lr_d')}, say) and resume "
        f"from the last good checkpoint, which is kept. What happened: {reason or 'a loss became NaN or infinite'}."
    )
    return Hint("diverged", "error", "Training diverged", text)


def _discriminator_wins(tail: dict, last: dict, window: int) -> Hint | None:
    score_g, score_d = tail["score_g"], tail["score_d"]
    if not _sustained((score_d > 0.85) & (score_g < 0.15), window):
        return None
    mean_d, mean_g = np.nanmean(score_d), np.nanmean(score_g)  # finite rows exist: most rows met the test
    if not (mean_d > 0.9 and mean_g < 0.1):
        return None
    flip, lr_d, d_iters = last["flip_prob"], last["lr_d"], last["d_iters"]
    tries = [
        f"raise flip_prob from {flip:g} to {max(0.3, min(flip + 0.1, 0.5)):g}",
        f"lower lr_d from {lr_d:g} to {lr_d / 2:g}",
    ]
    if d_iters > 1:
        tries.append(f"train D less often: d_iters from {d_iters:g} to 1")
    text = (
        f"Over the last {len(score_d)} iterations the discriminator scored {mean_d:.2f} and the generator "
        f"{mean_g:.2f}: D tells real from fake almost perfectly, so G gets little signal to learn from. "
        f"Try: {'; '.join(tries)}."
    )
    return Hint("discriminator-wins", "warning", "The discriminator dominates", text)


def _generator_wins(tail: dict, window: int) -> Hint | None:
    score_g, score_d = tail["score_g"], tail["score_d"]
    if not _sustained((score_g > 0.9) & (score_d < 0.3), window):
        return None
    text = (
        f"Over the last {len(score_g)} iterations the generator scored {np.nanmean(score_g):.2f} and the "
        f"discriminator {np.nanmean(score_d):.2f}: D has stopped telling real from fake, and may be fooled by "
        "one kind of sample (mode collapse). Lower lr_g, or raise lr_d or d_iters."
    )
    return Hint("generator-wins", "info", "The discriminator has stopped telling real from fake", text)


def _frozen(tail: dict, last: dict, status: str, window: int) -> Hint | None:
    score_g, score_d = tail["score_g"], tail["score_d"]
    if status != Status.RUNNING or len(score_g) < window:
        return None
    if not (np.std(score_g) < FROZEN_STD and np.std(score_d) < FROZEN_STD):  # NaN std: not frozen
        return None
    zero = [name for name in ("lr_g", "lr_d") if last[name] == 0]
    if zero:
        why = f"{' and '.join(zero)} {'is' if len(zero) == 1 else 'are'} 0, so nothing updates: raise it above 0."
    else:
        why = (
            "The generator has stopped learning; a saturating loss (minimax) gives it no gradient once D wins. "
            f"Use the bce (non-saturating) loss, or raise lr_g from {_g(last, 'lr_g')}."
        )
    text = f"score_g {score_g[-1]:.3f} and score_d {score_d[-1]:.3f} have not moved over {len(score_g)} iterations. "
    return Hint("frozen", "warning", "Scores are frozen", text + why)


def _sustained(condition: np.ndarray, window: int) -> bool:
    """At least half a window of rows, and SUSTAINED of them meet the condition (NaN rows do not)."""
    return len(condition) >= window / 2 and np.count_nonzero(condition) >= SUSTAINED * len(condition)


def _g(last: dict, name: str) -> str:
    return f"{last[name]:g}"


# ---- sample quality (gan_core.metrics): mode collapse, which the scores cannot show


def quality_hints(
    quality: dict[str, np.ndarray], num_classes: int = 10, modes_total: int | None = None
) -> list[Hint]:
    """Hints from the latest quality measurement: mode collapse on images or on the 2-D toys.

    quality holds the sparse columns of the run's measurements (iteration, recognisable, class_coverage,
    max_class_share, diversity, precision, recall, coverage, modes, high_quality ...). Samples that are not yet
    recognisable as data are not called collapsed: a generator that has not learned yet is not a failure mode.
    Where coverage was measured, coverage and recall speak for the spread of the samples; diversity only
    where it was not (runs recorded before them).
    """
    if not len(quality.get("iteration", ())):
        return []
    last = {name: float(column[-1]) for name, column in quality.items()}
    at = f"at iteration {last['iteration']:.0f}"
    try_this = ("Try: raise flip_prob (e.g. 0.3), lower lr_d, use more D iterations with a Wasserstein loss, "
                "or a larger batch.")  # fmt: skip
    if modes_total and np.isfinite(last.get("modes", np.nan)):
        if last["high_quality"] >= 0.5 and last["modes"] < modes_total:
            text = f"The generator covers {last['modes']:.0f} of {modes_total} modes {at}. {try_this}"
            return [Hint("mode-collapse", "warning", "Mode collapse suspected", text)]
        return []
    if not np.isfinite(last.get("recognisable", np.nan)) or last["recognisable"] < 0.3:
        return []
    reasons = []
    if last["class_coverage"] < 0.7 * num_classes:
        reasons.append(f"only {last['class_coverage']:.0f} of {num_classes} classes appear")
    if last["max_class_share"] > 0.4:
        reasons.append(f"one class makes up {last['max_class_share']:.0%} of the samples")
    if np.isfinite(last.get("coverage", np.nan)):
        reasons += _neighbourhood_collapse(last)
    elif last["diversity"] < 0.5:
        reasons.append(f"the samples are {last['diversity']:.0%} as diverse as real images")
    if not reasons:
        return []
    text = f"{'; '.join(reasons).capitalize()} {at}. {try_this}"
    return [Hint("mode-collapse", "warning", "Mode collapse suspected", text)]


def _neighbourhood_collapse(last: dict) -> list[str]:
    """Realistic samples that crowd into a few real images' neighbourhoods: low coverage or recall."""
    precision, recall, coverage = last["precision"], last["recall"], last["coverage"]
    if precision < REALISTIC_PRECISION or (coverage >= COLLAPSED_COVERAGE and recall >= COLLAPSED_RECALL):
        return []
    return [f"{precision:.0%} of the samples lie among real images (precision) but only {coverage:.0%} of the "
            f"real images have a sample nearby (coverage; recall {recall:.2f})"]  # fmt: skip
