"""The optimiser, built one way for training and for the benchmarks that time it."""

from __future__ import annotations

import torch

from fathom.config import CHOICES

OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}
assert set(OPTIMIZERS) == set(CHOICES["optimizer"])


def make_optimizer(name: str, params, lr: float, weight_decay: float, device: torch.device) -> torch.optim.Optimizer:
    """Adam or AdamW with the fused kernel on CPU and CUDA: one pass over each parameter instead of a
    Python loop of elementwise ops (on a small CPU the plain step costs more than the forward and backward
    passes at 64 px). Weight decay applies to every parameter: sparing biases and norm weights (timm's
    param_groups_weight_decay) was worse on the demo recipe. Both measured: BENCHMARKS.md, "The demo recipe"."""
    return OPTIMIZERS[name](params, lr=lr, weight_decay=weight_decay, fused=device.type in ("cpu", "cuda"))
