"""The training loop: data parallel when launched by torchrun, mixed precision and
channels-last on CUDA (step.py), a checkpoint per epoch, resumable, stoppable by SIGTERM at
any step, optionally from pretrained weights with the backbone frozen for the first epochs.

Every rank trains; rank 0 alone validates, prints metric lines, writes TensorBoard events,
checkpoints, the model and evaluation.json. Whatever may fail on some ranks only (decoding a
batch, rank 0's validation and writing, reading the pretrained weights or the checkpoint) is
followed by `World.agree`, so every rank leaves together, with one `ERROR:` line.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import checkpoints
import numpy as np
import torch
import torch.nn.functional as F
from architectures import (
    architecture_for,
    build_model,
    keep_frozen_bn_in_eval,
    set_backbone_frozen,
)
from checkpoint_files import refuse_foreign
from distributed import World, pick_device
from evaluation import classification_report, write_evaluation
from image_data import FolderSplits, RawSplits, Splits
from pipeline import VAL_CROP, make_feed
from pretrained import LoadReport, load_pretrained
from sm_contract import (
    Cluster,
    Paths,
    Stopped,
    StopSignal,
    format_metrics,
    log,
    write_json,
)
from step import TrainStep, configure_backends, make_optimizer, plan_execution
from tb_writer import TensorBoardWriter, open_writer
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

__all__ = ["METRICS", "OBJECTIVE", "frozen_in", "stage_line", "train"]

METRICS = ("train:loss", "train:accuracy", "validation:loss", "validation:accuracy")
OBJECTIVE = "validation:accuracy"
_SMALL_IMAGE_PIXELS = 32 * 32
T = TypeVar("T")
AnySplits = Splits | FolderSplits | RawSplits


def train(
    hps: Mapping[str, Any],
    splits: AnySplits,
    *,
    paths: Paths,
    world: World,
    cluster: Cluster,
    stop: StopSignal,
    algorithm: Mapping[str, str],
    pretrained_dir: Path | None = None,
) -> None:
    """Train for hps["epochs"] epochs (resuming from the newest checkpoint) and, on rank 0,
    write model.pt, model.json and evaluation.json."""
    device = pick_device(world, cluster)
    world.start(device)
    together = True
    try:
        trainer = _Trainer(hps, splits, paths=paths, world=world, device=device, stop=stop)
        trainer.run(algorithm, pretrained_dir)
    except BaseException:
        # A stop or failure the ranks agreed on: all of them are on their way out. Otherwise
        # this rank's own failure, while its peers may be waiting in a collective.
        together = world.leaving
        raise
    finally:
        world.stop(together=together)


class _Trainer:
    def __init__(
        self,
        hps: Mapping[str, Any],
        splits: AnySplits,
        *,
        paths: Paths,
        world: World,
        device: torch.device,
        stop: StopSignal,
    ) -> None:
        self.hps, self.splits, self.paths = hps, splits, paths
        self.world, self.device, self.stop = world, device, stop
        torch.manual_seed(hps["seed"])
        configure_backends(deterministic=True)
        _, height, width = splits.input_shape
        if device.type == "cpu" and height * width <= _SMALL_IMAGE_PIXELS:
            # Small images make each op too short to split across threads. Measured on two
            # busy cores with the default digits run: one thread 8.7 s every time, two threads
            # 7.7 to 20 s (far worse when other processes compete) as the pool's barriers stall.
            torch.set_num_threads(1)
        self.architecture = architecture_for(hps, splits.input_shape, len(splits.classes))
        self.model = build_model(self.architecture)
        # Channels-last for the standard networks, whose convolutions it speeds up on tensor
        # cores; the small network on small pictures stays as it was measured (NCHW).
        self.plan = plan_execution(
            device, amp=hps["amp"], compile=hps["compile"], channels_last=hps["arch"] != "small"
        )
        self.frozen: bool | None = None
        self.fingerprint = _fingerprint(hps, splits, self.architecture)
        workers = hps["num_workers"]
        self.feed = make_feed(
            splits, self.plan, augment=hps["augment"], seed=hps["seed"], num_workers=workers
        )
        self.pretrained: LoadReport | None = None
        self.last_eval: tuple[int, dict[str, float], np.ndarray] | None = None

    def _together(self, work: Callable[..., T], *args: Any, main_only: bool = False) -> T | None:
        """`work(*args)` (on rank 0 alone when `main_only`), then every rank agrees on how
        it went: a failure anywhere ends the run on every rank (World.agree)."""
        result, error = None, None
        if self.world.is_main or not main_only:
            try:
                result = work(*args)
            except Exception as exc:
                error = exc
        self.world.agree(self.device, error=error)
        return result

    def run(self, algorithm: Mapping[str, str], pretrained_dir: Path | None = None) -> None:
        if pretrained_dir is not None:
            # On the CPU, before the model moves. Every rank reads the file, so all of them
            # refuse a wrong one alike; a checkpoint, when there is one, replaces these weights.
            load = partial(load_pretrained, arch=self.hps["arch"], quiet=not self.world.is_main)
            self.pretrained = self._together(load, self.model, pretrained_dir)
        self.model = self.plan.place(self.model)
        self.optimizer = make_optimizer(self.hps, self.model, self.device)
        self.step = TrainStep(self.model, self.optimizer, self.plan)
        start_epoch = self._resume()
        writer = None
        if self.world.is_main:
            self._announce()
            writer = open_writer(self.paths.tensorboard_dir)
            writer.hparams_start(dict(self.hps), [m.replace(":", "/") for m in METRICS])
        epochs = self.hps["epochs"]
        try:
            last_saved = start_epoch
            for epoch in range(start_epoch + 1, epochs + 1):
                self._set_stage(epoch, resumed=epoch == start_epoch + 1 and start_epoch > 0)
                train_metrics, lr = self._train_epoch(epoch, last_saved, writer)
                self._together(self._end_epoch, epoch, train_metrics, lr, writer, main_only=True)
                # Rank 0 saved it before the ranks agreed, so every rank may now name it.
                last_saved = epoch
            trained = max(epochs, start_epoch)
            self._together(self._finish, algorithm, trained, writer, main_only=True)
        finally:
            self.feed.close()
            if writer:
                writer.close()

    def _finish(
        self, algorithm: Mapping[str, str], epochs_trained: int, writer: TensorBoardWriter | None
    ) -> None:
        self._export(algorithm, epochs_trained)
        if writer:
            writer.hparams_end(success=True)

    def _announce(self) -> None:
        splits, plan = self.splits, self.plan
        log(
            f"device={self.device.type} arch={self.hps['arch']} amp={plan.amp_name} "
            f"channels_last={str(plan.channels_last).lower()} "
            f"compile={str(plan.compile).lower()} workers={self.feed.workers} "
            f"world_size={self.world.size} "
            f"parameters={sum(p.numel() for p in self.model.parameters())} "
            f"train={len(splits.y_train)} validation={len(splits.y_val)} "
            f"classes={len(splits.classes)} input={'x'.join(map(str, splits.input_shape))} "
            f"source={splits.source}"
        )

    def _set_stage(self, epoch: int, *, resumed: bool = False) -> None:
        """Freeze or unfreeze the backbone, and (re)build what runs the steps: DDP registers
        only the parameters that train when it is built, so a change of stage rebuilds it."""
        frozen = frozen_in(epoch, self.hps)
        if frozen == self.frozen:
            return
        changed = self.frozen is not None
        self.frozen = frozen
        set_backbone_frozen(self.model, frozen)
        net: nn.Module = self.model
        if self.world.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            net = DistributedDataParallel(self.model, device_ids=ids)
        self.step.net = self.plan.wrap(net)
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        line = stage_line(epoch, self.hps, changed=changed, resumed=resumed, trainable=trainable)
        if self.world.is_main and line:
            log(line)

    def _resume(self) -> int:
        directory = self.paths.checkpoint_dir
        found = self._together(checkpoints.load_latest, directory, main_only=True)
        found = self.world.broadcast(found)
        if found is None:
            return 0
        path, saved = found
        self._together(refuse_foreign, path, saved.get("fingerprint") or {}, self.fingerprint)
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        if self.step.scaler.is_enabled() and saved.get("scaler"):
            self.step.scaler.load_state_dict(saved["scaler"])
        if self.world.is_main:
            log(f"resumed from checkpoint epoch={saved['epoch']} ({path.name})")
        return int(saved["epoch"])

    def _train_epoch(
        self, epoch: int, last_saved: int, writer: TensorBoardWriter | None
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
        self.step.net.train()
        if self.frozen:
            keep_frozen_bn_in_eval(self.model)
        # Losses and hits stay on the device until the epoch ends: no host synchronisation.
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        step_losses: list[torch.Tensor] = []
        count = 0
        lr = hps["lr"]
        batches_on_device = iter(self.feed.train_batches(epoch, world.rank, batches))
        for step in range(len(batches)):
            # Fetching a batch decodes pictures, which may fail on this rank alone: every rank
            # says how it went (and whether it got SIGTERM) before any trains on its batch.
            batch, error = None, None
            try:
                batch = next(batches_on_device)
            except Exception as exc:
                error = exc
            if world.agree(device, stop=self.stop, error=error):
                _write_step_losses(writer, step_losses, first_step)
                kept = (
                    f"checkpoint epoch={last_saved} is in {self.paths.checkpoint_dir}"
                    if last_saved
                    else "no checkpoint was written yet"
                )
                received = self.stop.received or "a peer"
                raise Stopped(f"stopped by {received} during epoch {epoch}/{hps['epochs']}; {kept}")
            assert batch is not None
            xb, yb = batch
            global_step = first_step + step
            lr = hps["lr"] * 0.5 * (1 + math.cos(math.pi * global_step / total_steps))
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            loss, logits = self.step(xb, yb)
            rows = len(batches[step])
            step_losses.append(loss)
            loss_sum += loss.double() * rows
            correct += (logits.argmax(1) == yb).sum()
            count += rows
        _write_step_losses(writer, step_losses, first_step)
        total_loss, total_correct, total = world.sum(
            [loss_sum.item(), float(correct.item()), float(count)], device
        )
        return {"train:loss": total_loss / total, "train:accuracy": total_correct / total}, lr

    def _end_epoch(
        self,
        epoch: int,
        train_metrics: Mapping[str, float],
        lr: float,
        writer: TensorBoardWriter | None,
    ) -> None:
        """Rank 0: validate, report and checkpoint."""
        loss, accuracy, predictions = self._evaluate()
        self.last_eval = (epoch, {"loss": loss, "accuracy": accuracy}, predictions)
        metrics = {
            **train_metrics,
            "validation:loss": loss,
            "validation:accuracy": accuracy,
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
                "scaler": self.step.scaler.state_dict(),
                "fingerprint": self.fingerprint,
                "metrics": metrics,
            },
        )

    @torch.no_grad()
    def _evaluate(self) -> tuple[float, float, np.ndarray]:
        """Validation loss, accuracy and the predicted class of each validation image."""
        self.model.eval()
        logits_all, labels_all = [], []
        for xb, yb in self.feed.val_batches():
            with self.plan.autocast():
                logits_all.append(self.model(xb).float())
            labels_all.append(yb)
        logits, labels = torch.cat(logits_all), torch.cat(labels_all)
        loss = F.cross_entropy(logits, labels).item()
        predictions = logits.argmax(1)
        accuracy = (predictions == labels).double().mean().item()
        return loss, accuracy, predictions.cpu().numpy()

    def _export(self, algorithm: Mapping[str, str], epochs_trained: int) -> None:
        splits, paths = self.splits, self.paths
        if self.last_eval and self.last_eval[0] == epochs_trained:
            _, metrics, predictions = self.last_eval
        else:
            loss, accuracy, predictions = self._evaluate()
            metrics = {"loss": loss, "accuracy": accuracy}
        report = classification_report(splits.y_val, predictions, splits.classes)
        metrics = {"loss": metrics["loss"], **report.pop("metrics")}
        objective = (OBJECTIVE, metrics["accuracy"])
        paths.model_dir.mkdir(parents=True, exist_ok=True)
        weights = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        torch.save(weights, paths.model_dir / "model.pt")
        write_json(
            paths.model_dir / "model.json",
            {
                "algorithm": dict(algorithm),
                "framework": {"name": "pytorch", "version": torch.__version__},
                "weights": "model.pt",
                "architecture": self.architecture,
                "input": _input_description(splits),
                "classes": splits.classes,
                "pretrained": self.pretrained.summary() if self.pretrained else None,
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


def frozen_in(epoch: int, hps: Mapping[str, Any]) -> bool:
    """Whether the backbone is frozen in `epoch`: head_epochs > 0 freezes it for the first
    head_epochs epochs; otherwise freeze_backbone freezes it for the whole run."""
    head_epochs = hps["head_epochs"]
    return epoch <= head_epochs or (head_epochs == 0 and hps["freeze_backbone"])


def stage_line(
    epoch: int, hps: Mapping[str, Any], *, changed: bool, resumed: bool, trainable: int
) -> str | None:
    """What the log says when a stage starts: at a head-only start, at the change of stage,
    and when a two-stage run resumes (in either stage). A one-stage run that trains every
    layer says nothing."""
    frozen = frozen_in(epoch, hps)
    if not (frozen or changed or (resumed and hps["head_epochs"] > 0)):
        return None
    what = "the head alone trains" if frozen else "every layer trains"
    return f"stage from epoch {epoch}: {what} (trainable parameters={trainable})"


def _input_description(splits: AnySplits) -> dict[str, Any]:
    grey_repeated = bool(getattr(splits, "grey_repeated", False))
    layout = "NCHW; divide by scale, then standardise each channel with mean and std"
    if grey_repeated:
        layout += "; grey pictures are repeated to 3 channels (R = G = B) first"
    described: dict[str, Any] = {
        "shape": list(splits.input_shape),
        "scale": splits.scale,
        "mean": splits.mean,
        "std": splits.std,
        "layout": layout,
        "grey_repeated": grey_repeated,
    }
    if isinstance(splits, FolderSplits):
        share = VAL_CROP if splits.imagenet else 1.0
        described["resize"] = (
            f"the centre square of {share:.1%} of the shorter side, resized (bilinear) to "
            f"{splits.image_size}x{splits.image_size}; "
            + ("grey" if splits.channels == 1 else "RGB")
            + (" (grey pictures repeated to 3 channels)" if grey_repeated else "")
        )
    elif isinstance(splits, RawSplits):
        height, width = splits.size
        described["resize"] = f"resized (bilinear, antialiased) to {height}x{width}"
    return described


def _fingerprint(
    hps: Mapping[str, Any], splits: AnySplits, architecture: Mapping[str, Any]
) -> dict[str, Any]:
    """What must be equal for a checkpoint to be resumable: the model and the data split.
    Epochs, learning rate and the like may change between runs."""
    fingerprint = {
        "architecture": dict(architecture),
        "classes": splits.classes,
        "input_shape": list(splits.input_shape),
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
