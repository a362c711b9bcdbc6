"""The MSE 546 project's baselines as trunks of the same engine: models on raw pixels.

`pixels_linear`: the frame averaged down to a `grid` x `grid` x 3 thumbnail and flattened; with the
engine's linear heads this is logistic regression on pixels (one sigmoid per category).
`pixels_mlp`: the same thumbnail through a small fully connected network (two ReLU layers).
Both take any image size, start from random weights, and quote ImageNet's mean and std like timm's
models, so the loaders, loss, heads, checkpoints and predictions are the ones every backbone uses.
"""

from __future__ import annotations

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn

PRETRAINED_CFG = {"mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD, "input_size": (3, 64, 64),
                  "interpolation": "bilinear", "crop_pct": 1.0}


class PixelTrunk(nn.Module):
    """Thumbnail of the frame -> features (`num_features` of them), through `layers` hidden ReLU layers."""

    def __init__(self, grid: int = 16, hidden: tuple[int, ...] = (), drop_rate: float = 0.0):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(grid)
        width = 3 * grid * grid
        layers: list[nn.Module] = [nn.Flatten()]
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(inplace=True), nn.Dropout(drop_rate)]
            width = size
        self.layers = nn.Sequential(*layers)
        self.num_features = width
        self.pretrained_cfg = dict(PRETRAINED_CFG)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(self.pool(images).contiguous())


def pixels_linear(grid: int = 16) -> PixelTrunk:
    return PixelTrunk(grid)


def pixels_mlp(grid: int = 16, hidden: tuple[int, ...] = (512, 256), drop_rate: float = 0.2) -> PixelTrunk:
    return PixelTrunk(grid, tuple(hidden), drop_rate)


BASELINES = {"pixels_linear": pixels_linear, "pixels_mlp": pixels_mlp}
