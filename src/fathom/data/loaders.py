"""What feeds the model: torch datasets of cached frames and box-aware crops, the epoch sampler, the loader."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import albumentations as A
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from fathom.data.cache import read_frame
from fathom.data.crops import crop_labels, cut, sample_window


class FrameDataset(Dataset):
    """Cached frames with their fine and super multi-hot targets (zeros for unlabeled eval images).

    The augmentation of item i in epoch e is seeded from (seed, e, i): the same run, resumed or not,
    with any number of workers, sees the same images. Items are asked for by index (epoch 0: prediction)
    or, from an `EpochSampler`, by (epoch, index): the epoch travels with the index, so persistent
    loader workers need no copy of the dataset per epoch.
    """

    def __init__(self, cache_files: Sequence[Path], fine: np.ndarray, sup: np.ndarray, transform: A.Compose,
                 seed: int = 0):
        self.files, self.fine, self.sup, self.transform = list(cache_files), fine, sup, transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: int | tuple[int, int]):
        epoch, i = key if isinstance(key, tuple) else (0, key)
        self.transform.set_random_seed((self.seed * 1_000_003 + epoch * 10_007 + i) % 2**32)
        image = self.transform(image=read_frame(self.files[i]))["image"]
        return image, torch.from_numpy(self.fine[i]), torch.from_numpy(self.sup[i])


@dataclass(frozen=True)
class CropDraw:
    """How `CropDataset` draws a training sample (the `crop_*` keys of TrainConfig)."""

    size: int  # crop side in cached-frame pixels
    frame_ratio: float  # share of samples that are whole frames with the image's own labels
    background_ratio: float  # share of the crops placed anywhere instead of around a box
    jitter: float
    min_visible: float  # the label rule of fathom.data.crops.crop_labels


class CropDataset(FrameDataset):
    """Box-aware crops of cached frames (`ImageCache(side="long")`), mixed with whole frames.

    Item (epoch, i) is drawn from (seed, epoch, i): with probability `frame_ratio` the whole frame of image
    i (the frame transform, its own labels, or soft labels when distilling); otherwise a window of
    `draw.size` px around one of its boxes (or anywhere, for a background crop), labelled by the boxes
    it shows (fathom.data.crops.crop_labels) and augmented by the crop transform. `boxes[i]` holds image
    i's boxes in original-frame pixels and `box_classes[i]` their fine class indices; `frame_sizes[i]` is
    its original (width, height), which scales the boxes to the cached frame.
    """

    def __init__(self, cache_files: Sequence[Path], fine: np.ndarray, sup: np.ndarray, frame_transform: A.Compose,
                 crop_transform: A.Compose, boxes: Sequence[np.ndarray], box_classes: Sequence[np.ndarray],
                 frame_sizes: np.ndarray, parent: np.ndarray, draw: CropDraw, seed: int = 0):
        super().__init__(cache_files, fine, sup, frame_transform, seed)
        self.crop_transform, self.boxes, self.box_classes = crop_transform, boxes, box_classes
        self.frame_sizes, self.parent, self.draw = np.asarray(frame_sizes, dtype=np.float64), parent, draw

    def __getitem__(self, key: int | tuple[int, int]):
        epoch, i = key if isinstance(key, tuple) else (0, key)
        rng = np.random.default_rng([self.seed, epoch, i])
        if rng.random() < self.draw.frame_ratio:
            return super().__getitem__((epoch, i))
        frame = read_frame(self.files[i], mmap=True)
        height, width = frame.shape[:2]
        boxes = self.boxes[i] * np.tile(np.array([width, height]) / self.frame_sizes[i], 2)  # to cached pixels
        s = self.draw
        window = sample_window(rng, width, height, boxes, s.size, s.jitter, rng.random() < s.background_ratio)
        shown = crop_labels(boxes, self.box_classes[i], window, s.min_visible)
        fine, sup = np.zeros(self.fine.shape[1], np.float32), np.zeros(self.sup.shape[1], np.float32)
        fine[shown], sup[self.parent[shown]] = 1.0, 1.0
        self.crop_transform.set_random_seed(int(rng.integers(2**32)))
        image = self.crop_transform(image=cut(frame, window))["image"]
        return image, torch.from_numpy(fine), torch.from_numpy(sup)


class EpochSampler(Sampler):
    """Training order for one loader kept over all epochs: `set_epoch(e)` draws epoch e's order from
    (seed, e) alone, so a resumed run shuffles exactly as an uninterrupted one, and yields (epoch, index)
    keys. Without `weights`, every image once per epoch in a random order (under DDP each rank takes its
    share; torch's DistributedSampler does the split). With `weights` (e.g. repeat factors), as many
    draws with replacement, image i with probability weights[i] / sum, dealt to the ranks in turn."""

    def __init__(self, n: int, seed: int, world: int = 1, rank: int = 0, weights: np.ndarray | None = None):
        self.order = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed,
                                        drop_last=world > 1)
        self.n, self.seed, self.world, self.rank = n, seed, world, rank
        weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        self.p = None if weights is None else weights / weights.sum()
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.order.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.order)

    def indices(self) -> list[int]:
        if self.p is None:
            return list(self.order)
        draws = np.random.default_rng([self.seed, self.epoch]).choice(self.n, size=self.n, p=self.p)
        return draws[self.rank::self.world][: len(self)].tolist()

    def __iter__(self):
        epoch = self.epoch
        return ((epoch, i) for i in self.indices())


def make_loader(dataset: Dataset, batch_size: int, train: bool, workers: int, device: torch.device,
                sampler: Sampler | None = None) -> DataLoader:
    """Batches of `dataset`; training loaders drop a last partial batch. Workers persist across epochs
    (re-forking them every epoch cost ~15% of a demo epoch on 2 cores), so one loader serves a fold."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, sampler=sampler,
                      drop_last=train and len(dataset) > batch_size, num_workers=workers,
                      pin_memory=device.type == "cuda", persistent_workers=workers > 0)
