"""A run's metrics and grids also as TensorBoard event files (RUN/tensorboard/), so that `tensorboard --logdir runs`
shows our runs beside a user's others. Optional: it needs the `tensorboard` package."""

from __future__ import annotations

from ..engine.presets import check_tensorboard
from .hooks import Hook, LoopView
from .recorder import StepResult

SCALARS = {  # metrics.csv column -> TensorBoard tag
    "score_g": "scores/generator", "score_d": "scores/discriminator", "loss_g": "losses/generator",
    "loss_d": "losses/discriminator", "wasserstein": "losses/wasserstein estimate", "lr_g": "knobs/lr G",
    "lr_d": "knobs/lr D", "flip_prob": "knobs/flip probability", "d_iters": "knobs/D iterations",
    "images_per_s": "speed/images per second",
}  # fmt: skip
QUALITY = {"fd": "quality/classifier FD", "recognisable": "quality/recognisable", "diversity": "quality/diversity",
           "class_entropy": "quality/class entropy", "precision": "quality/precision",
           "recall": "quality/recall", "density": "quality/density", "coverage": "quality/coverage",
           "kid": "quality/classifier KID",
           "modes": "quality/modes captured", "high_quality": "quality/high-quality fraction"}  # fmt: skip


class TensorBoardHook(Hook):
    """Each newly recorded block's last row as scalars (about four points a second), each quality measurement,
    and each saved grid as an image, at its iteration."""

    def __init__(self, loop: LoopView):
        check_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(loop.folder.tensorboard_dir))
        self._rows, self._quality, self._grid = len(loop.recorder.history), len(loop.recorder.quality), None

    def after_step(self, loop: LoopView, step: StepResult) -> None:
        recorder = loop.recorder
        if len(recorder.history) > self._rows:
            self._rows = len(recorder.history)
            self._scalars(recorder.history.last(), SCALARS)
        if len(recorder.quality) > self._quality:
            self._quality = len(recorder.quality)
            self._scalars(recorder.quality.last(), QUALITY)
        if loop.saved_grid is not None and loop.saved_grid != self._grid and loop.grid is not None:
            self._grid = loop.saved_grid
            self.writer.add_image("samples/fixed latents", loop.grid.image, self._grid, dataformats="HWC")

    def _scalars(self, row: dict[str, float], tags: dict[str, str]) -> None:
        step = int(row["iteration"])
        for column, tag in tags.items():
            value = row.get(column)
            if value is not None and value == value:  # NaN: not measured at this row
                self.writer.add_scalar(tag, value, step)

    def close(self, loop: LoopView) -> None:
        self.after_step(loop, None)  # the last rows and the final grid
        self.writer.close()
