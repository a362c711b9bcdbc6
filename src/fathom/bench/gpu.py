"""`python -m fathom bench gpu` (`bash run.sh gpu-check`): the CUDA numbers a Kaggle user plans by, in one
command sized for a short lease (about 5 minutes on one modern GPU with the defaults).

1. The GPU guard's verdict and the matmul peaks (fp16, bf16).
2. Each backbone's training and inference step at `size` px (384: the full config's) with channels_last
   under fp16 and bf16 AMP, and compiled (torch.compile, fp16) with `--compile`; a variant that fails
   (out of memory, no compiler) is a row with its error, not a failed check.
3. A short real-size training: demo frames rendered at 1920x1080 (and the ROV cameras' smaller size),
   `sampling: crops` from a JPEG cache at long side 960, one epoch of one fold of resnet18, then its tiled
   prediction; with the crop loader's own rate next to the training step's, the "is the loader fast
   enough" question answered on that machine.

It also runs on a CPU at tiny sizes (the tests do), so the command is known to work before a GPU is lent.
The result goes to JSON and, with `--benchmarks FILE`, into FILE between the GPU-check markers.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from fathom.bench.cache import crop_sampler
from fathom.bench.speed import Variant, machine, matmul_peak, step_throughput
from fathom.bench.tables import markdown_table
from fathom.config import load_config
from fathom.data.sampling import sampling_for
from fathom.data.layout import load_dataset
from fathom.demo.make import make_demo
from fathom.device import choose_device, require_gpu
from fathom.folds import make_folds

BEGIN, END = "<!-- gpu-check: begin -->", "<!-- gpu-check: end -->"


def step_variants(device: torch.device, compile_too: bool) -> list[Variant]:
    found = [Variant("fp16", True), Variant("bf16", True)] if device.type == "cuda" else [Variant("bf16", True)]
    return found + ([Variant(found[0].amp, True, compile=True)] if compile_too else [])


def measure_steps(backbones: list[str], size: int, batch: int, repeats: int, device: torch.device,
                  compile_too: bool) -> list[dict]:
    rows = []
    for backbone in backbones:
        for variant in step_variants(device, compile_too):
            row = {"backbone": backbone, "size": size, "batch": batch, "variant": variant.name}
            try:
                row["train_img_s"] = step_throughput(backbone, size, batch, variant, device, True, repeats)
                row["infer_img_s"] = step_throughput(backbone, size, batch * 2, variant, device, False, repeats)
            except Exception as err:  # an OOM or a missing compiler is a result to record, not a crash
                row["error"] = f"{err.__class__.__name__}: {str(err).splitlines()[0][:160]}"
            if device.type == "cuda":
                torch.cuda.empty_cache()
            rows.append(row)
    return rows


class CropSamples(Dataset):
    """Training-like crop samples of cached frames (read, cut, transform), for the loader's own rate."""

    def __init__(self, files: list[Path], crop_size: int, image_size: int, n: int):
        self.files, self.sample, self.n = files, crop_sampler(crop_size, image_size), n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return self.sample(self.files[i % len(self.files)])


def loader_rate(files: list[Path], crop_size: int, image_size: int, batch: int, workers: int, n: int) -> float:
    loader = DataLoader(CropSamples(files, crop_size, image_size, n), batch_size=batch, num_workers=workers)
    start, seen = time.perf_counter(), 0
    for images in loader:
        seen += len(images)
    return seen / (time.perf_counter() - start)


