"""How a version runs on this machine: how many processes, on how many of its GPUs.

Standard library only: this module is on the Slack path.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from bot.domain import Algorithm, BackendRejected, ResourcePool

__all__ = ["ProcessPlan", "cpu_count", "detect_gpus", "plan_processes"]


@dataclass(frozen=True)
class ProcessPlan:
    """How a version runs here: how many processes, on how many GPUs, and a note saying so."""

    nproc: int
    gpus: int
    distributed: bool
    note: str


def plan_processes(algorithm: Algorithm, pool: ResourcePool, local_gpus: Sequence[str],
                   cpus: int) -> ProcessPlan:
    """Decide GPUs and processes the way SageMaker's PyTorch containers would, scaled to here.

    A pool with several GPUs or instances runs a ``supports_distributed`` algorithm under
    torchrun: one process per local GPU it may use, or (no GPU here) two CPU processes on gloo
    so the distributed code path still runs. GPUs beyond what the pool asks for stay hidden.
    """
    wanted = 0 if algorithm.gpu == "unused" else pool.total_gpus
    gpus = min(len(local_gpus), wanted)
    if algorithm.gpu == "required" and gpus == 0:
        raise BackendRejected(
            f"`{algorithm.id}` needs a GPU and this machine has none it may use.",
            hint="Run it on a GPU pool with the sagemaker backend.")
    if pool.gpu_count and gpus:
        note = f"local GPU: {gpus}× {local_gpus[0]} (pool {pool.id} asks for {pool.total_gpus})"
    elif pool.gpu_count and algorithm.gpu == "unused":
        note = f"local CPU ({algorithm.id} doesn't use GPUs)"
    elif pool.gpu_count:
        note = (f"local CPU (pool {pool.id} asks for {pool.total_gpus}× GPU; "
                "none here)")
    else:
        note = f"local CPU ({cpus} cores; pool {pool.id} is {pool.instance_type})"
    if pool.instance_count > 1:
        note += f"; one local host stands in for {pool.instance_count} instances"
    if not (algorithm.supports_distributed and (pool.total_gpus > 1 or pool.instance_count > 1)):
        return ProcessPlan(nproc=1, gpus=gpus, distributed=False, note=note)
    nproc = gpus if gpus else min(pool.total_gpus or pool.instance_count, 2)
    backend = "nccl" if gpus else "gloo"
    return ProcessPlan(nproc=nproc, gpus=gpus, distributed=True,
                       note=f"{note}; torchrun with {nproc} processes ({backend})")


def detect_gpus() -> list[str]:
    """Names of the NVIDIA GPUs visible here (``nvidia-smi -L``); [] without a driver.

    A subprocess rather than ``torch.cuda``: importing torch costs seconds on the Slack path.
    """
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=15,
                             check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    names = re.findall(r"^GPU \d+: (.+?)(?: \(UUID: [^)]*\))?\s*$", out.stdout, re.M)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        names = names[: len([d for d in visible.split(",") if d.strip() not in ("", "-1")])]
    return names


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity), as the script will see them."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
