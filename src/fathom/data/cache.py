"""A pre-resized image cache: every frame decoded once, stored as uint8 .npy or as a JPEG.

`.npy` (`cache_format: npy`) is the fastest to read (no decode; crops and tiles read only their rows
through a memory map) and the largest: a 960x540 frame is 1.5 MB. `jpeg` stores the same frame in a
small fraction of that (quality 90; BENCHMARKS.md, "The image cache on a Kaggle disk") for one JPEG
decode per read: what the real data needs on a Kaggle
disk. Readers go through `read_frame` and `frame_shape`, which dispatch on the file's suffix.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from fathom.atomic import atomic_open
from fathom.data.images import image_size, open_rgb
from fathom.errors import DataError
from fathom.progress import progress

log = logging.getLogger(__name__)

SUFFIX = {"npy": ".npy", "jpeg": ".jpg"}  # cache_format -> file suffix
JPEG_QUALITY = 90
JPEG_BYTES_PER_PIXEL = 0.35  # the disk check's budget: well above what was measured (BENCHMARKS.md, the image cache)
NPY_HEADER = 128


class ImageCache:
    """Frames resized once: with `side="short"` their short side becomes `size` px (whole-frame training:
    `cache/short<px>/`); with `side="long"` their long side becomes at most `size` px, never enlarged
    (crops and tiles are cut from these: `cache/long<px>/`). `fmt` is npy or jpeg (see the module).

    Built once per size, so an epoch never decodes a 1920x1080 PNG again. The file name hashes the
    source path, size and mtime: an edited or replaced image is re-cached.
    """

    def __init__(self, root: str | Path, size: int, side: str = "short", fmt: str = "npy"):
        if side not in ("short", "long"):
            raise ValueError(f"side must be short or long, not {side!r}")
        if fmt not in SUFFIX:
            raise ValueError(f"cache format must be one of {', '.join(SUFFIX)}, not {fmt!r}")
        self.dir = Path(root) / f"{side}{size}"
        self.size, self.side, self.fmt = size, side, fmt

    def file_for(self, path: str) -> Path:
        stat = Path(path).stat()
        key = f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        return self.dir / f"{hashlib.sha1(key.encode()).hexdigest()[:20]}{SUFFIX[self.fmt]}"

    def cached_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) a width x height frame is cached at."""
        scale = self.size / min(width, height) if self.side == "short" else min(1.0, self.size / max(width, height))
        return max(1, round(width * scale)), max(1, round(height * scale))

    def resize(self, path: str) -> np.ndarray:
        image = open_rgb(path, self.size)  # DataError naming the file when it does not decode
        return np.asarray(image.resize(self.cached_size(*image.size), Image.BILINEAR, reducing_gap=3.0))

    def ensure(self, path: str, target: Path | None = None) -> Path:
        """The cache file of `path` (`target`: its file_for, if known), written when missing."""
        target = target or self.file_for(path)
        if not target.is_file():
            pixels = self.resize(path)
            with atomic_open(target, "wb") as fh:
                if self.fmt == "npy":
                    np.save(fh, pixels)
                else:
                    Image.fromarray(pixels).save(fh, "JPEG", quality=JPEG_QUALITY)
        return target

    def bytes_needed(self, sizes: Sequence[tuple[int, int]]) -> int:
        """Disk the frames of original (width, height) `sizes` take once cached (an upper estimate for jpeg)."""
        pixels = sum(w * h for w, h in (self.cached_size(*s) for s in sizes))
        return int(pixels * 3 + NPY_HEADER * len(sizes)) if self.fmt == "npy" else int(pixels * JPEG_BYTES_PER_PIXEL)

    def check_space(self, todo: Sequence[str]) -> str | None:
        """Before caching the frames `todo`: None when there are none, else the line that says what the
        cache will take; a DataError when the disk lacks that room (sizes from the image headers)."""
        if not todo:
            return None
        need = self.bytes_needed([image_size(path) for path in todo])
        free = shutil.disk_usage(self.dir).free
        line = (f"image cache {self.dir} ({self.fmt}): {len(todo)} frames to cache, about {need / 1e9:.2f} GB "
                f"needed, {free / 1e9:.1f} GB free")
        if need > free:
            raise DataError(self.dir, f"not enough disk for the image cache: {line}",
                            hint="free space, set cache_format=jpeg, or put the cache elsewhere "
                                 "(FATHOM_SCRATCH=DIR, or cache_dir=/an/absolute/path)")
        return line

    def build(self, paths: Sequence[str], workers: int = 4) -> list[Path]:
        """Cache every path (threads: PIL decodes outside the GIL); returns the cache files in order.
        Says first how much disk the frames not yet cached need, and stops when it is not there."""
        self.dir.mkdir(parents=True, exist_ok=True)
        targets = [self.file_for(p) for p in paths]
        line = self.check_space(list(dict.fromkeys(p for p, t in zip(paths, targets) if not t.is_file())))
        if line:
            log.info("%s", line)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            return list(progress(pool.map(self.ensure, paths, targets), desc=f"cache {self.dir.name}",
                                 total=len(paths), unit="frame"))


def read_frame(file: str | Path, mmap: bool = False) -> np.ndarray:
    """The uint8 HxWx3 pixels of a cache file; `mmap`: an .npy is mapped, not read (crops read a window)."""
    if str(file).endswith(SUFFIX["npy"]):
        return np.load(file, mmap_mode="r" if mmap else None)
    with Image.open(file) as image:
        return np.asarray(image.convert("RGB"))


def frame_shape(file: str | Path) -> tuple[int, int]:
    """(height, width) of a cache file, from its header."""
    if str(file).endswith(SUFFIX["npy"]):
        return tuple(np.load(file, mmap_mode="r").shape[:2])
    with Image.open(file) as image:
        return image.height, image.width
