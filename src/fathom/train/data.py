"""Images for training: a pre-resized cache, albumentations pipelines, datasets and loaders."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import albumentations as A
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2
from PIL import Image
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from fathom.atomic import atomic_open
from fathom.data.crops import crop_labels, cut, sample_window
from fathom.data.images import open_rgb
from fathom.errors import DataError


class ImageCache:
    """Frames resized once, stored as uint8 .npy: with `side="short"` their short side becomes `size` px
    (whole-frame training: `cache/short<px>/`); with `side="long"` their long side becomes at most `size`
    px, never enlarged (crops and tiles are cut from these: `cache/long<px>/`).

    Built once per size, so an epoch never decodes a 1920x1080 PNG again. The file name hashes the
    source path, size and mtime: an edited or replaced image is re-cached.
    """

    def __init__(self, root: str | Path, size: int, side: str = "short"):
        if side not in ("short", "long"):
            raise ValueError(f"side must be short or long, not {side!r}")
        self.dir = Path(root) / f"{side}{size}"
        self.size, self.side = size, side

    def file_for(self, path: str) -> Path:
        stat = Path(path).stat()
        key = f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        return self.dir / f"{hashlib.sha1(key.encode()).hexdigest()[:20]}.npy"

    def resize(self, path: str) -> np.ndarray:
        try:
            image = open_rgb(path, self.size)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:  # PIL's ways to fail
            raise DataError(path, f"cannot decode image ({err.__class__.__name__}: {err})",
                            hint="re-download it or remove it from the data") from None
        scale = self.size / min(image.size) if self.side == "short" else min(1.0, self.size / max(image.size))
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        return np.asarray(image.resize(size, Image.BILINEAR, reducing_gap=3.0))

    def ensure(self, path: str) -> Path:
        target = self.file_for(path)
        if not target.is_file():
            with atomic_open(target, "wb") as fh:
                np.save(fh, self.resize(path))
        return target

    def build(self, paths: Sequence[str], workers: int = 4) -> list[Path]:
        """Cache every path (threads: PIL decodes outside the GIL); returns the cache files in order."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            return list(pool.map(self.ensure, paths))


def frame_cache(cfg) -> ImageCache:
    """The cache a TrainConfig's frames are read from: short side image_size (whole frames), or long side
    at most crop_long_side (`sampling: crops`: crops and tiles are cut at that scale)."""
    if cfg.sampling == "crops":
        return ImageCache(cfg.cache_dir, cfg.crop_long_side, side="long")
    return ImageCache(cfg.cache_dir, cfg.image_size)


def train_transform(size: int, mean, std) -> A.Compose:
    return A.Compose([
        A.RandomResizedCrop(size=(size, size), scale=(0.5, 1.0), ratio=(0.75, 2.0)),
        A.HorizontalFlip(),
        A.Affine(rotate=(-15, 15), translate_percent=(-0.05, 0.05), scale=(0.9, 1.1), p=0.5),
        A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.5),
        A.CoarseDropout(num_holes_range=(1, 4), hole_height_range=(0.05, 0.15), hole_width_range=(0.05, 0.15), p=0.3),
        A.Normalize(mean=mean, std=std),
        ToTensorV2(),
    ])


def crop_transform(size: int, mean, std) -> A.Compose:
    """Augmentation of a box-aware crop: it already has its scale and place, so no random resized crop."""
    return A.Compose([
        A.HorizontalFlip(),
        A.Affine(rotate=(-15, 15), scale=(0.9, 1.1), p=0.5),
        A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.5),
        A.Resize(size, size),
        A.Normalize(mean=mean, std=std),
        ToTensorV2(),
    ])


def eval_transform(size: int, mean, std) -> A.Compose:
    return A.Compose([A.Resize(size, size), A.Normalize(mean=mean, std=std), ToTensorV2()])


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
        image = self.transform(image=np.load(self.files[i]))["image"]
        return image, torch.from_numpy(self.fine[i]), torch.from_numpy(self.sup[i])


@dataclass(frozen=True)
class CropSampling:
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
    `sampling.size` px around one of its boxes (or anywhere, for a background crop), labelled by the boxes
    it shows (fathom.data.crops.crop_labels) and augmented by the crop transform. `boxes[i]` holds image
    i's boxes in original-frame pixels and `box_classes[i]` their fine class indices; `frame_sizes[i]` is
    its original (width, height), which scales the boxes to the cached frame.
    """

    def __init__(self, cache_files: Sequence[Path], fine: np.ndarray, sup: np.ndarray, frame_transform: A.Compose,
                 crop_transform: A.Compose, boxes: Sequence[np.ndarray], box_classes: Sequence[np.ndarray],
                 frame_sizes: np.ndarray, parent: np.ndarray, sampling: CropSampling, seed: int = 0):
        super().__init__(cache_files, fine, sup, frame_transform, seed)
        self.crop_transform, self.boxes, self.box_classes = crop_transform, boxes, box_classes
        self.frame_sizes, self.parent, self.sampling = np.asarray(frame_sizes, dtype=np.float64), parent, sampling

    def __getitem__(self, key: int | tuple[int, int]):
        epoch, i = key if isinstance(key, tuple) else (0, key)
        rng = np.random.default_rng([self.seed, epoch, i])
        if rng.random() < self.sampling.frame_ratio:
            return super().__getitem__((epoch, i))
        frame = np.load(self.files[i], mmap_mode="r")
        height, width = frame.shape[:2]
        boxes = self.boxes[i] * np.tile(np.array([width, height]) / self.frame_sizes[i], 2)  # to cached pixels
        s = self.sampling
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
