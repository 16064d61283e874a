"""Losses against hand-computed values, label flipping, the gradient penalty."""

import math

import pytest
import torch

from gan_core.engine.losses import LOSSES, d_loss, g_loss, gradient_penalty

REAL = torch.tensor([2.0, -1.0])  # D's raw outputs on two real samples
FAKE = torch.tensor([0.5, -3.0])  # ... and on two fakes


def sig(v):
    return 1 / (1 + math.exp(-v))


def mean(values):
    return sum(values) / len(values)


def expected(name):
    """(D loss, G loss) written out from each loss's textbook definition."""
    r, f = REAL.tolist(), FAKE.tolist()
    if name in ("bce", "minimax"):
        d = -mean([math.log(sig(v)) for v in r]) - mean([math.log(1 - sig(v)) for v in f])
        g = -mean([math.log(sig(v)) for v in f]) if name == "bce" else mean([math.log(1 - sig(v)) for v in f])
        return d, g
    if name in ("wasserstein", "wgan-gp"):
        return -mean(r) + mean(f), -mean(f)
    if name == "hinge":
        return mean([max(0, 1 - v) for v in r]) + mean([max(0, 1 + v) for v in f]), -mean(f)
    if name == "lsgan":
        return mean([0.5 * (v - 1) ** 2 for v in r]) + mean([0.5 * v**2 for v in f]), mean(
            [0.5 * (v - 1) ** 2 for v in f]
        )
    raise AssertionError(name)


@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_matches_hand_computed_value(name):
    d, g = expected(name)
    assert d_loss(LOSSES[name], REAL, FAKE).item() == pytest.approx(d, rel=1e-5)
    assert g_loss(LOSSES[name], FAKE).item() == pytest.approx(g, rel=1e-5)


def test_bce_flip_is_matlabs_one_minus_output():
    """MATLAB replaces D(x) by 1 - D(x) for flipped reals: -log(1 - D(x)) for that sample."""
    flip = torch.tensor([True, False])
    got = d_loss(LOSSES["bce"], REAL, FAKE, flip).item()
    want = -mean([math.log(1 - sig(2.0)), math.log(sig(-1.0))]) - mean(
        [math.log(1 - sig(v)) for v in FAKE.tolist()]
    )
    assert got == pytest.approx(want, rel=1e-5)


def test_critic_flip_counts_real_as_fake():
    flip = torch.tensor([True, True])
    got = d_loss(LOSSES["wasserstein"], REAL, FAKE, flip).item()
    assert got == pytest.approx(REAL.mean().item() + FAKE.mean().item(), rel=1e-5)


def test_minimax_saturates_where_bce_does_not():
    """When D confidently rejects fakes, minimax's G gradient vanishes; bce's stays large."""
    out = torch.tensor([-8.0], requires_grad=True)
    (grad_minimax,) = torch.autograd.grad(g_loss(LOSSES["minimax"], out), out)
    (grad_bce,) = torch.autograd.grad(g_loss(LOSSES["bce"], out), out)
    assert abs(grad_minimax.item()) < 1e-3 < 0.9 < abs(grad_bce.item())


def test_scores_read_outputs_as_probabilities():
    assert LOSSES["bce"].prob(torch.tensor([0.0])).item() == 0.5
    assert LOSSES["lsgan"].prob(torch.tensor([1.7, -0.2])).tolist() == [1.0, 0.0]


def test_gradient_penalty_of_linear_critic():
    """D(x) = w.x has gradient w everywhere: the penalty is (|w| - 1)^2 exactly."""
    w = torch.tensor([3.0, 4.0])

    def critic(x, labels):
        return x @ w, None

    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    assert gradient_penalty(critic, real, fake, None).item() == pytest.approx((5.0 - 1) ** 2)
