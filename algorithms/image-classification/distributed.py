"""Data parallelism across processes launched by torchrun (how SageMaker's PyTorch containers
start multi-process jobs): RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT come
from the environment. NCCL on GPUs, gloo on CPUs. With WORLD_SIZE unset or 1 every helper
is a no-op, so the single-process path is the same code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from sm_contract import Cluster, StopSignal, UserError

__all__ = ["World", "pick_device"]


@dataclass(frozen=True)
class World:
    rank: int
    local_rank: int
    size: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> World:
        env = os.environ if env is None else env
        try:
            size = int(env.get("WORLD_SIZE", "1"))
            rank = int(env.get("RANK", "0"))
            local_rank = int(env.get("LOCAL_RANK", str(rank)))
        except ValueError as exc:
            raise UserError(f"bad torch.distributed environment: {exc}") from exc
        if size < 1 or not 0 <= rank < size:
            raise UserError(f"bad torch.distributed environment: RANK={rank} WORLD_SIZE={size}")
        return cls(rank=rank, local_rank=local_rank, size=size)

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes the model, evaluation, checkpoints and TensorBoard events."""
        return self.rank == 0

    def start(self, device: torch.device) -> None:
        if self.distributed:
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")

    def stop(self) -> None:
        if self.distributed and dist.is_initialized():
            # Every rank waits here for the others (rank 0 is still writing the model) before
            # the group is torn down: a rank that destroyed it and exited first was seen to
            # abort in gloo's teardown ("terminate called without an active exception").
            dist.barrier()
            dist.destroy_process_group()

    def sum(self, values: Sequence[float], device: torch.device) -> list[float]:
        """Element-wise sum over all ranks."""
        tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
        if self.distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()

    def any_stop(self, stop: StopSignal, device: torch.device) -> bool:
        """Whether any rank got SIGTERM. Every rank asks at the same step, so all of them
        leave the loop together instead of one waiting forever in a collective."""
        if not self.distributed:
            return stop.requested
        flag = torch.tensor([1.0 if stop.requested else 0.0], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value` on every rank (used for the checkpoint only rank 0 reads)."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def pick_device(world: World, cluster: Cluster) -> torch.device:
    """A GPU per local rank when CUDA is there and SM_NUM_GPUS does not say 0; else CPU."""
    if torch.cuda.is_available() and cluster.num_gpus != 0:
        index = world.local_rank % torch.cuda.device_count()
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return torch.device("cpu")
