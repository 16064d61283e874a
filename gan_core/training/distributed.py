"""One run trained by N processes under torchrun: the process group, what its processes agree on at each boundary
(the metrics block's mean and the first process's decisions, in one collective), and the torchrun command line.

Backend gloo on the CPU, nccl on CUDA (one GPU per process). Only the first process (rank 0) writes the run
folder and reads its control requests; every process applies them at the same iteration.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.util
import inspect
import os
import sys
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from ..config import ConfigError, Knobs, knob_names
from ..engine.devices import resolve_device
from ..engine.trainer import Replicas, Trainer

TIMEOUT = datetime.timedelta(minutes=30)  # a paused run's other processes wait this long in one collective
PEER_LOST_SIGNS = ("gloo", "NCCL", "onnection", "Broken pipe", "timed out", "Timed out")


def peer_lost(exc: BaseException) -> bool:
    """Whether an error says a process of the group ended (or stopped answering), rather than a fault of this one.
    A collective raises DistError; a DDP hook inside backward() a RuntimeError from gloo or NCCL."""
    lost = getattr(dist, "DistError", ())
    return isinstance(exc, lost) or (
        isinstance(exc, RuntimeError) and any(s in str(exc) for s in PEER_LOST_SIGNS)
    )


def under_torchrun() -> bool:
    """This process was started by torchrun (which sets these for every worker)."""
    return "TORCHELASTIC_RUN_ID" in os.environ and "RANK" in os.environ


def run_id() -> str:
    """torchrun's id of this job (the same on every node and across restarts)."""
    return os.environ.get("TORCHELASTIC_RUN_ID", "none")


def restart_count() -> int:
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def max_restarts() -> int:
    return int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0"))


def torchrun_missing() -> str | None:
    """Why torchrun cannot start processes here, or None."""
    if not dist.is_available():
        return "this PyTorch build has no torch.distributed"
    if importlib.util.find_spec("torch.distributed.run") is None:
        return "torch.distributed.run (torchrun) is not installed"
    return None


def torchrun_command(nproc: int, restarts: int, argv: list[str]) -> list[str]:
    """`python -m gan_core <argv>` on nproc processes of this machine, under torchrun."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            f"--max-restarts={restarts}", "-m", "gan_core", *argv]  # fmt: skip


# ---- a boundary's decision, as numbers every process can add up

KNOBS = knob_names()  # every knob travels as a number


@dataclass
class Decision:
    """What the first process decided at a boundary: all processes apply it before the next iteration."""

    knobs: Knobs | None = None  # new knobs from the next iteration on
    pause: bool | None = None  # True: pause; False: continue
    steps: int = 0  # iterations to train while paused
    save: bool = False
    stop: bool = False
    next_boundary: int = 0  # the iteration after which the processes meet again
    answers: list = field(default_factory=list)  # (command, error or None): the first process's own

    SIZE = 1 + len(KNOBS) + 5

    def encode(self) -> list[float]:
        knobs = (
            [1.0, *(float(getattr(self.knobs, k)) for k in KNOBS)] if self.knobs else [0.0] * (1 + len(KNOBS))
        )
        pause = 0.0 if self.pause is None else 1.0 if self.pause else 2.0
        return [
            *knobs,
            pause,
            float(self.steps),
            float(self.save),
            float(self.stop),
            float(self.next_boundary),
        ]

    @classmethod
    def decode(cls, values: list[float]) -> Decision:
        knobs = None
        if values[0]:
            lr_g, lr_d, flip_prob, d_iters, d_warmup = values[1:6]
            knobs = Knobs(lr_g, lr_d, flip_prob, int(d_iters), bool(d_warmup))
        pause, steps, save, stop, boundary = values[6:]
        return cls(
            knobs, None if not pause else pause == 1.0, int(steps), bool(save), bool(stop), int(boundary)
        )


# ---- the group


@dataclass
class Group:
    """This process's place in the group that trains one run, and the collectives the run uses."""

    rank: int
    world: int
    device: torch.device
    pids: list[int]  # every process's id, by rank

    @property
    def main(self) -> bool:
        return self.rank == 0

    def replicas(self) -> Replicas:
        return Replicas(self.rank, self.world, self.wrap)

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """A DDP replica. Buffers (BatchNorm's running statistics) are synced once, at construction, and then
        kept per process: they serve sampling, which the first process does."""
        options = {"device_ids": [self.device.index]} if self.device.type == "cuda" else {}
        if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters:
            options["forward_sync_buffers"] = False
        else:
            options["broadcast_buffers"] = False
        return DistributedDataParallel(module, **options)

    def share(self, payload: object = None) -> object:
        """The first process's payload (plain data, CPU tensors), on every process."""
        box = [payload if self.main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def exchange(
        self, block: torch.Tensor | None, decision: Decision
    ) -> tuple[torch.Tensor | None, Decision]:
        """One all-reduce at a boundary: the metrics block (n, 6; the same n everywhere) averaged over the
        processes, and the first process's decision (the others add zeros)."""
        n = 0 if block is None else len(block)
        mine = decision.encode() if self.main else [0.0] * Decision.SIZE
        values = torch.tensor(mine, dtype=torch.float64, device=self.device)
        if n:
            values = torch.cat([block.detach().to(torch.float64).flatten(), values])
        dist.all_reduce(values)
        agreed = Decision.decode(values[n * 6 :].tolist())
        agreed.answers = decision.answers
        return (values[: n * 6].view(n, 6) / self.world if n else None), agreed

    def check_replicas(self, trainer: Trainer) -> bool:
        """True when every process holds bitwise the same weights (a digest of each, gathered)."""
        digest = hashlib.sha256()
        for net in (trainer.generator, trainer.discriminator):
            for p in net.parameters():
                digest.update(p.detach().cpu().numpy().tobytes())
        digests = [None] * self.world
        dist.all_gather_object(digests, digest.hexdigest())
        return len(set(digests)) == 1

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


def join(device_name: str) -> Group:
    """Join the group torchrun started this process in: gloo on the CPU, nccl with one GPU a process."""
    device = resolve_device(device_name)
    if device.type == "mps":
        raise ConfigError("device 'mps' cannot train with several processes: allowed cpu, cuda")
    if device.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"process {local_rank} of this machine has no GPU: {torch.cuda.device_count()} GPUs "
                              f"here, allowed --nproc-per-node up to {torch.cuda.device_count()}")  # fmt: skip
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    # The store torchrun gives its workers keeps the keys of earlier attempts: after a restart, gloo would look up
    # the dead processes' addresses (and fail "connection refused"). Each attempt gets its own key prefix.
    store, rank, world = next(dist.rendezvous("env://", timeout=TIMEOUT))
    store = dist.PrefixStore(f"/gan_core/attempt_{restart_count()}", store)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=TIMEOUT)
    pids: list = [None] * dist.get_world_size()
    dist.all_gather_object(pids, os.getpid())
    return Group(dist.get_rank(), dist.get_world_size(), device, pids)
