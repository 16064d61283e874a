"""gan_core: GAN training in plain PyTorch — models, losses, data, one training loop and its drivers, run folders,
exports.

The public names load on first use (PEP 562), so that reading or steering a run folder (`python -m gan_core
status`, `control`) does not import torch."""

import importlib

_PUBLIC = {  # name -> the module that defines it
    "ConfigError": "config", "Knobs": "config", "RunConfig": "config", "DataError": "config",
    "DATASETS": "engine.data", "load_dataset": "engine.data", "RunFolder": "folder.run_folder", "Status": "folder.status",
    "StepResult": "training.recorder", "TrainingLoop": "training.loop", "LOSSES": "engine.losses", "ARCHS": "engine.models",
    "RunPlan": "training.plan", "new_run": "training.plan", "resume": "training.plan", "PRESETS": "engine.presets", "resolve": "engine.presets",
    "Run": "training.run", "Snapshot": "folder.snapshot", "resume_run": "training.run", "start_run": "training.run",
}  # fmt: skip
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'gan_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value
    return value
