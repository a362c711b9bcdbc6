"""Reading frames: one decoder every reader of pixels uses (a broken frame is one error naming it),
and the check that every image a table names exists and opens (header only, or every byte when broken
train frames are to be skipped)."""

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
# PIL's ways to fail on a broken file: truncated data is an OSError ("image file is truncated")
DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
DECODE_HINT = "re-download it, or pass --allow-missing-images to skip broken train frames"


def open_rgb(path: str, at_least: int) -> Image.Image:
    """Decode an image as 8-bit RGB, whatever its mode: grayscale, palette and RGBA frames convert (alpha
    is dropped), 16-bit grayscale keeps its top 8 bits (PIL's own conversion would clip it to white).
    JPEGs decode at reduced size when both sides stay >= 2 * `at_least`. A file that does not decode
    (truncated, not an image) raises DataError naming it."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (at_least * 2, at_least * 2))  # PNG ignores draft
            if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
                wide = np.asarray(image, dtype=np.uint32)
                image = Image.fromarray((wide >> 8 if wide.max() > 255 else wide).clip(0, 255).astype(np.uint8))
            return image.convert("RGB")
    except DECODE_ERRORS as err:
        raise DataError(path, f"cannot decode image ({err.__class__.__name__}: {err})", hint=DECODE_HINT) from None


def image_size(path: str) -> tuple[int, int]:
    """(width, height) of an image file from its header; a file that does not open is named."""
    try:
        with Image.open(path) as image:
            return image.size
    except DECODE_ERRORS as err:
        raise DataError(path, f"cannot read the image header ({err.__class__.__name__})", hint=DECODE_HINT) from None


def unusable_reason(path: str, every_byte: bool = False) -> str | None:
    """None when `path` opens as an image, else why not ("missing", "empty", "not an image", "truncated
    or corrupt"). The header alone is read unless `every_byte`: then a PNG's chunks are checked
    (PIL's verify: every CRC, no pixel decoding) and any other format is decoded in full."""
    p = Path(path)
    if not p.is_file():
        return "missing"
    if p.stat().st_size == 0:
        return "empty file"
    try:
        with Image.open(p) as image:
            image.size  # header parsed; full decode happens at load time
    except DECODE_ERRORS as err:
        return f"not an image ({err.__class__.__name__})"
    if every_byte:
        try:
            with Image.open(p) as image:
                image.verify() if image.format == "PNG" else image.load()
        except DECODE_ERRORS as err:
            return f"truncated or corrupt ({err.__class__.__name__}: {err})"
    return None


def drop_or_raise_unusable(table: pd.DataFrame, images_dir: Path, allow_missing: bool) -> pd.DataFrame:
    """Raise naming the count and first examples of bad images, or drop them with a warning. When bad
    frames may be dropped (`allow_missing`), every byte is checked, so a truncated download is dropped
    here, for every stage alike, instead of failing whichever reader decodes it first."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        reasons = list(pool.map(lambda path: unusable_reason(path, every_byte=allow_missing), table["path"]))
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
