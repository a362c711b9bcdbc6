"""The image cache: its formats (.npy, and JPEG for disks that cannot hold the real data as .npy), the
disk check before caching, and where it lies (scratch space, outside Kaggle's saved output)."""

from __future__ import annotations

import shutil
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

from fathom import paths
from fathom.config import load_config
from fathom.data.cache import ImageCache, frame_shape, read_frame
from fathom.data.sampling import sampling_for
from fathom.data.tiles import TileDataset, TilePlan
from fathom.errors import DataError


@pytest.fixture
def frames(demo_dir) -> list[str]:
    return sorted(str(p) for p in (demo_dir / "images").glob("*.png"))[:6]


def test_jpeg_frames_read_back_like_npy_ones_in_a_fraction_of_the_bytes(frames, tmp_path):
    npy = ImageCache(tmp_path, 96, side="long").build(frames)
    jpeg = ImageCache(tmp_path, 96, side="long", fmt="jpeg").build(frames)
    assert all(f.suffix == ".npy" for f in npy) and all(f.suffix == ".jpg" for f in jpeg)
    for a, b in zip(npy, jpeg):
        exact, lossy = read_frame(a), read_frame(b)
        assert lossy.dtype == np.uint8 and lossy.shape == exact.shape and frame_shape(b) == exact.shape[:2]
        assert np.abs(lossy.astype(float) - exact).mean() < 8  # quality 90, on tiny noisy frames: a few levels
        assert np.asarray(read_frame(a, mmap=True)).tobytes() == exact.tobytes()
    assert sum(f.stat().st_size for f in jpeg) < 0.5 * sum(f.stat().st_size for f in npy)


def test_tiles_of_a_jpeg_cache_decode_each_frame_once(frames, tmp_path, monkeypatch):
    import fathom.data.tiles as tiles

    files = ImageCache(tmp_path, 96, side="long", fmt="jpeg").build(frames[:2])
    plan = TilePlan.of([frame_shape(f) for f in files], 48, 0.25)
    decoded = []
    monkeypatch.setattr(tiles, "read_frame", lambda f, mmap=False: decoded.append(f) or read_frame(f))
    from fathom.data.transforms import eval_transform

    dataset = TileDataset(files, plan, eval_transform(32, (0.5,) * 3, (0.25,) * 3))
    assert len(dataset) > 4
    [dataset[v] for v in range(len(dataset))]
    assert decoded == list(files)


def test_caching_stops_before_writing_when_the_disk_lacks_room(frames, tmp_path, monkeypatch, caplog):
    cache = ImageCache(tmp_path / "cache", 96, side="long")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(DataError) as info:
        cache.build(frames)
    text = str(info.value)
    for fragment in (str(cache.dir), "not enough disk", "6 frames to cache", "GB needed", "cache_format=jpeg"):
        assert fragment in text, text
    assert not list(cache.dir.glob("*.npy"))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**12, 0, 10**12))
    with caplog.at_level("INFO"):
        cache.build(frames)
    assert "6 frames to cache, about 0.00 GB needed" in caplog.text
    expected = sum(read_frame(f).nbytes + 128 for f in cache.build(frames))
    sizes = [__import__("PIL.Image").Image.open(f).size for f in frames]
    assert cache.bytes_needed(sizes) == pytest.approx(expected, rel=0.01)
    caplog.clear()
    with caplog.at_level("INFO"):
        cache.build(frames)  # everything cached: nothing to say, nothing to check
    assert "frames to cache" not in caplog.text


def test_the_cache_goes_to_scratch_space_on_kaggle(monkeypatch, tmp_path):
    monkeypatch.delenv("FATHOM_SCRATCH", raising=False)
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    assert paths.cache_root("cache") == Path("cache")
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    assert paths.cache_root("cache") == Path("/kaggle/temp/cache") and paths.work_dir() == Path("/kaggle/working")
    monkeypatch.setenv("FATHOM_SCRATCH", str(tmp_path))
    assert paths.cache_root("cache") == tmp_path / "cache"
    assert paths.cache_root("/abs/cache") == Path("/abs/cache")
    cfg = load_config("full", ["sampling=crops"])
    assert cfg.cache_format == "jpeg"
    assert sampling_for(cfg).cache().dir == tmp_path / "cache" / "long960"
