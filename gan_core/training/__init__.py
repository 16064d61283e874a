"""Training a run: its plan, the loop and its hooks, drivers (thread, main thread, torchrun)."""
