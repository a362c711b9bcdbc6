"""Write a complete Kaggle-layout demo folder: labels, COCO json, images, and the eval solution."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from fathom import constants as C
from fathom.atomic import atomic_path, write_csv, write_json
from fathom.demo.labels import TRAIN_MAX_DEPTH, LabelModel
from fathom.demo.scenes import render
from fathom.demo.shapes import FAMILIES, Species
from fathom.errors import DataError

# Fine categories per super-category, largest family first: the real competition's family sizes.
FAMILY_SIZES = [46, 36, 23, 22, 22, 17, 16, 15, 14, 12, 12, 10, 10, 8, 7, 7, 6, 3, 3, 1]
DEMO_VERSION = 2  # bump when the rendered output changes, so cached demo folders are rebuilt
MARKER = "demo.json"
URL = "https://demo.invalid/fathom/images/"  # demo images are local; the url only mirrors the layout

# (width, height) of the two frame kinds as a share of --size, and how often each occurs.
TRAIN_FRAMES = [((1.0, 9 / 16), 0.6), ((0.6, 0.6 * 368 / 720), 0.4)]
EVAL_FRAMES = [((1.0, 9 / 16), 0.6), ((0.6, 0.6 * 486 / 720), 0.4)]


def category_table() -> tuple[pd.DataFrame, dict[int, Species]]:
    """category_key.csv rows (id, name, supercat) and each id's look."""
    rows, looks = [], {}
    next_id = 1
    for family, count in enumerate(FAMILY_SIZES):
        name = FAMILIES[family][0]
        for variant in range(count):
            rows.append((next_id, f"{name} {variant + 1:02d}", name))
            looks[next_id] = Species.of(family, variant)
            next_id += 1
    assert next_id - 1 == C.N_FINE
    return pd.DataFrame(rows, columns=["id", "name", "supercat"]), looks


def frame_size(rng: np.random.Generator, size: int, frames) -> tuple[int, int]:
    shapes, weights = zip(*frames)
    w, h = shapes[rng.choice(len(shapes), p=weights)]
    return max(16, int(round(w * size))), max(16, int(round(h * size)))


def image_uuid(rng: np.random.Generator) -> str:
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def make_split(rng, model: LabelModel, looks, n: int, size: int, images_dir: Path, split: str):
    """Render n images; returns COCO images, annotations and (id, categories, osd) rows.
    Train depths stop at TRAIN_MAX_DEPTH; eval spans all depths, and deeper frames are out-of-sample."""
    images, annotations, labels = [], [], []
    for image_id in range(1, n + 1):
        depth = rng.uniform(0, TRAIN_MAX_DEPTH if split == "train" else 1.0)
        categories = model.draw(rng, depth, shifted=split == "eval")
        animals = [c for c in categories for _ in range(model.instances(rng, c))]
        animals = [animals[i] for i in rng.permutation(len(animals))]
        width, height = frame_size(rng, size, TRAIN_FRAMES if split == "train" else EVAL_FRAMES)
        picture, boxes = render(rng, width, height, [looks[c] for c in animals], depth)
        name = image_uuid(rng)
        with atomic_path(images_dir / f"{name}.png") as tmp:
            picture.save(tmp, format="PNG", compress_level=1)
        images.append({"id": image_id, "width": width, "height": height, "file_name": f"{name}.png", "license": 0,
                       "flickr_url": URL + f"{name}.png", "coco_url": URL + f"{name}.png",
                       "date_captured": "2023-01-01 00:00:00"})
        for n_box, bbox in boxes:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": float(animals[n_box]), "segmentation": [],
                                "area": round(bbox[2] * bbox[3], 1), "bbox": bbox, "iscrowd": 0})
        labels.append((name, categories, int(depth > TRAIN_MAX_DEPTH)))
    return images, annotations, labels


def coco(images, annotations, table: pd.DataFrame) -> dict:
    categories = [{"id": int(i), "name": n, "supercategory": s} for i, n, s in table.itertuples(index=False)]
    return {"images": images, "annotations": annotations, "categories": categories}


def make_demo(out: str | Path, n_train: int = 800, n_eval: int = 400, size: int = 640, seed: int = 0,
              force: bool = False) -> bool:
    """Build the demo folder; returns False (and does nothing) when it is already up to date."""
    out = Path(out)
    params = {"version": DEMO_VERSION, "n_train": n_train, "n_eval": n_eval, "size": size, "seed": seed}
    marker = out / MARKER
    if marker.is_file() and not force and json.loads(marker.read_text()) == params:
        return False
    if out.exists() and any(out.iterdir()) and not marker.is_file():
        raise DataError(out, "folder is not empty and holds no demo data", hint="choose a new folder for --out")
    marker.unlink(missing_ok=True)  # the folder is incomplete until the marker is written again
    shutil.rmtree(out / C.IMAGES_DIR, ignore_errors=True)
    rng = np.random.default_rng(seed)
    table, looks = category_table()
    model = LabelModel.sample(rng)
    images_dir = out / C.IMAGES_DIR
    images_dir.mkdir(parents=True, exist_ok=True)
    train_images, train_boxes, train_labels = make_split(rng, model, looks, n_train, size, images_dir, "train")
    eval_images, _, eval_labels = make_split(rng, model, looks, n_eval, size, images_dir, "eval")

    write_csv(table, out / C.CATEGORY_KEY)
    write_csv(pd.DataFrame({"id": [name for name, _, _ in train_labels],
                            "categories": [str([float(c) for c in cats]) for _, cats, _ in train_labels]}),
              out / C.TRAIN_CSV)
    write_json(coco(train_images, train_boxes, table), out / C.TRAIN_JSON)
    write_json(coco(eval_images, [], table), out / C.EVAL_JSON)
    write_csv(pd.DataFrame({"id": [name for name, _, _ in eval_labels[:2]],
                            "categories": ["1 146 10 12 44 210", "17 82 251"][: min(2, n_eval)],
                            "osd": [0.1, 0.9][: min(2, n_eval)]}), out / C.SAMPLE_SUBMISSION)
    write_csv(pd.DataFrame({"id": [name for name, _, _ in eval_labels],
                            "categories": [" ".join(map(str, cats)) for _, cats, _ in eval_labels],
                            "osd": [deep for _, _, deep in eval_labels]}), out / C.SOLUTION_CSV)
    write_json(params, marker)
    return True
