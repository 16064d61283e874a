"""Sample quality: modes captured on the 2-D toys; on images, in a classifier's feature space, Fréchet
distance, precision / recall / density / coverage, KID, class coverage, recognisability and diversity —
computed off the hot path, every so often, without gradients."""

from __future__ import annotations

import hashlib
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ConfigError
from ..engine.data import TOYS, Data, data_for, to_model_range
from ..engine.sampling import Sampler, generate, latents
from ..engine.trainer import points_bounds
from ..folder import milestone
from ..folder.history import QUALITY_COLUMNS
from ..folder.storage import atomic_save, load_tensors
from .divergence import GridDivergence
from .feature_metrics import kernel_inception_distance, knn_radii, prdc

__all__ = [
    "QUALITY_COLUMNS", "QualityMonitor", "evaluate_sampler", "image_evaluator", "inception_fid", "toy_metrics",
]  # fmt: skip

TOY_SAMPLES = 2500  # the protocol of VEEGAN / PacGAN
MODE_MIN_POINTS = 20
RECOGNISABLE_PROB = 0.9

# ---- 2-D toys


def toy_metrics(points: Tensor, dataset: str) -> dict[str, float]:
    """Modes captured (>= 20 points within 3 std of a centre) and the fraction of points within 3 std of any."""
    centres, std = TOYS[dataset]
    near = torch.cdist(points.float(), centres.to(points.device)) <= 3 * std  # (N, modes)
    return {
        "modes": float((near.sum(0) >= MODE_MIN_POINTS).sum()),
        "high_quality": float(near.any(1).float().mean()),
    }


def points_metrics(points: Tensor, data: Data, divergence: GridDivergence) -> dict[str, float]:
    """2-D data: KL and JS divergence to the real density; on a toy also its modes (toy_metrics)."""
    result = divergence(points)
    if data.name in TOYS:
        result |= toy_metrics(points, data.name) | {"modes_total": len(TOYS[data.name][0])}
    return result


# ---- the classifier whose features the image metrics use


