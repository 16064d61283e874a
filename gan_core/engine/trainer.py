"""One GAN training iteration on one device: d_iters discriminator updates, then the generator's."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from ..config import Knobs, RunConfig
from .augment import augment
from .data import Data, random_hflip, to_model_range
from .devices import FUSED_DEVICES
from .losses import LOSSES, d_loss, g_loss, gradient_penalty
from .models import ARCHS, ModelSpec, build_models
from .presets import clip_value

# Per-iteration values kept on the device until the run reads a block of them at once.
DEVICE_METRICS = ("loss_d", "loss_g", "p_real", "p_fake", "out_real", "out_fake")


class IterationResult(NamedTuple):
    """What one iteration did. `metrics` stays on the device (no host sync): DEVICE_METRICS, in order."""

    metrics: Tensor  # (6,)
    d_updates: int
    lr_g: float
    lr_d: float


def make_optimizer(config: RunConfig, params, lr: float, device: torch.device) -> torch.optim.Optimizer:
    fused = config.fused and device.type in FUSED_DEVICES
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(config.beta1, config.beta2), fused=fused)
    if config.optimizer == "rmsprop":  # no fused RMSprop: the multi-tensor step is the fast one
        return torch.optim.RMSprop(params, lr=lr, foreach=True)
    return torch.optim.SGD(params, lr=lr, fused=fused)


def fixed_latents(config: RunConfig, data: Data) -> tuple[Tensor, Tensor | None]:
    """The run's fixed latent vectors, drawn once from its seed; conditional: 10 per class, row by row."""
    gen = torch.Generator().manual_seed(config.seed)
    conditional = ARCHS[config.arch].conditional
    if conditional:
        labels = torch.arange(data.num_classes).repeat_interleave(10)
        n = len(labels)
    else:
        labels = None
        n = config.n_fixed or (512 if data.points else 25)
    return torch.randn(n, config.z_dim, generator=gen), labels


class Replicas(NamedTuple):
    """This process's place among the processes that train one run together (torchrun): `wrap` turns a network
    into its DistributedDataParallel replica."""

    rank: int
    world: int
    wrap: Callable[[torch.nn.Module], torch.nn.Module]


def moving_average(generator: nn.Module, decay: float) -> AveragedModel | None:
    """The moving average of G's weights and batch-norm statistics (config.ema), updated after each G update; None
    for 0. The decay warms up as TensorFlow's ExponentialMovingAverage does, min(decay, (1 + n) / (10 + n)) after n
    updates: without it the average carries G's random initial weights for thousands of updates (at 0.9998, 13% of
    it after 10,000), and its samples are blurs while G's are already clothes."""
    if not decay:
        return None

    @torch.no_grad()
    def update(averaged: list[Tensor], current: list[Tensor], n: Tensor) -> None:
        if not torch.is_floating_point(averaged[0]):  # batch norm's update counters
            for a, c in zip(averaged, current, strict=True):
                a.copy_(c)
            return
        # a tensor on the device, so that no update waits for the host
        weight = 1 - torch.clamp((1 + n) / (10 + n), max=decay).to(averaged[0].dtype)
        torch._foreach_lerp_(averaged, current, [weight] * len(averaged))

    return AveragedModel(generator, multi_avg_fn=update, use_buffers=True)


