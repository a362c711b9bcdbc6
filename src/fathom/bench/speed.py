"""`python -m fathom bench speed`: where the time goes, measured in one run on this machine.

For each backbone and image size:
- the model step alone on in-memory tensors (train: forward, loss, backward, AdamW; inference: forward)
  under each precision / memory-format variant, with achieved GFLOP/s against the machine's own
  measured matmul peak;
- the data loader alone: ours (pre-resized uint8 cache + albumentations) and the naive one the seed
  projects used (PIL decode of the full PNG every epoch + torchvision transforms);
- whole training epochs (loader + step): ours (cache, channels_last, the config's precision) against
  the naive pipeline (no cache, fp32, NCHW), and their ratio;
- the peak memory (RSS) of a real one-fold training run, in a child process.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from fathom.config import TrainConfig
from fathom.constants import N_FINE, N_SUPER
from fathom.models.net import FathomNet
from fathom.data.cache import ImageCache
from fathom.data.loaders import EpochSampler, FrameDataset, make_loader
from fathom.data.transforms import train_transform
from fathom.train.loop import to_device, train_one_epoch
from fathom.train.loss import FathomLoss
from fathom.train.optimizer import make_optimizer
from fathom.train.precision import Precision


@dataclass(frozen=True)
class Variant:
    """How the model step runs: precision, memory format, torch.compile."""

    amp: str
    channels_last: bool
    compile: bool = False

    @property
    def name(self) -> str:
        return f"{self.amp}{' CL' if self.channels_last else ''}{' compiled' if self.compile else ''}"


def variants(device: torch.device, compile_too: bool) -> list[Variant]:
    half = "fp16" if device.type == "cuda" else "bf16"
    found = [Variant("fp32", False), Variant("fp32", True), Variant(half, True)]
    if device.type == "cuda":
        found.append(Variant("bf16", True))
    if compile_too:
        found.append(Variant(half, True, compile=True))
    return found


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, repeats: int, device: torch.device, warmup: int = 1) -> float:
    """Seconds per call of `fn`, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / repeats


