"""Write a complete Kaggle-layout demo folder: labels, COCO json, images, and the eval solution."""

from __future__ import annotations

import json
import shutil
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
from PIL import Image

from fathom import constants as C
from fathom.atomic import atomic_path, write_csv, write_json
from fathom.demo.dives import (HD, TRAIN_PLATFORMS, Dive, assign, camera, dive_sizes, eval_frame_dives,
                               make_dives)
from fathom.demo.labels import TRAIN_MAX_DEPTH, LabelModel
from fathom.demo.scenes import render
from fathom.demo.shapes import FAMILIES, Species
from fathom.demo.worlds import DEFAULT_WORLD, WORLDS, World
from fathom.errors import DataError

# Fine categories per super-category, largest family first: the real competition's family sizes.
FAMILY_SIZES = [46, 36, 23, 22, 22, 17, 16, 15, 14, 12, 12, 10, 10, 8, 7, 7, 6, 3, 3, 1]
DEMO_VERSION = 3  # bump when the rendered output changes, so cached demo folders are rebuilt
MARKER = "demo.json"
URL = "https://demo.invalid/fathom/framegrabs/"  # demo images are local; the url mirrors the real layout

# (width, height) of a platform's frames as a share of --size: HD cameras film 16:9, the others ~720x368
# in train's years and 720x486 in eval's.
HD_FRAME = (1.0, 9 / 16)
SD_FRAME = {"train": (0.6, 0.6 * 368 / 720), "eval": (0.6, 0.6 * 486 / 720)}


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


def frame_size(size: int, dive: Dive, split: str) -> tuple[int, int]:
    w, h = HD_FRAME if dive.platform in HD else SD_FRAME[split]
    return max(16, int(round(w * size))), max(16, int(round(h * size)))


def image_uuid(rng: np.random.Generator) -> str:
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


class PngWriter:
    """Saves frames on one background thread while the next frame renders: PNG encoding (Pillow releases
    the GIL) was ~45% of rendering the demo. At most `pending` frames wait in memory; the first failed save
    is raised by `save` or `close`. Only where and when a frame is written changes, never its bytes."""

    def __init__(self, pending: int = 4):
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-png")
        self.waiting: deque[Future] = deque()
        self.pending = pending

    def save(self, picture: Image.Image, path: Path) -> None:
        self.waiting.append(self.pool.submit(save_png, picture, path))
        while len(self.waiting) > self.pending:
            self.waiting.popleft().result()

    def close(self) -> None:
        try:
            while self.waiting:
                self.waiting.popleft().result()
        finally:
            self.pool.shutdown(cancel_futures=True)


def save_png(picture: Image.Image, path: Path) -> None:
    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG", compress_level=1)


def make_split(rng, model: LabelModel, looks, frame_dives: list[Dive], size: int, images_dir: Path, split: str,
               writer: PngWriter, world: World):
    """Render one frame per entry of `frame_dives`; returns COCO images, annotations and (id, categories,
    osd) rows. A frame's depth comes from its dive; train dives stop at TRAIN_MAX_DEPTH, eval's span all
    depths, and frames deeper than that are out-of-sample (fathom.demo.worlds: what else tells them apart)."""
    images, annotations, labels = [], [], []
    shifted = split == "eval"
    crowding, lower = (world.eval_crowding, world.eval_lower) if shifted else (1.0, 0.0)
    for image_id, dive in enumerate(frame_dives, start=1):
        depth = dive.frame_depth(rng)
        categories = model.draw(rng, depth, shifted=shifted, habitat=dive.habitat, world=world)
        animals = [c for c in categories for _ in range(model.instances(rng, c, crowding))]
        animals = [animals[i] for i in rng.permutation(len(animals))]
        strangers = [Species.unknown(int(rng.integers(0, 1 << 16)), float(rng.uniform()))
                     for _ in range(model.unknown_creatures(rng, depth, shifted, world))]
        width, height = frame_size(size, dive, split)
        picture, boxes = render(rng, width, height, [looks[c] for c in animals] + strangers, depth, dive.light,
                                dive.tint, world, lower)
        if dive.new_camera and world.new_camera:
            picture = camera(picture, rng)
        name = image_uuid(rng)
        writer.save(picture, images_dir / f"{name}.png")
        url = f"{URL}{quote(dive.platform)}/images/{dive.number:04d}/{name}.png"
        images.append({"id": image_id, "width": width, "height": height, "file_name": f"{name}.png", "license": 0,
                       "flickr_url": url, "coco_url": url, "date_captured": dive.date(rng)})
        for n_box, bbox in boxes[:len(animals)]:  # the strangers come last and have no category
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": float(animals[n_box]), "segmentation": [],
                                "area": round(bbox[2] * bbox[3], 1), "bbox": bbox, "iscrowd": 0})
        labels.append((name, categories, int(depth > TRAIN_MAX_DEPTH)))
    return images, annotations, labels


