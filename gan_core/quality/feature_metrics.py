"""Field-standard metrics between two sets of feature vectors: precision, recall, density and coverage
(k-NN balls; Kynkäänniemi et al. 2019, Naeem et al. 2020) and KID (Bińkowski et al. 2018, by torchmetrics)."""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor, nn

NEAREST_K = 5  # Naeem et al.'s k
KID_SUBSET_SIZE, KID_SUBSETS = 1000, 100  # torchmetrics' defaults, the KID paper's protocol

# ---- precision, recall, density, coverage


def knn_radii(features: Tensor, k: int = NEAREST_K) -> Tensor:
    """Each point's distance to its k-th nearest other point: the radius of its k-NN ball (NaN: too few)."""
    if len(features) <= k:
        return torch.full((len(features),), math.nan)
    nearest = torch.cdist(features, features).topk(k + 1, dim=1, largest=False).values  # (N, k + 1)
    return nearest[:, -1]  # the first is the point itself


def prdc(real: Tensor, fake: Tensor, real_radii: Tensor | None = None, k: int = NEAREST_K) -> dict:
    """Precision, recall, density and coverage of `fake` against `real` features (N, D), with the strict
    inequalities of Naeem et al.'s reference code (clovaai/generative-evaluation-prdc).

    precision: share of fakes inside some real k-NN ball; recall: share of reals inside some fake k-NN
    ball; density: real balls holding a fake, per fake, over k (about 1 when fakes fall as reals do);
    coverage: share of real balls holding a fake. real_radii: knn_radii(real, k), kept from an earlier call.
    """
    if min(len(real), len(fake)) <= k:  # a tiny labelled data set: no k-NN balls to draw
        return dict.fromkeys(("precision", "recall", "density", "coverage"), math.nan)
    real_radii = knn_radii(real, k) if real_radii is None else real_radii
    between = torch.cdist(real, fake)  # (R, F)
    in_real_ball = between < real_radii[:, None]
    in_fake_ball = between < knn_radii(fake, k)[None, :]
    return {
        "precision": float(in_real_ball.any(0).double().mean()),
        "recall": float(in_fake_ball.any(1).double().mean()),
        "density": float(in_real_ball.sum(0).double().mean() / k),
        "coverage": float(in_real_ball.any(1).double().mean()),
    }


# ---- kernel inception distance


def kernel_inception_distance(
    real: Tensor, fake: Tensor, subset_size: int = KID_SUBSET_SIZE, subsets: int = KID_SUBSETS, seed: int = 0
) -> float:
    """KID: the unbiased MMD^2 of the cubic kernel (x.y / D + 1)^3, averaged over `subsets` random subsets
    of `subset_size` per side (at most the smaller set; one subset when that takes both sets whole), as
    torchmetrics' KernelInceptionDistance computes it, here on features already extracted. The subsets come
    from `seed`, so values compare, and the caller's random stream is left as it was."""
    # imported here, as it takes about 2 s: only a run that measures images needs it
    from torchmetrics.image.kid import KernelInceptionDistance

    size = min(subset_size, len(real), len(fake))
    whole = size == len(real) == len(fake)  # every subset would be the same
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # it keeps every feature: a few MB here
        kid = KernelInceptionDistance(
            nn.Identity(), subsets=1 if whole else subsets, subset_size=size, sync_on_compute=False
        )  # only the main process measures under torchrun: a sync would wait for ranks that never come
    kid.update(real, real=True)
    kid.update(fake, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, _ = kid.compute()
    return float(mean)
