"""Geometry of box-aware crops (training) and tiles (prediction), in cached-frame pixels.

Windows are (x0, y0, x1, y1) with x1 - x0 = y1 - y0 = the crop side; a window may reach past the frame
(a frame smaller than a crop), and `cut` fills what lies outside with the frame's mean colour, so an
animal keeps its scale. Boxes are COCO (x, y, w, h) rows.

The label rule: a crop shows category c when at least `min_visible` of the area of one of c's boxes
lies inside the window. A box of zero area (the real train.json has one) counts by its centre.
"""

from __future__ import annotations

import math

import numpy as np


def visible_share(boxes: np.ndarray, window) -> np.ndarray:
    """[n] share of each box's area inside `window` (1 or 0 by the centre for a zero-area box)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x0, y0, x1, y1 = window
    bx0, by0 = boxes[:, 0], boxes[:, 1]
    bx1, by1 = bx0 + boxes[:, 2], by0 + boxes[:, 3]
    inter = np.clip(np.minimum(bx1, x1) - np.maximum(bx0, x0), 0, None) * \
        np.clip(np.minimum(by1, y1) - np.maximum(by0, y0), 0, None)
    area = boxes[:, 2] * boxes[:, 3]
    cx, cy = (bx0 + bx1) / 2, (by0 + by1) / 2
    centre_in = ((cx >= x0) & (cx <= x1) & (cy >= y0) & (cy <= y1)).astype(np.float64)
    return np.where(area > 0, inter / np.where(area > 0, area, 1.0), centre_in)


def crop_labels(boxes: np.ndarray, categories: np.ndarray, window, min_visible: float) -> list[int]:
    """Sorted category ids of the boxes with at least `min_visible` of their area inside `window`."""
    shown = visible_share(boxes, window) >= min_visible
    return sorted({int(c) for c in np.asarray(categories)[shown]})


def axis_starts(length: int, tile: int, overlap: float) -> np.ndarray:
    """Start offsets of tiles of side `tile` covering [0, length) with neighbours overlapping by at least
    `overlap` x tile: evenly spaced from 0 to length - tile (one tile at 0 when length <= tile)."""
    if length <= tile:
        return np.zeros(1, dtype=np.int64)
    stride = tile * (1.0 - overlap)
    count = math.ceil((length - tile) / stride) + 1
    return np.round(np.linspace(0, length - tile, count)).astype(np.int64)


def tile_windows(width: int, height: int, tile: int, overlap: float) -> np.ndarray:
    """[T, 4] windows covering every pixel of a width x height frame, row by row."""
    xs, ys = axis_starts(width, tile, overlap), axis_starts(height, tile, overlap)
    return np.array([(x, y, x + tile, y + tile) for y in ys for x in xs], dtype=np.int64)


def sample_window(rng: np.random.Generator, width: int, height: int, boxes: np.ndarray, size: int,
                  jitter: float, background: bool) -> tuple[int, int, int, int]:
    """A training crop of side `size`: around a box picked at random (its centre within +-jitter x size/2
    of the crop's centre), or anywhere in the frame when `background` or the frame has no boxes. The
    window stays inside the frame wherever the frame is larger than the crop."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if background or not len(boxes):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    else:
        x, y, w, h = boxes[rng.integers(len(boxes))]
        cx, cy = x + w / 2 + rng.uniform(-jitter, jitter) * size / 2, y + h / 2 + rng.uniform(-jitter, jitter) * size / 2
    x0 = int(round(np.clip(cx - size / 2, 0, max(0, width - size)))) if width > size else 0
    y0 = int(round(np.clip(cy - size / 2, 0, max(0, height - size)))) if height > size else 0
    return x0, y0, x0 + size, y0 + size


def cut(frame: np.ndarray, window) -> np.ndarray:
    """The window of an [H, W, 3] frame as a new array; parts outside the frame take its mean colour."""
    x0, y0, x1, y1 = (int(v) for v in window)
    h, w = frame.shape[:2]
    inside = frame[max(0, y0):min(h, y1), max(0, x0):min(w, x1)]
    if inside.shape[:2] == (y1 - y0, x1 - x0):
        return np.ascontiguousarray(inside)
    out = np.empty((y1 - y0, x1 - x0, frame.shape[2]), dtype=frame.dtype)
    out[:] = np.asarray(frame).reshape(-1, frame.shape[2]).mean(0).astype(frame.dtype)
    out[max(0, -y0):max(0, -y0) + inside.shape[0], max(0, -x0):max(0, -x0) + inside.shape[1]] = inside
    return out
