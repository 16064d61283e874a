"""gan_core: GAN training in plain PyTorch — models, losses, data, one training loop and its drivers, run folders,
exports.

The public names load on first use (PEP 562), so that reading or steering a run folder (`python -m gan_core
status`, `control`) does not import torch."""

import importlib

_PUBLIC = {  # name -> the module that defines it
    "ConfigError": "config", "Knobs": "config", "RunConfig": "config", "DataError": "config",
    "DATASETS": "data", "load_dataset": "data", "RunFolder": "folder", "Status": "folder",
    "StepResult": "loop", "TrainingLoop": "loop", "LOSSES": "losses", "ARCHS": "models",
    "RunPlan": "plan", "new_run": "plan", "resume": "plan", "PRESETS": "presets", "resolve": "presets",
    "Run": "run", "Snapshot": "run", "resume_run": "run", "start_run": "run",
}  # fmt: skip
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'gan_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value
    return value
