"""The five reference GAN architectures (generator and discriminator pairs) and their registry, ARCHS.

Each builder scales its hidden layers by `ModelSpec.width`; the shapes in its comments are at width 1.
"""

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    """What a model pair is built for: latent size, one sample's shape, the number of classes, and how wide."""

    z_dim: int
    data_shape: tuple[int, ...]  # (C, H, W) for images, (2,) for 2-D points
    num_classes: int  # K (>= 1)
    width: float = 1.0  # every hidden layer's filters or units, as a multiple of the reference design's
    # 2-D points: the data's mean (x, y) and spread; the mlp networks work in (x - shift) / scale (Standardise)
    point_shift: tuple[float, ...] = (0.0, 0.0)
    point_scale: float = 1.0

    @classmethod
    def saved(cls, spec: dict) -> "ModelSpec":
        """The spec a checkpoint saved (its `asdict`), shapes as tuples again."""
        return cls(**{**spec, "data_shape": tuple(spec["data_shape"])})

    def units(self, reference: int) -> int:
        """A hidden layer's filters or units: the reference design's count times `width`, at least 1."""
        return max(1, round(reference * self.width))


# ---- wrappers shared by all architectures


class Generator(nn.Module):
    """generator(z, labels) -> samples (B, *data_shape) in [-1, 1]; labels are ignored when unconditional."""

    def __init__(self, layers: nn.Module, data_shape: tuple[int, ...], label_input: nn.Module | None = None):
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.label_input = label_input
        self.layers = layers

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = z if self.label_input is None else self.label_input(z, labels)
        return self.layers(h).reshape(len(z), *self.data_shape)


class Discriminator(nn.Module):
    """discriminator(x, labels) -> (logit (B,), class_logits (B, K) or None)."""

    def __init__(
        self, features: nn.Module, head: nn.Module, class_head: nn.Module | None = None, label_planes=0
    ):
        super().__init__()
        self.label_planes = label_planes  # K when the labels enter as K one-hot image planes, else 0
        self.features = features
        self.head = head
        self.class_head = class_head

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None):
        if self.label_planes:
            planes = one_hot(labels, self.label_planes, x.dtype)[:, :, None, None]  # (B, K, 1, 1)
            x = torch.cat([x, planes.expand(-1, -1, *x.shape[2:])], dim=1)  # (B, C + K, H, W)
        h = self.features(x)
        class_logits = None if self.class_head is None else self.class_head(h)
        return self.head(h).reshape(len(x)), class_logits


class OneHotInput(nn.Module):
    """z (B, z_dim) and labels (B,) -> (B, z_dim + K, 1, 1): the cDCGAN generator's input."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes

    def forward(self, z, labels):
        return torch.cat([z, one_hot(labels, self.num_classes, z.dtype)], dim=1)[:, :, None, None]


class EmbeddingInput(nn.Module):
    """h = z * embedding(labels), element-wise: the Keras ACGAN generator's input (B, z_dim)."""

    def __init__(self, num_classes: int, z_dim: int):
        super().__init__()
        self.embedding = nn.Embedding(num_classes, z_dim)

    def forward(self, z, labels):
        return z * self.embedding(require_labels(labels))


