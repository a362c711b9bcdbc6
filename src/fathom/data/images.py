"""Checks that every image a table names exists and opens as an image (header only: fast)."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from fathom.errors import DataError

log = logging.getLogger(__name__)
EXAMPLES = 3


def open_rgb(path: str, at_least: int) -> Image.Image:
    """Decode an image as 8-bit RGB, whatever its mode: grayscale, palette and RGBA frames convert (alpha
    is dropped), 16-bit grayscale keeps its top 8 bits (PIL's own conversion would clip it to white).
    JPEGs decode at reduced size when both sides stay >= 2 * `at_least`."""
    with Image.open(path) as image:
        image.draft("RGB", (at_least * 2, at_least * 2))  # PNG ignores draft
        if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
            wide = np.asarray(image, dtype=np.uint32)
            image = Image.fromarray((wide >> 8 if wide.max() > 255 else wide).clip(0, 255).astype(np.uint8))
        return image.convert("RGB")


def unusable_reason(path: str) -> str | None:
    """None when `path` opens as an image, else why not ("missing", "empty", "not an image")."""
    p = Path(path)
    if not p.is_file():
        return "missing"
    if p.stat().st_size == 0:
        return "empty file"
    try:
        with Image.open(p) as image:
            image.size  # header parsed; full decode happens at load time
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        return f"not an image ({err.__class__.__name__})"
    return None


def drop_or_raise_unusable(table: pd.DataFrame, images_dir: Path, allow_missing: bool) -> pd.DataFrame:
    """Raise naming the count and first examples of bad images, or drop them with a warning."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        reasons = list(pool.map(unusable_reason, table["path"]))
    bad = [(path, why) for path, why in zip(table["path"], reasons) if why]
    if not bad:
        return table
    examples = "; ".join(f"{Path(p).name} ({why})" for p, why in bad[:EXAMPLES])
    message = f"{len(bad)} of {len(table)} images are missing or unreadable, e.g. {examples}"
    if not allow_missing:
        raise DataError(
            images_dir, message, hint="download them (python -m fathom download) or pass --allow-missing-images"
        )
    log.warning("%s: %s; skipping them (--allow-missing-images)", images_dir, message)
    keep = [why is None for why in reasons]
    return table[keep].reset_index(drop=True)
