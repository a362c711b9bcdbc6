"""albumentations pipelines: training frames, box-aware crops, evaluation."""

from __future__ import annotations

import albumentations as A
from albumentations.pytorch import ToTensorV2


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
