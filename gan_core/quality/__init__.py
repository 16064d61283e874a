"""Sample quality: metrics of generated samples, and hints that turn numbers into advice."""