class Standardise(nn.Module):
    """2-D points in the data's units -> (x - shift) / scale, the units the networks work in; inverse=True maps
    the generator's output back: inputs standardised, as any network's should be. In the grid's raw units (+-4)
    G split each coordinate into a negative and a positive half and left the modes at 0 empty (seed 0: 15/25
    modes); standardised, the grid preset finds 25/25 for seeds 0, 1 and 2 (bench/README.md).

    shift and scale are saved with the weights; a checkpoint from before them loads as the identity it was
    trained with."""

    def __init__(self, shift: tuple[float, ...], scale: float, inverse: bool = False):
        super().__init__()
        self.inverse = inverse
        self.register_buffer("shift", torch.tensor(shift, dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(float(scale)))

    def forward(self, x):
        return x * self.scale + self.shift if self.inverse else (x - self.shift) / self.scale

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.setdefault(prefix + "shift", torch.zeros_like(self.shift))
        state_dict.setdefault(prefix + "scale", torch.ones_like(self.scale))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class ScaledSigmoid(nn.Module):
    """2 * sigmoid(x) - 1: the CNTK sigmoid output for [0, 1] pixels, rescaled to our [-1, 1] data.

    The same function up to the affine data rescale x -> 2x - 1, so the design is unchanged.
    """

    def forward(self, x):
        return 2 * torch.sigmoid(x) - 1


# ---- small helpers


def require_labels(labels: torch.Tensor | None) -> torch.Tensor:
    """Conditional models cannot run without labels; say so instead of failing inside a layer."""
    if labels is None:
        raise ValueError("this model is conditional: pass labels, an int64 tensor of shape (B,)")
    return labels


def one_hot(labels: torch.Tensor | None, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    return F.one_hot(require_labels(labels), num_classes).to(dtype)  # (B, K)


def image_channels(spec: ModelSpec, size: int, arch: str) -> int:
    """The channel count of a (C, size, size) data shape; ValueError for any other shape."""
    shape = tuple(spec.data_shape)
    if len(shape) != 3 or shape[1:] != (size, size) or shape[0] < 1:
        raise ValueError(f"{arch} needs data_shape (C, {size}, {size}), got {shape}")
    return shape[0]


def lrelu() -> nn.Module:
    return nn.LeakyReLU(0.2)


def upconv5(c_in: int, c_out: int) -> nn.Module:
    """ConvTranspose 5x5 stride 2 "same": (H, W) -> (2H, 2W)."""
    return nn.ConvTranspose2d(c_in, c_out, 5, stride=2, padding=2, output_padding=1)


def downconv5(c_in: int, c_out: int) -> nn.Module:
    """Conv 5x5 stride 2 "same": (H, W) -> (H/2, W/2)."""
    return nn.Conv2d(c_in, c_out, 5, stride=2, padding=2)


WEIGHTED = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d, nn.Embedding)
normal_002 = partial(nn.init.normal_, mean=0.0, std=0.02)
trunc_normal_002 = partial(nn.init.trunc_normal_, mean=0.0, std=0.02, a=-0.04, b=0.04)  # TF: cut at 2 std


def initialise(model: nn.Module, weight_init: Callable, types: tuple = WEIGHTED) -> nn.Module:
    """Draw the weights of every layer of the given types with weight_init; set their biases to 0."""
    for module in model.modules():
        if isinstance(module, types):
            weight_init(module.weight)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
    return model


# ---- mlp: PyTorch MLP GAN (reference 5); PyTorch's default initialisation


def mlp_generator(spec: ModelSpec) -> nn.Module:
    size = math.prod(spec.data_shape)  # C*28*28 for images, 2 for points
    h = spec.units(256)
    layers = nn.Sequential(
        nn.Linear(spec.z_dim, h), nn.ReLU(),  # (B, 256)
        nn.Linear(h, h), nn.ReLU(),  # (B, 256)
        nn.Linear(h, size),  # (B, C*H*W) or (B, 2)
        # images end in tanh ([-1, 1]); 2-D points are unbounded (the grid toy spans [-4, 4]): linear, mapped
        # from standardised units to the data's
        nn.Tanh() if len(spec.data_shape) > 1 else Standardise(spec.point_shift, spec.point_scale, inverse=True),
    )  # fmt: skip
    return Generator(layers, spec.data_shape)


def mlp_discriminator(spec: ModelSpec) -> nn.Module:
    h = spec.units(256)
    size = math.prod(spec.data_shape)
    features = nn.Sequential(
        # (B, C*H*W) or (B, 2 * pack): pack points (x, y) side by side, each standardised
        nn.Flatten() if len(spec.data_shape) > 1 else Standardise(spec.point_shift * (size // 2), spec.point_scale),
        nn.Linear(size, h), lrelu(),  # (B, 256)
        nn.Linear(h, h), lrelu(),  # (B, 256)
    )  # fmt: skip
    return Discriminator(features, nn.Linear(h, 1))  # (B, 1)


# ---- dcgan28: CNTK DCGAN (reference 1); N(0, 0.02) weights


def dcgan28_generator(spec: ModelSpec, name: str = "dcgan28") -> nn.Module:
    channels = image_channels(spec, 28, name)
    dense, c = spec.units(1024), spec.units(128)
    layers = nn.Sequential(
        nn.Linear(spec.z_dim, dense), nn.BatchNorm1d(dense), nn.ReLU(),  # (B, 1024)
        nn.Linear(dense, c * 7 * 7), nn.Unflatten(1, (c, 7, 7)),  # (B, 128, 7, 7)
        # CNTK's Dense outputs shape (128, 7, 7) and BatchNormalization(map_rank=1) normalises per channel
        nn.BatchNorm2d(c), nn.ReLU(),
        upconv5(c, c), nn.BatchNorm2d(c), nn.ReLU(),  # (B, 128, 14, 14)
        upconv5(c, channels), ScaledSigmoid(),  # (B, C, 28, 28)
    )  # fmt: skip
    return initialise(Generator(layers, spec.data_shape), normal_002)


def dcgan28_discriminator(spec: ModelSpec, first: int | None = None, name: str = "dcgan28") -> nn.Module:
    channels = image_channels(spec, 28, name)
    c, dense = spec.units(64), spec.units(1024)
    published = first is not None
    first = first or c
    features = nn.Sequential(
        # CNTK's tutorial gives this conv a single filter (Convolution2D(dkernel, 1)), so all D sees passes
        # through one 12x12 map; we read it as a slip (the next conv is 64 wide) and use 64. Measured on digits
        # (bench/quality.py, 10 min): one filter 0.41 recognisable, classifier FD 956; 64 filters 0.63, FD 236.
        # It also normalises that conv's output per batch, and a batch is all real or all generated: D cannot
        # see that a generated batch is too bright or too dark as a whole. DCGAN (Radford et al.) leaves D's
        # input layer without batch norm; so do we (cntk-dcgan-demo on digits, 1,200 iterations: classifier
        # FD 95 -> 39, recognisable 0.52 -> 0.77 of real; bench/README.md). `dcgan28-cntk` keeps the tutorial's
        # single filter and its batch norm (first=1).
        nn.Conv2d(channels, first, 5, stride=2),
        nn.BatchNorm2d(first) if published else nn.Identity(), lrelu(),  # (B, 64, 12, 12)
        nn.Conv2d(first, c, 5, stride=2), nn.BatchNorm2d(c), lrelu(),  # (B, 64, 4, 4)
        nn.Flatten(), nn.Linear(c * 4 * 4, dense), nn.BatchNorm1d(dense), lrelu(),  # (B, 1024)
    )  # fmt: skip
    return initialise(Discriminator(features, nn.Linear(dense, 1)), normal_002)  # (B, 1)


# ---- cdcgan: TensorFlow conditional DCGAN (reference 3); truncated-normal(0, 0.02) weights


def cdcgan_generator(spec: ModelSpec) -> nn.Module:
    channels = image_channels(spec, 28, "cdcgan")
    c1, c2 = spec.units(256), spec.units(128)
    layers = nn.Sequential(  # input (B, z_dim + K, 1, 1)
        nn.ConvTranspose2d(spec.z_dim + spec.num_classes, c1, 7), nn.BatchNorm2d(c1), lrelu(),  # (B, 256, 7, 7)
        upconv5(c1, c2), nn.BatchNorm2d(c2), lrelu(),  # (B, 128, 14, 14)
        upconv5(c2, channels), nn.Tanh(),  # (B, C, 28, 28)
    )  # fmt: skip
    generator = Generator(layers, spec.data_shape, OneHotInput(spec.num_classes))
    return initialise(generator, trunc_normal_002)


def cdcgan_discriminator(spec: ModelSpec) -> nn.Module:
    channels = image_channels(spec, 28, "cdcgan")
    c1, c2 = spec.units(128), spec.units(256)
    features = nn.Sequential(  # input: image and K label planes, (B, C + K, 28, 28)
        downconv5(channels + spec.num_classes, c1), lrelu(),  # (B, 128, 14, 14)
        downconv5(c1, c2), nn.BatchNorm2d(c2), lrelu(),  # (B, 256, 7, 7)
    )  # fmt: skip
    head = nn.Conv2d(c2, 1, 7)  # (B, 1, 1, 1)
    return initialise(Discriminator(features, head, label_planes=spec.num_classes), trunc_normal_002)


# ---- acgan-wgan: Keras Wasserstein ACGAN (reference 4)


def acgan_generator(spec: ModelSpec) -> nn.Module:
    channels = image_channels(spec, 28, "acgan-wgan")
    dense, c1, c2 = spec.units(1024), spec.units(128), spec.units(256)
    layers = nn.Sequential(  # input h = z * embedding(y), (B, z_dim)
        nn.Linear(spec.z_dim, dense), lrelu(),  # (B, 1024)
        nn.Linear(dense, c1 * 7 * 7), lrelu(), nn.Unflatten(1, (c1, 7, 7)),  # (B, 128, 7, 7)
        nn.Upsample(scale_factor=2), nn.Conv2d(c1, c2, 5, padding="same"), lrelu(),  # (B, 256, 14, 14)
        nn.Upsample(scale_factor=2), nn.Conv2d(c2, c1, 5, padding="same"), lrelu(),  # (B, 128, 28, 28)
        nn.Conv2d(c1, channels, 2, padding="same"), nn.Tanh(),  # (B, C, 28, 28)
    )  # fmt: skip
    generator = Generator(layers, spec.data_shape, EmbeddingInput(spec.num_classes, spec.z_dim))
    # As the Keras original: Dense and Embedding keep Keras's default glorot_uniform, convs draw N(0, 0.02)
    initialise(generator, nn.init.xavier_uniform_, (nn.Linear, nn.Embedding))
    return initialise(generator, normal_002, (nn.Conv2d,))


def acgan_discriminator(spec: ModelSpec) -> nn.Module:
    channels = image_channels(spec, 28, "acgan-wgan")
    c1, c2, c3, c4 = (spec.units(n) for n in (32, 64, 128, 256))
    features = nn.Sequential(
        nn.Conv2d(channels, c1, 3, padding=1), lrelu(), nn.MaxPool2d(2), nn.Dropout(0.3),  # (B, 32, 14, 14)
        nn.Conv2d(c1, c2, 3, padding=1), lrelu(), nn.Dropout(0.3),  # (B, 64, 14, 14)
        nn.Conv2d(c2, c3, 3, padding=1), nn.MaxPool2d(2), lrelu(), nn.Dropout(0.3),  # (B, 128, 7, 7)
        nn.Conv2d(c3, c4, 3, padding=1), lrelu(), nn.Dropout(0.3),  # (B, 256, 7, 7)
        nn.Flatten(),  # (B, 12544)
    )  # fmt: skip
    critic = nn.Linear(c4 * 7 * 7, 1)  # (B, 1), linear critic value
    classes = nn.Linear(c4 * 7 * 7, spec.num_classes)  # (B, K) logits; the loss applies the softmax
    return initialise(Discriminator(features, critic, classes), normal_002)


# ---- dcgan64: MATLAB DCGAN (reference 2); N(0, 0.02) weights


def dcgan64_generator(spec: ModelSpec) -> nn.Module:
    channels = image_channels(spec, 64, "dcgan64")
    c1, c2, c3, c4 = (spec.units(n) for n in (512, 256, 128, 64))
    layers = nn.Sequential(
        nn.Linear(spec.z_dim, 4 * 4 * c1), nn.Unflatten(1, (c1, 4, 4)),  # project and reshape, (B, 512, 4, 4)
        nn.ConvTranspose2d(c1, c2, 5), nn.BatchNorm2d(c2), nn.ReLU(),  # (B, 256, 8, 8)
        upconv5(c2, c3), nn.BatchNorm2d(c3), nn.ReLU(),  # (B, 128, 16, 16)
        upconv5(c3, c4), nn.BatchNorm2d(c4), nn.ReLU(),  # (B, 64, 32, 32)
        upconv5(c4, channels), nn.Tanh(),  # (B, C, 64, 64)
    )  # fmt: skip
    return initialise(Generator(layers, spec.data_shape), normal_002)


def dcgan64_discriminator(spec: ModelSpec) -> nn.Module:
    channels = image_channels(spec, 64, "dcgan64")
    c1, c2, c3, c4 = (spec.units(n) for n in (64, 128, 256, 512))
    features = nn.Sequential(
        nn.Dropout(0.5),  # on the input, (B, C, 64, 64)
        downconv5(channels, c1), lrelu(),  # (B, 64, 32, 32)
        downconv5(c1, c2), nn.BatchNorm2d(c2), lrelu(),  # (B, 128, 16, 16)
        downconv5(c2, c3), nn.BatchNorm2d(c3), lrelu(),  # (B, 256, 8, 8)
        downconv5(c3, c4), nn.BatchNorm2d(c4), lrelu(),  # (B, 512, 4, 4)
    )  # fmt: skip
    return initialise(Discriminator(features, nn.Conv2d(c4, 1, 4)), normal_002)  # (B, 1, 1, 1)


# ---- registry


@dataclass(frozen=True)
class Arch:
    """One architecture: builders for its two networks and what the trainer must know about them."""

    generator: Callable[[ModelSpec], nn.Module]
    discriminator: Callable[[ModelSpec], nn.Module]
    image_size: int  # 28 or 64 (mlp: 28 for images; points ignore it)
    conditional: bool  # the generator takes labels
    d_takes_labels: bool  # the discriminator takes labels
    aux_classifier: bool  # the discriminator also returns class logits
    batch_norm_in_d: bool  # wgan-gp is refused on these
    points: bool  # can model 2-D points
    description: str


def build_models(arch: str, spec: ModelSpec, pack: int = 1) -> tuple[nn.Module, nn.Module]:
    """Build and initialise the (generator, discriminator) pair of architecture `arch` for `spec`.

    pack > 1 (PacGAN): the discriminator takes `pack` samples joined along the first data axis.
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    if spec.z_dim < 1 or spec.num_classes < 1:
        raise ValueError(f"z_dim and num_classes must be >= 1, got {spec.z_dim} and {spec.num_classes}")
    packed = dataclasses.replace(spec, data_shape=(spec.data_shape[0] * pack, *spec.data_shape[1:]))
    return ARCHS[arch].generator(spec), ARCHS[arch].discriminator(packed)


ARCHS: dict[str, Arch] = {
    "mlp": Arch(
        mlp_generator, mlp_discriminator, image_size=28, conditional=False, d_takes_labels=False,
        aux_classifier=False, batch_norm_in_d=False, points=True,
        description="PyTorch MLP GAN: 256-256 linear layers, images or 2-D points",
    ),
    "dcgan28": Arch(
        dcgan28_generator, dcgan28_discriminator, image_size=28, conditional=False, d_takes_labels=False,
        aux_classifier=False, batch_norm_in_d=True, points=False,
        description="CNTK DCGAN: dense+deconv generator, 28x28",
    ),
    "dcgan28-cntk": Arch(
        partial(dcgan28_generator, name="dcgan28-cntk"), partial(dcgan28_discriminator, first=1, name="dcgan28-cntk"),
        image_size=28, conditional=False,
        d_takes_labels=False, aux_classifier=False, batch_norm_in_d=True, points=False,
        description="CNTK DCGAN exactly as the tutorial: D's first conv has 1 filter (dcgan28 has 64)",
    ),
    "cdcgan": Arch(
        cdcgan_generator, cdcgan_discriminator, image_size=28, conditional=True, d_takes_labels=True,
        aux_classifier=False, batch_norm_in_d=True, points=False,
        description="TensorFlow conditional DCGAN: one-hot labels into both networks, 28x28",
    ),
    "acgan-wgan": Arch(
        acgan_generator, acgan_discriminator, image_size=28, conditional=True, d_takes_labels=False,
        aux_classifier=True, batch_norm_in_d=False, points=False,
        description="Keras Wasserstein ACGAN: embedded-label generator, critic with a class head, 28x28",
    ),
    "dcgan64": Arch(
        dcgan64_generator, dcgan64_discriminator, image_size=64, conditional=False, d_takes_labels=False,
        aux_classifier=False, batch_norm_in_d=True, points=False,
        description="MATLAB DCGAN: project-and-reshape + 4 deconvs, 64x64",
    ),
}  # fmt: skip
