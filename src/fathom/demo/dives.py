"""Where and how the demo's frames were filmed: platforms, dives and the eval set's whole-test shift.

Shaped like the real json (see ../shared/fathomnet2023):
- every frame belongs to a dive of one platform; `coco_url` carries both (".../framegrabs/Doc%20Ricketts/
  images/0297/...") and `date_captured` the dive's date;
- dive sizes are heavy-tailed (the real train set: 503 dives, the largest 625 of 5,950 frames);
- a dive has its own depth, lamps, water tint and habitat (which categories it meets most);
- the platform mix shifts: Ventana holds most train frames, Doc Ricketts most eval frames (83% of the
  real eval images, 34% of train);
- 91% of eval frames come from dives train never shows, filmed later with another camera (a colour cast,
  more gain and noise): the in-sample eval frames are unlike train too, not only the out-of-sample ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from fathom.demo.labels import TRAIN_MAX_DEPTH

PLATFORMS = ("Doc Ricketts", "Ventana", "Tiburon", "Mini ROV")
TRAIN_PLATFORMS = (0.34, 0.62, 0.03, 0.01)
EVAL_PLATFORMS = (0.83, 0.14, 0.01, 0.02)
HD = {"Doc Ricketts", "Mini ROV"}  # 1920x1080 cameras; the others film ~720x368 (train) or 720x486 (eval)
SEEN_DIVE_SHARE = 0.09  # eval frames from dives that train also shows
TRAIN_YEARS, EVAL_YEARS = (2006, 2016), (2017, 2022)  # eval's new dives come with the new camera
DIVE_DEPTH_SPREAD = 0.04  # a dive's frames lie within about +-50 m of its depth (depth 1 = 1300 m)
NEW_CAMERA_GAIN = np.array([1.22, 1.02, 0.84])  # warmer lamps and another sensor: per-channel gain
NEW_CAMERA_NOISE = 6.0


@dataclass(frozen=True)
class Dive:
    platform: str
    number: int
    depth: float  # the dive's typical depth, 0..1
    light: float  # lamp level offset (added to the depth-dependent light)
    tint: float  # water blueness offset
    year: int
    habitat: np.ndarray  # multiplicative weights over the seen categories other than the dominant one
    new_camera: bool

    @property
    def name(self) -> str:
        return f"{self.platform}/{self.number:04d}"

    def frame_depth(self, rng: np.random.Generator) -> float:
        """A frame's depth: near the dive's; a train-era dive never goes below train's depth range."""
        depth = float(np.clip(self.depth + rng.normal(0, DIVE_DEPTH_SPREAD), 0.0, 1.0))
        return depth if self.new_camera else min(depth, TRAIN_MAX_DEPTH)

    def date(self, rng: np.random.Generator) -> str:
        """date_captured of one of its frames: a day in the dive's year (the year is what tells eras apart)."""
        day = int(rng.integers(1, 29))
        month = int(rng.integers(1, 13))
        return f"{self.year}-{month:02d}-{day:02d} {int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}:00"


def dive_sizes(rng: np.random.Generator, n: int) -> list[int]:
    """Frames per dive, heavy-tailed (log-normal, mean ~10), summing to n; the largest at most a tenth."""
    cap = max(3, n // 10)
    sizes = []
    while sum(sizes) < n:
        sizes.append(int(min(cap, max(1, round(rng.lognormal(np.log(5), 1.0))))))
    sizes[-1] -= sum(sizes) - n
    return [s for s in sizes if s > 0]


def make_dives(rng: np.random.Generator, sizes: list[int], platforms: tuple[float, ...], eval_dives: bool,
               n_habitat: int, first_number: int) -> list[Dive]:
    dives = []
    years = EVAL_YEARS if eval_dives else TRAIN_YEARS
    for n, _ in enumerate(sizes):
        platform = PLATFORMS[int(rng.choice(len(PLATFORMS), p=platforms))]
        depth = rng.uniform(0.02, 0.98) if eval_dives else rng.uniform(0.02, TRAIN_MAX_DEPTH - 0.02)
        dives.append(Dive(platform, first_number + n, float(depth), float(rng.normal(0, 0.1)),
                          float(rng.normal(0, 0.15)), int(rng.integers(years[0], years[1] + 1)),
                          rng.lognormal(0, 1.0, n_habitat), eval_dives))
    return dives


def assign(rng: np.random.Generator, dives: list[Dive], sizes: list[int]) -> list[Dive]:
    """The dive of each frame, dives in a shuffled order of their frames."""
    frames = [d for d, s in zip(dives, sizes) for _ in range(s)]
    return [frames[i] for i in rng.permutation(len(frames))]


def eval_frame_dives(rng: np.random.Generator, train_dives: list[Dive], train_sizes: list[int], n: int,
                     n_habitat: int) -> list[Dive]:
    """The dive of each eval frame: SEEN_DIVE_SHARE of them from train's dives (weighted by size, and only
    within train's depth), the rest from new dives on eval's platform mix."""
    n_seen = int(round(SEEN_DIVE_SHARE * n))
    p = np.asarray(train_sizes, float) / sum(train_sizes)
    seen = [train_dives[i] for i in rng.choice(len(train_dives), size=n_seen, p=p)]
    sizes = dive_sizes(rng, n - n_seen)
    new = make_dives(rng, sizes, EVAL_PLATFORMS, True, n_habitat, first_number=len(train_dives) + 100)
    frames = seen + [d for d, s in zip(new, sizes) for _ in range(s)]
    return [frames[i] for i in rng.permutation(len(frames))]


def camera(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The eval era's camera: a colour cast and more sensor noise over the whole frame."""
    pixels = np.asarray(image, dtype=np.float32) * NEW_CAMERA_GAIN + rng.normal(0, NEW_CAMERA_NOISE, (1, 1, 3))
    pixels += rng.normal(0, NEW_CAMERA_NOISE, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
