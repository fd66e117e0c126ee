"""The training loop: data parallel when launched by torchrun, mixed precision on CUDA,
a checkpoint per epoch, resumable, and stoppable by SIGTERM at any step.

Every rank trains; rank 0 alone validates, prints metric lines, writes TensorBoard events,
checkpoints, the model and evaluation.json.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import checkpoints
import numpy as np
import torch
import torch.nn.functional as F
from distributed import World, pick_device
from evaluation import classification_report, write_evaluation
from image_data import Splits
from resnet import build_model
from sm_contract import (
    Cluster,
    Paths,
    Stopped,
    StopSignal,
    UserError,
    format_metrics,
    log,
    write_json,
)
from tb_writer import TensorBoardWriter, open_writer
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

__all__ = ["METRICS", "OBJECTIVE", "train"]

METRICS = ("train:loss", "train:accuracy", "validation:loss", "validation:accuracy")
OBJECTIVE = "validation:accuracy"
_EVAL_BATCH = 1024
_SMALL_IMAGE_PIXELS = 32 * 32


@dataclass
class _State:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    device: torch.device
    use_amp: bool


def train(
    hps: Mapping[str, Any],
    splits: Splits,
    *,
    paths: Paths,
    world: World,
    cluster: Cluster,
    stop: StopSignal,
    algorithm: Mapping[str, str],
) -> None:
    """Train for hps["epochs"] epochs (resuming from the newest checkpoint) and, on rank 0,
    write model.pt, model.json and evaluation.json."""
    device = pick_device(world, cluster)
    world.start(device)
    try:
        _train(hps, splits, paths=paths, world=world, device=device, stop=stop, algorithm=algorithm)
    finally:
        world.stop()


def _train(
    hps: Mapping[str, Any],
    splits: Splits,
    *,
    paths: Paths,
    world: World,
    device: torch.device,
    stop: StopSignal,
    algorithm: Mapping[str, str],
) -> None:
    torch.manual_seed(hps["seed"])
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    channels, height, width = splits.x_train.shape[1:]
    if device.type == "cpu" and height * width <= _SMALL_IMAGE_PIXELS:
        # Small images make each op too short to split across threads. Measured on two busy
        # cores with the default digits run: one thread 8.7 s every time, two threads 7.7 to
        # 20 s (and far worse when other processes compete), as the pool's barriers stall.
        torch.set_num_threads(1)
    architecture = {
        "name": "resnet",
        "in_channels": int(channels),
        "num_classes": len(splits.classes),
        "width": hps["width"],
        "blocks_per_stage": hps["blocks_per_stage"],
        # Larger pictures are halved first, as ResNet's stem does, to keep the cost down.
        "stem_stride": 2 if min(height, width) >= 64 else 1,
    }
    model = build_model(architecture).to(device)
    use_amp = bool(hps["amp"]) and device.type == "cuda"
    state = _State(
        model=model,
        optimizer=_optimizer(hps, model),
        scaler=torch.amp.GradScaler(device.type, enabled=use_amp),
        device=device,
        use_amp=use_amp,
    )
    fingerprint = _fingerprint(hps, splits, architecture)
    start_epoch = _resume(state, fingerprint, paths=paths, world=world)
    epochs = hps["epochs"]
    writer = open_writer(paths.tensorboard_dir) if world.is_main else None
    if world.is_main:
        log(
            f"device={device.type} amp={str(use_amp).lower()} world_size={world.size} "
            f"parameters={sum(p.numel() for p in model.parameters())} "
            f"train={len(splits.y_train)} validation={len(splits.y_val)} "
            f"classes={len(splits.classes)} source={splits.source}"
        )
    try:
        if writer:
            writer.hparams_start(dict(hps), [name.replace(":", "/") for name in METRICS])
        _fit(state, splits, hps, fingerprint, start_epoch, paths, world, stop, writer)
        if world.is_main:
            _export(state, splits, hps, architecture, paths, algorithm, max(epochs, start_epoch))
            if writer:
                writer.hparams_end(success=True)
    finally:
        if writer:
            writer.close()


def _optimizer(hps: Mapping[str, Any], model: nn.Module) -> torch.optim.Optimizer:
    if hps["optimizer"] == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=hps["lr"],
            momentum=hps["momentum"],
            nesterov=hps["momentum"] > 0,
            weight_decay=hps["weight_decay"],
        )
    return torch.optim.AdamW(model.parameters(), lr=hps["lr"], weight_decay=hps["weight_decay"])


def _fingerprint(
    hps: Mapping[str, Any], splits: Splits, architecture: Mapping[str, Any]
) -> dict[str, Any]:
    """What must be equal for a checkpoint to be resumable: the model and the data split.
    Epochs, learning rate and the like may change between runs."""
    fingerprint = {
        "architecture": dict(architecture),
        "classes": splits.classes,
        "input_shape": list(splits.x_train.shape[1:]),
        "train_rows": len(splits.y_train),
        "validation_rows": len(splits.y_val),
        "seed": hps["seed"],
        "optimizer": hps["optimizer"],
    }
    return json.loads(json.dumps(fingerprint))


def _resume(state: _State, fingerprint: Mapping[str, Any], *, paths: Paths, world: World) -> int:
    found = checkpoints.load_latest(paths.checkpoint_dir) if world.is_main else None
    found = world.broadcast(found)
    if found is None:
        return 0
    path, saved = found
    if saved.get("fingerprint") != fingerprint:
        old = saved.get("fingerprint") or {}
        changed = sorted(k for k in fingerprint if old.get(k) != fingerprint[k])
        raise UserError(
            f"checkpoint {path.name} in {path.parent} belongs to a different model or data "
            f"({', '.join(changed)} changed); use an empty checkpoint directory"
        )
    state.model.load_state_dict(saved["model"])
    state.optimizer.load_state_dict(saved["optimizer"])
    if state.use_amp and saved.get("scaler"):
        state.scaler.load_state_dict(saved["scaler"])
    if world.is_main:
        log(f"resumed from checkpoint epoch={saved['epoch']} ({path.name})")
    return int(saved["epoch"])


def _fit(
    state: _State,
    splits: Splits,
    hps: Mapping[str, Any],
    fingerprint: Mapping[str, Any],
    start_epoch: int,
    paths: Paths,
    world: World,
    stop: StopSignal,
    writer: TensorBoardWriter | None,
) -> None:
    device, model = state.device, state.model
    net: nn.Module = model
    if world.distributed:
        ids = [device.index] if device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=ids)
    x_train = torch.from_numpy(splits.x_train).to(device)
    y_train = torch.from_numpy(splits.y_train).to(device)
    x_val = torch.from_numpy(splits.x_val).to(device)
    y_val = torch.from_numpy(splits.y_val).to(device)
    # DistributedSampler only needs a length; with one replica it is a seeded shuffle.
    sampler = DistributedSampler(
        range(len(y_train)), num_replicas=world.size, rank=world.rank, seed=hps["seed"]
    )
    batch_size, epochs = hps["batch_size"], hps["epochs"]
    steps_per_epoch = len(_batches(list(range(len(sampler))), batch_size))
    total_steps = epochs * steps_per_epoch
    shift = max(1, round(min(splits.x_train.shape[2:]) / 8)) if hps["augment"] else 0
    last_saved = start_epoch
    for epoch in range(start_epoch + 1, epochs + 1):
        sampler.set_epoch(epoch)
        augment_rng = torch.Generator().manual_seed(hps["seed"] * 100_003 + epoch * 31 + world.rank)
        net.train()
        sums = torch.zeros(3, dtype=torch.float64, device=device)
        for step, rows in enumerate(_batches(list(sampler), batch_size)):
            global_step = (epoch - 1) * steps_per_epoch + step
            lr = hps["lr"] * 0.5 * (1 + math.cos(math.pi * global_step / total_steps))
            for group in state.optimizer.param_groups:
                group["lr"] = lr
            index = torch.tensor(rows, device=device)
            xb, yb = x_train[index], y_train[index]
            if shift:
                xb = _random_shift(xb, shift, augment_rng)
            loss, logits = _step(state, net, xb, yb)
            sums += torch.stack(
                [
                    loss.detach().double() * len(yb),
                    (logits.argmax(1) == yb).sum().double(),
                    torch.tensor(float(len(yb)), dtype=torch.float64, device=device),
                ]
            )
            if writer:
                writer.scalar("train/loss_step", loss.item(), global_step)
            if world.any_stop(stop, device):
                where = (
                    f"checkpoint epoch={last_saved} is in {paths.checkpoint_dir}"
                    if last_saved
                    else "no checkpoint was written yet"
                )
                raise Stopped(
                    f"stopped by {stop.received or 'a peer'} during epoch {epoch}/{epochs}; {where}"
                )
        loss_sum, correct, count = world.sum(sums.tolist(), device)
        if not world.is_main:
            continue
        val_loss, val_accuracy = _validate(state, x_val, y_val)
        metrics = {
            "train:loss": loss_sum / count,
            "train:accuracy": correct / count,
            "validation:loss": val_loss,
            "validation:accuracy": val_accuracy,
        }
        log(f"epoch={epoch}/{epochs} {format_metrics(metrics)}")
        if writer:
            writer.scalars(metrics, epoch)
            writer.scalar("train/lr", lr, epoch)
            writer.flush()
        checkpoints.save(
            paths.checkpoint_dir,
            epoch,
            {
                "epoch": epoch,
                "model": model.state_dict(),
                "optimizer": state.optimizer.state_dict(),
                "scaler": state.scaler.state_dict(),
                "fingerprint": dict(fingerprint),
                "metrics": metrics,
            },
        )
        last_saved = epoch


def _batches(rows: list[int], batch_size: int) -> list[list[int]]:
    batches = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    # Batch norm cannot train on a batch of one; a single leftover row waits for next epoch.
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches.pop()
    return batches


def _step(
    state: _State, net: nn.Module, xb: torch.Tensor, yb: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.autocast(state.device.type, dtype=torch.float16, enabled=state.use_amp):
        logits = net(xb)
        loss = F.cross_entropy(logits, yb)
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(loss).backward()
    state.scaler.step(state.optimizer)
    state.scaler.update()
    return loss, logits


def _random_shift(x: torch.Tensor, shift: int, rng: torch.Generator) -> torch.Tensor:
    """Translate each image by up to `shift` pixels, repeating the border into the gap."""
    n, _, height, width = x.shape
    padded = F.pad(x, (shift, shift, shift, shift), mode="replicate")
    dy = torch.randint(0, 2 * shift + 1, (n,), generator=rng).to(x.device)
    dx = torch.randint(0, 2 * shift + 1, (n,), generator=rng).to(x.device)
    rows = (torch.arange(height, device=x.device)[None, :] + dy[:, None])[:, None, :, None]
    cols = (torch.arange(width, device=x.device)[None, :] + dx[:, None])[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


@torch.no_grad()
def _predict(state: _State, x: torch.Tensor) -> torch.Tensor:
    state.model.eval()
    outputs = []
    for start in range(0, len(x), _EVAL_BATCH):
        with torch.autocast(state.device.type, dtype=torch.float16, enabled=state.use_amp):
            outputs.append(state.model(x[start : start + _EVAL_BATCH]).float())
    return torch.cat(outputs)


def _validate(state: _State, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    logits = _predict(state, x)
    loss = F.cross_entropy(logits, y).item()
    accuracy = (logits.argmax(1) == y).double().mean().item()
    return loss, accuracy


def _export(
    state: _State,
    splits: Splits,
    hps: Mapping[str, Any],
    architecture: Mapping[str, Any],
    paths: Paths,
    algorithm: Mapping[str, str],
    epochs_trained: int,
) -> None:
    x_val = torch.from_numpy(splits.x_val).to(state.device)
    y_val = torch.from_numpy(splits.y_val).to(state.device)
    logits = _predict(state, x_val)
    predicted = logits.argmax(1).cpu().numpy()
    report = classification_report(splits.y_val, predicted, splits.classes)
    metrics = {"loss": F.cross_entropy(logits, y_val).item(), **report.pop("metrics")}
    objective = (OBJECTIVE, metrics["accuracy"])
    paths.model_dir.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu() for k, v in state.model.state_dict().items()}
    torch.save(weights, paths.model_dir / "model.pt")
    write_json(
        paths.model_dir / "model.json",
        {
            "algorithm": dict(algorithm),
            "framework": {"name": "pytorch", "version": torch.__version__},
            "weights": "model.pt",
            "architecture": dict(architecture),
            "input": {
                "shape": list(splits.x_train.shape[1:]),
                "mean": splits.mean,
                "std": splits.std,
                "layout": "NCHW; standardise each channel with mean and std",
            },
            "classes": splits.classes,
            "epochs_trained": epochs_trained,
            "objective": {"metric": objective[0], "value": objective[1]},
            "hyperparameters": dict(hps),
        },
    )
    path = write_evaluation(
        paths.output_data_dir,
        task="classification",
        objective=objective,
        metrics=metrics,
        samples=int(np.asarray(splits.y_val).size),
        details=report,
    )
    log(f"model written to {paths.model_dir}; evaluation written to {path}")