class Classifier(nn.Module):
    """A small CNN trained on the data set's own real images; its 128-d penultimate layer is the feature space."""

    def __init__(self, channels: int, size: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 32, S/2, S/2)
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(7),  # (B, 64, 7, 7)
            nn.Flatten(), nn.Linear(64 * 49, 128), nn.ReLU(),  # (B, 128)
        )  # fmt: skip
        self.head = nn.Linear(128, num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.features(x)
        return features, self.head(features)


def _split(data: Data, held_out: float = 0.2) -> tuple[Tensor, Tensor]:
    """A fixed train / held-out split of the data's indices (the held-out part gives the FD floor)."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    cut = int(len(data) * (1 - held_out))
    return order[:cut], order[cut:]


def train_classifier(
    data: Data, device: torch.device, epochs: int | None = None, stop: threading.Event | None = None
) -> tuple[Classifier, float]:
    """Train on the train split; returns the classifier (eval mode) and its held-out accuracy.

    Raises InterruptedError as soon as `stop` is set (the run it serves has ended)."""
    train_idx, test_idx = _split(data)
    epochs = epochs or max(2, min(30, 30_000 // len(train_idx)))  # ~30k images seen: seconds on a CPU
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Classifier(data.data_shape[0], data.data_shape[1], data.num_classes).to(device)
        x, y = data.x.to(device), data.y.to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(epochs):
            for batch in train_idx[torch.randperm(len(train_idx))].split(128):
                if stop is not None and stop.is_set():
                    raise InterruptedError("the run ended before its classifier was trained")
                images = to_model_range(x[batch.to(device)])
                shift = torch.randint(-2, 3, (2,)).tolist()  # small translations: sturdier features
                _, logits = model(torch.roll(images, shifts=shift, dims=(2, 3)))
                loss = F.cross_entropy(logits, y[batch.to(device)])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    model.eval()
    return model, accuracy(model, to_model_range(x[test_idx.to(device)]), y[test_idx.to(device)])


@torch.no_grad()
def accuracy(model: Classifier, images: Tensor, labels: Tensor) -> float:
    preds = torch.cat([model(part)[1].argmax(1) for part in images.split(512)])
    return float((preds == labels).float().mean())


def classifier_path(data: Data, data_dir: str | Path) -> Path:
    """Where the classifier of this data set is cached (the data's name, shape and content make the key)."""
    digest = hashlib.sha256(data.x[:: max(1, len(data) // 256)].numpy().tobytes()).hexdigest()[:12]
    name = "".join(c if c.isalnum() else "-" for c in data.name)[:40]
    return Path(data_dir) / "classifiers" / f"{name}-{'x'.join(map(str, data.data_shape))}-{digest}.pt"


_locks: dict[Path, threading.Lock] = {}


def load_or_train_classifier(
    data: Data, device: torch.device, data_dir: str | Path, stop: threading.Event | None = None
) -> tuple[Classifier, float]:
    """The data set's classifier from its cache file, trained (once per process and data set) when absent."""
    path = classifier_path(data, data_dir)
    with _locks.setdefault(path, threading.Lock()):  # two runs on one data set train it once
        model = Classifier(data.data_shape[0], data.data_shape[1], data.num_classes)
        if path.is_file():
            state = load_tensors(path)
            model.load_state_dict(state["model"])
            return model.to(device).eval(), float(state["accuracy"])
        model, acc = train_classifier(data, device, stop=stop)
        atomic_save(path, {"model": model.state_dict(), "accuracy": acc})
        return model, acc


# ---- image statistics


def frechet_distance(a: tuple[Tensor, Tensor], b: tuple[Tensor, Tensor]) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^1/2) for Gaussians given as (mean, covariance)."""
    (mu_a, cov_a), (mu_b, cov_b) = a, b
    vals, vecs = torch.linalg.eigh(cov_a.double())
    root_a = vecs @ torch.diag(vals.clamp(min=0).sqrt()) @ vecs.T
    middle = torch.linalg.eigvalsh(root_a @ cov_b.double() @ root_a).clamp(min=0).sqrt().sum()
    return float(
        ((mu_a - mu_b).double() ** 2).sum() + cov_a.double().trace() + cov_b.double().trace() - 2 * middle
    )


def gaussian(features: Tensor) -> tuple[Tensor, Tensor]:
    features = features.double()
    return features.mean(0), torch.cov(features.T)


def diversity(features: Tensor, pairs: int = 2000) -> float:
    """Mean feature distance between random pairs of samples (a fixed pairing, so values compare)."""
    gen = torch.Generator().manual_seed(0)
    i, j = torch.randint(len(features), (2, pairs), generator=gen)
    keep = i != j
    return float((features[i[keep]] - features[j[keep]]).norm(dim=1).mean())


@dataclass
class ImageEvaluator:
    """Quality metrics of generated images against one labelled data set, in its classifier's feature space."""

    classifier: Classifier
    classifier_accuracy: float
    real: tuple[Tensor, Tensor]  # feature mean and covariance of the train split
    real_diversity: float
    fd_floor: float  # FD between the held-out real images and the train split: what "as good as real" scores
    kid_floor: float  # KID between the held-out real images and the reference: the same for KID
    real_recognisable: float  # the held-out real images' recognisable share: milestone's reference
    num_classes: int
    reference: Tensor  # (R, 128) features of a fixed subset of the train split: PRDC's and KID's real set
    reference_radii: Tensor  # (R,) their k-NN radii, computed once

    def features(self, images: Tensor) -> tuple[Tensor, Tensor]:
        return classifier_features(self.classifier, images)

    def __call__(self, images: Tensor, requested: Tensor | None = None) -> dict[str, float]:
        """Metrics of generated images in [-1, 1]; `requested` are the classes a conditional model was asked for.
        Precision, recall, density, coverage and KID use as many samples as the reference has real images."""
        features, probs = self.features(images)
        compared = features[: len(self.reference)]
        predicted = probs.max(1).indices
        share = torch.bincount(predicted, minlength=self.num_classes).float() / len(predicted)
        entropy = -(share[share > 0] * share[share > 0].log()).sum() / math.log(max(2, self.num_classes))
        return {
            "fd": frechet_distance(gaussian(features), self.real),
            "recognisable": recognisable_share(probs),
            "class_coverage": float((share >= 0.01).sum()),
            "class_entropy": float(entropy),
            "max_class_share": float(share.max()),
            "class_agreement": float((predicted == requested.cpu()).float().mean())
            if requested is not None
            else math.nan,
            "diversity": diversity(features) / self.real_diversity,
            **prdc(self.reference, compared, self.reference_radii),
            "kid": kernel_inception_distance(self.reference, compared),
        }


def recognisable_share(probs: Tensor) -> float:
    """The share of images whose top class probability is at least RECOGNISABLE_PROB; probs (N, classes)."""
    return float((probs.max(1).values >= RECOGNISABLE_PROB).float().mean())


@torch.no_grad()
def classifier_features(classifier: Classifier, images: Tensor) -> tuple[Tensor, Tensor]:
    """The classifier's (N, 128) features and (N, classes) probabilities of images in [-1, 1], on the CPU."""
    parts = [classifier(part) for part in images.split(500)]
    features, logits = torch.cat([f for f, _ in parts]), torch.cat([p for _, p in parts])
    return features.float().cpu(), logits.softmax(1).float().cpu()


def image_evaluator(
    data: Data,
    device: torch.device,
    data_dir: str | Path,
    samples: int = 1000,
    stop: threading.Event | None = None,
) -> ImageEvaluator:
    """Train (or load) the data set's classifier and summarise its real images; labelled image data only.

    The first `samples` (at most 5000) train-split images, in a fixed random order, are the reference of
    precision, recall, density, coverage and KID: as many real images as samples measured, the same ones
    each time."""
    classifier, acc = load_or_train_classifier(data, device, data_dir, stop)
    train_idx, test_idx = _split(data)
    train_features, _ = classifier_features(classifier, to_model_range(data.x[train_idx[:5000]].to(device)))
    held_out = to_model_range(data.x[test_idx[:samples]].to(device))
    test_features, test_probs = classifier_features(classifier, held_out)
    real, reference = gaussian(train_features), train_features[:samples]
    return ImageEvaluator(
        classifier, acc, real, real_diversity=diversity(train_features),
        fd_floor=frechet_distance(gaussian(test_features), real),
        kid_floor=kernel_inception_distance(reference, test_features),  # imports torchmetrics here, once
        real_recognisable=recognisable_share(test_probs),
        num_classes=data.num_classes, reference=reference, reference_radii=knn_radii(reference),
    )  # fmt: skip


def evaluate_sampler(sampler: Sampler, device: torch.device, n: int = 2000, fid: bool = False) -> dict:
    """`evaluate`'s protocol on a saved run's generator: 2,500 points on the toys; on labelled images, n samples
    (latent seed 1) against the data set's classifier, with the FD and KID of held-out real images as
    floors and their recognisable share beside the samples'."""
    config = sampler.config
    result: dict = {"iteration": sampler.iteration}
    data = data_for(config)
    if data.points:  # the toys and drawn points: 2,500 points, KL and JS; the toys' modes too
        z, _ = latents(sampler, TOY_SAMPLES, seed=1)
        divergence = GridDivergence(data.x, points_bounds(data))
        return result | points_metrics(generate(sampler, z), data, divergence)
    if data.y is None or data.num_classes < 2:
        raise ConfigError(
            f"{config.dataset!r} has no labels: quality metrics need a 2-D toy or labelled images"
        )
    evaluator = image_evaluator(data, device, config.data_dir, samples=n)
    z, labels = latents(sampler, n, seed=1)
    samples = generate(sampler, z, labels)
    result |= evaluator(samples.to(device), labels)
    result |= {"fd_real_floor": evaluator.fd_floor, "kid_real_floor": evaluator.kid_floor,
               "recognisable_real": evaluator.real_recognisable,
               "classifier_accuracy": evaluator.classifier_accuracy}  # fmt: skip
    if fid:
        result["inception_fid"] = inception_fid(data.x[:n], samples, device)
    return result


def inception_fid(real: Tensor, fake: Tensor, device: torch.device) -> float | str:
    """Real FID (Inception-v3 pool features) when torchmetrics and its weights are at hand; else why not.

    real: uint8 images (N, C, H, W); fake: images in [-1, 1]. Offline without cached weights this returns a
    note, never a number made up some other way.
    """
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance

        fid = FrechetInceptionDistance(feature=2048).to(device)
    except Exception as exc:  # not installed, or its weights cannot be fetched
        return f"not computed: needs torchmetrics[image] with its Inception weights on disk ({type(exc).__name__})"
    fake = ((fake.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    for images, is_real in ((real, True), (fake, False)):
        for part in images.split(200):
            part = part.to(device)
            fid.update(part.expand(-1, 3, -1, -1) if part.shape[1] == 1 else part, real=is_real)
    return float(fid.compute())


# ---- during training


class QualityMonitor:
    """When and how a run measures its samples: every `every` iterations, or (automatic) whenever the time
    spent measuring stays under `budget` of the time spent training."""

    def __init__(self, data: Data, device: torch.device, z_dim: int, conditional: bool, data_dir: str | Path,
                 every: int | None = None, budget: float = 0.02, seed: int = 0):  # fmt: skip
        self.data, self.device, self.every, self.budget = data, device, every, budget
        self.kind = "toy" if data.points else "image" if data.y is not None and data.num_classes > 1 else None
        self.divergence = GridDivergence(data.x, points_bounds(data)) if data.points else None
        self.note = None if self.kind else "quality metrics need a 2-D toy or a labelled image data set"
        self.evaluator: ImageEvaluator | None = None
        self.data_dir = data_dir
        n = TOY_SAMPLES if self.kind == "toy" else 1000
        gen = torch.Generator().manual_seed(seed + 1)
        self.z = torch.randn(n, z_dim, generator=gen).to(device)  # the same latents every time: smooth curves
        self.labels = (torch.arange(n) % data.num_classes).to(device) if conditional else None
        self.spent = 0.0
        self.cost = (
            0.01 if self.kind == "toy" else 0.2
        )  # seconds one measurement takes: a guess until measured

    @property
    def ready(self) -> bool:
        return self.kind == "toy" or self.evaluator is not None

    @property
    def cached(self) -> bool:
        """Image data: whether the classifier is on disk already (preparing then takes about a second)."""
        return self.kind == "image" and classifier_path(self.data, self.data_dir).is_file()

    def prepare(self, stop: threading.Event | None = None) -> None:
        """Image data: train (tens of seconds, once per data set) or load the classifier; its time is charged
        to the budget when done in the measuring thread."""
        if self.kind == "image" and self.evaluator is None:
            began = time.thread_time()
            self.evaluator = image_evaluator(self.data, self.device, self.data_dir, stop=stop)
            self.spent += time.thread_time() - began if stop is None else 0.0

    def wants(self, iteration: int, training_seconds: float) -> bool:
        """Whether a measurement is due, ready or not. training_seconds: the CPU time the calling (training)
        thread has had, as `measure` counts its cost."""
        if self.every == 0 or self.kind is None:
            return False
        if self.every:
            return iteration % self.every == 0
        return self.spent + self.cost <= self.budget * training_seconds  # this one included, still in budget

    @torch.no_grad()
    def measure(self, generator: nn.Module) -> dict[str, float]:
        """Metrics of the generator (put in eval mode for the measurement) on the fixed evaluation latents."""
        began = time.thread_time()
        generator.eval()
        try:
            samples = torch.cat(
                [
                    generator(z, labels)
                    for z, labels in zip(self.z.split(500), self._label_parts(), strict=True)
                ]
            )
        finally:
            generator.train()
        if self.kind == "toy":
            result = points_metrics(samples, self.data, self.divergence)
            result.pop("modes_total", None)
        else:
            result = self.evaluator(samples, self.labels)
        self.cost = time.thread_time() - began
        self.spent += self.cost
        return result

    def reached(self, values: dict[str, float]) -> dict | None:
        """The fields of the run's recognisable mark when these metrics reach it (milestone.reached), else None."""
        if self.kind == "toy":  # drawn points have no modes to count: no mark
            toy = TOYS.get(self.data.name)
            return milestone.reached(values, modes_total=len(toy[0])) if toy else None
        return milestone.reached(values, real=self.evaluator.real_recognisable)

    def _label_parts(self):
        return self.labels.split(500) if self.labels is not None else [None] * len(self.z.split(500))
