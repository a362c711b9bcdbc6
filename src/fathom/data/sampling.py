"""How a fold turns frames into samples and predictions back into frames (the config key `sampling`).

- `Frames`: whole frames cached with their short side at image_size; one prediction row per frame.
- `Crops`: frames cached with their long side at most crop_long_side; training mixes box-aware crops
  with whole frames (fathom.data.loaders.CropDataset); every frame is predicted as its whole view plus
  overlapping tiles, combined per frame by a rule chosen on validation (fathom.data.tiles).

The training loop, the predictor and the ensemble ask the strategy and never branch on `sampling`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import albumentations as A
import numpy as np
from torch.utils.data import Dataset

from fathom.config import TrainConfig, to_dict
from fathom.constants import N_FINE, N_SUPER
from fathom.data.cache import ImageCache
from fathom.paths import cache_root
from fathom.data.layout import Dataset as Competition
from fathom.data.layout import load_boxes
from fathom.data.loaders import CropDataset, CropDraw, FrameDataset
from fathom.data.tiles import COMBINERS, DEFAULT_RULE, TileDataset, TilePlan, cached_shapes, combine, frame_predictions
from fathom.metric import map_at_k_from_probs

Boxes = dict[str, tuple[np.ndarray, np.ndarray]]  # train id -> (boxes [n, 4] x, y, w, h, fine class indices [n])
CROP_KEYS = tuple(k for k in to_dict(TrainConfig()) if k.startswith(("crop_", "tile_")))


@dataclass(frozen=True)
class Views:
    """The rows a model predicts for a list of frames; `plan` maps them back (None: one row per frame)."""

    dataset: Dataset
    plan: TilePlan | None

    @property
    def per_frame(self) -> float:
        return 1.0 if self.plan is None else len(self.plan.frame) / max(self.plan.n_frames, 1)


@dataclass(frozen=True)
class TrainingFrames:
    """The training part of a fold: cached frames, targets and, for crops, boxes and original sizes."""

    files: list[Path]
    fine: np.ndarray
    sup: np.ndarray
    ids: np.ndarray
    sizes: np.ndarray  # [N, 2] original (width, height)


class Frames:
    """Whole frames: train on them, predict them."""

    inert_keys = CROP_KEYS  # config keys that change nothing under this strategy (left out of fingerprints)

    def __init__(self, cfg):
        self.cfg = cfg

    def cache(self, size: int | None = None) -> ImageCache:
        """The cache frames are read from, at `size` (TTA scales) or image_size."""
        return ImageCache(cache_root(self.cfg.cache_dir), size or self.cfg.image_size, fmt=self.cfg.cache_format)

    def boxes(self, dataset: Competition) -> Boxes | None:
        return None

    def training_set(self, frames: TrainingFrames, transforms: dict[str, A.Compose], parent: np.ndarray,
                     boxes: Boxes | None) -> Dataset:
        return FrameDataset(frames.files, frames.fine, frames.sup, transforms["train"], seed=self.cfg.seed)

    def views(self, files: Sequence[Path], transform: A.Compose) -> Views:
        """The rows to predict (prediction only: zero targets)."""
        n = len(files)
        return Views(FrameDataset(files, np.zeros((n, N_FINE), np.float32), np.zeros((n, N_SUPER), np.float32),
                                  transform), None)

    def frames(self, rows: dict[str, np.ndarray], views: Views, rule: str | None) -> dict[str, np.ndarray]:
        """Per-frame {fine, super, extras...} from the per-row probabilities (and embeddings)."""
        return {"fine": rows["fine"], "super": rows["super"], "embedding": rows["embedding"]}

    def choose_rule(self, rows: dict[str, np.ndarray], views: Views, fine_targets: np.ndarray
                    ) -> tuple[str | None, dict[str, float] | None]:
        """(the rule to combine views, every rule's validation MAP@20): nothing to choose for frames."""
        return None, None


class Crops(Frames):
    """Box-aware crops for training, whole view plus tiles for prediction."""

    inert_keys = ()

    def cache(self, size: int | None = None) -> ImageCache:
        """Crops and tiles are cut from one cache at crop_long_side (a TTA scale resizes the cut views)."""
        return ImageCache(cache_root(self.cfg.cache_dir), self.cfg.crop_long_side, side="long",
                          fmt=self.cfg.cache_format)

    def boxes(self, dataset: Competition) -> Boxes:
        boxes = load_boxes(dataset.root, dataset.categories)
        classes = dataset.categories.index_of(boxes["category_id"].to_numpy())
        xywh = boxes[["x", "y", "w", "h"]].to_numpy(np.float64)
        return {i: (xywh[rows], classes[rows]) for i, rows in boxes.groupby("id").indices.items()}

    def training_set(self, frames: TrainingFrames, transforms: dict[str, A.Compose], parent: np.ndarray,
                     boxes: Boxes | None) -> Dataset:
        if boxes is None:
            raise ValueError("sampling: crops needs the training boxes (Crops.boxes)")
        cfg = self.cfg
        no_box = (np.zeros((0, 4)), np.zeros(0, np.int64))
        frame_boxes, box_classes = zip(*(boxes.get(i, no_box) for i in frames.ids)) if len(frames.ids) else ((), ())
        draw = CropDraw(cfg.crop_size, cfg.crop_frame_ratio, cfg.crop_background_ratio, cfg.crop_jitter,
                        cfg.crop_min_visible)
        return CropDataset(frames.files, frames.fine, frames.sup, transforms["train"], transforms["crop"], frame_boxes,
                           box_classes, frames.sizes, parent, draw, seed=cfg.seed)

    def views(self, files: Sequence[Path], transform: A.Compose) -> Views:
        plan = TilePlan.of(cached_shapes(files), self.cfg.crop_size, self.cfg.tile_overlap)
        return Views(TileDataset(files, plan, transform), plan)

    def default_rule(self) -> str:
        """The configured rule, or max while `auto` has not chosen yet (per-epoch validation)."""
        return DEFAULT_RULE if self.cfg.tile_combine == "auto" else self.cfg.tile_combine

    def frames(self, rows: dict[str, np.ndarray], views: Views, rule: str | None) -> dict[str, np.ndarray]:
        return frame_predictions(rows, views.plan, rule or self.default_rule(), self.cfg.tile_topk)

    def choose_rule(self, rows: dict[str, np.ndarray], views: Views, fine_targets: np.ndarray
                    ) -> tuple[str, dict[str, float]]:
        """Under `auto`, the rule with the best validation MAP@20; every rule's score either way."""
        scores = {r: map_at_k_from_probs(combine(rows["fine"], views.plan, r, self.cfg.tile_topk), fine_targets)
                  for r in COMBINERS}
        return (max(COMBINERS, key=scores.get) if self.cfg.tile_combine == "auto" else self.cfg.tile_combine), scores


STRATEGIES = {"frames": Frames, "crops": Crops}


def sampling_for(cfg) -> Frames:
    """The strategy a TrainConfig names."""
    return STRATEGIES[cfg.sampling](cfg)
