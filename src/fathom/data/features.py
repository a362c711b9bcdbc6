"""Cheap whole-image colour statistics (mean and std of each RGB channel on a thumbnail)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np
from PIL import Image

from fathom.data.images import open_rgb

THUMBNAIL = 64


def colour_stats(path: str) -> np.ndarray:
    """[6] mean and std of R, G, B (0..1) of a thumbnail of the image."""
    small = open_rgb(path, THUMBNAIL * 2).resize((THUMBNAIL, THUMBNAIL), Image.BILINEAR)
    pixels = np.asarray(small, dtype=np.float32).reshape(-1, 3) / 255.0
    return np.concatenate([pixels.mean(0), pixels.std(0)])


def colour_stats_many(paths: Sequence[str], workers: int = 4) -> np.ndarray:
    """[N, 6] colour statistics; PIL decodes outside the GIL, so threads overlap."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return np.stack(list(pool.map(colour_stats, paths))) if len(paths) else np.zeros((0, 6), np.float32)
