"""Weighted blends tuned for MAP@20, and hierarchical re-scoring by the super-category head.

- `greedy_weights`: Caruana et al. (2004) forward selection with replacement. Each step adds the member
  whose inclusion gives the best MAP@20 of the running mean; the weights are the selection counts of the
  best step, so they are non-negative and sum to 1, and a member that never helps gets 0. MAP@20 is a
  step function of the weights, so gradient or simplex optimisers stall on it; greedy selection does not.
- `rescore`: p'(c) = p(c)^a * p_super(parent(c))^b. MAP@20 depends only on each image's ranking of
  categories, and that ranking depends only on b/a (p^a q^b ranks as p q^(b/a) for a > 0), so a is
  fixed at 1 and b is tuned on a grid: tuning both would search one direction twice.
"""

from __future__ import annotations

import numpy as np

from fathom.metric import map_at_k_from_probs

EXPONENT_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)


def blend(stack: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted mean over the first axis of `stack` ([M, ...]); weights must be non-negative, sum 1."""
    weights = np.asarray(weights, dtype=np.float64)
    if len(weights) != len(stack) or (weights < 0).any() or not np.isclose(weights.sum(), 1.0):
        raise ValueError(f"weights must be {len(stack)} non-negative numbers summing to 1, not {weights}")
    return np.tensordot(weights, stack, axes=1)


def greedy_weights(stack: np.ndarray, targets: np.ndarray, steps: int = 20) -> np.ndarray:
    """Weights for the members in `stack` ([M, N, C] probabilities) maximising MAP@20 on `targets`."""
    n_members = len(stack)
    counts, best_counts, best_score = np.zeros(n_members), None, -1.0
    running = np.zeros(stack.shape[1:])
    for step in range(1, steps + 1):
        trials = [(running * (step - 1) + stack[m]) / step for m in range(n_members)]
        scores = [map_at_k_from_probs(t, targets) for t in trials]
        chosen = int(np.argmax(scores))  # ties: the earlier member
        counts[chosen] += 1
        running = trials[chosen]
        if scores[chosen] > best_score + 1e-12:
            best_score, best_counts = scores[chosen], counts.copy()
    return best_counts / best_counts.sum()


def rescore(fine: np.ndarray, sup: np.ndarray, parent: np.ndarray, b: float, a: float = 1.0) -> np.ndarray:
    """p(c)^a * p_super(parent(c))^b for every fine category c ([N, 290] from [N, 290] and [N, 20])."""
    fine = np.clip(np.asarray(fine, dtype=np.float64), 1e-12, 1.0)
    sup = np.clip(np.asarray(sup, dtype=np.float64), 1e-12, 1.0)
    return fine ** a * sup[:, parent] ** b


def tune_exponent(fine: np.ndarray, sup: np.ndarray, parent: np.ndarray, targets: np.ndarray,
                  grid=EXPONENT_GRID) -> float:
    """The b of `grid` with the best MAP@20 of rescore(fine, sup, b); ties go to the smaller b."""
    scores = [map_at_k_from_probs(rescore(fine, sup, parent, b), targets) for b in grid]
    return float(grid[int(np.argmax(scores))])
