"""The one predictor: a model, its precision and its sampling strategy, turning cached frames into
per-frame probabilities. Training's per-epoch validation, its OOF and eval files, and TTA all go through
`Predictor.rows` (per view) and `Predictor.frames` (views combined per frame by the sampling strategy);
only the views and the combining rule differ. `Predictor.from_fold` loads a finished fold's best
checkpoint with the config it trained with, and `predict` averages its TTA views.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

import albumentations as A
import numpy as np
import torch
from torch import nn
from torch.utils.data import Subset

from fathom.config import TrainConfig
from fathom.data.loaders import make_loader
from fathom.data.sampling import Frames, Views, sampling_for
from fathom.data.transforms import eval_transform
from fathom.device import choose_device
from fathom.models.net import FathomNet
from fathom.progress import progress
from fathom.runs import FoldDir
from fathom.train.checkpoint import load_checkpoint
from fathom.train.distributed import Distributed
from fathom.train.loop import to_device
from fathom.train.precision import Precision


@torch.no_grad()
def predict(model: nn.Module, loader, precision: Precision, channels_last: bool = True,
            flips: tuple[bool, ...] = (False,), desc: str = "predict", show: bool = True) -> dict[str, np.ndarray]:
    """Sigmoid probabilities {fine [N, 290], super [N, 20]} and pooled features {embedding [N, D]} of every
    row of `loader`.

    `flips` lists the views of every batch: False the frame, True its mirror; (False, True) averages the
    two after the sigmoid, (True,) predicts the mirror alone.
    """
    model.eval()
    out: dict[str, list[np.ndarray]] = {"fine": [], "super": [], "embedding": []}
    for images, _, _ in progress(loader, desc=desc, unit="batch", enabled=show):
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
    loader workers. `rule`: how a tiled fold combines a frame's views (None: the strategy's default).
    """

    def __init__(self, model: nn.Module, sampling: Frames, precision: Precision, batch_size: int, workers: int,
                 channels_last: bool = True, dist: Distributed = Distributed(), rule: str | None = None):
        self.model, self.sampling, self.precision, self.dist = model, sampling, precision, dist
        self.batch_size, self.workers, self.channels_last, self.rule = batch_size, workers, channels_last, rule
        self.prepared: dict[str, tuple[Views, torch.utils.data.DataLoader]] = {}

    @classmethod
    def from_fold(cls, fold_dir: FoldDir | Path, overrides: list[str] = (), device: torch.device | None = None
                  ) -> "Predictor":
        """A finished fold's best checkpoint under the config it trained with (and prediction `overrides`)."""
        fold_dir = fold_dir if isinstance(fold_dir, FoldDir) else FoldDir(Path(fold_dir))
        cfg = fold_dir.prediction_config(overrides)
        device = device or choose_device(cfg.device)
        model = FathomNet.for_config(fold_dir.backbone, cfg, trained=True)
        model.load_state_dict(load_checkpoint(fold_dir.best, device)["model"])
        model.to(device)
        if cfg.channels_last:
            model.to(memory_format=torch.channels_last)
        return cls(model, sampling_for(cfg), Precision.for_prediction(cfg.amp, cfg.infer_amp, device),
                   cfg.prediction_batch_size, cfg.workers, cfg.channels_last, rule=fold_dir.done().tile_combine)

    @property
    def cfg(self) -> TrainConfig:
        return self.sampling.cfg

    @property
    def device(self) -> torch.device:
        return self.precision.device

    def predict(self, paths: list[str], plain=None) -> dict[str, np.ndarray]:
        """{fine, super, extras} of the images at `paths`, averaged over the config's TTA views (equal weights).

        `plain`: the training run's own predictions of these images (fathom.predictions.Predictions: the 1x
        view, same checkpoint, transform and precision), reused instead of predicted again. With
        `tta_adapt_bn` the BatchNorm statistics are those of `paths` themselves (`batch_norm_of`), so the
        training run's predictions are not reused.
        """
        if self.cfg.tta_adapt_bn:
            with self.batch_norm_of(paths):
                return self.predict_views(paths, None)
        return self.predict_views(paths, plain)

    @contextmanager
    def batch_norm_of(self, paths: list[str]):
        """Test-time adaptation: within the block every BatchNorm layer normalises with the statistics of the
        1x views of `paths` (its running mean and variance re-estimated over them, AdaBN); afterwards the
        trained statistics are back."""
        layers = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone(), m.momentum)
                 for m in layers]
        stats = self.model.data_config()
        files = self.sampling.cache(self.cfg.image_size).build(paths, workers=max(2, self.cfg.workers * 2))
        _, loader = self.prepare(None, files, eval_transform(self.cfg.image_size, stats["mean"], stats["std"]))
        try:
            for m in layers:
                m.reset_running_stats()
                m.momentum = None  # a cumulative average over every batch
            used = 0
            with torch.no_grad():
                self.model.eval()
                for m in layers:
                    m.train()
                for images, _, _ in loader:
                    if len(images) < 2:  # a lone view: training-mode BatchNorm needs two per channel
                        continue
                    with self.precision.autocast():
                        self.model(to_device(images, self.device, self.channels_last))
                    used += len(images)
            self.model.eval()
            if not used:
                restore(layers, saved)  # nothing to estimate from: the trained statistics
            yield
        finally:
            restore(layers, saved)
            self.model.eval()

    def predict_views(self, paths: list[str], plain=None) -> dict[str, np.ndarray]:
        cfg, total, count = self.cfg, {}, 0
        for scale in cfg.tta_scales:
            flips = (False, True) if cfg.tta_hflip else (False,)
            if scale == 1.0 and plain is not None:
                total = accumulate(total, plain.arrays(), 1)
                count, flips = count + 1, flips[1:]
            if not flips:
                continue
            total = accumulate(total, self.predict_view(paths, max(8, round(cfg.image_size * scale)), flips),
                               len(flips))
            count += len(flips)
        return {head: value / count for head, value in total.items()}

    def predict_view(self, paths: list[str], size: int, flips: tuple[bool, ...]) -> dict[str, np.ndarray]:
        """One scale's per-frame probabilities (flips averaged), views resized to `size`."""
        stats = self.model.data_config()
        files = self.sampling.cache(size).build(paths, workers=max(2, self.cfg.workers * 2))
        return self.frames(None, files, eval_transform(size, stats["mean"], stats["std"]), self.rule, flips)

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
        probs = predict(self.model, loader, self.precision, self.channels_last, flips, desc=f"predict {key or ''}".strip(),
                        show=self.dist.is_main)
        return self.dist.gather_rows(probs, len(views.dataset)), views

    def frames(self, key: str | None, files: Sequence[Path], transform: A.Compose, rule: str | None = None,
               flips: tuple[bool, ...] = (False,)) -> dict[str, np.ndarray]:
        """Per-frame {fine, super, extras} of `files`; tiled views are combined by `rule` (default: the
        strategy's)."""
        return self.sampling.frames(*self.rows(key, files, transform, flips), rule)


def restore(layers: list[nn.Module], saved: list[tuple]) -> None:
    """Put back BatchNorm buffers and momentum saved by Predictor.batch_norm_of."""
    for m, (mean, var, count, momentum) in zip(layers, saved):
        m.running_mean.copy_(mean)
        m.running_var.copy_(var)
        m.num_batches_tracked.copy_(count)
        m.momentum = momentum


def accumulate(total: dict[str, np.ndarray], out: dict[str, np.ndarray], weight: int) -> dict[str, np.ndarray]:
    return {head: total.get(head, 0.0) + value * weight for head, value in out.items()}
