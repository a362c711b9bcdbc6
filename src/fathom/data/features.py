"""Cheap whole-image statistics: colour (mean and std of each RGB channel on a thumbnail) and the
appearance vector the out-of-sample methods read: colour, log colour and a 16x9 grey thumbnail.

Log colour: the mean, spread and 10th/50th/90th percentiles of log(RGB). A camera or lamp change scales
each channel (white balance, gain), which moves every frame's log colour by the same vector but moves a dark
frame's linear colour less than a bright one's: in log space the shift a new camera brings is one constant
that standardising a set by its own statistics removes, while deeper, darker water stays a difference.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np
from PIL import Image

from fathom.data.cache import read_frame
from fathom.data.images import open_rgb
from fathom.predictions import GREY_THUMBNAIL, LOG_PERCENTILES, N_APPEARANCE, N_COLOUR

THUMBNAIL = 64
LOG_FLOOR = 1 / 255  # one grey level: a black pixel has a finite log


def colour_stats(path: str) -> np.ndarray:
    """[6] mean and std of R, G, B (0..1) of a thumbnail of the image."""
    return colour_stats_of(open_rgb(path, THUMBNAIL * 2))


def colour_stats_of_cached(file: str) -> np.ndarray:
    """colour_stats of a frame in the training image cache (a uint8 HxWx3 .npy): no PNG decode."""
    return colour_stats_of(Image.fromarray(read_frame(file)))


def thumbnail_pixels(image: Image.Image) -> np.ndarray:
    """[THUMBNAIL^2, 3] RGB values (0..1) of a thumbnail of the image."""
    small = image.resize((THUMBNAIL, THUMBNAIL), Image.BILINEAR)
    return np.asarray(small, dtype=np.float32).reshape(-1, 3) / 255.0


def colour_summary(pixels: np.ndarray) -> np.ndarray:
    """[6] mean and std of R, G, B of thumbnail pixels."""
    return np.concatenate([pixels.mean(0), pixels.std(0)])


def log_colour_summary(pixels: np.ndarray) -> np.ndarray:
    """[15] mean, std and the LOG_PERCENTILES of log R, G, B of thumbnail pixels (see the module docstring)."""
    logs = np.log(pixels + LOG_FLOOR)
    return np.concatenate([logs.mean(0), logs.std(0), np.percentile(logs, LOG_PERCENTILES, axis=0).ravel()])


def colour_stats_of(image: Image.Image) -> np.ndarray:
    return colour_summary(thumbnail_pixels(image))


def log_colour_stats_of(image: Image.Image) -> np.ndarray:
    return log_colour_summary(thumbnail_pixels(image))


def colour_stats_many(paths: Sequence[str], workers: int = 4, cached: bool = False) -> np.ndarray:
    """[N, 6] colour statistics of image files (or of image-cache files when `cached`); PIL works
    outside the GIL, so threads overlap."""
    stats = colour_stats_of_cached if cached else colour_stats
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return np.stack(list(pool.map(stats, paths))) if len(paths) else np.zeros((0, N_COLOUR), np.float32)


def appearance_of_cached(file: str) -> np.ndarray:
    """[6 + 15 + 144] colour and log-colour statistics and the grey 16x9 thumbnail (0..1) of a cached frame."""
    image = Image.fromarray(read_frame(file))
    pixels = thumbnail_pixels(image)  # one resize serves both colour summaries
    grey = np.asarray(image.convert("L").resize(GREY_THUMBNAIL, Image.BILINEAR), dtype=np.float32).ravel() / 255.0
    return np.concatenate([colour_summary(pixels), log_colour_summary(pixels), grey])


def appearance_many(files: Sequence[str], workers: int = 4) -> np.ndarray:
    """[N, N_APPEARANCE] appearance vectors of image-cache files: columns COLOUR (colour_stats), LOG_COLOUR,
    then the grey thumbnail."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        rows = list(pool.map(appearance_of_cached, files))
    return np.stack(rows) if rows else np.zeros((0, N_APPEARANCE), np.float32)
