"""A pre-resized image cache: every frame decoded once, stored as uint8 .npy."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from fathom.atomic import atomic_open
from fathom.data.images import open_rgb


class ImageCache:
    """Frames resized once, stored as uint8 .npy: with `side="short"` their short side becomes `size` px
    (whole-frame training: `cache/short<px>/`); with `side="long"` their long side becomes at most `size`
    px, never enlarged (crops and tiles are cut from these: `cache/long<px>/`).

    Built once per size, so an epoch never decodes a 1920x1080 PNG again. The file name hashes the
    source path, size and mtime: an edited or replaced image is re-cached.
    """

    def __init__(self, root: str | Path, size: int, side: str = "short"):
        if side not in ("short", "long"):
            raise ValueError(f"side must be short or long, not {side!r}")
        self.dir = Path(root) / f"{side}{size}"
        self.size, self.side = size, side

    def file_for(self, path: str) -> Path:
        stat = Path(path).stat()
        key = f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        return self.dir / f"{hashlib.sha1(key.encode()).hexdigest()[:20]}.npy"

    def resize(self, path: str) -> np.ndarray:
        image = open_rgb(path, self.size)  # DataError naming the file when it does not decode
        scale = self.size / min(image.size) if self.side == "short" else min(1.0, self.size / max(image.size))
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        return np.asarray(image.resize(size, Image.BILINEAR, reducing_gap=3.0))

    def ensure(self, path: str) -> Path:
        target = self.file_for(path)
        if not target.is_file():
            with atomic_open(target, "wb") as fh:
                np.save(fh, self.resize(path))
        return target

    def build(self, paths: Sequence[str], workers: int = 4) -> list[Path]:
        """Cache every path (threads: PIL decodes outside the GIL); returns the cache files in order."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            return list(pool.map(self.ensure, paths))
