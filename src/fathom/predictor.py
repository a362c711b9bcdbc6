"""The one predictor: a model, its precision and its sampling strategy, turning cached frames into
per-frame probabilities. Training's per-epoch validation, its OOF and eval files, and TTA all go through
`Predictor.rows` (per view) and `Predictor.frames` (views combined per frame by the sampling strategy);
only the views and the combining rule differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import albumentations as A
import numpy as np
import torch
from torch import nn
from torch.utils.data import Subset

from fathom.data.samples import make_loader
from fathom.data.sampling import Frames, Views
from fathom.train.distributed import Distributed
from fathom.train.loop import to_device
from fathom.train.precision import Precision


@torch.no_grad()
def predict(model: nn.Module, loader, precision: Precision, channels_last: bool = True,
            flips: tuple[bool, ...] = (False,)) -> dict[str, np.ndarray]:
    """Sigmoid probabilities {fine [N, 290], super [N, 20]} and pooled features {embedding [N, D]} of every
    row of `loader`.

    `flips` lists the views of every batch: False the frame, True its mirror; (False, True) averages the
    two after the sigmoid, (True,) predicts the mirror alone.
    """
    model.eval()
    out: dict[str, list[np.ndarray]] = {"fine": [], "super": [], "embedding": []}
    for images, _, _ in loader:
        images = to_device(images, precision.device, channels_last)
        with precision.autocast():
            views = [model(torch.flip(images, dims=[3]) if flip else images) for flip in flips]
        for head in ("fine", "super"):
            out[head].append(torch.stack([torch.sigmoid(v[head].float()) for v in views]).mean(0).cpu().numpy())
        out["embedding"].append(torch.stack([v["embedding"].float() for v in views]).mean(0).cpu().numpy())
    return {head: np.concatenate(parts) for head, parts in out.items()}


class Predictor:
    """Predicts lists of cached frames through the sampling strategy's views.

    Views and their loaders are made once per `key` (e.g. "valid"), so per-epoch validation keeps its
    loader workers.
    """

    def __init__(self, model: nn.Module, sampling: Frames, precision: Precision, batch_size: int, workers: int,
                 channels_last: bool = True, dist: Distributed = Distributed()):
        self.model, self.sampling, self.precision, self.dist = model, sampling, precision, dist
        self.batch_size, self.workers, self.channels_last = batch_size, workers, channels_last
        self.prepared: dict[str, tuple[Views, torch.utils.data.DataLoader]] = {}

    def prepare(self, key: str | None, files: Sequence[Path], transform: A.Compose) -> tuple[Views, object]:
        """The views of `files` and their loader; kept under `key` (made on first use), or made afresh
        when `key` is None."""
        if key in self.prepared:
            return self.prepared[key]
        views = self.sampling.views(files, transform)
        dataset = views.dataset
        if self.dist.enabled:
            dataset = Subset(dataset, self.dist.shard(len(dataset)).tolist())
        prepared = views, make_loader(dataset, self.batch_size, False, self.workers, self.precision.device)
        if key is not None:
            self.prepared[key] = prepared
        return prepared

    def rows(self, key: str | None, files: Sequence[Path], transform: A.Compose,
             flips: tuple[bool, ...] = (False,)) -> tuple[dict[str, np.ndarray], Views]:
        """(per-row probabilities {fine, super}, the views) of `files`. Under DDP every rank predicts its
        shard of the rows and receives all of them."""
        views, loader = self.prepare(key, files, transform)
        probs = predict(self.model, loader, self.precision, self.channels_last, flips)
        return self.dist.gather_rows(probs, len(views.dataset)), views

    def frames(self, key: str | None, files: Sequence[Path], transform: A.Compose, rule: str | None = None,
               flips: tuple[bool, ...] = (False,)) -> dict[str, np.ndarray]:
        """Per-frame {fine, super, extras} of `files`; tiled views are combined by `rule` (default: the
        strategy's)."""
        return self.sampling.frames(*self.rows(key, files, transform, flips), rule)
