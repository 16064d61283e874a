"""Snapshot: what a UI needs to draw a run, whether a thread of this process trains it or a folder shows it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..config import Knobs, RunConfig
from .milestone import Mark
from .status import Status


@dataclass(frozen=True)
class Snapshot:
    """What a UI needs to draw a run, as plain CPU data (numbers, numpy views, uint8 images)."""

    status: Status
    reason: str
    iteration: int
    epoch: int
    elapsed_s: float
    target: int
    images_per_s: float
    config: RunConfig
    knobs: Knobs
    run_dir: Path
    device: str
    history: dict[str, np.ndarray]
    quality: dict[str, np.ndarray]  # sparse: the iterations where sample quality was measured
    grid: np.ndarray | None  # uint8 (H, W, 3): the latest fixed-latent grid (or 2-D scatter picture)
    grid_iteration: int
    points: dict | None  # 2-D data: real, fake (n, 2), D's field (s, s), bounds; arrows, manifold
    quality_note: str | None  # why quality metrics are absent, if they are
    num_classes: int
    events: tuple[dict, ...]  # knob changes, as logged
    recognisable: Mark | None = None  # where the samples first became recognisable (gan_core.milestone)

    @property
    def active(self) -> bool:
        return self.status.active


class RunHandle(Protocol):
    """What the monitor needs of a run, trained by a thread of this process (gan_core.training.run.Run) or seen
    through its folder (gan_core.folder.watch.FolderRun): snapshots out, commands in."""

    run_dir: Path
    notes: tuple[str, ...]

    @property
    def alive(self) -> bool: ...

    def snapshot(self) -> Snapshot: ...

    def update(self, **changes) -> Knobs: ...

    def pause(self) -> None: ...

    def unpause(self) -> None: ...

    def step(self, n: int = 1) -> None: ...

    def step_player(self, player: str, n: int = 1) -> None: ...

    def stop(self, wait: bool = True, timeout: float = 30.0) -> None: ...

    def checkpoint_now(self, timeout: float = 30.0) -> bool: ...
