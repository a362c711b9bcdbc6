"""Mixup and CutMix for multi-label targets: timm's `Mixup` on the fine and super-category targets together.

The two label sets are mixed as one dense vector (timm's `multi_label=True`), so both take the same
lambda as the pixels: a mixed image's target is lam * its labels + (1 - lam) * its partner's (for CutMix,
lam = the share of pixels kept). With both alphas set, each batch takes one of the two (timm's switch).
"""

from __future__ import annotations

import torch
from timm.data import Mixup

from fathom.constants import N_FINE, N_SUPER


class MultiLabelMix:
    def __init__(self, mixup_alpha: float, cutmix_alpha: float, prob: float = 1.0):
        self.mix = Mixup(mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha, prob=prob, label_smoothing=0.0,
                         num_classes=N_FINE + N_SUPER, multi_label=True)

    def __call__(self, images: torch.Tensor, fine: torch.Tensor, sup: torch.Tensor):
        """(images, fine, super) of a batch, mixed (in place for the images); an odd batch passes unmixed."""
        if len(images) % 2:
            return images, fine, sup
        images, targets = self.mix(images, torch.cat([fine, sup], 1))
        return images, targets[:, :N_FINE], targets[:, N_FINE:]
