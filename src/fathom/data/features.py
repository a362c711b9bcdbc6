"""Cheap whole-image colour statistics (mean and std of each RGB channel on a thumbnail)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np
from PIL import Image

THUMBNAIL = 64


def colour_stats(path: str) -> np.ndarray:
    """[6] mean and std of R, G, B (0..1) of a thumbnail of the image."""
    with Image.open(path) as image:
        image.draft("RGB", (THUMBNAIL * 4, THUMBNAIL * 4))  # JPEG decodes at reduced size; PNG ignores it
        small = image.convert("RGB").resize((THUMBNAIL, THUMBNAIL), Image.BILINEAR)
    pixels = np.asarray(small, dtype=np.float32).reshape(-1, 3) / 255.0
    return np.concatenate([pixels.mean(0), pixels.std(0)])


def colour_stats_many(paths: Sequence[str], workers: int = 4) -> np.ndarray:
    """[N, 6] colour statistics; PIL decodes outside the GIL, so threads overlap."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return np.stack(list(pool.map(colour_stats, paths))) if len(paths) else np.zeros((0, 6), np.float32)
