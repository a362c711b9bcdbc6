"""The training loop: `train_one_epoch` does one pass and returns plain numbers (prediction: fathom.predictor)."""

from __future__ import annotations

import time

import torch
from torch import nn
from fathom.progress import progress as progress_bar

from fathom.errors import FathomError
from fathom.train.distributed import unwrap
from fathom.train.loss import FathomLoss
from fathom.train.precision import Precision


def to_device(images: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    images = images.to(device, non_blocking=True)
    return images.contiguous(memory_format=torch.channels_last) if channels_last else images


def train_one_epoch(model: nn.Module, loader, loss_fn: FathomLoss, optimizer, scheduler, precision: Precision,
                    step: int, grad_accum: int = 1, clip_grad: float = 0.0, ema=None, channels_last: bool = True,
                    desc: str = "train", progress: bool = True, mix=None) -> tuple[dict, int]:
    """One epoch; returns ({train_loss, lr, images_per_s}, the optimiser step count). `mix`, when given,
    maps each batch's (images, fine, super) to a mixed batch (fathom.train.mixing)."""
    model.train()
    device = precision.device
    total, seen, start = 0.0, 0, time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    bar = progress_bar(loader, desc=desc, unit="batch", enabled=progress)
    for i, (images, fine, sup) in enumerate(bar):
        images = to_device(images, device, channels_last)
        fine, sup = fine.to(device, non_blocking=True), sup.to(device, non_blocking=True)
        if mix is not None:
            images, fine, sup = mix(images, fine, sup)
        with precision.autocast():
            logits = model(images)
        loss = loss_fn(logits, fine, sup)["loss"]
        if not torch.isfinite(loss):
            raise FathomError(f"{desc}: loss became {loss.item()} at batch {i}; the last good checkpoint is kept "
                              "(lower lr, enable clip_grad, or use amp: bf16/off)")
        precision.scaler.scale(loss / grad_accum).backward()
        if (i + 1) % grad_accum == 0 or i + 1 == len(loader):
            if clip_grad:
                precision.scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
            precision.scaler.step(optimizer)
            precision.scaler.update()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            scheduler.step_update(step)
            if ema is not None:
                ema.update(unwrap(model), step=step)
        total += loss.item() * len(images)
        seen += len(images)
        bar.set_postfix(loss=f"{total / seen:.4f}", img_s=f"{seen / (time.perf_counter() - start):.1f}")
    elapsed = time.perf_counter() - start
    return {"train_loss": total / max(seen, 1), "lr": optimizer.param_groups[0]["lr"],
            "train_images_per_s": seen / elapsed}, step
