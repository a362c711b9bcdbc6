"""`python -m fathom bench scale`: how one backbone's training time and memory grow with the number of
images and with the image size.

Each point renders a demo dataset of that many training images (same seed, 320-px frames, a fixed
eval set), builds 5 folds, and runs `python -m fathom train` on fold 0 for one epoch in a child
process polled for its peak RSS. Reported per point: the child's wall seconds (start-up, image cache,
one epoch, validation and eval predictions), the fold's own seconds (done.json: model, epoch and
predictions, without start-up and cache), training images/s, peak RSS and the cache's size on disk.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from fathom.bench.speed import run_polled, train_command
from fathom.data.layout import load_dataset
from fathom.demo.make import make_demo
from fathom.folds import make_folds, write_folds
from fathom.runs import Experiment


def folder_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def measure_point(data: Path, config: str, backbone: str, size: int, work: Path) -> dict:
    """One child training run: fold 0 of `data`, one epoch at `size` px, in a fresh runs and cache folder."""
    dataset = load_dataset(data)
    work.mkdir(parents=True)
    folds = work / "folds.csv"
    write_folds(make_folds(dataset.train, dataset.categories, n_folds=5, seed=42), folds)
    runs, cache = work / "runs", work / "cache"
    peak, wall = run_polled(train_command(data, folds, config, backbone, str(runs),
                                          ["epochs=1", f"image_size={size}", f"cache_dir={cache}"]))
    fold = next(fold for exp in runs.iterdir()
                for fold in Experiment(runs, exp.name).finished_folds().get(backbone, []))
    metrics = pd.read_csv(fold.metrics)
    return {"images": len(dataset.train), "size": size, "wall_s": wall,
            "fold_s": fold.done().seconds,
            "train_img_s": float(metrics["train_images_per_s"].iloc[-1]), "peak_rss_mib": peak,
            "cache_mib": folder_mib(cache)}


def run_scale_bench(config: str, backbone: str, counts: list[int], sizes: list[int], n_eval: int = 100,
                    work: Path | None = None) -> dict:
    """Points over `counts` at the first size, and over the other `sizes` at the first count."""
    points = [(n, sizes[0]) for n in counts] + [(counts[0], s) for s in sizes[1:]]
    rows = []
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        for n, size in points:
            data = Path(tmp) / f"demo{n}"
            make_demo(data, n_train=n, n_eval=n_eval, seed=0)  # a no-op when this count is already rendered
            rows.append(measure_point(data, config, backbone, size, Path(tmp) / f"work{n}_{size}"))
    return {"backbone": backbone, "config": config, "n_eval": n_eval, "rows": rows}


def plot_scale(result: dict, path: Path) -> None:
    """Log-log panels of wall and fold seconds against images and against image size, each with peak RSS
    on a linear axis from 0 (a fixed ~1 GiB of interpreter and libraries dominates it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator, ScalarFormatter

    from fathom.atomic import atomic_path

    rows = pd.DataFrame(result["rows"])
    by_images = rows[rows["size"] == rows["size"].iloc[0]].sort_values("images")
    by_size = rows[rows["images"] == rows["images"].iloc[0]].sort_values("size")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, part, x, label in ((axes[0], by_images, "images", "training images"),
                               (axes[1], by_size, "size", "image size (px)")):
        ax.loglog(part[x], part["wall_s"], "o-", label="wall s (whole command)")
        ax.loglog(part[x], part["fold_s"], "s-", label="fold s (1 epoch + predictions)")
        ax.set_xlabel(label)
        ax.set_ylabel("seconds (log)")
        ax.xaxis.set_major_locator(FixedLocator(part[x].tolist()))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.grid(True, which="both", alpha=0.3)
        twin = ax.twinx()
        twin.plot(part[x], part["peak_rss_mib"], "^--", color="tab:red", label="peak RSS MiB")
        twin.set_ylim(0, part["peak_rss_mib"].max() * 1.15)
        twin.set_ylabel("peak RSS (MiB, linear)", color="tab:red")
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(f"{result['backbone']} ({result['config']} config): one epoch of fold 0")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
