"""Exploratory tables and plots of a competition folder (`notebooks/01_eda.ipynb` shows them).

Everything here reads labels, boxes and frame sizes only, except `show_samples`, which draws
images that exist; so the EDA runs on the real label files before any image is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fathom.data.layout import Dataset

FULL_SIZE = 1 << 16  # open_rgb's at_least that never decodes a reduced JPEG

MODEL_SIDE = 384  # the `full` config's input side: what a box shrinks to is shown against it


def category_counts(ds: Dataset) -> pd.DataFrame:
    """Every category (all 290 on real data) with the number of training images that hold it, most first."""
    held = pd.Series([c for cats in ds.train["categories"] for c in cats], dtype=int).value_counts()
    table = ds.categories.table[["id", "name", "supercat"]].copy()
    table["images"] = table["id"].map(held).fillna(0).astype(int)
    return table.sort_values(["images", "id"], ascending=[False, True], ignore_index=True)


def supercat_counts(ds: Dataset) -> pd.DataFrame:
    """Per super-category: training images holding it and how many of its fine categories train shows."""
    counts = category_counts(ds)
    names = ds.categories.super_names
    images = pd.Series([names[s] for sups in ds.train["supercats"] for s in sups]).value_counts()
    table = counts.groupby("supercat").agg(categories=("id", "size"), in_train=("images", lambda n: int((n > 0).sum())))
    table["images"] = table.index.map(images).fillna(0).astype(int)
    return table.sort_values("images", ascending=False).reset_index()


def labels_per_image(ds: Dataset) -> pd.Series:
    """How many training images carry 1, 2, ... labels."""
    return ds.train["categories"].map(len).value_counts().sort_index().rename_axis("labels").rename("images")


def frame_sizes(ds: Dataset) -> pd.DataFrame:
    """Image count per frame size (width x height) and split: the test frames come from other cameras too."""
    frames = pd.concat([ds.train.assign(split="train"), ds.eval.assign(split="eval")])
    frames["size"] = frames["width"].astype(str) + "x" + frames["height"].astype(str)
    return pd.crosstab(frames["size"], frames["split"]).sort_values("train", ascending=False)


def box_sizes(ds: Dataset, boxes: pd.DataFrame) -> pd.DataFrame:
    """Each box's side sqrt(w*h) in original pixels and in pixels of a MODEL_SIDE whole-frame input."""
    frames = ds.train.set_index("id")[["width", "height"]]
    out = boxes.join(frames, on="id")
    out["side"] = np.sqrt(out["w"] * out["h"])
    out["side_at_model"] = out["side"] * MODEL_SIDE / out[["width", "height"]].max(axis=1)
    return out


def facts(ds: Dataset, boxes: pd.DataFrame) -> dict:
    """The numbers that shape the solution, in one dict."""
    counts, per_image = category_counts(ds), ds.train["categories"].map(len)
    sizes = box_sizes(ds, boxes)
    return {
        "train_images": len(ds.train), "eval_images": len(ds.eval),
        "categories": len(counts), "categories_in_train": int((counts["images"] > 0).sum()),
        "categories_under_5_images": int(((counts["images"] > 0) & (counts["images"] < 5)).sum()),
        "top_category_share": float(counts["images"].iloc[0] / len(ds.train)),
        "labels_per_image_mean": float(per_image.mean()), "labels_per_image_max": int(per_image.max()),
        "boxes": len(boxes), "median_box_side_px": float(sizes["side"].median()),
        "median_box_side_at_model_px": float(sizes["side_at_model"].median()),
    }


def plot_long_tail(ds: Dataset):
    """Training images per category, ranked, on a log scale."""
    import matplotlib.pyplot as plt

    counts = category_counts(ds)
    present = counts[counts["images"] > 0]
    fig, ax = plt.subplots(figsize=(9, 3.5))
    ax.bar(np.arange(len(present)), present["images"], width=1.0, color="tab:blue")
    ax.set(yscale="log", xlabel="category rank", ylabel="training images",
           title=f"{len(present)} of {len(counts)} categories occur in train; top: {present['name'].iloc[0]} "
                 f"({present['images'].iloc[0] / len(ds.train):.0%} of images)")
    fig.tight_layout()
    return fig


def plot_supercats(ds: Dataset):
    import matplotlib.pyplot as plt

    table = supercat_counts(ds)
    fig, ax = plt.subplots(figsize=(9, 3.5))
    ax.barh(table["supercat"], table["images"], color="tab:green")
    ax.invert_yaxis()
    ax.set(xscale="log", xlabel="training images", title="super-categories")
    fig.tight_layout()
    return fig


def plot_box_sizes(ds: Dataset, boxes: pd.DataFrame):
    """Histogram of box sides, in the original frame and after resizing the frame to MODEL_SIDE."""
    import matplotlib.pyplot as plt

    sizes = box_sizes(ds, boxes)
    fig, ax = plt.subplots(figsize=(9, 3.5))
    bins = np.logspace(0, np.log10(max(2.0, sizes["side"].max())), 40)
    ax.hist(sizes["side"], bins=bins, alpha=0.6, label=f"original frame (median {sizes['side'].median():.0f} px)")
    ax.hist(sizes["side_at_model"], bins=bins, alpha=0.6,
            label=f"whole frame at {MODEL_SIDE} px (median {sizes['side_at_model'].median():.0f} px)")
    ax.set(xscale="log", xlabel="box side sqrt(w*h), px", ylabel="boxes", title=f"{len(sizes)} boxes")
    ax.legend()
    fig.tight_layout()
    return fig


def show_samples(ds: Dataset, boxes: pd.DataFrame, n: int = 6, seed: int = 0):
    """n random training frames that exist on disk, with their boxes and labels; None when there are none."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from fathom.data.images import open_rgb

    on_disk = ds.train[[Path(p).is_file() for p in ds.train["path"]]]
    if on_disk.empty:
        return None
    rows = on_disk.sample(min(n, len(on_disk)), random_state=seed)
    names = dict(zip(ds.categories.table["id"], ds.categories.table["name"]))
    cols = min(3, len(rows))
    n_rows = -(-len(rows) // cols)  # ceiling division
    fig, axes = plt.subplots(n_rows, cols, figsize=(4 * cols, 2.6 * n_rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (_, row) in zip(axes.flat, rows.iterrows()):
        ax.imshow(open_rgb(row["path"], FULL_SIZE))  # boxes are in the frame's own pixels: no draft
        for box in boxes[boxes["id"] == row["id"]].itertuples():
            ax.add_patch(Rectangle((box.x, box.y), box.w, box.h, fill=False, color="yellow", linewidth=1))
        ax.set_title(", ".join(names[c] for c in row["categories"])[:60], fontsize=8)
    fig.tight_layout()
    return fig
