"""The training loop: data parallel when launched by torchrun, mixed precision on CUDA,
a checkpoint per epoch, resumable, and stoppable by SIGTERM at any step.

Every rank trains; rank 0 alone validates, prints metric lines, writes TensorBoard events,
checkpoints, the model and evaluation.json.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import checkpoints
import torch
import torch.nn.functional as F
from checkpoint_files import refuse_foreign
from distributed import World, pick_device
from evaluation import classification_report, write_evaluation
from image_data import Splits
from resnet import build_model
from sm_contract import (
    Cluster,
    Paths,
    Stopped,
    StopSignal,
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
        _Trainer(hps, splits, paths=paths, world=world, device=device, stop=stop).run(algorithm)
    finally:
        world.stop()


class _Trainer:
    def __init__(
        self,
        hps: Mapping[str, Any],
        splits: Splits,
        *,
        paths: Paths,
        world: World,
        device: torch.device,
        stop: StopSignal,
    ) -> None:
        self.hps, self.splits, self.paths = hps, splits, paths
        self.world, self.device, self.stop = world, device, stop
        torch.manual_seed(hps["seed"])
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        channels, height, width = splits.x_train.shape[1:]
        if device.type == "cpu" and height * width <= _SMALL_IMAGE_PIXELS:
            # Small images make each op too short to split across threads. Measured on two
            # busy cores with the default digits run: one thread 8.7 s every time, two threads
            # 7.7 to 20 s (far worse when other processes compete) as the pool's barriers stall.
            torch.set_num_threads(1)
        self.architecture = {
            "name": "resnet",
            "in_channels": int(channels),
            "num_classes": len(splits.classes),
            "width": hps["width"],
            "blocks_per_stage": hps["blocks_per_stage"],
            # Larger pictures are halved first, as ResNet's stem does, to keep the cost down.
            "stem_stride": 2 if min(height, width) >= 64 else 1,
        }
        self.model = build_model(self.architecture).to(device)
        self.net: nn.Module = self.model
        self.use_amp = bool(hps["amp"]) and device.type == "cuda"
        self.optimizer = _optimizer(hps, self.model)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.use_amp)
        self.fingerprint = _fingerprint(hps, splits, self.architecture)

    def run(self, algorithm: Mapping[str, str]) -> None:
        start_epoch = self._resume()
        if self.world.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)
        to_device = {
            name: torch.from_numpy(getattr(self.splits, name)).to(self.device)
            for name in ("x_train", "y_train", "x_val", "y_val")
        }
        writer = None
        if self.world.is_main:
            self._announce()
            writer = open_writer(self.paths.tensorboard_dir)
            writer.hparams_start(dict(self.hps), [m.replace(":", "/") for m in METRICS])
        epochs = self.hps["epochs"]
        try:
            last_saved = start_epoch
            for epoch in range(start_epoch + 1, epochs + 1):
                train_metrics, lr = self._train_epoch(epoch, to_device, last_saved, writer)
                if self.world.is_main:
                    self._end_epoch(epoch, train_metrics, lr, to_device, writer)
                # Rank 0 saved it before joining the next step's collective, so every rank
                # may now name this checkpoint.
                last_saved = epoch
            if self.world.is_main:
                self._export(algorithm, to_device, max(epochs, start_epoch))
                if writer:
                    writer.hparams_end(success=True)
        finally:
            if writer:
                writer.close()

    def _announce(self) -> None:
        splits = self.splits
        log(
            f"device={self.device.type} amp={str(self.use_amp).lower()} "
            f"world_size={self.world.size} "
            f"parameters={sum(p.numel() for p in self.model.parameters())} "
            f"train={len(splits.y_train)} validation={len(splits.y_val)} "
            f"classes={len(splits.classes)} source={splits.source}"
        )

    def _resume(self) -> int:
        found = checkpoints.load_latest(self.paths.checkpoint_dir) if self.world.is_main else None
        found = self.world.broadcast(found)
        if found is None:
            return 0
        path, saved = found
        refuse_foreign(path, saved.get("fingerprint") or {}, self.fingerprint)
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        if self.use_amp and saved.get("scaler"):
            self.scaler.load_state_dict(saved["scaler"])
        if self.world.is_main:
            log(f"resumed from checkpoint epoch={saved['epoch']} ({path.name})")
        return int(saved["epoch"])

    def _train_epoch(
        self,
        epoch: int,
        data: Mapping[str, torch.Tensor],
        last_saved: int,
        writer: TensorBoardWriter | None,
    ) -> tuple[dict[str, float], float]:
        """One pass over this rank's shard; train metrics are summed over all ranks."""
        hps, world, device = self.hps, self.world, self.device
        # DistributedSampler only needs a length; with one replica it is a seeded shuffle.
        sampler = DistributedSampler(
            range(len(self.splits.y_train)),
            num_replicas=world.size,
            rank=world.rank,
            seed=hps["seed"],
        )
        sampler.set_epoch(epoch)
        batches = _batches(list(sampler), hps["batch_size"])
        total_steps = hps["epochs"] * len(batches)
        first_step = (epoch - 1) * len(batches)
        shift = max(1, round(min(self.splits.x_train.shape[2:]) / 8)) if hps["augment"] else 0
        # On the device, like the data: a CPU generator's draws (and per-step indices or
        # .item() calls) would each be a host-device synchronisation, which left the GPU idle
        # between steps. The epoch's row order goes over once; losses and hits stay on the
        # device until the epoch ends.
        rng = torch.Generator(device=device).manual_seed(
            hps["seed"] * 100_003 + epoch * 31 + world.rank
        )
        order = torch.tensor([row for rows in batches for row in rows], device=device)
        self.net.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        step_losses: list[torch.Tensor] = []
        count = offset = 0
        lr = hps["lr"]
        for step, rows in enumerate(batches):
            global_step = first_step + step
            lr = hps["lr"] * 0.5 * (1 + math.cos(math.pi * global_step / total_steps))
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            index = order[offset : offset + len(rows)]
            offset += len(rows)
            xb, yb = data["x_train"][index], data["y_train"][index]
            if shift:
                xb = _random_shift(xb, shift, rng)
            loss, logits = self._step(xb, yb)
            step_losses.append(loss)
            loss_sum += loss.double() * len(rows)
            correct += (logits.argmax(1) == yb).sum()
            count += len(rows)
            if world.any_stop(self.stop, device):
                _write_step_losses(writer, step_losses, first_step)
                kept = (
                    f"checkpoint epoch={last_saved} is in {self.paths.checkpoint_dir}"
                    if last_saved
                    else "no checkpoint was written yet"
                )
                received = self.stop.received or "a peer"
                raise Stopped(f"stopped by {received} during epoch {epoch}/{hps['epochs']}; {kept}")
        _write_step_losses(writer, step_losses, first_step)
        total_loss, total_correct, total = world.sum(
            [loss_sum.item(), float(correct.item()), float(count)], device
        )
        return {"train:loss": total_loss / total, "train:accuracy": total_correct / total}, lr

    def _step(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp):
            logits = self.net(xb)
            loss = F.cross_entropy(logits, yb)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach(), logits.detach()

    def _end_epoch(
        self,
        epoch: int,
        train_metrics: Mapping[str, float],
        lr: float,
        data: Mapping[str, torch.Tensor],
        writer: TensorBoardWriter | None,
    ) -> None:
        """Rank 0: validate, report and checkpoint."""
        logits = self._predict(data["x_val"])
        metrics = {
            **train_metrics,
            "validation:loss": F.cross_entropy(logits, data["y_val"]).item(),
            "validation:accuracy": (logits.argmax(1) == data["y_val"]).double().mean().item(),
        }
        log(f"epoch={epoch}/{self.hps['epochs']} {format_metrics(metrics)}")
        if writer:
            writer.scalars(metrics, epoch)
            writer.scalar("train/lr", lr, epoch)
            writer.flush()
        checkpoints.save(
            self.paths.checkpoint_dir,
            epoch,
            {
                "epoch": epoch,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(),
                "fingerprint": self.fingerprint,
                "metrics": metrics,
            },
        )

    @torch.no_grad()
    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        outputs = []
        for start in range(0, len(x), _EVAL_BATCH):
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp):
                outputs.append(self.model(x[start : start + _EVAL_BATCH]).float())
        return torch.cat(outputs)

    def _export(
        self, algorithm: Mapping[str, str], data: Mapping[str, torch.Tensor], epochs_trained: int
    ) -> None:
        splits, paths = self.splits, self.paths
        logits = self._predict(data["x_val"])
        report = classification_report(splits.y_val, logits.argmax(1).cpu().numpy(), splits.classes)
        metrics = {"loss": F.cross_entropy(logits, data["y_val"]).item(), **report.pop("metrics")}
        objective = (OBJECTIVE, metrics["accuracy"])
        paths.model_dir.mkdir(parents=True, exist_ok=True)
        weights = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        torch.save(weights, paths.model_dir / "model.pt")
        write_json(
            paths.model_dir / "model.json",
            {
                "algorithm": dict(algorithm),
                "framework": {"name": "pytorch", "version": torch.__version__},
                "weights": "model.pt",
                "architecture": self.architecture,
                "input": {
                    "shape": list(splits.x_train.shape[1:]),
                    "mean": splits.mean,
                    "std": splits.std,
                    "layout": "NCHW; standardise each channel with mean and std",
                },
                "classes": splits.classes,
                "epochs_trained": epochs_trained,
                "objective": {"metric": objective[0], "value": objective[1]},
                "hyperparameters": dict(self.hps),
            },
        )
        path = write_evaluation(
            paths.output_data_dir,
            task="classification",
            objective=objective,
            metrics=metrics,
            samples=len(splits.y_val),
            details=report,
        )
        log(f"model written to {paths.model_dir}; evaluation written to {path}")


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


