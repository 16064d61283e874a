"""Tests for gan_core.engine.models: shapes, ranges, gradients, initialisation and the reference designs' sizes."""

import math

import pytest
import torch
from torch import nn

from gan_core.engine.models import ARCHS, ModelSpec, build_models

Z_DIM, K, B = 100, 10, 4

# acgan-wgan's 2x2 "same" conv pads right and bottom, as Keras does; PyTorch notes the padded copy once.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths:UserWarning")


def image_spec(arch: str, channels: int) -> ModelSpec:
    size = ARCHS[arch].image_size
    return ModelSpec(z_dim=Z_DIM, data_shape=(channels, size, size), num_classes=K)


CASES = [(arch, image_spec(arch, channels)) for arch in ARCHS for channels in (1, 3)]
CASES += [("mlp", ModelSpec(z_dim=Z_DIM, data_shape=(2,), num_classes=1))]
CASE_IDS = [f"{arch}-{'x'.join(map(str, spec.data_shape))}" for arch, spec in CASES]


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def labels_for(spec: ModelSpec) -> torch.Tensor:
    return torch.arange(B) % spec.num_classes


# ---- every architecture: shapes, range, gradients


@pytest.mark.parametrize(("arch", "spec"), CASES, ids=CASE_IDS)
def test_shapes_range_and_finite_gradients(arch, spec):
    torch.manual_seed(0)
    generator, discriminator = build_models(arch, spec)
    labels = labels_for(spec)
    fake = generator(torch.randn(B, Z_DIM), labels)
    assert fake.shape == (B, *spec.data_shape)
    assert fake.min() >= -1 and fake.max() <= 1

    logit, class_logits = discriminator(fake, labels)
    assert logit.shape == (B,) and logit.dtype == torch.float32
    if ARCHS[arch].aux_classifier:
        assert class_logits.shape == (B, K)
    else:
        assert class_logits is None

    loss = logit.sum() + (0 if class_logits is None else class_logits.logsumexp(1).sum())
    loss.backward()
    for name, p in [*generator.named_parameters(), *discriminator.named_parameters()]:
        assert p.grad is not None, f"{arch}: no gradient reaches {name}"
        assert torch.isfinite(p.grad).all(), f"{arch}: non-finite gradient in {name}"


@pytest.mark.parametrize(("arch", "spec"), CASES, ids=CASE_IDS)
def test_discriminator_takes_real_data(arch, spec):
    _, discriminator = build_models(arch, spec)
    real = torch.rand(B, *spec.data_shape) * 2 - 1
    logit, _ = discriminator(real, labels_for(spec))
    assert logit.shape == (B,) and torch.isfinite(logit).all()


# ---- registry flags and errors

FLAGS = {  # conditional, d_takes_labels, aux_classifier, batch_norm_in_d, points, image_size
    "mlp": (False, False, False, False, True, 28),
    "dcgan28": (False, False, False, True, False, 28),
    "dcgan28-cntk": (False, False, False, True, False, 28),
    "cdcgan": (True, True, False, True, False, 28),
    "acgan-wgan": (True, False, True, False, False, 28),
    "dcgan64": (False, False, False, True, False, 64),
}


@pytest.mark.parametrize("arch", list(ARCHS))
def test_flags_match_the_reference(arch):
    a = ARCHS[arch]
    assert (
        a.conditional,
        a.d_takes_labels,
        a.aux_classifier,
        a.batch_norm_in_d,
        a.points,
        a.image_size,
    ) == FLAGS[arch]
    assert a.description and "\n" not in a.description
    _, discriminator = build_models(arch, image_spec(arch, 1))
    has_bn = any(isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d) for m in discriminator.modules())
    assert has_bn == a.batch_norm_in_d


def test_registry_lists_the_five_designs():
    assert set(ARCHS) == set(FLAGS)


@pytest.mark.parametrize("arch", [a for a in ARCHS if not ARCHS[a].points])
def test_spatial_architectures_refuse_other_shapes(arch):
    for shape in [(2,), (1, 32, 32), (1, 28, 64)]:
        with pytest.raises(ValueError, match=rf"{arch} needs data_shape \(C, \d+, \d+\)"):
            build_models(arch, ModelSpec(z_dim=Z_DIM, data_shape=shape, num_classes=K))


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="unknown architecture 'nope'"):
        build_models("nope", image_spec("mlp", 1))


# ---- labels


