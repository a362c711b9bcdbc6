"""Cheap whole-image statistics: colour (mean and std of each RGB channel on a thumbnail) and the
appearance vector (colour plus a 16x9 grey thumbnail) the out-of-sample domain classifier reads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np
from PIL import Image

from fathom.data.cache import read_frame
from fathom.data.images import open_rgb

THUMBNAIL = 64
GREY_THUMBNAIL = (16, 9)  # (width, height): the layout of the water, lamps and seabed, not the animals
N_COLOUR = 6


def colour_stats(path: str) -> np.ndarray:
    """[6] mean and std of R, G, B (0..1) of a thumbnail of the image."""
    return colour_stats_of(open_rgb(path, THUMBNAIL * 2))


def colour_stats_of_cached(file: str) -> np.ndarray:
    """colour_stats of a frame in the training image cache (a uint8 HxWx3 .npy): no PNG decode."""
    return colour_stats_of(Image.fromarray(read_frame(file)))


def colour_stats_of(image: Image.Image) -> np.ndarray:
    small = image.resize((THUMBNAIL, THUMBNAIL), Image.BILINEAR)
    pixels = np.asarray(small, dtype=np.float32).reshape(-1, 3) / 255.0
    return np.concatenate([pixels.mean(0), pixels.std(0)])


def colour_stats_many(paths: Sequence[str], workers: int = 4, cached: bool = False) -> np.ndarray:
    """[N, 6] colour statistics of image files (or of image-cache files when `cached`); PIL works
    outside the GIL, so threads overlap."""
    stats = colour_stats_of_cached if cached else colour_stats
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return np.stack(list(pool.map(stats, paths))) if len(paths) else np.zeros((0, N_COLOUR), np.float32)


def appearance_of_cached(file: str) -> np.ndarray:
    """[6 + 144] colour statistics and the grey 16x9 thumbnail (0..1) of a cached frame."""
    image = Image.fromarray(read_frame(file))
    grey = np.asarray(image.convert("L").resize(GREY_THUMBNAIL, Image.BILINEAR), dtype=np.float32).ravel() / 255.0
    return np.concatenate([colour_stats_of(image), grey])


def appearance_many(files: Sequence[str], workers: int = 4) -> np.ndarray:
    """[N, 150] appearance vectors of image-cache files; the first N_COLOUR columns are colour_stats."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        rows = list(pool.map(appearance_of_cached, files))
    return np.stack(rows) if rows else np.zeros((0, N_COLOUR + GREY_THUMBNAIL[0] * GREY_THUMBNAIL[1]), np.float32)
