"""One training step and how the model runs on its device: mixed precision (bfloat16 where the
GPU has it, else float16 with gradient scaling), channels-last memory for the convolutional
networks on GPUs, optional torch.compile, the optimizer. The trainer and
benchmarks/bench_gpu.py use exactly this code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ExecutionPlan",
    "TrainStep",
    "configure_backends",
    "make_optimizer",
    "plan_execution",
]


class ExecutionPlan:
    """How the model runs on `device`: `amp_dtype` (None: float32), `channels_last`,
    `compile`."""

    def __init__(
        self,
        device: torch.device,
        *,
        amp_dtype: torch.dtype | None,
        channels_last: bool,
        compile: bool,
    ) -> None:
        self.device = device
        self.amp_dtype = amp_dtype
        self.channels_last = channels_last
        self.compile = compile

    @property
    def amp_name(self) -> str:
        """`bfloat16`, `float16` or `off`, as the start-up line says."""
        return str(self.amp_dtype).removeprefix("torch.") if self.amp_dtype else "off"

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self) -> torch.autocast:
        return torch.autocast(
            self.device.type,
            dtype=self.amp_dtype or torch.float32,
            enabled=self.amp_dtype is not None,
        )

    def place(self, model: nn.Module) -> nn.Module:
        """The model on the device, in the plan's memory format."""
        return model.to(self.device, memory_format=self.memory_format)

    def wrap(self, net: nn.Module) -> nn.Module:
        """What runs the steps: `net` itself, or compiled."""
        return torch.compile(net) if self.compile else net  # type: ignore[return-value]

    def input(self, x: torch.Tensor) -> torch.Tensor:
        """A float batch already on the device, in the plan's memory format."""
        return x.contiguous(memory_format=self.memory_format) if self.channels_last else x


def plan_execution(
    device: torch.device, *, amp: bool, compile: bool = False, channels_last: bool = True
) -> ExecutionPlan:
    """AMP and channels-last on CUDA only (on CPUs they would only change the numbers or cost
    time); bfloat16 where the GPU supports it, which needs no gradient scaling."""
    cuda = device.type == "cuda"
    amp_dtype = None
    if amp and cuda:
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return ExecutionPlan(
        device, amp_dtype=amp_dtype, channels_last=cuda and channels_last, compile=compile
    )


def configure_backends(*, deterministic: bool = True) -> None:
    """Same seed, same result: deterministic cuDNN algorithms and no autotuning (which picks
    algorithms by timing them, differently from run to run)."""
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic


class TrainStep:
    """Forward, loss, backward and the optimizer's step for one batch; returns the loss and
    the logits, detached and still on the device (no host synchronisation)."""

    def __init__(self, net: nn.Module, optimizer: torch.optim.Optimizer, plan: ExecutionPlan):
        self.net = net
        self.optimizer = optimizer
        self.plan = plan
        scaled = plan.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler(plan.device.type, enabled=scaled)

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with self.plan.autocast():
            logits = self.net(xb)
            loss = F.cross_entropy(logits, yb)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler.is_enabled():
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        return loss.detach(), logits.detach()


def make_optimizer(
    hps: Mapping[str, Any], model: nn.Module, device: torch.device
) -> torch.optim.Optimizer:
    """AdamW or Nesterov SGD over all of the model's parameters (frozen ones have no gradient
    and are skipped); AdamW's fused CUDA kernel on GPUs."""
    if hps["optimizer"] == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=hps["lr"],
            momentum=hps["momentum"],
            nesterov=hps["momentum"] > 0,
            weight_decay=hps["weight_decay"],
        )
    fused = {"fused": True} if device.type == "cuda" else {}
    return torch.optim.AdamW(
        model.parameters(), lr=hps["lr"], weight_decay=hps["weight_decay"], **fused
    )
