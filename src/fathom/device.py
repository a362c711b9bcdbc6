"""Which torch device a command runs on, and the guard that refuses a GPU this torch build cannot use.

Kaggle's current image ships a PyTorch build without Pascal (sm_60) kernels: on a P100
`torch.cuda.is_available()` is True and the first CUDA operation dies with "no kernel image is
available". With the accelerator off, `auto` would quietly train on the CPU until the 12-hour kill.
Both are caught here, before any work, as one line that names the GPU and what to pick instead.
"""

from __future__ import annotations

import torch

from fathom.config import CHOICES
from fathom.errors import FathomError

DEVICES = CHOICES["device"]
PICK = "pick the accelerator GPU T4 x2 or L4 (not P100)"


def oldest_supported_capability() -> tuple[int, int] | None:
    """The lowest compute capability the installed torch has kernels (sm_XY) or PTX (compute_XY) for;
    None for a build without CUDA."""
    levels = [int(arch.split("_")[1]) for arch in torch.cuda.get_arch_list()
              if arch.startswith(("sm_", "compute_")) and arch.split("_")[1].isdigit()]
    return divmod(min(levels), 10) if levels else None


def unusable_gpu(index: int) -> str | None:
    """Why GPU `index` cannot run this torch build's kernels, or None when it can."""
    capability = torch.cuda.get_device_capability(index)
    oldest = oldest_supported_capability()
    if oldest is None or tuple(capability) >= oldest:
        return None
    return (f"GPU {index} is {torch.cuda.get_device_name(index)} (compute capability {capability[0]}.{capability[1]}), "
            f"but torch {torch.__version__} has kernels for compute capability {oldest[0]}.{oldest[1]} and newer "
            f"only: {PICK}")


def require_gpu() -> str:
    """Check every visible GPU; returns a line describing them, or raises FathomError saying what to pick."""
    if not torch.cuda.is_available():
        raise FathomError(f"no usable CUDA GPU (torch {torch.__version__}, CUDA build {torch.version.cuda}): "
                          f"turn the notebook's accelerator on and {PICK}")
    for index in range(torch.cuda.device_count()):
        problem = unusable_gpu(index)
        if problem:
            raise FathomError(problem)
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    capability = torch.cuda.get_device_capability(0)
    return (f"{len(names)} x {names[0]} (compute capability {capability[0]}.{capability[1]}), "
            f"torch {torch.__version__}" + ("" if len(set(names)) == 1 else f" ({', '.join(names)})"))


def choose_device(want: str = "auto", local_rank: int = 0) -> torch.device:
    """`cuda`: a usable GPU or a FathomError; `cpu`; `auto`: the GPU when one is visible (checked), else the CPU."""
    if want not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, not {want!r}")
    if want == "cpu" or (want == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    require_gpu()
    return torch.device(f"cuda:{local_rank}")