def matmul_peak(dtype: torch.dtype, device: torch.device, n: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of a square matmul: the ceiling the model steps are compared with."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n**3 / timed(lambda: a @ b, repeats, device, warmup=2) / 1e9


def forward_flops(model: torch.nn.Module, size: int) -> float:
    """FLOPs of one image's forward pass (torch's FLOP counter: convolutions and matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.randn(1, 3, size, size))
    return float(counter.get_total_flops())


def make_model(backbone: str, variant: Variant, device: torch.device, model_kwargs: dict | None = None):
    model = FathomNet(backbone, pretrained=False, model_kwargs=model_kwargs).to(device)
    if variant.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return torch.compile(model) if variant.compile else model


def step_throughput(backbone: str, size: int, batch: int, variant: Variant, device: torch.device, train: bool,
                    repeats: int, model_kwargs: dict | None = None) -> float:
    """Images/s of the model step alone on a batch already in memory."""
    model = make_model(backbone, variant, device, model_kwargs)
    precision = Precision.decide(variant.amp, device)
    images = to_device(torch.randn(batch, 3, size, size), device, variant.channels_last)
    fine, sup = torch.zeros(batch, N_FINE, device=device), torch.zeros(batch, N_SUPER, device=device)
    loss_fn = FathomLoss(np.ones(N_FINE, np.float32)).to(device)
    optimizer = make_optimizer("adamw", model.parameters(), 1e-4, 0.05, device)

    def train_step():
        with precision.autocast():
            logits = model(images)
        precision.scaler.scale(loss_fn(logits, fine, sup)["loss"]).backward()
        precision.scaler.step(optimizer)
        precision.scaler.update()
        optimizer.zero_grad(set_to_none=True)

    @torch.no_grad()
    def infer_step():
        with precision.autocast():
            model(images)

    model.train(train)
    return batch / timed(train_step if train else infer_step, repeats, device, warmup=2 if variant.compile else 1)


class NaiveFrames(Dataset):
    """The seed projects' loader: PIL decode of the full-size image every epoch, torchvision transforms."""

    def __init__(self, paths: list[str], size: int, mean, std):
        self.paths = paths
        self.transform = T.Compose([T.RandomResizedCrop(size, scale=(0.5, 1.0)), T.RandomHorizontalFlip(),
                                    T.ColorJitter(0.2, 0.2, 0.2, 0.02), T.ToTensor(), T.Normalize(mean, std)])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        with Image.open(self.paths[i]) as image:
            tensor = self.transform(image.convert("RGB"))
        return tensor, torch.zeros(N_FINE), torch.zeros(N_SUPER)


def loaders(paths: list[str], size: int, batch: int, workers: int, cache_dir: Path, device: torch.device,
            mean, std) -> dict[str, DataLoader]:
    """{'ours': cached frames + albumentations, 'naive': PIL + torchvision}, both shuffled like training."""
    n = len(paths)
    files = ImageCache(cache_dir, size).build(paths, workers=max(2, workers * 2))
    ours = FrameDataset(files, np.zeros((n, N_FINE), np.float32), np.zeros((n, N_SUPER), np.float32),
                        train_transform(size, mean, std))
    naive = DataLoader(NaiveFrames(paths, size, mean, std), batch_size=batch, shuffle=True, drop_last=True,
                       num_workers=workers)
    return {"ours": make_loader(ours, batch, True, workers, device, sampler=EpochSampler(n, seed=0)), "naive": naive}


def loader_throughput(loader: DataLoader) -> float:
    """Images/s of one pass over the loader with no model."""
    start, seen = time.perf_counter(), 0
    for images, _, _ in loader:
        seen += len(images)
    return seen / (time.perf_counter() - start)


def epoch_throughput(backbone: str, loader: DataLoader, variant: Variant, device: torch.device,
                     model_kwargs: dict | None = None, profile: dict | None = None, naive: bool = False) -> float:
    """Images/s of a training epoch (loader + step), measured by the training loop itself on the second
    epoch: the first pays one-off costs (kernel selection, allocator growth, page cache). Given a dict,
    `profile`, a third epoch runs under torch.profiler (its overhead touches no reported speed) and
    `profile` receives its summary. `naive`: torch's default (unfused) AdamW step, as the seeds ran it."""
    model = make_model(backbone, variant, device, model_kwargs)
    optimizer = (torch.optim.AdamW(model.parameters(), lr=1e-4) if naive  # the seed projects' unfused step
                 else make_optimizer("adamw", model.parameters(), 1e-4, 0.05, device))
    scheduler = type("NoSchedule", (), {"step_update": lambda self, step: None})()
    loss_fn = FathomLoss(np.ones(N_FINE, np.float32)).to(device)
    precision = Precision.decide(variant.amp, device)

    def epoch():
        return train_one_epoch(model, loader, loss_fn, optimizer, scheduler, precision, 0,
                               channels_last=variant.channels_last, progress=False)[0]["train_images_per_s"]

    speed = [epoch() for _ in range(2)][-1]
    if profile is not None:
        start = time.perf_counter()
        with torch.profiler.profile() as profiler:
            epoch()
        profile.update(profile_summary(profiler, time.perf_counter() - start))
    return speed


def profile_summary(profiler, epoch_s: float, top: int = 8) -> dict:
    """Where a profiled epoch's time went: the share spent waiting for the loader's next batch, and
    the ops with the most self time (ms)."""
    events = profiler.key_averages()
    wait_us = sum(e.cpu_time_total for e in events if e.key.startswith("enumerate(DataLoader)"))
    ops = sorted((e for e in events if not e.key.startswith("enumerate(DataLoader)")),
                 key=lambda e: -e.self_cpu_time_total)[:top]
    return {"epoch_s": epoch_s, "data_wait_share": wait_us / 1e6 / epoch_s,
            "top_ops_ms": {e.key: e.self_cpu_time_total / 1e3 for e in ops}}


def peak_rss_mib(pid: int) -> float | None:
    """VmHWM of a running process: the high-water mark of its own memory since exec. (A child's
    ru_maxrss is useless here: Linux carries the parent's mark over fork and exec.)"""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return next((int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM:")), None)


def run_polled(command: list[str]) -> tuple[float, float]:
    """Run `command` in a child polled every 0.1 s; returns (its peak RSS in MiB, wall seconds). The
    high-water mark only rises, so the last reading is the peak up to the child's exit."""
    start, peak = time.perf_counter(), 0.0
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a chatty child can never block on it
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
        while proc.poll() is None:
            peak = max(peak, peak_rss_mib(proc.pid) or 0.0)
            time.sleep(0.1)
        if proc.returncode:
            log.seek(0)
            raise RuntimeError(f"{' '.join(command[2:5])} failed: {log.read().decode()[-500:]}")
    return peak, time.perf_counter() - start


def train_command(data: Path, folds: Path, config: str, backbone: str, runs: str, overrides: list[str]) -> list[str]:
    """`python -m fathom train` of one backbone on fold 0."""
    return [sys.executable, "-m", "fathom", "train", "--data", str(data), "--folds", str(folds), "--config", config,
            "--backbone", backbone, "--fold", "0", "--runs", runs, *overrides]


def training_peak_rss(data: Path, folds: Path, config: str, backbone: str, overrides: list[str]) -> float:
    """Peak resident memory (MiB) of `python -m fathom train` for one backbone and one fold."""
    with tempfile.TemporaryDirectory() as runs:
        return run_polled(train_command(data, folds, config, backbone, runs, overrides))[0]


def machine() -> dict:
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def bench_backbone(backbone: str, size: int, cfg: TrainConfig, paths: list[str], batch: int, repeats: int,
                   device: torch.device, compile_too: bool, peaks: dict[str, float]) -> dict:
    """Every measurement of one backbone at one image size (see the module docstring)."""
    own = cfg.for_backbone(backbone)  # its by_backbone precision and model_kwargs, as training uses them
    profile = {}
    kwargs = own.model_kwargs
    reference = FathomNet(backbone, pretrained=False, model_kwargs=kwargs)
    flops, data = forward_flops(reference, size), reference.data_config()
    steps = []
    for variant in variants(device, compile_too):
        train = step_throughput(backbone, size, batch, variant, device, True, repeats, kwargs)
        infer = step_throughput(backbone, size, batch, variant, device, False, repeats, kwargs)
        peak = peaks["fp32" if variant.amp == "fp32" else variant.amp]
        steps.append({"variant": variant.name, "train_img_s": train, "infer_img_s": infer,
                      "train_gflop_s": 3 * flops * train / 1e9, "train_peak_share": 3 * flops * train / 1e9 / peak})
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        pair = loaders(paths, size, batch, own.workers, Path(cache), device, data["mean"], data["std"])
        cache_s = time.perf_counter() - start
        ours_variant = Variant(Precision.decide(own.amp, device).name, own.channels_last)
        row = {"backbone": backbone, "size": size, "batch": batch, "images": len(paths), "workers": own.workers,
               "forward_gflop": flops / 1e9, "steps": steps, "cache_build_s": cache_s,
               "loader_ours_img_s": loader_throughput(pair["ours"]),
               "loader_naive_img_s": loader_throughput(pair["naive"]),
               "ours_variant": ours_variant.name,
               "epoch_ours_img_s": epoch_throughput(backbone, pair["ours"], ours_variant, device, kwargs,
                                                    profile=profile),
               "epoch_naive_img_s": epoch_throughput(backbone, pair["naive"], Variant("fp32", False), device, kwargs,
                                                     naive=True)}
    row["speedup"] = row["epoch_ours_img_s"] / row["epoch_naive_img_s"]
    row["profile_ours"] = profile
    row["loader_over_step"] = row["loader_ours_img_s"] / next(s["train_img_s"] for s in steps
                                                              if s["variant"] == ours_variant.name)
    return row


def run_speed_bench(dataset, cfg: TrainConfig, backbones: list[str], sizes: list[int], n_images: int,
                    repeats: int, compile_too: bool, device: torch.device | None = None) -> dict:
    """The whole speed benchmark: machine, matmul peaks, one row per (backbone, size)."""
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    peaks = {"fp32": matmul_peak(torch.float32, device)}
    peaks["fp16" if device.type == "cuda" else "bf16"] = matmul_peak(
        torch.float16 if device.type == "cuda" else torch.bfloat16, device)
    if device.type == "cuda":
        peaks["bf16"] = matmul_peak(torch.bfloat16, device)
    paths = list(dataset.train["path"][:n_images])
    rows = [bench_backbone(b, size, cfg, paths, cfg.batch_size if size <= 128 else max(8, cfg.batch_size // 2),
                           repeats, device, compile_too, peaks)
            for size in sizes for b in backbones]
    return {"machine": machine(), "device": str(device), "matmul_peak_gflop_s": peaks, "rows": rows}
