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
        """auto: fp16 on CUDA, fp32 on CPU. On CPU bf16 is a per-backbone choice, not a default: it trains
        some backbones faster and others (depthwise convolutions) slower (`bench speed`, BENCHMARKS.md), so
        the demo config sets it per backbone."""
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
        `train`. Inference tolerates bf16 where training may not: on a bf16 CPU it predicts every backbone
        faster than fp32, while some train slower in it (BENCHMARKS.md)."""
        return cls.decide(amp if infer_amp == "train" else infer_amp, device)

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    @property
    def name(self) -> str:
        return {None: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[self.dtype]
