"""GAN losses as pure per-sample functions of the discriminator's raw output (a logit or critic value).

A loss is three functions on D's output `o` (shape (B,)), each returning per-sample values:
`d_real(o)` (a real sample's D loss), `d_fake(o)` (a fake sample's D loss) and `g(o)` (G's loss on a
fake). D's loss is mean(d_real(real)) + mean(d_fake(fake)); label flipping (MATLAB's flipProb)
scores a flipped real sample with d_fake instead, which for `bce` is exactly MATLAB's 1 - D(x).
Critic losses (wasserstein, wgan-gp, hinge) have no targets: there, a flipped real sample is
treated as a fake one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

PerSample = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Loss:
    d_real: PerSample
    d_fake: PerSample
    g: PerSample
    prob: PerSample  # D's output read as "probability that x is real", for the scores
    critic: bool  # output is an unbounded critic value, not a logit; Wasserstein estimate shown
    clip_value: float | None = None  # default weight clipping of the critic
    gradient_penalty: float = 0.0  # lambda of WGAN-GP
    description: str = ""


def d_loss(loss: Loss, real_out: Tensor, fake_out: Tensor, flip: Tensor | None = None) -> Tensor:
    """Discriminator loss; `flip` (bool (B,)) marks real samples scored as fakes."""
    real_terms = loss.d_real(real_out)
    if flip is not None:
        real_terms = torch.where(flip, loss.d_fake(real_out), real_terms)
    return real_terms.mean() + loss.d_fake(fake_out).mean()


def g_loss(loss: Loss, fake_out: Tensor) -> Tensor:
    return loss.g(fake_out).mean()


def gradient_penalty(
    discriminator, real: Tensor, fake: Tensor, labels: Tensor | None, generator=None
) -> Tensor:
    """WGAN-GP: mean((||grad_x D(x_hat)|| - 1)^2) on random interpolates of real and fake."""
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    alpha = torch.rand(shape, device=real.device, generator=generator)
    mixed = (alpha * real + (1 - alpha) * fake.detach()).requires_grad_(True)
    out, _ = discriminator(mixed, labels)
    (grad,) = torch.autograd.grad(out.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def _neg(o: Tensor) -> Tensor:
    return -o


def _pos(o: Tensor) -> Tensor:
    return o


LOSSES: dict[str, Loss] = {
    "bce": Loss(
        d_real=lambda o: F.softplus(-o),  # -log D(x)
        d_fake=F.softplus,  # -log(1 - D(G(z)))
        g=lambda o: F.softplus(-o),  # non-saturating: -log D(G(z))
        prob=torch.sigmoid,
        critic=False,
        description="non-saturating cross-entropy: G maximises log D(G(z))",
    ),
    "minimax": Loss(
        d_real=lambda o: F.softplus(-o),
        d_fake=F.softplus,
        g=lambda o: -F.softplus(o),  # log(1 - D(G(z))): saturates when D wins
        prob=torch.sigmoid,
        critic=False,
        description="the original saturating game: G minimises log(1 - D(G(z)))",
    ),
    "wasserstein": Loss(
        d_real=_neg,
        d_fake=_pos,
        g=_neg,
        prob=torch.sigmoid,
        critic=True,
        clip_value=0.01,
        description="WGAN critic with weight clipping (default 0.01)",
    ),
    "wgan-gp": Loss(
        d_real=_neg,
        d_fake=_pos,
        g=_neg,
        prob=torch.sigmoid,
        critic=True,
        gradient_penalty=10.0,
        description="WGAN critic with gradient penalty (lambda 10)",
    ),
    "hinge": Loss(
        d_real=lambda o: F.relu(1 - o),
        d_fake=lambda o: F.relu(1 + o),
        g=_neg,
        prob=torch.sigmoid,
        critic=True,
        description="hinge loss (SAGAN / BigGAN)",
    ),
    "lsgan": Loss(
        d_real=lambda o: 0.5 * (o - 1) ** 2,
        d_fake=lambda o: 0.5 * o**2,
        g=lambda o: 0.5 * (o - 1) ** 2,
        prob=lambda o: o.clamp(0, 1),  # D regresses to 1 (real) and 0 (fake)
        critic=False,
        description="least squares: D regresses real to 1, fake to 0",
    ),
}
