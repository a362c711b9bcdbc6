"""Data-parallel training under `torchrun`: one process per GPU (NCCL) or per CPU process (gloo).

`torchrun --nproc_per_node=N -m fathom train ...` sets RANK, WORLD_SIZE and LOCAL_RANK; without them
everything here is a no-op for a single process. Rule of the package: every rank computes, rank 0
alone writes files, and a barrier follows every write that another rank may read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from fathom.device import choose_device


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> "Distributed":
        """Join the process group that torchrun describes in the environment (or stay single)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        if not dist.is_initialized():
            if torch.cuda.is_available():
                torch.cuda.set_device(local_rank)
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return cls(rank, world, local_rank)

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, want: str = "auto") -> torch.device:
        """This rank's device: `want` is the config's `device` (fathom.device checks the GPU)."""
        return choose_device(want, self.local_rank)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        if not self.enabled:
            return model
        device = next(model.parameters()).device
        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def mean(self, value: float) -> float:
        """Mean of one number over ranks (every rank sees the same count of samples per epoch)."""
        return self.sum(value) / self.world

    def sum(self, value: float) -> float:
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        if dist.get_backend() == "nccl":
            tensor = tensor.to(torch.device("cuda", self.local_rank))
        dist.all_reduce(tensor)
        return float(tensor.item())

    def shard(self, n: int) -> np.ndarray:
        """This rank's rows of an n-row prediction: rank, rank + world, ..."""
        return np.arange(self.rank, n, self.world)

    def gather_rows(self, arrays: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        """Reassemble per-rank `shard(n)` rows into full [n, ...] arrays on every rank."""
        if not self.enabled:
            return arrays
        parts: list[dict[str, np.ndarray] | None] = [None] * self.world
        dist.all_gather_object(parts, arrays)
        out = {}
        for key, first in arrays.items():
            full = np.empty((n, *first.shape[1:]), first.dtype)
            for rank, part in enumerate(parts):
                full[rank::self.world] = part[key]
            out[key] = full
        return out

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model
