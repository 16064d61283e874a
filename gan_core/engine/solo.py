"""One player alone: D-only or G-only updates, to show a class what each network does when the other stands still.
The other network's weights are left as they are; the iteration count does not move (no metrics row is added)."""

from __future__ import annotations

import torch

from .trainer import Trainer

PLAYERS = {"d": "discriminator", "g": "generator"}


def _d_update(trainer: Trainer, flip_prob: float) -> None:
    """One D update, as the first half of an iteration takes it: a real batch against G's (frozen) fakes."""
    real, labels = trainer._real_batch()
    size = trainer.config.batch_size
    z = torch.randn(size, trainer.config.z_dim, generator=trainer.noise, device=trainer.device)
    fake_labels = trainer._fake_labels(size)
    with torch.no_grad(), trainer.autocast():
        fake = trainer.g_net(z, fake_labels)
    trainer._d_step(real, labels, fake, fake_labels, flip_prob)


def _g_update(trainer: Trainer) -> None:
    """One G update through the (frozen) D, as the second half of an iteration takes it."""
    size = trainer.config.batch_size
    z = torch.randn(size, trainer.config.z_dim, generator=trainer.noise, device=trainer.device)
    fake_labels = trainer._fake_labels(size)
    with trainer.autocast():
        fake = trainer.g_net(z, fake_labels)
    trainer._g_step(fake, fake_labels)


def train_player(trainer: Trainer, player: str, updates: int, flip_prob: float = 0.0) -> None:
    """`updates` updates of one player ('d' or 'g'; PLAYERS) at the learning rates in force."""
    if player not in PLAYERS:
        raise ValueError(f"player {player!r} is unknown: allowed {', '.join(PLAYERS)}")
    for _ in range(updates):
        _d_update(trainer, flip_prob) if player == "d" else _g_update(trainer)
