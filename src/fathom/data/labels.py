"""Multi-hot encodings of label lists for the 290 fine and 20 super-category classes."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from fathom.constants import N_FINE, N_SUPER
from fathom.data.categories import Categories


def multi_hot(index_lists: Iterable[Sequence[int]], n_classes: int) -> np.ndarray:
    """[N, n_classes] float32 matrix with ones at the given indices of each row."""
    index_lists = list(index_lists)
    out = np.zeros((len(index_lists), n_classes), dtype=np.float32)
    for row, indices in enumerate(index_lists):
        out[row, list(indices)] = 1.0
    return out


def fine_multi_hot(category_lists: Iterable[Sequence[int]], categories: Categories) -> np.ndarray:
    """[N, 290] targets from lists of category ids (1..290)."""
    return multi_hot((categories.index_of(ids) for ids in category_lists), N_FINE)


def super_multi_hot(category_lists: Iterable[Sequence[int]], categories: Categories) -> np.ndarray:
    """[N, 20] targets: a super-category is positive when any of its fine categories is."""
    return multi_hot((categories.super_of(ids) for ids in category_lists), N_SUPER)


def holds_unseen(labels: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """1.0 for each row of multi-hot `labels` holding a category no row of `seen` (multi-hot) holds, else 0.0:
    a validation frame with a category its training part never shows."""
    return (labels[:, seen.sum(0) == 0] > 0).any(1).astype(np.float64)


def prior_log_odds(frequency: np.ndarray, floor: float = 1e-4) -> np.ndarray:
    """log(p / (1 - p)) of class frequencies, clipped to [floor, 1 - floor] (unseen classes get the floor)."""
    p = np.clip(np.asarray(frequency, dtype=np.float64), floor, 1 - floor)
    return np.log(p / (1 - p)).astype(np.float32)


def repeat_factors(targets: np.ndarray, threshold: float = 0.1) -> np.ndarray:
    """LVIS repeat-factor sampling for multi-label images (Gupta et al. 2019): a category present in a share
    f_c of the images gets r_c = max(1, sqrt(threshold / f_c)); an image gets the largest r_c of its
    labels (1 without labels). Drawing images in proportion to r_i lifts rare categories while an
    image keeps all its labels."""
    frequency = np.asarray(targets, dtype=np.float64).mean(0)
    per_class = np.maximum(1.0, np.sqrt(threshold / np.maximum(frequency, 1e-12)))
    per_class[frequency == 0] = 1.0
    return np.where(targets.any(1), (targets * per_class).max(1), 1.0)