def coco(images, annotations, table: pd.DataFrame) -> dict:
    categories = [{"id": int(i), "name": n, "supercategory": s} for i, n, s in table.itertuples(index=False)]
    return {"images": images, "annotations": annotations, "categories": categories}


def is_demo_leftover(folder: Path) -> bool:
    """Whether everything in `folder` is something make_demo writes: an empty folder, or one a killed or
    failed build left without its marker (images only, some label files), which is rebuilt."""
    own = {MARKER, C.IMAGES_DIR, C.CATEGORY_KEY, C.SAMPLE_SUBMISSION, C.SOLUTION_CSV,
           *(Path(name).parts[0] for name in (C.TRAIN_CSV, C.TRAIN_JSON, C.EVAL_JSON))}
    return all(entry.name in own or entry.name.startswith(f".{MARKER}.") for entry in folder.iterdir())


def make_demo(out: str | Path, n_train: int = 800, n_eval: int = 400, size: int = 640, seed: int = 0,
              force: bool = False, world: str = DEFAULT_WORLD) -> bool:
    """Build the demo folder in one of fathom.demo.worlds.WORLDS; returns False (and does nothing) when it is
    already up to date."""
    out = Path(out)
    if world not in WORLDS:
        raise DataError(out, f"unknown demo world {world!r}", hint=f"one of {', '.join(WORLDS)}")
    params = {"version": DEMO_VERSION, "n_train": n_train, "n_eval": n_eval, "size": size, "seed": seed,
              "world": world}
    marker = out / MARKER
    if marker.is_file() and not force and json.loads(marker.read_text()) == params:
        return False
    if out.exists() and not marker.is_file() and not is_demo_leftover(out):
        raise DataError(out, "folder is not empty and holds no demo data", hint="choose a new folder for --out")
    marker.unlink(missing_ok=True)  # the folder is incomplete until the marker is written again
    shutil.rmtree(out / C.IMAGES_DIR, ignore_errors=True)
    rng = np.random.default_rng(seed)
    table, looks = category_table()
    model = LabelModel.sample(rng)
    images_dir = out / C.IMAGES_DIR
    images_dir.mkdir(parents=True, exist_ok=True)
    sizes = dive_sizes(rng, n_train)
    train_dives = make_dives(rng, sizes, TRAIN_PLATFORMS, False, len(model.others), first_number=1)
    eval_dives = eval_frame_dives(rng, train_dives, sizes, n_eval, len(model.others))
    writer = PngWriter()
    try:
        train_images, train_boxes, train_labels = make_split(rng, model, looks, assign(rng, train_dives, sizes),
                                                             size, images_dir, "train", writer, WORLDS[world])
        eval_images, _, eval_labels = make_split(rng, model, looks, eval_dives, size, images_dir, "eval", writer,
                                                 WORLDS[world])
    finally:
        writer.close()  # every frame is on disk before the labels and the marker are written

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