def _batches(rows: list[int], batch_size: int) -> list[list[int]]:
    batches = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    # Batch norm cannot train on a batch of one; a single leftover row waits for next epoch.
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches.pop()
    return batches


def _write_step_losses(
    writer: TensorBoardWriter | None, losses: list[torch.Tensor], first_step: int
) -> None:
    """The per-step losses of an epoch (or of its part before a stop), read back at once."""
    if writer and losses:
        for step, value in enumerate(torch.stack(losses).tolist(), start=first_step):
            writer.scalar("train/loss_step", value, step)


def _random_shift(x: torch.Tensor, shift: int, rng: torch.Generator) -> torch.Tensor:
    """Translate each image by up to `shift` pixels, repeating the border into the gap.
    `rng` is a generator on x's device."""
    n, _, height, width = x.shape
    padded = F.pad(x, (shift, shift, shift, shift), mode="replicate")
    dy = torch.randint(0, 2 * shift + 1, (n,), generator=rng, device=x.device)
    dx = torch.randint(0, 2 * shift + 1, (n,), generator=rng, device=x.device)
    rows = (torch.arange(height, device=x.device)[None, :] + dy[:, None])[:, None, :, None]
    cols = (torch.arange(width, device=x.device)[None, :] + dx[:, None])[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]
