"""Image classification preset: a small ResNet (default) or a standard ImageNet network
(ResNet-18/34/50, MobileNetV3-small; from pretrained weights when the `pretrained` channel
has them), trained under SageMaker's script-mode contract.

Run as `python train.py [--name value ...]`, or with several processes as
`torchrun --nproc_per_node=N train.py`. Inputs, outputs and hyperparameters follow
sm_contract.py; HYPERPARAMETERS below mirrors manifest.yml (a test keeps them equal).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# The preset's shared modules (sm_contract, evaluation, …) sit beside this file in a packaged
# source dir (SageMaker, the local runner); in the repository they live in ../_shared.
_SHARED = Path(__file__).resolve().parent.parent / "_shared"
if _SHARED.is_dir() and str(_SHARED) not in sys.path:
    sys.path.insert(1, str(_SHARED))

from collections.abc import Mapping, Sequence
from typing import Any

from image_data import FolderSplits, RawSplits, Splits, load_builtin, load_channel, make_splits
from sm_contract import (
    Cluster,
    Param,
    Paths,
    StopSignal,
    UserError,
    channel_dir,
    data_files,
    log,
    read_hyperparameters,
    run_main,
)

ALGORITHM = {"id": "image-classification", "version": "1.1.0"}
ARCHS = ("small", "resnet18", "resnet34", "resnet50", "mobilenet_v3_small")

HYPERPARAMETERS = (
    Param("arch", "choice", "small", choices=ARCHS),
    Param("epochs", "int", 15, min=1, max=500),
    Param("batch_size", "int", 64, min=2, max=4096),
    Param("lr", "float", 0.003, min=1e-6, max=10.0),
    Param("optimizer", "choice", "adam", choices=("adam", "sgd")),
    Param("momentum", "float", 0.9, min=0.0, max=0.999),
    Param("weight_decay", "float", 0.0005, min=0.0, max=1.0),
    Param("width", "int", 16, min=4, max=256),
    Param("blocks_per_stage", "int", 1, min=1, max=8),
    Param("image_size", "int", 0, min=0, max=1024),
    Param("augment", "bool", True),
    Param("amp", "bool", True),
    Param("compile", "bool", False),
    Param("freeze_backbone", "bool", False),
    Param("head_epochs", "int", 0, min=0, max=500),
    Param("num_workers", "int", 0, min=0, max=64),
    Param("validation_split", "float", 0.2, min=0.05, max=0.5),
    Param("seed", "int", 42, min=0, max=2**31 - 1),
)


def main(argv: Sequence[str]) -> None:
    hps = read_hyperparameters(HYPERPARAMETERS, argv)
    stop = StopSignal().install()
    pretrained_dir = _pretrained_dir(hps)
    splits = _load_data(hps)
    # torch is imported only from here on, so bad hyperparameters or data fail in well
    # under a second.
    from distributed import World
    from trainer import train

    world = World.from_env()
    cluster = Cluster.from_env()
    if not world.distributed and not cluster.is_leader:
        log(f"host {cluster.current_host} is not the first host of a non-distributed job: idle")
        return

    train(
        hps,
        splits,
        paths=Paths.from_env(),
        world=world,
        cluster=cluster,
        stop=stop,
        algorithm=ALGORITHM,
        pretrained_dir=pretrained_dir,
    )


def _load_data(hps: Mapping[str, Any]) -> Splits | FolderSplits | RawSplits:
    train_dir = channel_dir("train")
    validation_dir = channel_dir("validation")
    if train_dir is None and validation_dir is not None:
        raise UserError("a validation channel needs a train channel too")
    size = hps["image_size"]
    # Arrays for the standard networks stay at their own size: each batch is resized on the
    # device (pipeline.RawFeed), not the whole data set up front.
    load_size = size if hps["arch"] == "small" else 0
    if train_dir:
        train = load_channel("train", train_dir, image_size=load_size)
    else:
        train = load_builtin(image_size=load_size)
    validation = (
        load_channel("validation", validation_dir, image_size=load_size) if validation_dir else None
    )
    return make_splits(
        train,
        validation,
        validation_split=hps["validation_split"],
        seed=hps["seed"],
        imagenet=hps["arch"] != "small",
        image_size=size,
    )


def _pretrained_dir(hps: Mapping[str, Any]) -> Path | None:
    """The `pretrained` channel, checked before torch is imported: one weights file. Given
    but empty is an error, and so is fine-tuning (freeze_backbone, head_epochs) without it:
    a frozen backbone of random weights would learn next to nothing."""
    root = channel_dir("pretrained")
    if root is None and os.environ.get("SM_CHANNEL_PRETRAINED"):
        raise UserError(
            f"channel pretrained: {os.environ['SM_CHANNEL_PRETRAINED']} is empty; give it one "
            ".pt/.pth/.bin state dict file, or leave the channel out to train from scratch"
        )
    if root is None:
        if hps["freeze_backbone"] or hps["head_epochs"]:
            which = "freeze_backbone=true" if hps["freeze_backbone"] else "head_epochs > 0"
            raise UserError(
                f"{which} fine-tunes pretrained weights, but there is no pretrained channel; "
                "give it the weights (one .pt/.pth state dict, e.g. torchvision's for this "
                "arch), or set freeze_backbone=false and head_epochs=0 to train from scratch"
            )
        return None
    if not data_files(root, (".pt", ".pth", ".bin")):
        raise UserError(
            f"channel pretrained: no .pt/.pth/.bin file in {root}; give it one state dict "
            "file (torch.save(model.state_dict(), 'weights.pth'))"
        )
    return root


if __name__ == "__main__":
    run_main(main)
