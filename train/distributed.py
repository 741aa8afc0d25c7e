"""Process-group helpers for ``torchrun`` (DistributedDataParallel), and the batch plan.

Under ``torchrun --nproc_per_node N`` each process reads RANK / WORLD_SIZE / LOCAL_RANK
from the environment; a plain ``python`` run is rank 0 of 1.

The batch plan replaces ``DistributedSampler``: the global batch of step ``s`` is a pure
function of (seed, s) and each rank takes its contiguous share of it. That makes resume
exact (no sampler position to restore) and one process with batch N*B sees exactly the
samples N processes with batch B see together.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from tr2m_edge.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_kind: str) -> DistInfo:
    """Join the process group torchrun describes in the environment (no-op for one process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_kind == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
        log.info("joined process group: rank %d of %d (%s)", rank, world, backend)
    return DistInfo(rank, world, local)


def group_active() -> bool:
    """True when a default process group already exists (e.g. set up by the caller)."""
    return dist.is_available() and dist.is_initialized()


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_gather_cat(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Concatenate ``x`` (B, ...) of every rank along dim 0, rank order; no gradient flows."""
    if not info.enabled:
        return x
    parts = [torch.empty_like(x) for _ in range(info.world_size)]
    dist.all_gather(parts, x.detach().contiguous())
    return torch.cat(parts, 0)


def gather_with_grad(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Like :func:`all_gather_cat`, but this rank's slice keeps its autograd history."""
    if not info.enabled:
        return x
    full = all_gather_cat(x, info)
    b = x.shape[0]
    return torch.cat([full[: info.rank * b], x, full[(info.rank + 1) * b:]], 0)


def mean_across(values: dict[str, float], info: DistInfo, device: torch.device) -> dict[str, float]:
    """Average scalar logs over ranks."""
    if not info.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= info.world_size
    return {k: float(v) for k, v in zip(keys, t.tolist())}


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_flag(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """Rank 0's ``flag`` on every rank."""
    if not info.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], device=device)
    dist.broadcast(t, 0)
    return bool(t.item())


# ----------------------------------------------------------------------- batch plan

class BatchPlan:
    """Which samples every rank trains on at every step, round-robin over datasets.

    Step ``s`` draws from dataset ``s % n``; that dataset's ``j``-th batch (j = s // n)
    is slice ``j % batches`` of a permutation seeded by (seed, dataset, j // batches), so
    smaller datasets cycle with a fresh order. An epoch is ``n`` x the batches of the
    largest dataset.

    Args:
        lengths: number of samples of each dataset.
        batch_size: per-rank batch.
        world_size: number of ranks.
        seed: run seed.
    """

    def __init__(self, lengths: list[int], batch_size: int, world_size: int, seed: int) -> None:
        self.lengths = [int(n) for n in lengths]
        self.batch = int(batch_size)
        self.world = int(world_size)
        self.global_batch = self.batch * self.world
        self.seed = int(seed)
        for k, n in enumerate(self.lengths):
            if n < self.global_batch:
                raise ConfigError(
                    f"Training dataset {k} has {n} samples, fewer than one global batch "
                    f"({self.batch} x {self.world} processes); lower batch_size or add data."
                )
        self.batches = [n // self.global_batch for n in self.lengths]
        self.steps_per_epoch = len(self.lengths) * max(self.batches)

    def dataset_of(self, step: int) -> int:
        return step % len(self.lengths)

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def global_keys(self, step: int) -> list[tuple[int, int]]:
        """(sample index, sample seed) of the whole global batch of ``step``."""
        k = self.dataset_of(step)
        j = step // len(self.lengths)
        cycle, b = divmod(j, self.batches[k])
        perm = np.random.default_rng([self.seed, k, cycle]).permutation(self.lengths[k])
        idx = perm[b * self.global_batch:(b + 1) * self.global_batch]
        seeds = np.random.SeedSequence([self.seed, step, 0x5EED]).generate_state(len(idx))
        return [(int(i), int(s)) for i, s in zip(idx, seeds)]

    def keys(self, step: int, rank: int) -> list[tuple[int, int]]:
        """This rank's contiguous share of the global batch of ``step``."""
        return self.global_keys(step)[rank * self.batch:(rank + 1) * self.batch]


class StepBatchSampler(torch.utils.data.Sampler):
    """Yields one rank's keys for the steps in [start, stop) that draw from ``dataset``."""

    def __init__(self, plan: BatchPlan, dataset: int, start: int, stop: int, rank: int) -> None:
        self.plan, self.dataset, self.start, self.stop, self.rank = plan, dataset, start, stop, rank

    def _steps(self) -> range:
        n = len(self.plan.lengths)
        first = self.start + ((self.dataset - self.start) % n)
        return range(first, self.stop, n)

    def __iter__(self):  # type: ignore[override]
        for step in self._steps():
            yield self.plan.keys(step, self.rank)

    def __len__(self) -> int:
        return len(self._steps())
