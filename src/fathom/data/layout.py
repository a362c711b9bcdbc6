"""Load the Kaggle layout into one table per split.

Columns of a split table: id (the image uuid, = file_name stem, the submission's row id),
image_id (COCO integer id), file_name, path, width, height, platform and dive (from `coco_url`, see
`dive_of`), date_captured (as in the json, "" when absent), categories (list of fine ids, empty for
eval), supercats (list of super-category indices 0..19).
"""

from __future__ import annotations

import json
import math
import re
from urllib.parse import unquote
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fathom import constants as C
from fathom.data.categories import Categories, load_categories
from fathom.data.tables import read_text_csv
from fathom.errors import DataError

SPLIT_JSON = {"train": C.TRAIN_JSON, "eval": C.EVAL_JSON}
# .../framegrabs/Doc%20Ricketts/images/0297/03_50_15_04.png (also /staging/): platform, then dive number
DIVE_URL = re.compile(r"/([^/]+)/images/([^/]+)/[^/]+$")
COLUMNS = ["id", "image_id", "file_name", "path", "width", "height", "platform", "dive", "date_captured",
           "categories", "supercats"]


def dive_of(url: str) -> tuple[str, str]:
    """(platform, dive) of an image from its coco_url: ("Doc Ricketts", "Doc Ricketts/0297"). A url
    without that layout gives ("", ""): the image then counts as a dive of its own when folds are grouped."""
    match = DIVE_URL.search(url or "")
    if not match:
        return "", ""
    platform = unquote(match.group(1))
    return platform, f"{platform}/{match.group(2)}"


@dataclass(frozen=True)
class Dataset:
    """A competition folder: its categories and a table per split."""

    root: Path
    categories: Categories
    train: pd.DataFrame
    eval: pd.DataFrame


