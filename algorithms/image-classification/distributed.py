"""Data parallelism across processes launched by torchrun (how SageMaker's PyTorch containers
start multi-process jobs): RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT come
from the environment. NCCL on GPUs, gloo on CPUs. With WORLD_SIZE unset or 1 every helper
is a no-op, so the single-process path is the same code.

Leaving together: a rank that fails alone (an unreadable picture in its shard, or in the
validation set only rank 0 reads) must not leave the others waiting in a collective until
the process group times out. Work that may fail on one rank runs where every rank then calls
`agree` at the same point: a MAX over the ranks of go / stop (SIGTERM) / error decides what
all of them do, and the failing rank's message reaches rank 0, which alone prints the
`ERROR:` line and writes the failure file; the other ranks exit with the same status,
silently (`PeerExit`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from sm_contract import EXIT_USER_ERROR, Cluster, StopSignal, UserError

__all__ = ["AgreedError", "PeerExit", "World", "pick_device"]

# What each rank brings to `agree`; the largest over all ranks wins.
_GO, _STOP, _ERROR, _BUG = 0, 1, 2, 3


class AgreedError(UserError):
    """A UserError every rank has agreed to leave on (rank 0 raises it; the others exit)."""


class PeerExit(SystemExit):
    """This rank leaves because another one failed: the same exit status, nothing printed
    (the failing rank, or rank 0, says why)."""


@dataclass
class World:
    rank: int
    local_rank: int
    size: int
    # Set once `agree` decided that every rank leaves (a stop or a failure): they then all
    # reach `stop` together.
    leaving: bool = field(default=False, init=False, compare=False)

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

    def stop(self, *, together: bool = True) -> None:
        """Tear the process group down. `together`: every rank is on its way here (a normal
        end, or a stop or failure they agreed on), so they first wait for one another — a
        rank that destroyed the group and exited first was seen to abort gloo's teardown in
        the others ("terminate called without an active exception"). Otherwise (an exception
        no peer knows of) the group is destroyed at once: a barrier would wait for ranks
        that may be stuck in another collective. A gloo group (CPUs) that ended together is
        left to the process's exit."""
        if self.distributed and dist.is_initialized():
            if together:
                dist.barrier()
            if together and dist.get_backend() == "gloo":
                # On CPUs the process ends right after: tearing gloo down by hand still
                # aborted a rank now and then under load ("terminate called without an
                # active exception", 1 run in 3 with three at once); the exit frees it.
                return
            dist.destroy_process_group()

    def sum(self, values: Sequence[float], device: torch.device) -> list[float]:
        """Element-wise sum over all ranks."""
        tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
        if self.distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()

    def agree(
        self,
        device: torch.device,
        *,
        stop: StopSignal | None = None,
        error: BaseException | None = None,
    ) -> bool:
        """Every rank calls this at the same point, with the exception its own work raised
        (None when it went well). Returns whether any rank got SIGTERM. When any rank failed,
        every rank leaves: for a UserError rank 0 raises an AgreedError with the failing
        rank's message and the others raise PeerExit(2); for any other exception the ranks
        that had one re-raise it (its traceback is the report) and the others PeerExit(1).
        Single-process: `error` is re-raised as it is."""
        if error is not None and not isinstance(error, Exception):
            raise error  # KeyboardInterrupt, SystemExit: not for agreeing on
        if not self.distributed:
            if error is not None:
                raise error
            return stop is not None and stop.requested
        code = _GO
        if error is not None:
            code = _ERROR if isinstance(error, UserError) else _BUG
        elif stop is not None and stop.requested:
            code = _STOP
        # [what to do, the highest rank that failed]: one all_reduce per call.
        votes = torch.tensor([code, self.rank if error is not None else -1], device=device)
        dist.all_reduce(votes, op=dist.ReduceOp.MAX)
        decided, failed_rank = (int(v) for v in votes.tolist())
        self.leaving = decided != _GO
        if decided < _ERROR:
            return decided == _STOP
        if decided == _BUG:
            if error is not None:
                raise error
            raise PeerExit(1)
        box = [str(error) if error is not None else None]
        dist.broadcast_object_list(box, src=failed_rank)
        if self.is_main:
            raise AgreedError(box[0] or "a peer failed") from error
        raise PeerExit(EXIT_USER_ERROR)

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
