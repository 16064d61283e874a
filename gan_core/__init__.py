"""gan_core: GAN training in plain PyTorch — models, losses, data, a background run with live knobs, exports."""

from .config import ConfigError, Knobs, RunConfig
from .data import DATASETS, DataError, load_dataset
from .losses import LOSSES
from .models import ARCHS
from .presets import PRESETS, resolve
from .run import Run, Snapshot, resume_run, start_run

__all__ = [
    "ARCHS", "DATASETS", "LOSSES", "PRESETS", "ConfigError", "DataError", "Knobs", "Run", "RunConfig",
    "Snapshot", "load_dataset", "resolve", "resume_run", "start_run",
]  # fmt: skip