class Trainer:
    """Owns the models, optimisers, data and random state of one run; `iteration()` trains one step.

    With `replicas` (one of N processes), generator and discriminator are each wrapped in DistributedDataParallel
    for the updates that train them, and every process trains on its own share of each global batch of N x
    batch_size: the permutation is drawn from one stream all processes share, latents, flips and augmentations
    from each process's own. Sampling and G's pass through D use the bare networks: no collective runs on one
    process alone, and D's replica never waits for gradients that G's update does not compute."""

    def __init__(
        self,
        config: RunConfig,
        knobs: Knobs,
        data: Data,
        device: torch.device,
        replicas: Replicas | None = None,
    ):
        self.config, self.data, self.device = config, data, device
        self.rank, self.world = (replicas.rank, replicas.world) if replicas else (0, 1)
        self.arch, self.loss = ARCHS[config.arch], LOSSES[config.loss]
        self.spec = spec = ModelSpec(
            config.z_dim, data.data_shape, data.num_classes, config.width, *data.spread()
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            generator, discriminator = build_models(config.arch, spec, config.pack)
        self.generator, self.discriminator = generator.to(device), discriminator.to(device)
        self.ema = moving_average(self.generator, config.ema)
        self._images_last = config.channels_last and len(data.data_shape) == 3
        if self._images_last:  # before the replicas take the weights; 4-D weights only
            for net in (self.generator, self.discriminator):
                net.to(memory_format=torch.channels_last)
        # what the updates call: the DDP replicas (rank 0's weights copied to all at construction), or the same
        self.g_net = replicas.wrap(self.generator) if replicas else self.generator
        self.d_net = replicas.wrap(self.discriminator) if replicas else self.discriminator
        self.d_bare = self.discriminator  # what G's update calls (see _g_step)
        self.autocast = self._speed_options(config)
        self.d_params = list(self.discriminator.parameters())
        self.opt_g = make_optimizer(config, self.generator.parameters(), knobs.lr_g, device)
        self.opt_d = make_optimizer(config, self.d_params, knobs.lr_d, device)
        self.clip = clip_value(config)
        if device.type == "cuda":  # fixed shapes: let cuDNN pick its fastest kernels; TF32 matmuls
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        self.rng = torch.Generator(device=device).manual_seed(config.seed)  # the permutation (shared)
        self.noise = self.rng if self.world == 1 else self._rank_stream()  # latents, flips, augmentation
        self._place_data(config, data, device)

    def _place_data(self, config: RunConfig, data: Data, device: torch.device) -> None:
        """The data set, the fixed latents and the batch order, on the device."""
        self.x = data.x.to(device)
        if self._images_last:
            self.x = self.x.contiguous(memory_format=torch.channels_last)
        self.y = data.y.to(device) if data.y is not None else None
        z, labels = fixed_latents(config, data)
        self.fixed_z = z.to(device)
        self.fixed_labels = labels.to(device) if labels is not None else None
        self.perm = torch.arange(len(data), device=device)
        self.pos = len(data)  # forces a fresh permutation (and epoch 1) on the first batch
        self.epoch = 0

    def _speed_options(self, config: RunConfig) -> Callable[[], contextlib.AbstractContextManager]:
        """Compile the networks the updates call (torch.compile); returns the context the updates' forward passes
        run in (bf16 autocast, or nothing)."""
        if config.compile != "none":  # D is compiled once where its replica is itself (one process)
            compiled = {
                id(net): torch.compile(net, mode=config.compile)
                for net in (self.g_net, self.d_net, self.d_bare)
            }
            self.g_net, self.d_net, self.d_bare = (
                compiled[id(net)] for net in (self.g_net, self.d_net, self.d_bare)
            )
        if config.precision == "bf16":
            return lambda: torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext

    def _rank_stream(self, iteration: int = 0) -> torch.Generator:
        """This process's own random stream, seeded from the run's seed, its rank and where it starts."""
        seed = (self.config.seed * 1_000_003 + 7_919 * self.rank + iteration) % 2**63
        return torch.Generator(device=self.device).manual_seed(seed)

    # ---- batches

    def _real_batch(self) -> tuple[Tensor, Tensor | None]:
        size = self.config.batch_size
        if self.pos + size * self.world > len(self.perm):  # partial batches are dropped, as MATLAB does
            self.perm = torch.randperm(len(self.perm), generator=self.rng, device=self.device)
            self.pos, self.epoch = 0, self.epoch + 1
        start = self.pos + self.rank * size  # this process's share of the global batch
        idx = self.perm[start : start + size]
        self.pos += size * self.world
        real = to_model_range(self.x[idx])
        if self._images_last:  # indexing may hand back the default layout
            real = real.contiguous(memory_format=torch.channels_last)
        if self.config.hflip:
            real = random_hflip(real, self.noise)
        return real, (self.y[idx] if self.y is not None else None)

    def _fake_labels(self, size: int) -> Tensor | None:
        if not (self.arch.conditional or self.arch.aux_classifier) or self.y is None:
            return None
        return torch.randint(self.data.num_classes, (size,), generator=self.noise, device=self.device)

    # ---- updates

    def d_input(self, x: Tensor) -> Tensor:
        """What D is shown: each sample augmented (DiffAugment, same policy on real and fake), then packed
        (PacGAN: (B, C, ...) -> (B / pack, C * pack, ...), each row `pack` consecutive samples)."""
        x = augment(x, self.config.augment, self.noise)
        pack = self.config.pack
        return x if pack == 1 else x.reshape(len(x) // pack, x.shape[1] * pack, *x.shape[2:])

    def learning_rates(self, knobs: Knobs, iteration: int) -> tuple[float, float]:
        schedule = self.config.lr_schedule
        if schedule == "staircase":
            decay = 0.95 ** ((iteration - 1) // 500)
        elif schedule == "cosine":  # explore at full rate, settle as the run nears its end
            decay = 0.5 * (
                1 + math.cos(math.pi * min(iteration - 1, self.config.iterations) / self.config.iterations)
            )
        else:
            decay = 1.0
        return knobs.lr_g * decay, knobs.lr_d * decay

    def _d_step(self, real, labels, fake, fake_labels, flip_prob: float):
        if self.clip is not None:  # Keras: clip every critic weight before each critic update
            with torch.no_grad():
                torch._foreach_clamp_min_(self.d_params, -self.clip)
                torch._foreach_clamp_max_(self.d_params, self.clip)
        with self.autocast():
            real, fake = self.d_input(real), self.d_input(fake)
            real_out, real_classes = self.d_net(real, labels)
            fake_out, fake_classes = self.d_net(fake, fake_labels)
            flip = None
            if flip_prob > 0:
                flip = torch.rand(real_out.shape, generator=self.noise, device=self.device) < flip_prob
            loss = d_loss(self.loss, real_out, fake_out, flip)
            if self.loss.gradient_penalty:
                # the bare D (double backward is not compiled): its gradients still reach the replica's hooks
                gp = gradient_penalty(self.discriminator, real, fake, labels, self.noise)
                loss = loss + self.loss.gradient_penalty * gp
            if real_classes is not None and labels is not None:
                loss = (
                    loss + F.cross_entropy(real_classes, labels) + F.cross_entropy(fake_classes, fake_labels)
                )
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        return loss.detach().float(), real_out.detach().float(), fake_out.detach().float()

    def _g_step(self, fake, fake_labels) -> Tensor:
        for p in self.d_params:  # D's weight gradients are not needed for G's update
            p.requires_grad_(False)
        # the bare D: its replica would expect gradients in this backward and fail the next update
        with self.autocast():
            out, classes = self.d_bare(self.d_input(fake), fake_labels)
            loss = g_loss(self.loss, out)
            if classes is not None and fake_labels is not None:
                loss = loss + F.cross_entropy(classes, fake_labels)
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        if self.ema is not None:
            self.ema.update_parameters(self.generator)
        for p in self.d_params:
            p.requires_grad_(True)
        return loss.detach().float()

    def iteration(
        self, knobs: Knobs, iteration: int, interrupted: Callable[[], bool] | None = None
    ) -> IterationResult:
        """Train one iteration (1-based); `interrupted()` true between D updates ends the D phase early."""
        lr_g, lr_d = self.learning_rates(knobs, iteration)
        for group in self.opt_g.param_groups:
            group["lr"] = lr_g
        for group in self.opt_d.param_groups:
            group["lr"] = lr_d
        n_d = knobs.d_iters_at(iteration)
        size = self.config.batch_size
        if self.config.compile == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()  # a new step: the last one's graph outputs may be reused
        for i in range(n_d):
            if i and interrupted is not None and interrupted():
                n_d = i
                break
            real, labels = self._real_batch()
            z = torch.randn(size, self.config.z_dim, generator=self.noise, device=self.device)
            fake_labels = self._fake_labels(size)
            last = i == n_d - 1
            # the last fake keeps its graph for G's update
            with torch.set_grad_enabled(last), self.autocast():
                fake = self.g_net(z, fake_labels)
            loss_d, real_out, fake_out = self._d_step(
                real, labels, fake.detach(), fake_labels, knobs.flip_prob
            )
        for step in range(self.config.g_steps):
            if step or not fake.requires_grad:  # CNTK: a second G update on the same z
                with self.autocast():
                    fake = self.g_net(z, fake_labels)
            loss_g = self._g_step(fake, fake_labels)
        prob = self.loss.prob
        metrics = torch.stack(
            [loss_d, loss_g, prob(real_out).mean(), prob(fake_out).mean(), real_out.mean(), fake_out.mean()]
        )
        return IterationResult(metrics, n_d, lr_g, lr_d)

    # ---- samples

    @property
    def shown_generator(self) -> nn.Module:
        """The generator whose samples are shown, measured and exported: the moving average of G's weights when
        the run keeps one (config.ema), else G itself."""
        return self.generator if self.ema is None else self.ema.module

    @torch.no_grad()
    def sample_fixed(self) -> Tensor:
        """Generator output (CPU float) for the fixed latents, BN in inference mode."""
        generator = self.shown_generator
        generator.eval()
        try:
            return generator(self.fixed_z, self.fixed_labels).float().cpu()
        finally:
            generator.train()

    @torch.no_grad()
    def decision_field(self, bounds: float, size: int = 64) -> Tensor:
        """2-D data: D's output as a probability on a size x size grid over [-bounds, bounds]^2."""
        axis = torch.linspace(-bounds, bounds, size, device=self.device)
        grid_y, grid_x = torch.meshgrid(axis, axis, indexing="ij")
        points = torch.stack([grid_x.flatten(), grid_y.flatten()], dim=1)
        self.discriminator.eval()
        try:
            out, _ = self.discriminator(points.repeat(1, self.config.pack), None)  # pack copies of a point
        finally:
            self.discriminator.train()
        return self.loss.prob(out).reshape(size, size).float().cpu()

    # ---- state

    def state_dict(self) -> dict:
        return {
            "generator": self.generator.state_dict(),
            "generator_ema": None if self.ema is None else self.ema.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "rng": self.rng.get_state(),
            "rng_device": self.device.type,
            "world": self.world,
            "perm": self.perm.cpu(),
            "pos": self.pos,
            "epoch": self.epoch,
            "fixed_z": self.fixed_z.cpu(),
            "fixed_labels": self.fixed_labels.cpu() if self.fixed_labels is not None else None,
        }

    def load_state_dict(self, state: dict) -> str | None:
        """Continue from a state_dict; returns a note when the random stream could not be carried over."""
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        if self.ema is not None and state.get("generator_ema") is not None:  # else it starts again from G
            self.ema.load_state_dict(state["generator_ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.perm = state["perm"].to(self.device)
        self.pos, self.epoch = int(state["pos"]), int(state["epoch"])
        self.fixed_z = state["fixed_z"].to(self.device)
        if state["fixed_labels"] is not None:
            self.fixed_labels = state["fixed_labels"].to(self.device)
        if self.world > 1:  # each process's own stream starts afresh (the shared one carries on below)
            self.noise = self._rank_stream(1 + self.pos + len(self.perm) * self.epoch)
        if state.get("rng_device", self.device.type) == self.device.type:
            # (an older checkpoint of another device: its state does not fit, as below)
            with contextlib.suppress(RuntimeError):
                self.rng.set_state(state["rng"])
                return None
        # A CPU and a CUDA generator keep different states: continue on a fresh stream, seeded reproducibly.
        self.rng.manual_seed(self.config.seed + 1_000_003 * (self.epoch + 1) + self.pos)
        return (
            f"resumed on {self.device.type} from a {state.get('rng_device')} checkpoint: a new random stream"
        )

    def release(self) -> None:
        """Drop the models, optimisers and data so their (GPU) memory can be freed."""
        for name in (
            "generator",
            "discriminator",
            "g_net",
            "d_net",
            "opt_g",
            "opt_d",
            "x",
            "y",
            "perm",
            "d_params",
        ):
            setattr(self, name, None)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def points_bounds(data: Data) -> float:
    """Half-width of the square shown around 2-D data."""
    return float(math.ceil(data.x.abs().max().item() * 1.25))
