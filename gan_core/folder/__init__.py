"""Reading, writing and steering a run folder; never imports torch."""
