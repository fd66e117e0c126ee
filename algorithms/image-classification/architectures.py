"""The `arch` choices: what model.json's `architecture` holds for each, how to build it, and
which of its parameters form the classifier head (what a fine-tune replaces and, with
freeze_backbone or head_epochs, trains alone).

    small               the small residual network of resnet.py (the default: seconds on a CPU)
    resnet18/34/50      torchvision's ResNets, same parameter names (standard_nets.py)
    mobilenet_v3_small  torchvision's MobileNetV3-small, same parameter names
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from resnet import ResNet as SmallResNet
from standard_nets import STANDARD_ARCHS, build_standard
from torch import nn

__all__ = [
    "ARCHS",
    "STANDARD_ARCHS",
    "architecture_for",
    "build_model",
    "head_names",
    "is_head",
    "set_backbone_frozen",
]

ARCHS = ("small", *STANDARD_ARCHS)


def architecture_for(
    hps: Mapping[str, Any], input_shape: tuple[int, int, int], num_classes: int
) -> dict[str, Any]:
    """model.json's `architecture` (and the checkpoint's identity) for this run."""
    channels, height, width = input_shape
    if hps["arch"] == "small":
        # The name stays "resnet", as before `arch` existed, so model.json files and
        # checkpoints of the small network written then still load.
        return {
            "name": "resnet",
            "in_channels": int(channels),
            "num_classes": num_classes,
            "width": hps["width"],
            "blocks_per_stage": hps["blocks_per_stage"],
            # Larger pictures are halved first, as ResNet's stem does, to keep the cost down.
            "stem_stride": 2 if min(height, width) >= 64 else 1,
        }
    return {"name": hps["arch"], "in_channels": int(channels), "num_classes": num_classes}


def build_model(architecture: Mapping[str, Any]) -> nn.Module:
    """The model described by model.json's `architecture` (weights come from model.pt)."""
    name = architecture["name"]
    if name in ("resnet", "small"):
        return SmallResNet(
            in_channels=int(architecture["in_channels"]),
            num_classes=int(architecture["num_classes"]),
            width=int(architecture["width"]),
            blocks_per_stage=int(architecture["blocks_per_stage"]),
            stem_stride=int(architecture["stem_stride"]),
        )
    if name in STANDARD_ARCHS:
        return build_standard(
            name,
            in_channels=int(architecture["in_channels"]),
            num_classes=int(architecture["num_classes"]),
        )
    raise ValueError(f"unknown architecture {name!r}")


def head_names(model: nn.Module) -> tuple[str, ...]:
    """Top-level module names of the classifier head."""
    return tuple(getattr(model, "head", ("classifier",)))


def is_head(model: nn.Module, key: str) -> bool:
    """Whether a parameter or state-dict key belongs to the head."""
    return key.split(".", 1)[0] in head_names(model)


def set_backbone_frozen(model: nn.Module, frozen: bool) -> None:
    """Freeze (or unfreeze) everything but the head: no gradients, and batch norm keeps its
    running statistics (`eval()` after each `train()` call, see `keep_frozen_bn_in_eval`)."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(not frozen or is_head(model, name))


def keep_frozen_bn_in_eval(model: nn.Module) -> None:
    """After `model.train()`: batch norm layers of a frozen backbone go back to eval mode, so
    a head-only epoch changes neither their weights nor their running statistics."""
    for name, module in model.named_modules():
        if name and not is_head(model, name) and isinstance(module, nn.modules.batchnorm._NormBase):
            parameters = list(module.parameters(recurse=False))
            if parameters and not any(p.requires_grad for p in parameters):
                module.eval()
