"""The training loss, outside the model: L(fine) + lambda x L(super), L = weighted BCE, ASL or focal.

ASL (asymmetric loss, Ridnik et al. 2021; the 1st-place FathomNet 2023 team's loss) and focal loss are
timm's `AsymmetricLossMultiLabel`: focal is its symmetric case (gamma_pos = gamma_neg, no clipping).
All three average over batch and classes, so one learning rate serves them; the class weights
(`pos_weight`) scale the positive term of each.

Logit adjustment (Menon et al. 2021) adds tau x log-odds of each fine class's training frequency to
the fine logits inside the loss only: the model learns logits with the label prior taken out, so at
prediction time rare categories rank higher than their training frequency would put them.
"""

from __future__ import annotations

import numpy as np
import torch
from timm.loss import AsymmetricLossMultiLabel
from torch import nn

from fathom.config import CHOICES

LOSSES = CHOICES["loss"]


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


def criterion(kind: str, pos_weight: torch.Tensor | None, gamma_neg: float, gamma_pos: float, clip: float,
              focal_gamma: float) -> nn.Module:
    """A module mapping (logits, dense targets) to a mean loss."""
    if kind == "bce":
        return nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    if kind == "asl":
        return AsymmetricLossMultiLabel(gamma_neg=gamma_neg, gamma_pos=gamma_pos, clip=clip, reduction="mean",
                                        pos_weight=pos_weight)
    if kind == "focal":
        return AsymmetricLossMultiLabel(gamma_neg=focal_gamma, gamma_pos=focal_gamma, clip=0.0, reduction="mean",
                                        pos_weight=pos_weight)
    raise ValueError(f"loss must be one of {', '.join(LOSSES)}, not {kind!r}")


class FathomLoss(nn.Module):
    """loss = L(fine; pos_weight) + super_weight * L(super), optional label smoothing and logit adjustment."""

    def __init__(self, pos_weight: np.ndarray, super_weight: float = 0.5, smoothing: float = 0.0, kind: str = "bce",
                 gamma_neg: float = 4.0, gamma_pos: float = 1.0, clip: float = 0.05, focal_gamma: float = 2.0,
                 logit_shift: np.ndarray | None = None):
        super().__init__()
        settings = (gamma_neg, gamma_pos, clip, focal_gamma)
        self.fine_loss = criterion(kind, torch.as_tensor(pos_weight, dtype=torch.float32), *settings)
        self.super_loss = criterion(kind, None, *settings)
        self.super_weight = super_weight
        self.smoothing = smoothing
        shift = np.zeros(len(pos_weight), np.float32) if logit_shift is None else logit_shift
        self.register_buffer("logit_shift", torch.as_tensor(shift, dtype=torch.float32))

    def smooth(self, target: torch.Tensor) -> torch.Tensor:
        return target * (1 - self.smoothing) + 0.5 * self.smoothing if self.smoothing else target

    def forward(self, logits: dict[str, torch.Tensor], fine: torch.Tensor,
                sup: torch.Tensor) -> dict[str, torch.Tensor]:
        fine_loss = self.fine_loss(logits["fine"].float() + self.logit_shift, self.smooth(fine.float()))
        super_loss = self.super_loss(logits["super"].float(), self.smooth(sup.float()))
        return {"loss": fine_loss + self.super_weight * super_loss, "fine": fine_loss, "super": super_loss}
