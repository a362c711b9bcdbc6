"""`python -m fathom bench cache`: the image cache's formats, side by side. Bytes per frame, build time,
full-frame reads per second and crop samples per second (read + cut + the crop transform, one core),
and the disk the real data's frames would take, projected from the measured bytes per cached pixel and
the real train.json / eval.json frame sizes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np

from fathom.data.cache import ImageCache, read_frame
from fathom.data.crops import cut, sample_window
from fathom.data.transforms import crop_transform

FORMATS = ("npy", "jpeg")


def rate(fn, items: Sequence, seconds: float = 3.0) -> float:
    """Calls of `fn` per second over `items`, cycling until `seconds` have passed (at least one pass)."""
    start, n = time.perf_counter(), 0
    while n < len(items) or time.perf_counter() - start < seconds:
        fn(items[n % len(items)])
        n += 1
    return n / (time.perf_counter() - start)


def crop_sampler(crop_size: int, image_size: int, seed: int = 0):
    """read a cached frame, cut a random crop_size window, apply the training crop transform."""
    transform, rng = crop_transform(image_size, (0.5,) * 3, (0.25,) * 3), np.random.default_rng(seed)

    def sample(file: Path):
        frame = read_frame(file, mmap=True)
        height, width = frame.shape[:2]
        window = sample_window(rng, width, height, np.zeros((0, 4)), crop_size, 0.5, True)
        return transform(image=cut(frame, window))["image"]

    return sample


def run_cache_bench(paths: list[str], cache_root: Path, long_side: int, crop_size: int, image_size: int,
                    real_sizes: Sequence[tuple[int, int]] = (), workers: int = 2) -> dict:
    rows = []
    for fmt in FORMATS:
        cache = ImageCache(cache_root, long_side, side="long", fmt=fmt)
        start = time.perf_counter()
        files = cache.build(paths, workers=workers)
        build_s = time.perf_counter() - start
        nbytes = sum(f.stat().st_size for f in files)
        pixels = sum(int(np.prod(read_frame(f, mmap=True).shape[:2])) for f in files)
        per_pixel = nbytes / pixels
        real_pixels = sum(w * h for w, h in (cache.cached_size(*s) for s in real_sizes))
        rows.append({"format": fmt, "frames": len(files), "mb_per_frame": nbytes / len(files) / 1e6,
                     "bytes_per_pixel": per_pixel, "build_frames_s": len(files) / build_s,
                     "read_frames_s": rate(lambda f: np.asarray(read_frame(f)), files),
                     "crop_samples_s": rate(crop_sampler(crop_size, image_size), files),
                     "real_frames": len(real_sizes), "real_gb": real_pixels * per_pixel / 1e9 if real_sizes else None})
    return {"long_side": long_side, "crop_size": crop_size, "image_size": image_size,
            "frame_sizes": sorted({tuple(int(v) for v in read_frame(f, mmap=True).shape[1::-1]) for f in files}),
            "rows": rows}
