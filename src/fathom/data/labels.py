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
