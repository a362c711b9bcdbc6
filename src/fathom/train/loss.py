"""Weighted BCE on the fine labels plus lambda x BCE on the super-categories. Lives outside the model."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def pos_weights(targets: np.ndarray, power: float = 0.5, cap: float = 10.0) -> np.ndarray:
    """Per-class BCE `pos_weight` from a training fold's label frequencies.

    pos_weight_c = min(cap, ((N - n_c) / n_c) ** power) for a class with n_c > 0 positives among N
    images, and 1 for classes the fold never shows (they have no positive to weight). power 0.5 (the
    square root) softens the raw negative/positive ratio, which reaches thousands on this long tail;
    the cap keeps one-image categories from dominating the gradient.
    """
    n = len(targets)
    positives = targets.sum(0)
    ratio = np.where(positives > 0, (n - positives) / np.maximum(positives, 1), 1.0)
    return np.minimum(cap, np.maximum(ratio, 1e-6) ** power).astype(np.float32)


class FathomLoss(nn.Module):
    """loss = BCE(fine; pos_weight) + super_weight * BCE(super), with optional label smoothing."""

    def __init__(self, pos_weight: np.ndarray, super_weight: float = 0.5, smoothing: float = 0.0):
        super().__init__()
        self.register_buffer("pos_weight", torch.as_tensor(pos_weight, dtype=torch.float32))
        self.super_weight = super_weight
        self.smoothing = smoothing

    def smooth(self, target: torch.Tensor) -> torch.Tensor:
        return target * (1 - self.smoothing) + 0.5 * self.smoothing if self.smoothing else target

    def forward(self, logits: dict[str, torch.Tensor], fine: torch.Tensor, sup: torch.Tensor) -> dict[str, torch.Tensor]:
        fine_loss = F.binary_cross_entropy_with_logits(logits["fine"].float(), self.smooth(fine),
                                                       pos_weight=self.pos_weight)
        super_loss = F.binary_cross_entropy_with_logits(logits["super"].float(), self.smooth(sup))
        return {"loss": fine_loss + self.super_weight * super_loss, "fine": fine_loss, "super": super_loss}
