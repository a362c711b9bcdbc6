import json

import numpy as np
import pandas as pd
import pytest

from fathom.data.categories import load_categories
from fathom.data.labels import fine_multi_hot, super_multi_hot
from fathom.data.layout import load_boxes, load_dataset, parse_categories_cell
from fathom.errors import DataError


def test_demo_dataset_tables(demo_dir):
    ds = load_dataset(demo_dir)
    assert list(ds.train.columns) == ["id", "image_id", "file_name", "path", "width", "height", "platform", "dive",
                                      "date_captured", "categories", "supercats"]
    assert len(ds.train) == 150 and len(ds.eval) == 80
    assert ds.eval["categories"].map(len).eq(0).all()
    row = ds.train.iloc[0]
    assert row["file_name"] == row["id"] + ".png"
    assert row["supercats"] == sorted(set(ds.categories.super_of(row["categories"]).tolist()))


def test_category_table(demo_dir):
    cats = load_categories(demo_dir / "category_key.csv")
    assert list(cats.table["index"]) == list(range(290)) and list(cats.ids) == list(range(1, 291))
    assert cats.table["super_index"].between(0, 19).all() and len(cats.super_names) == 20
    assert cats.index_of([1, 290]).tolist() == [0, 289]


def test_real_category_table(real_dir):
    cats = load_categories(real_dir / "category_key.csv")
    assert "Sea star" in cats.super_names and len(cats.super_names) == 20


def test_multi_hot(demo_dir):
    cats = load_categories(demo_dir / "category_key.csv")
    fine = fine_multi_hot([[1, 290], []], cats)
    sup = super_multi_hot([[1, 2], [290]], cats)
    assert fine.shape == (2, 290) and fine[0, [0, 289]].tolist() == [1, 1] and fine.sum() == 2
    assert sup.shape == (2, 20) and sup[0].sum() == 1 and sup[1, cats.parent[289]] == 1


@pytest.mark.parametrize("cell, ids", [("[1.0, 9.0]", [1, 9]), ("[160.0]", [160]), ("[]", []),
                                       (" [3, 3.0] ", [3]), ("[1.0,2.0]", [1, 2])])
def test_parse_categories_cell(cell, ids):
    assert parse_categories_cell(cell) == ids


@pytest.mark.parametrize("cell", ["1.0", "[1.5]", "[a]", "[1.0, ]", "[nan]", "[inf]", ""])
def test_parse_categories_cell_rejects(cell):
    with pytest.raises(ValueError):
        parse_categories_cell(cell)


def rewrite_train_csv(root, edit):
    path = root / "multilabel_classification" / "train.csv"
    df = pd.read_csv(path, dtype=str)
    df = edit(df)
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("edit, message, line", [
    (lambda df: df.assign(categories=df["categories"].where(df.index != 4, "[1.0, x]")), "malformed", 6),
    (lambda df: df.assign(categories=df["categories"].where(df.index != 2, "[291.0]")), "unknown category id 291", 4),
    (lambda df: pd.concat([df, df.iloc[[7]]]), "duplicate id", 152),
    (lambda df: pd.concat([df, pd.DataFrame({"id": ["not-in-json"], "categories": ["[1.0]"]})]),
     "not an image of object_detection/train.json", 152),
])
def test_bad_train_csv_names_file_and_line(demo_copy, edit, message, line):
    rewrite_train_csv(demo_copy, edit)
    with pytest.raises(DataError, match=message) as err:
        load_dataset(demo_copy, check_images=False)
    assert "train.csv" in str(err.value) and f"line {line}" in str(err.value)


def test_invalid_json_names_position(demo_copy):
    path = demo_copy / "object_detection" / "eval.json"
    path.write_text(path.read_text()[:200])
    with pytest.raises(DataError, match=r"eval.json \(line \d+ column \d+\): invalid JSON"):
        load_dataset(demo_copy, check_images=False)


def test_json_image_missing_key(demo_copy):
    path = demo_copy / "object_detection" / "train.json"
    data = json.loads(path.read_text())
    del data["images"][3]["height"]
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"train.json \(images\[3\]\): missing key"):
        load_dataset(demo_copy, check_images=False)


def test_missing_images_counted_or_skipped(demo_copy, demo_dir, tmp_path, caplog):
    images = tmp_path / "few_images"
    images.mkdir()
    ds = load_dataset(demo_dir, check_images=False)
    for name in list(ds.train["file_name"])[3:] + list(ds.eval["file_name"]):
        (images / name).symlink_to(demo_dir / "images" / name)
    (images / ds.train["file_name"][0]).write_bytes(b"")  # empty: unreadable
    with pytest.raises(DataError, match="3 of 150 images are missing or unreadable") as err:
        load_dataset(demo_copy, images_dir=images)
    assert "--allow-missing-images" in str(err.value) and "empty file" in str(err.value)
    ds = load_dataset(demo_copy, images_dir=images, allow_missing_images=True)
    assert len(ds.train) == 147 and "skipping" in caplog.text


def test_boxes(demo_dir):
    boxes = load_boxes(demo_dir)
    ds = load_dataset(demo_dir, check_images=False)
    assert set(boxes["id"]) <= set(ds.train["id"])
    per_image = boxes.groupby("id")["category_id"].apply(lambda s: sorted(set(s)))
    labels = ds.train.set_index("id")["categories"]
    assert all(per_image[i] == labels[i] for i in per_image.index)  # boxes agree with the csv labels
    assert (boxes[["w", "h"]] > 0).all().all()


@pytest.mark.slow
def test_real_labels_load(real_dir):
    ds = load_dataset(real_dir, check_images=False)
    assert len(ds.train) == 5950 and len(ds.eval) == 10744
    counts = pd.Series([c for cats in ds.train["categories"] for c in cats]).value_counts()
    assert len(counts) == 133 and counts.index[0] == 160
    assert np.isclose(ds.train["categories"].map(len).mean(), 1.51, atol=0.01)
    assert len(load_boxes(real_dir, ds.categories)) == 23704


def test_missing_eval_image_is_an_error_even_when_allowed(demo_copy, demo_dir, tmp_path):
    images = tmp_path / "no_eval_0"
    images.mkdir()
    for path in (demo_dir / "images").iterdir():
        (images / path.name).symlink_to(path)
    ds = load_dataset(demo_dir, check_images=False)
    (images / ds.eval["file_name"][0]).unlink()
    with pytest.raises(DataError, match="1 of 80 images"):
        load_dataset(demo_copy, images_dir=images, allow_missing_images=True)
