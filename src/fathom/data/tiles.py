"""Tiled views for `sampling: crops`: every frame is seen whole and as overlapping tiles.

A frame's views are its whole frame (resized to image_size, as in whole-frame training) followed by tiles
of `crop_size` cached-frame pixels (fathom.data.crops.tile_windows), each resized to image_size: the scale
the crops were trained at. Per-category probabilities are combined over a frame's views by a rule:

- max:       the largest probability of any view (one tile showing the animal is enough)
- noisy_or:  1 - prod(1 - p): the views as independent detectors (saturates with many tiles)
- topk_mean: the mean of the `tile_topk` largest probabilities (max, smoothed against one bad tile)
- mean:      the plain average (a small animal in one tile of fifteen is diluted: the baseline)

`tile_combine: auto` chooses the rule with the best MAP@20 on each fold's validation images (done.json
records every rule's). The out-of-sample score uses tile evidence: the largest, over tiles, of
max super-category probability x (1 - max fine probability): a tile where something of a known family
is clearly there but no known species fits (`tile_evidence`; the ensemble step decides whether
the out-of-sample score uses it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset

from fathom.config import CHOICES
from fathom.constants import N_FINE, N_SUPER
from fathom.data.cache import frame_shape, read_frame
from fathom.data.crops import cut, tile_windows

COMBINERS = CHOICES["tile_combine"][1:]  # the rules; "auto" chooses among them
DEFAULT_RULE = "max"  # the rule validation uses while training when `tile_combine: auto`
EPS = 1e-6


@dataclass(frozen=True)
class TilePlan:
    """The views of a list of frames, frame by frame: the whole frame first (window None), then its tiles."""

    frame: np.ndarray  # [V] the frame of each view
    windows: list  # [V] (x0, y0, x1, y1) in cached-frame pixels, or None for the whole frame
    n_frames: int

    @classmethod
    def of(cls, shapes: Sequence[tuple[int, int]], tile: int, overlap: float) -> "TilePlan":
        """Views of frames with cached shapes (height, width)."""
        frame, windows = [], []
        for n, (height, width) in enumerate(shapes):
            tiles = [tuple(map(int, w)) for w in tile_windows(width, height, tile, overlap)]
            frame += [n] * (1 + len(tiles))
            windows += [None, *tiles]
        return cls(np.asarray(frame, dtype=np.int64), windows, len(shapes))

    @property
    def starts(self) -> np.ndarray:
        """[N] index of each frame's first view (views of a frame are contiguous)."""
        return np.searchsorted(self.frame, np.arange(self.n_frames))

    @property
    def is_tile(self) -> np.ndarray:
        return np.array([w is not None for w in self.windows])


def cached_shapes(files: Sequence[Path]) -> list[tuple[int, int]]:
    """(height, width) of cached frames, read from the file headers."""
    return [frame_shape(f) for f in files]


class TileDataset(Dataset):
    """Item v of a plan: view v as a normalised tensor (zero targets: prediction only)."""

    def __init__(self, files: Sequence[Path], plan: TilePlan, transform: A.Compose):
        self.files, self.plan, self.transform = list(files), plan, transform
        self.last: tuple[int, np.ndarray] | None = None

    def frame(self, n: int) -> np.ndarray:
        """Frame n's pixels; a frame's views are consecutive, so a JPEG is decoded once for all of them."""
        if self.last is None or self.last[0] != n:
            self.last = (n, read_frame(self.files[n], mmap=True))
        return self.last[1]

    def __len__(self) -> int:
        return len(self.plan.frame)

    def __getitem__(self, v: int):
        frame = self.frame(self.plan.frame[v])
        window = self.plan.windows[v]
        image = np.asarray(frame) if window is None else cut(frame, window)
        return self.transform(image=image)["image"], torch.zeros(N_FINE), torch.zeros(N_SUPER)


def combine(probs: np.ndarray, plan: TilePlan, rule: str, topk: int = 2) -> np.ndarray:
    """[N, C] per-frame probabilities from [V, C] per-view ones by `rule` (see the module docstring)."""
    probs = np.asarray(probs, dtype=np.float64)
    starts = plan.starts
    counts = np.diff(np.r_[starts, len(probs)])
    if rule == "max":
        return np.maximum.reduceat(probs, starts, axis=0)
    if rule == "mean":
        return np.add.reduceat(probs, starts, axis=0) / counts[:, None]
    if rule == "noisy_or":
        return 1.0 - np.exp(np.add.reduceat(np.log1p(-np.clip(probs, 0, 1 - EPS)), starts, axis=0))
    if rule == "topk_mean":
        return np.stack([np.sort(probs[s:s + c], axis=0)[-min(topk, c):].mean(0) for s, c in zip(starts, counts)])
    raise ValueError(f"tile combiner must be one of {', '.join(COMBINERS)}, not {rule!r}")


def tile_evidence(fine: np.ndarray, sup: np.ndarray, plan: TilePlan) -> np.ndarray:
    """[N] out-of-sample evidence: max over a frame's tiles of max super prob x (1 - max fine prob)."""
    score = np.asarray(sup, dtype=np.float64).max(1) * (1.0 - np.asarray(fine, dtype=np.float64).max(1))
    return np.maximum.reduceat(np.where(plan.is_tile, score, 0.0), plan.starts)


def surest_view(fine: np.ndarray, plan: TilePlan) -> np.ndarray:
    """[N] index of each frame's view (whole frame or tile) with the largest fine probability."""
    best = np.asarray(fine).max(1)
    return np.array([s + int(np.argmax(best[s:e])) for s, e in zip(plan.starts, np.r_[plan.starts[1:], len(best)])],
                    dtype=np.int64)


def frame_predictions(views: dict[str, np.ndarray], plan: TilePlan, rule: str, topk: int = 2) -> dict[str, np.ndarray]:
    """{fine, super, tile_evidence, embedding} per frame from per-view {fine, super, embedding}: the
    embedding is the one of the view the model was most sure of."""
    out = {"fine": combine(views["fine"], plan, rule, topk).astype(np.float32),
           "super": combine(views["super"], plan, rule, topk).astype(np.float32),
           "tile_evidence": tile_evidence(views["fine"], views["super"], plan)}
    if "embedding" in views:
        out["embedding"] = views["embedding"][surest_view(views["fine"], plan)]
    return out
