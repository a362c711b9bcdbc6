"""Out-of-sample scores from predicted probabilities: higher = more likely out-of-sample.

Each method maps probabilities to one float per image; only the ranking matters for the metric
(sAUC = 2 AUC - 1), so scores are never rounded. Sigmoid probabilities are turned back into logits
where a method needs them (clipped away from 0 and 1).

- max_prob:     1 - max fine probability (nothing in the frame looks familiar)
- entropy:      mean binary entropy of the fine probabilities (the model is unsure about many classes)
- energy:       -logsumexp(fine logits) (Liu et al. 2020, energy-based OOD detection)
- super:        1 - max super-category probability (even the coarse family is unfamiliar)
- disagreement: mean over classes of the std across models (needs several models' predictions)
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from scipy.special import logsumexp
from scipy.stats import rankdata

EPS = 1e-6


def logits_of(probs: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(probs, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def max_prob(fine: np.ndarray, sup: np.ndarray | None = None) -> np.ndarray:
    return 1.0 - np.asarray(fine, dtype=np.float64).max(1)


def entropy(fine: np.ndarray, sup: np.ndarray | None = None) -> np.ndarray:
    p = np.clip(np.asarray(fine, dtype=np.float64), EPS, 1 - EPS)
    return -(p * np.log(p) + (1 - p) * np.log1p(-p)).mean(1)


def energy(fine: np.ndarray, sup: np.ndarray | None = None) -> np.ndarray:
    return -logsumexp(logits_of(fine), axis=1)


def super_uncertainty(fine: np.ndarray, sup: np.ndarray) -> np.ndarray:
    return 1.0 - np.asarray(sup, dtype=np.float64).max(1)


def disagreement(fine_per_model: Sequence[np.ndarray]) -> np.ndarray:
    """Mean over classes of the standard deviation across models' fine probabilities."""
    stacked = np.stack([np.asarray(f, dtype=np.float64) for f in fine_per_model])
    if len(stacked) < 2:
        raise ValueError("disagreement needs the predictions of at least two models")
    return stacked.std(0).mean(1)


SINGLE_MODEL: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "max_prob": max_prob, "entropy": entropy, "energy": energy, "super": super_uncertainty,
}


def rank_average(scores: Sequence[np.ndarray]) -> np.ndarray:
    """Combine scores on different scales by averaging their ranks scaled to [0, 1]."""
    return np.mean([(rankdata(s) - 1) / max(len(s) - 1, 1) for s in scores], 0)