def real_size_training(work: Path, frames: int, size: int, crop_size: int, batch: int, workers: int,
                       device: torch.device) -> dict:
    """One epoch of one resnet18 fold on 1920x1080 demo frames with crops from a JPEG cache, and its
    tiled prediction; timings from the run's own records."""
    from fathom.train.run import train

    make_demo(work / "data", n_train=frames, n_eval=max(4, frames // 4), size=1920, seed=0)
    dataset = load_dataset(work / "data")
    folds = make_folds(dataset.train, dataset.categories, n_folds=2, seed=0)
    cfg = load_config("full", ["backbones=[resnet18]", "pretrained=false", "sampling=crops", "cache_format=jpeg",
                               "epochs=1", "folds=[0]", f"image_size={size}", f"crop_size={crop_size}",
                               f"batch_size={batch}", f"workers={workers}", "ema=false", "patience=0",
                               f"cache_dir={work / 'cache'}", f"device={device.type}", "tta_hflip=false"])
    start = time.perf_counter()
    files = sampling_for(cfg).cache().build(list(dataset.train["path"]))  # the JPEG cache training reads
    cache_s = time.perf_counter() - start
    start = time.perf_counter()
    train(cfg, dataset, folds, work / "runs")
    fold = work / "runs" / "full" / "resnet18" / "fold_0"
    metrics = pd.read_csv(fold / "metrics.csv")
    done = json.loads((fold / "done.json").read_text())
    return {"frames": len(dataset.train) + len(dataset.eval), "size": size, "crop_size": crop_size, "batch": batch,
            "workers": workers,
            "cache_jpeg_s": cache_s, "train_command_s": time.perf_counter() - start, "fold_s": done["seconds"],
            "epoch_train_img_s": float(metrics["train_images_per_s"].iloc[-1]),
            "loader_crops_s": loader_rate(files, crop_size, size, batch, workers, n=max(4 * batch, 64)),
            "frame_sizes": sorted({f"{w}x{h}" for w, h in zip(dataset.train["width"], dataset.train["height"])})}


def run_gpu_check(backbones: list[str], size: int, batch: int, repeats: int, compile_too: bool, frames: int,
                  workers: int, crop_size: int = 384, work: Path | None = None) -> dict:
    device = choose_device("auto")
    verdict = require_gpu() if device.type == "cuda" else "no CUDA GPU: measured on the CPU"
    peaks = {name: matmul_peak(dtype, device) for name, dtype in
             ([("fp16", torch.float16), ("bf16", torch.bfloat16)] if device.type == "cuda" else
              [("bf16", torch.bfloat16)])}
    steps = measure_steps(backbones, size, batch, repeats, device, compile_too)
    with tempfile.TemporaryDirectory(dir=work) as scratch:
        training = real_size_training(Path(scratch), frames, size, crop_size, batch, workers, device)
    return {"machine": machine(), "device": str(device), "verdict": verdict, "matmul_peak_gflop_s": peaks,
            "steps": steps, "training": training}


def gpu_tables(result: dict) -> str:
    m, t = result["machine"], result["training"]
    peaks = ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in result["matmul_peak_gflop_s"].items())
    steps = markdown_table(["backbone", "px", "batch", "variant", "train img/s", "infer img/s"],
                           [[r["backbone"], r["size"], r["batch"], r["variant"], r.get("train_img_s", "-"),
                             r.get("infer_img_s", r.get("error", "-"))] for r in result["steps"]])
    run = markdown_table(["frames", "px", "batch", "workers", "JPEG cache s", "train command s", "epoch img/s",
                          "crop loader img/s", "loader / epoch"],
                         [[t["frames"], t["size"], t["batch"], t["workers"], t["cache_jpeg_s"], t["train_command_s"],
                           t["epoch_train_img_s"], t["loader_crops_s"],
                           f"{t['loader_crops_s'] / t['epoch_train_img_s']:.2f}x"]])
    return "\n".join([
        f"Device: {result['device']} ({result['verdict']}); {m['cores']} CPU cores, torch {m['torch']}; "
        f"matmul peak {peaks}.", "", "Model step alone (channels_last; batch in memory):", "", steps, "",
        f"A short real-size training (resnet18, {t['crop_size']}-px crops from a JPEG cache at long side 960, frames "
        f"{', '.join(t['frame_sizes'])}; one epoch of fold 0, then its tiled prediction):", "", run, ""])


def write_into(benchmarks: Path, section: str) -> None:
    """Replace what lies between the GPU-check markers of `benchmarks` with `section`."""
    text = benchmarks.read_text()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{benchmarks}: no {BEGIN} ... {END} markers")
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    benchmarks.write_text(pattern.sub(lambda _: f"{BEGIN}\n{section}\n{END}", text, count=1))