@pytest.mark.parametrize("arch", [a for a in ARCHS if ARCHS[a].conditional])
def test_conditional_generator_needs_and_uses_labels(arch):
    torch.manual_seed(0)
    generator, _ = build_models(arch, image_spec(arch, 1))
    generator.eval()
    z = torch.randn(B, Z_DIM)
    with pytest.raises(ValueError, match="pass labels"):
        generator(z, None)
    with torch.no_grad():
        assert not torch.allclose(
            generator(z, torch.zeros(B, dtype=torch.long)), generator(z, torch.ones(B, dtype=torch.long))
        )


@pytest.mark.parametrize("arch", [a for a in ARCHS if not ARCHS[a].conditional])
def test_unconditional_generator_ignores_labels(arch):
    generator, _ = build_models(arch, image_spec(arch, 1))
    generator.eval()
    z = torch.randn(B, Z_DIM)
    with torch.no_grad():
        assert torch.equal(generator(z, None), generator(z, torch.arange(B)))


def test_cdcgan_discriminator_uses_labels():
    torch.manual_seed(0)
    _, discriminator = build_models("cdcgan", image_spec("cdcgan", 1))
    discriminator.eval()
    x = torch.rand(B, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        zeros, ones = torch.zeros(B, dtype=torch.long), torch.ones(B, dtype=torch.long)
        assert not torch.allclose(discriminator(x, zeros)[0], discriminator(x, ones)[0])
    with pytest.raises(ValueError, match="pass labels"):
        discriminator(x, None)


# ---- parameter counts, written out from the layer lists in REFERENCE_DESIGNS.md


def dense(i, o):
    return i * o + o


def conv(i, o, k):  # Conv and ConvTranspose alike, bias kept
    return i * o * k * k + o


def bn(c):  # scale and shift
    return 2 * c


def embedding(n, d):
    return n * d


def expected_counts(arch: str, c: int) -> tuple[int, int]:
    """(generator, discriminator) parameter counts for z_dim 100, K 10 and c image channels."""
    z = 100
    if arch == "mlp":  # PyTorch, section 5
        g = dense(z, 256) + dense(256, 256) + dense(256, c * 28 * 28)
        d = dense(c * 28 * 28, 256) + dense(256, 256) + dense(256, 1)
    elif arch == "dcgan28":  # CNTK, section 1; BN after the (128, 7, 7) dense is per channel (map_rank=1)
        g = dense(z, 1024) + bn(1024) + dense(1024, 128 * 7 * 7) + bn(128)
        g += conv(128, 128, 5) + bn(128) + conv(128, c, 5)
        d = (
            conv(c, 64, 5)  # 64 filters where CNTK has 1, and no batch norm after them (models.py says why)
            + conv(64, 64, 5)
            + bn(64)
            + dense(64 * 4 * 4, 1024)
            + bn(1024)
            + dense(1024, 1)
        )
    elif arch == "dcgan28-cntk":  # CNTK exactly: D's first conv has one filter
        g, _ = expected_counts("dcgan28", c)
        d = (
            conv(c, 1, 5)
            + bn(1)
            + conv(1, 64, 5)
            + bn(64)
            + dense(64 * 4 * 4, 1024)
            + bn(1024)
            + dense(1024, 1)
        )
    elif arch == "cdcgan":  # TensorFlow, section 3
        g = conv(z + 10, 256, 7) + bn(256) + conv(256, 128, 5) + bn(128) + conv(128, c, 5)
        d = conv(c + 10, 128, 5) + conv(128, 256, 5) + bn(256) + conv(256, 1, 7)
    elif arch == "acgan-wgan":  # Keras, section 4; all critic convs "same": 28 -> 14 -> 14 -> 7 -> 7
        g = embedding(10, z) + dense(z, 1024) + dense(1024, 128 * 7 * 7)
        g += conv(128, 256, 5) + conv(256, 128, 5) + conv(128, c, 2)
        d = conv(c, 32, 3) + conv(32, 64, 3) + conv(64, 128, 3) + conv(128, 256, 3)
        d += dense(256 * 7 * 7, 1) + dense(256 * 7 * 7, 10)
    elif arch == "dcgan64":  # MATLAB, section 2
        g = dense(z, 4 * 4 * 512) + conv(512, 256, 5) + bn(256) + conv(256, 128, 5) + bn(128)
        g += conv(128, 64, 5) + bn(64) + conv(64, c, 5)
        d = conv(c, 64, 5) + conv(64, 128, 5) + bn(128) + conv(128, 256, 5) + bn(256)
        d += conv(256, 512, 5) + bn(512) + conv(512, 1, 4)
    else:
        raise AssertionError(f"no reference parameter count written for {arch}")
    return g, d


COUNT_CASES = [(arch, 1) for arch in ARCHS] + [("dcgan64", 3)]


@pytest.mark.parametrize(("arch", "channels"), COUNT_CASES)
def test_parameter_counts_match_the_reference(arch, channels):
    generator, discriminator = build_models(arch, image_spec(arch, channels))
    assert (count(generator), count(discriminator)) == expected_counts(arch, channels)


def test_parameter_counts_spelled_out():
    # The MNIST figures themselves, so a slip in the helpers above cannot hide a wrong model.
    assert expected_counts("mlp", 1) == (293_136, 267_009)
    assert expected_counts("dcgan28", 1) == (6_947_713, 1_156_929)
    assert expected_counts("cdcgan", 1) == (2_203_393, 867_841)
    assert expected_counts("acgan-wgan", 1) == (8_172_521, 525_835)
    assert expected_counts("dcgan64", 3) == (5_134_339, 4_316_545)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_width_scales_every_hidden_layer_and_keeps_the_shapes(arch):
    spec = image_spec(arch, 1)
    narrow = ModelSpec(spec.z_dim, spec.data_shape, spec.num_classes, width=0.25)
    full_g, full_d = build_models(arch, spec)
    generator, discriminator = build_models(arch, narrow)
    for full, small in ((full_g, generator), (full_d, discriminator)):
        full_widths = [
            m.out_channels for m in full.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)
        ]
        widths = [m.out_channels for m in small.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
        # hidden layers at a quarter; the image channels and the one-value head stay as they are
        assert widths == [w if w in (1, K) else w // 4 for w in full_widths]
        assert count(small) < count(full) / 4
    labels = labels_for(spec)
    fake = generator(torch.randn(B, Z_DIM), labels)
    assert fake.shape == (B, *spec.data_shape)
    assert discriminator(fake, labels)[0].shape == (B,)


def test_width_of_the_mlp_and_its_floor():
    generator, _ = build_models("mlp", ModelSpec(Z_DIM, (1, 28, 28), 1, width=0.5))
    assert [m.out_features for m in generator.modules() if isinstance(m, nn.Linear)] == [128, 128, 784]
    assert ModelSpec(Z_DIM, (2,), 1, width=0.001).units(256) == 1


# ---- intermediate spatial sizes (the sizes each reference states after every conv layer)

SIZES = {  # arch: (generator conv outputs, discriminator conv outputs), height = width
    "mlp": ([], []),
    "dcgan28": ([14, 28], [12, 4]),
    "dcgan28-cntk": ([14, 28], [12, 4]),
    "cdcgan": ([7, 14, 28], [14, 7, 1]),
    "acgan-wgan": ([14, 28, 28], [28, 14, 14, 7]),
    "dcgan64": ([8, 16, 32, 64], [32, 16, 8, 4, 1]),
}


def conv_output_sizes(model: nn.Module, *inputs) -> list[int]:
    sizes = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: sizes.append(out.shape[-1]))
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)
    ]
    with torch.no_grad():
        model(*inputs)
    for hook in hooks:
        hook.remove()
    return sizes


