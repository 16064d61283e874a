"""The engine: networks, losses, data, presets, devices, one training iteration, pictures out."""
