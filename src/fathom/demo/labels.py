"""Label statistics of the demo, shaped like the real competition's.

Train: ~46% of the 290 categories occur (133 in the real data); one category is in ~40% of images;
the rest follow a Zipf law, so many occur in fewer than 5 images; ~1.5 labels per image, a few with 6+.
Each image has a depth in 0..1 (1 = 1300 m). Train frames come from depths up to TRAIN_MAX_DEPTH
(800 m), eval frames from the whole range; an eval frame deeper than that is out-of-sample (osd = 1).
Eval draws other category frequencies (flatter), and the deeper a frame, the more of its animals
belong to categories train never shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fathom.constants import N_FINE
from fathom.demo.worlds import WORLDS, World

# P(an image has k distinct categories), k = 1..10: mean ~1.55, about 1.5% of images with 6+.
LABELS_PER_IMAGE = np.array([0.665, 0.2, 0.07, 0.03, 0.02, 0.007, 0.004, 0.002, 0.001, 0.001])
SEEN_SHARE = 133 / 290
DOMINANT_SHARE = 0.42
ZIPF_EXPONENT = 1.1
TRAIN_MAX_DEPTH = 800 / 1300


@dataclass(frozen=True)
class LabelModel:
    """Which categories train shows and how often each split draws them."""

    seen: np.ndarray  # category ids that occur in train
    unseen: np.ndarray  # category ids train never shows
    dominant: int  # the category in ~40% of train images
    train_weights: np.ndarray  # Zipf weights over `seen` without the dominant one

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "LabelModel":
        ids = rng.permutation(np.arange(1, N_FINE + 1))
        n_seen = int(round(SEEN_SHARE * N_FINE))
        seen, unseen = np.sort(ids[:n_seen]), np.sort(ids[n_seen:])
        dominant = int(ids[0])
        rest = rng.permutation(seen[seen != dominant])
        weights = 1.0 / np.arange(1, len(rest) + 1) ** ZIPF_EXPONENT
        order = np.argsort(rest)
        return cls(seen=seen, unseen=unseen, dominant=dominant, train_weights=(weights / weights.sum())[order])

    @property
    def others(self) -> np.ndarray:
        return self.seen[self.seen != self.dominant]

    def draw(self, rng: np.random.Generator, depth: float, shifted: bool, habitat: np.ndarray | None = None,
             world: World = WORLDS["gain"]) -> list[int]:
        """Category ids of one image at `depth`; `shifted` draws eval's frequencies instead of train's (and
        `world`'s unseen categories); `habitat` (weights over `others`) is the dive's own mix."""
        k = int(rng.choice(np.arange(1, len(LABELS_PER_IMAGE) + 1), p=LABELS_PER_IMAGE / LABELS_PER_IMAGE.sum()))
        beyond = max(0.0, depth - TRAIN_MAX_DEPTH) / (1 - TRAIN_MAX_DEPTH)  # 0 within train's range, 1 at the bottom
        p_unseen = world.unseen_share(beyond, depth > TRAIN_MAX_DEPTH) if shifted else 0.0
        p_dominant = DOMINANT_SHARE * (1 - beyond) * (0.6 if shifted else 1.0)
        weights = np.sqrt(self.train_weights) if shifted else self.train_weights
        if habitat is not None:
            weights = weights * habitat
        labels: list[int] = [self.dominant] if rng.random() < p_dominant else []
        while len(labels) < k:
            pool, p = (self.unseen, None) if rng.random() < p_unseen else (self.others, weights / weights.sum())
            candidate = int(rng.choice(pool, p=p))
            if candidate not in labels:
                labels.append(candidate)
        return sorted(labels)

    def instances(self, rng: np.random.Generator, category: int, crowding: float = 1.0) -> int:
        """How many animals of a category an image holds (the common one comes in groups); `crowding`
        multiplies the extra ones."""
        mean_extra = (2.0 if category == self.dominant else 0.5) * crowding
        return 1 + min(int(rng.poisson(mean_extra)), 12)

    @staticmethod
    def unknown_creatures(rng: np.random.Generator, depth: float, shifted: bool, world: World = WORLDS["gain"]
                          ) -> int:
        """How many creatures outside every category an eval frame holds (train frames: none)."""
        beyond = max(0.0, depth - TRAIN_MAX_DEPTH) / (1 - TRAIN_MAX_DEPTH)
        return int(rng.poisson(world.unknown_mean(beyond, depth > TRAIN_MAX_DEPTH))) if shifted else 0
