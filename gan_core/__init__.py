"""gan_core: GAN training in plain PyTorch — models, losses, data, one training loop and its drivers, run folders,
exports."""

from .config import ConfigError, Knobs, RunConfig
from .data import DATASETS, DataError, load_dataset
from .folder import RunFolder, Status
from .loop import StepResult, TrainingLoop
from .losses import LOSSES
from .models import ARCHS
from .plan import RunPlan, new_run, resume
from .presets import PRESETS, resolve
from .run import Run, Snapshot, resume_run, start_run

__all__ = [
    "ARCHS", "DATASETS", "LOSSES", "PRESETS", "ConfigError", "DataError", "Knobs", "Run", "RunConfig",
    "RunFolder", "RunPlan", "Snapshot", "Status", "StepResult", "TrainingLoop", "load_dataset", "new_run",
    "resolve", "resume", "resume_run", "start_run",
]  # fmt: skip
