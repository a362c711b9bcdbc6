"""Mixed precision decided once: an autocast context and a grad scaler that may be a no-op."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch


@dataclass
class Precision:
    device: torch.device
    dtype: torch.dtype | None  # None: full fp32
    scaler: torch.amp.GradScaler

    @classmethod
    def decide(cls, mode: str, device: torch.device) -> "Precision":
        """auto: fp16 on CUDA, fp32 on CPU. On CPU bf16 is a per-backbone choice, not a default: `bench
        speed` (BENCHMARKS.md, 64 px, this AVX-512 BF16 host) measured bf16 + channels_last training
        1.5-1.6x faster than fp32 channels_last for resnet18 and densenet121, but 0.5x for efficientnet_b0
        (depthwise convolutions) and level for convnext_atto, so the demo config sets it per backbone."""
        if mode == "auto":
            mode = "fp16" if device.type == "cuda" else "fp32"
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": None}[mode]
        if dtype is torch.float16 and device.type != "cuda":
            raise ValueError("amp: fp16 needs a CUDA device; use bf16 or fp32 on CPU")
        scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
        return cls(device, dtype, scaler)

    @classmethod
    def for_prediction(cls, amp: str, infer_amp: str, device: torch.device) -> "Precision":
        """The precision validation and prediction run under: `infer_amp`, or the training `amp` when it is
        `train`. Inference tolerates bf16 where training may not: on this CPU bf16 predicts 1.3x (EfficientNet-B0)
        to 1.8x (ResNet18) faster than fp32, while EfficientNet-B0 trains 2x slower in it (BENCHMARKS.md)."""
        return cls.decide(amp if infer_amp == "train" else infer_amp, device)

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    @property
    def name(self) -> str:
        return {None: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[self.dtype]