@pytest.mark.parametrize("arch", list(ARCHS))
def test_intermediate_sizes(arch):
    spec = image_spec(arch, 1)
    generator, discriminator = build_models(arch, spec)
    labels = labels_for(spec)
    g_sizes = conv_output_sizes(generator, torch.randn(B, Z_DIM), labels)
    d_sizes = conv_output_sizes(discriminator, torch.zeros(B, *spec.data_shape), labels)
    assert (g_sizes, d_sizes) == SIZES[arch]


# ---- initialisation


def weights(model: nn.Module, types=(nn.Linear, nn.Conv2d, nn.ConvTranspose2d)) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, types)]


def assert_zero_biases(model: nn.Module):
    for m in weights(model):
        assert torch.count_nonzero(m.bias) == 0


@pytest.mark.parametrize("arch", ["dcgan28", "dcgan64"])
def test_normal_002_initialisation(arch):
    torch.manual_seed(0)
    for model in build_models(arch, image_spec(arch, 3)):
        for m in weights(model):
            if m.weight.numel() >= 1000:  # enough draws for a stable std
                assert 0.015 < m.weight.std() < 0.025
                assert abs(m.weight.mean()) < 0.005
        assert_zero_biases(model)


def test_cdcgan_truncated_normal_initialisation():
    torch.manual_seed(0)
    for model in build_models("cdcgan", image_spec("cdcgan", 1)):
        for m in weights(model):
            assert m.weight.abs().max() <= 0.04  # cut at two standard deviations, as TF does
            if m.weight.numel() >= 1000:
                assert 0.016 < m.weight.std() < 0.019  # 0.02 * 0.88 after truncation
        assert_zero_biases(model)