def load_dataset(
    root: str | Path,
    images_dir: str | Path | None = None,
    check_images: bool = True,
    allow_missing_images: bool = False,
    splits: tuple[str, ...] = ("train", "eval"),
) -> Dataset:
    """Read a competition folder. `check_images=False` reads labels only (e.g. to build folds)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "data folder not found", hint="run `bash run.sh` for the demo data or pass --data DIR")
    categories = load_categories(root / C.CATEGORY_KEY)
    images = Path(images_dir) if images_dir else root / C.IMAGES_DIR
    tables = {}
    for split in ("train", "eval"):
        if split not in splits:
            tables[split] = pd.DataFrame()
            continue
        table = load_split(root, split, categories, images)
        if table.empty:  # nothing to train on, or nothing to submit: every later stage would fail on it
            raise DataError(root / (C.TRAIN_JSON if split == "train" else C.EVAL_JSON), f"lists no {split} images",
                            hint="use the competition's files (or `python -m fathom demo-data`)")
        if check_images:  # a submission needs every eval image: only train images may be skipped
            from fathom.data.images import drop_or_raise_unusable  # the label-only stages never load PIL

            table = drop_or_raise_unusable(table, images, allow_missing_images and split == "train")
        tables[split] = table
    return Dataset(root, categories, tables["train"], tables["eval"])


def load_split(root: Path, split: str, categories: Categories, images_dir: Path) -> pd.DataFrame:
    """One split's table (see module docstring), labels checked against the category table. train.json's
    annotations are checked too, whoever loads it: a bad box stops every command, not only the crops."""
    path = root / SPLIT_JSON[split]
    data = read_json(path)
    images = read_coco_images(path, data)
    if split == "train":
        read_annotations(path, data, images, categories)
    images["path"] = [str(images_dir / name) for name in images["file_name"]]
    if split == "eval":
        images["categories"] = [[] for _ in range(len(images))]
    else:
        labels = read_train_csv(root / C.TRAIN_CSV, categories)
        images = attach_labels(images, labels, root / C.TRAIN_CSV)
    images["supercats"] = [sorted(set(categories.super_of(ids).tolist())) for ids in images["categories"]]
    return images[COLUMNS]


def parse_categories_cell(cell: str) -> list[int]:
    """`"[1.0, 9.0]"` -> [1, 9]. Raises ValueError with the reason on anything else."""
    text = cell.strip()
    if not (text.startswith("[") and text.endswith("]")):
        raise ValueError(f"expected a list like '[1.0, 9.0]', got {cell!r}")
    body = text[1:-1].strip()
    ids: list[int] = []
    for token in body.split(",") if body else []:
        value = float(token)  # ValueError for non-numbers
        if not math.isfinite(value) or value != int(value):
            raise ValueError(f"category {token.strip()!r} is not an integer id")
        if int(value) not in ids:
            ids.append(int(value))
    return ids


def read_train_csv(path: Path, categories: Categories) -> pd.DataFrame:
    """train.csv -> DataFrame(id, categories, line); every error names its line."""
    df = read_text_csv(path, ["id", "categories"],
                       hint="expected the Kaggle layout: multilabel_classification/train.csv")
    known = set(categories.ids.tolist())
    parsed = []
    for line, image_id, cell in zip(df["line"], df["id"], df["categories"]):
        if not image_id.strip():
            raise DataError(path, "empty id", where=f"line {line}")
        try:
            ids = parse_categories_cell(cell)
        except ValueError as err:
            raise DataError(path, f"malformed categories cell: {err}", where=f"line {line}") from None
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise DataError(path, f"unknown category id {unknown[0]} (ids are 1..{C.N_FINE})", where=f"line {line}")
        parsed.append(ids)
    df["categories"] = parsed
    duplicated = df["id"].duplicated()
    if duplicated.any():
        first = df[duplicated].iloc[0]
        raise DataError(path, f"duplicate id {first['id']}", where=f"line {first['line']}")
    return df


def attach_labels(images: pd.DataFrame, labels: pd.DataFrame, csv_path: Path) -> pd.DataFrame:
    """Join csv labels onto json images by id; every csv id must be in the json and vice versa."""
    known = set(images["id"])
    orphans = labels[~labels["id"].isin(known)]
    if len(orphans):
        first = orphans.iloc[0]
        raise DataError(
            csv_path,
            f"id {first['id']} is not an image of {C.TRAIN_JSON} ({len(orphans)} such ids)",
            where=f"line {first['line']}",
        )
    unlabeled = known - set(labels["id"])
    if unlabeled:
        raise DataError(csv_path, f"{len(unlabeled)} images of {C.TRAIN_JSON} have no row, e.g. {sorted(unlabeled)[0]}")
    return images.merge(labels[["id", "categories"]], on="id", how="left", validate="one_to_one")


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise DataError(path, "file not found", hint="expected the Kaggle layout: object_detection/*.json")
    try:
        with open(path, encoding="utf-8-sig") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as err:
        raise DataError(path, f"invalid JSON: {err.msg}", where=f"line {err.lineno} column {err.colno}") from None
    except UnicodeDecodeError as err:
        raise DataError(path, f"not UTF-8 text ({err.reason})", where=f"byte {err.start}") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(path, "expected a COCO object with an 'images' list", where="top level")
    return data


def read_coco_images(path: Path, data: dict | None = None) -> pd.DataFrame:
    """COCO 'images' -> DataFrame(id, image_id, file_name, width, height, platform, dive, date_captured);
    `data`: the file, if read."""
    rows = []
    for n, image in enumerate((data or read_json(path))["images"]):
        where = f"images[{n}]"
        if not isinstance(image, dict):
            raise DataError(path, "expected an object", where=where)
        missing = [key for key in ("id", "file_name", "width", "height") if key not in image]
        if missing:
            raise DataError(path, f"missing key(s) {missing}", where=where)
        name = image["file_name"]
        if not isinstance(name, str) or not name or Path(name).name != name:
            raise DataError(path, f"file_name {name!r} must be a plain file name", where=where)
        if not isinstance(image["id"], (int, str)) or isinstance(image["id"], bool):
            raise DataError(path, f"id {image['id']!r} must be an integer", where=where)
        for key in ("width", "height"):
            value = image[key]
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < math.inf:
                raise DataError(path, f"{key} {value!r} is not a positive number", where=where)
        url, date = image.get("coco_url") or "", image.get("date_captured") or ""
        for key, value in (("coco_url", url), ("date_captured", date)):
            if not isinstance(value, str):
                raise DataError(path, f"{key} {value!r} must be a string", where=where)
        rows.append((Path(name).stem, image["id"], name, int(image["width"]), int(image["height"]), *dive_of(url),
                     date))
    df = pd.DataFrame(rows, columns=["id", "image_id", "file_name", "width", "height", "platform", "dive",
                                     "date_captured"])
    for column in ("id", "image_id"):
        duplicated = df[column].duplicated()
        if duplicated.any():
            n = int(duplicated.to_numpy().nonzero()[0][0])
            value = df[column][n]
            raise DataError(path, f"duplicate {column} {getattr(value, 'item', lambda: value)()!r}",
                            where=f"images[{n}]")
    return df


def load_boxes(root: str | Path, categories: Categories | None = None) -> pd.DataFrame:
    """train.json annotations -> DataFrame(id, category_id, x, y, w, h) in original-frame pixels."""
    root = Path(root)
    path = root / C.TRAIN_JSON
    categories = categories or load_categories(root / C.CATEGORY_KEY)
    data = read_json(path)
    return read_annotations(path, data, read_coco_images(path, data), categories)


def read_annotations(path: Path, data: dict, images: pd.DataFrame, categories: Categories) -> pd.DataFrame:
    """The checked annotations of a COCO file already read (`data`, its `images` table): see load_boxes."""
    uuid_of = dict(zip(images["image_id"], images["id"]))
    known = set(categories.ids.tolist())
    annotations = data.get("annotations", [])
    if not isinstance(annotations, list):
        raise DataError(path, "'annotations' must be a list", where="annotations")
    rows = []
    for n, ann in enumerate(annotations):
        where = f"annotations[{n}]"
        if not isinstance(ann, dict):
            raise DataError(path, "expected an object", where=where)
        missing = [key for key in ("bbox", "category_id", "image_id") if key not in ann]
        if missing:
            raise DataError(path, f"missing key(s) {missing}", where=where)
        try:
            x, y, w, h = (float(v) for v in ann["bbox"])
            category = float(ann["category_id"])
        except (TypeError, ValueError):
            raise DataError(path, "bbox must be 4 numbers and category_id a number", where=where) from None
        try:
            image = uuid_of[ann["image_id"]]
        except (KeyError, TypeError):  # TypeError: an unhashable image_id
            raise DataError(path, f"image_id {ann['image_id']!r} is not the id of an entry of 'images'",
                            where=where) from None
        if category not in known:
            raise DataError(path, f"unknown category_id {ann['category_id']!r}", where=where)
        if not (all(map(math.isfinite, (x, y, w, h))) and w >= 0 and h >= 0):  # real ones: x = -1, height 0
            raise DataError(path, f"bbox {ann['bbox']!r} must be [x, y, width, height], finite, with a size >= 0",
                            where=where)
        rows.append((image, int(category), x, y, w, h))
    return pd.DataFrame(rows, columns=["id", "category_id", "x", "y", "w", "h"])