def test_acgan_initialisation():
    torch.manual_seed(0)
    generator, critic = build_models("acgan-wgan", image_spec("acgan-wgan", 1))
    for m in weights(critic):
        assert 0.015 < m.weight.std() < 0.025
    for m in weights(generator, (nn.Conv2d,)):
        assert 0.015 < m.weight.std() < 0.025
    for m in weights(generator, (nn.Linear, nn.Embedding)):  # glorot_uniform: U(-a, a), a = sqrt(6 / fans)
        bound = math.sqrt(6 / sum(m.weight.shape))
        assert m.weight.abs().max() <= bound
        assert m.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)
    assert_zero_biases(generator)
    assert_zero_biases(critic)


def test_mlp_keeps_pytorch_default_initialisation():
    torch.manual_seed(0)
    for model in build_models("mlp", image_spec("mlp", 1)):
        for m in weights(model):
            bound = 1 / math.sqrt(m.in_features)
            assert m.weight.abs().max() <= bound
            assert m.weight.std() > bound / 3  # U(-bound, bound) has std bound / sqrt(3)
            assert m.bias.abs().max() > 0  # PyTorch draws biases too


def test_points_generator_is_unbounded():
    """The 2-D toys reach +-4 (grid) and +-2 (ring): a tanh output could never cover them."""
    generator, _ = build_models("mlp", ModelSpec(z_dim=4, data_shape=(2,), num_classes=1))
    with torch.no_grad():
        generator.layers[-2].bias.fill_(3.0)
        generator.layers[-2].weight.zero_()
    assert torch.allclose(generator(torch.randn(5, 4), None), torch.full((5, 2), 3.0))


def test_points_networks_work_in_standardised_units():
    """G's output leaves in the data's units (x * scale + shift) and D's input is standardised, each packed point
    alike; the shift and scale travel with the weights."""
    spec = ModelSpec(z_dim=4, data_shape=(2,), num_classes=1, point_shift=(1.0, -2.0), point_scale=3.0)
    generator, discriminator = build_models("mlp", spec, pack=2)
    with torch.no_grad():
        generator.layers[-2].weight.zero_()
        generator.layers[-2].bias.copy_(torch.tensor([1.0, 1.0]))
    assert torch.allclose(generator(torch.randn(5, 4), None), torch.tensor([4.0, 1.0]).expand(5, 2))
    standardise = discriminator.features[0]
    x = torch.tensor([[1.0, -2.0, 4.0, 1.0]])  # two packed points: the mean, and one scale above it
    assert torch.allclose(standardise(x), torch.tensor([[0.0, 0.0, 1.0, 1.0]]))
    assert {"layers.5.shift", "layers.5.scale"} <= generator.state_dict().keys()


def test_points_checkpoint_from_before_standardising_loads_as_the_identity():
    """A run trained before the networks standardised its points (no shift or scale in its weights) loads, and
    its generator maps as it was trained: raw output, no rescaling."""
    spec = ModelSpec(z_dim=4, data_shape=(2,), num_classes=1, point_shift=(1.0, -2.0), point_scale=3.0)
    generator, discriminator = build_models("mlp", spec)
    old_g = {k: v for k, v in generator.state_dict().items() if not k.startswith("layers.5.")}
    old_d = {k: v for k, v in discriminator.state_dict().items() if not k.startswith("features.0.")}
    generator.load_state_dict(old_g)  # strict: no missing keys
    discriminator.load_state_dict(old_d)
    z = torch.randn(3, 4)
    raw = generator.layers[:-1](z)
    assert torch.equal(generator(z, None), raw)
    assert discriminator.features[0].scale == 1.0 and not discriminator.features[0].shift.any()
