"""Hand-made malformed inputs: each one gets an error naming the file (and the row or key) or is
handled correctly, and none of them costs an output written before.

Every case edits a private copy of the demo folder (or writes one bad file) and states the fragments
its message must hold. `python -m fathom` prints such an error as one line and exits with code 2.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fathom import constants as C
from fathom.config import load_config
from fathom.data.images import unusable_reason
from fathom.data.layout import load_boxes, load_dataset
from fathom.errors import DataError, FathomError
from fathom.folds import make_folds, read_folds, write_folds
from fathom.metric import read_scoring_csv
from fathom.models.net import FathomNet
from fathom.predictions import Predictions
from fathom.train.checkpoint import load_checkpoint, save_checkpoint
from fathom.data.cache import ImageCache


# ---- helpers that edit one file of a competition folder ------------------------------------------------

def edit_text(relative: str, change):
    def apply(root: Path) -> None:
        path = root / relative
        path.write_bytes(change(path.read_bytes().decode("utf-8")).encode("utf-8"))
    return apply


def write_bytes(relative: str, data: bytes):
    def apply(root: Path) -> None:
        (root / relative).write_bytes(data)
    return apply


def delete(relative: str):
    def apply(root: Path) -> None:
        (root / relative).unlink()
    return apply


def edit_line(relative: str, line: int, change):
    """Apply `change` to line `line` (1 = header) of a text file."""
    def on_text(text: str) -> str:
        lines = text.split("\n")
        lines[line - 1] = change(lines[line - 1])
        return "\n".join(lines)
    return edit_text(relative, on_text)


def edit_json(relative: str, change):
    def apply(root: Path) -> None:
        path = root / relative
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))
    return apply


def set_cell(column: int, value: str):
    def change(line: str) -> str:
        cells = line.split(",", 1)  # ids hold no comma; the categories cell may
        cells[column] = value
        return ",".join(cells)
    return change


def second_train_id(root: Path) -> str:
    return (root / C.TRAIN_CSV).read_text().split("\n")[2].split(",")[0]


CK, TC, TJ, EJ = C.CATEGORY_KEY, C.TRAIN_CSV, C.TRAIN_JSON, C.EVAL_JSON

# ---- the label and annotation files: name, edit, fragments of the message -----------------------------

DATASET_ERRORS = {
    "category key missing": (delete(CK), [CK, "file not found"]),
    "category key zero bytes": (write_bytes(CK, b""), [CK, "empty file"]),
    "category key wrong header": (edit_line(CK, 1, lambda _: "id,name,super"), [CK, "line 1", "expected header"]),
    "category id is text": (edit_line(CK, 3, lambda l: "x" + l.split(",", 1)[1]), [CK, "line 3", "positive integer"]),
    "category id repeated": (edit_line(CK, 3, lambda l: "1," + l.split(",", 1)[1]), [CK, "line 3", "duplicate id 1"]),
    "category rows missing": (edit_text(CK, lambda t: "\n".join(t.strip().split("\n")[:-5]) + "\n"),
                              [CK, "expected ids 1..290"]),
    "category without supercat": (edit_line(CK, 4, lambda l: l.rsplit(",", 1)[0] + ","), [CK, "line 4", "supercat"]),
    "train.csv missing": (delete(TC), [TC, "file not found"]),
    "train.csv zero bytes": (write_bytes(TC, b""), [TC, "empty file"]),
    "train.csv wrong header": (edit_line(TC, 1, lambda _: "id,labels"), [TC, "line 1", "id,categories"]),
    "float-string category id": (edit_line(TC, 3, set_cell(1, '"[1.5]"')), [TC, "line 3", "'1.5' is not an integer"]),
    "category cell is text": (edit_line(TC, 4, set_cell(1, '"[a]"')), [TC, "line 4", "malformed categories"]),
    "category cell without brackets": (edit_line(TC, 2, set_cell(1, "1.0")), [TC, "line 2", "expected a list"]),
    "unknown category id": (edit_line(TC, 5, set_cell(1, '"[999.0]"')), [TC, "line 5", "unknown category id 999"]),
    "category id zero": (edit_line(TC, 5, set_cell(1, '"[0.0]"')), [TC, "line 5", "unknown category id 0"]),
    "nan category": (edit_line(TC, 6, set_cell(1, '"[nan]"')), [TC, "line 6", "not an integer"]),
    "duplicate train id": (lambda root: edit_line(TC, 4, set_cell(0, second_train_id(root)))(root),
                           [TC, "line 4", "duplicate id"]),
    "empty train id": (edit_line(TC, 3, set_cell(0, "")), [TC, "line 3", "empty id"]),
    "csv id absent from the json": (edit_line(TC, 7, set_cell(0, "not-an-image")), [TC, "line 7", "not-an-image",
                                                                                     "is not an image of"]),
    "json image without a csv row": (edit_text(TC, lambda t: "\n".join(t.split("\n")[:3] + t.split("\n")[4:])),
                                     [TC, "have no row"]),
    "quote left open (truncated)": (edit_text(TC, lambda t: t.rstrip("\n") + '\nabc,"[1.0, 9'),
                                    [TC, "malformed CSV"]),
    "row with an extra field": (edit_line(TC, 4, lambda l: l + ",extra"), [TC, "line 4", "malformed CSV"]),
    "train.csv not UTF-8": (write_bytes(TC, b"id,categories\n\xff\xfe\xfa,[1.0]\n"), [TC, "not UTF-8"]),
    "huge train.csv of unknown ids": (edit_text(TC, lambda t: t + "".join(f"x{i},[1.0]\n" for i in range(200_000))),
                                      [TC, "is not an image of", "200000 such ids"]),
    "train.json missing": (delete(TJ), [TJ, "file not found"]),
    "train.json truncated": (edit_text(TJ, lambda t: t[: len(t) // 2]), [TJ, "invalid JSON", "column"]),
    "train.json zero bytes": (write_bytes(TJ, b""), [TJ, "invalid JSON", "line 1 column 1"]),
    "train.json not UTF-8": (write_bytes(TJ, b'{"images": ["\xff\xfe"]}'), [TJ, "not UTF-8", "byte"]),
    "train.json top level is a list": (write_bytes(TJ, b"[]"), [TJ, "top level", "COCO object"]),
    "images is not a list": (edit_json(TJ, lambda d: d.update(images={})), [TJ, "'images' list"]),
    "image is not an object": (edit_json(TJ, lambda d: d["images"].__setitem__(0, 5)), [TJ, "images[0]", "object"]),
    "image without file_name": (edit_json(TJ, lambda d: d["images"][2].pop("file_name")),
                                [TJ, "images[2]", "missing key", "file_name"]),
    "file_name with a path": (edit_json(TJ, lambda d: d["images"][1].update(file_name="../../evil.png")),
                              [TJ, "images[1]", "plain file name"]),
    "width is a string": (edit_json(TJ, lambda d: d["images"][3].update(width="1920")),
                          [TJ, "images[3]", "width '1920'"]),
    "negative height": (edit_json(TJ, lambda d: d["images"][4].update(height=-5)), [TJ, "images[4]", "height -5"]),
    "image id is a list": (edit_json(TJ, lambda d: d["images"][0].update(id=[1])), [TJ, "images[0]", "id [1]"]),
    "duplicate image id": (edit_json(TJ, lambda d: d["images"][5].update(id=d["images"][0]["id"])),
                           [TJ, "images[5]", "duplicate image_id"]),
    "duplicate file_name": (edit_json(TJ, lambda d: d["images"][6].update(file_name=d["images"][0]["file_name"])),
                            [TJ, "images[6]", "duplicate id"]),
    "eval.json missing": (delete(EJ), [EJ, "file not found"]),
    "eval.json invalid": (edit_text(EJ, lambda t: t.replace(":", "=", 1)), [EJ, "invalid JSON"]),
    "eval.json without images": (edit_json(EJ, lambda d: d.update(images=[])), [EJ, "lists no eval images"]),
}

BOX_ERRORS = {
    "bbox of three numbers": (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), ["annotations[0]", "4 numbers"]),
    "annotation of an unknown category": (lambda d: d["annotations"][1].update(category_id=999),
                                          ["annotations[1]", "unknown category_id 999"]),
    "annotation of an unknown image": (lambda d: d["annotations"][2].update(image_id=-1),
                                       ["annotations[2]", "image_id -1 is not the id"]),
    "box of negative size": (lambda d: d["annotations"][3].update(bbox=[1, 2, -3, 4]), ["annotations[3]", "size >= 0"]),
    **{f"{'NaN' if v != v else 'infinity'} as a box's {part}": (lambda d, i=i, v=v: d["annotations"][3].update(
        bbox=[v if k == i else 2.0 for k in range(4)]), ["annotations[3]", "finite"])
       for i, part in enumerate(("x", "y", "width", "height")) for v in (float("nan"), float("inf"))},
    "annotations is not a list": (lambda d: d.update(annotations={}), ["annotations", "must be a list"]),
    "category_id is text": (lambda d: d["annotations"][4].update(category_id="x"), ["annotations[4]", "a number"]),
}

DATASET_HANDLED = {
    "BOM and CRLF category key": edit_text(CK, lambda t: "\ufeff" + t.replace("\n", "\r\n")),
    "BOM and CRLF train.csv": edit_text(TC, lambda t: "\ufeff" + t.replace("\n", "\r\n")),
    "BOM before train.json": edit_text(TJ, lambda t: "\ufeff" + t),
    "an image with an empty label list": edit_line(TC, 3, set_cell(1, '"[]"')),
}


def assert_names(err: Exception, fragments: list[str]) -> None:
    text = str(err)
    assert "\n" not in text, text
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in: {text}"


@pytest.mark.parametrize("case", list(DATASET_ERRORS))
def test_malformed_labels_are_named(demo_copy, case):
    corrupt, fragments = DATASET_ERRORS[case]
    corrupt(demo_copy)
    with pytest.raises(DataError) as info:
        load_dataset(demo_copy)
    assert_names(info.value, fragments)


@pytest.mark.parametrize("case", list(BOX_ERRORS))
def test_malformed_boxes_are_named(demo_copy, case):
    change, fragments = BOX_ERRORS[case]
    edit_json(TJ, change)(demo_copy)
    with pytest.raises(DataError) as info:
        load_boxes(demo_copy)
    assert_names(info.value, [TJ, *fragments])
    with pytest.raises(DataError) as info:  # whoever loads train.json (folds, prior, ...) checks its boxes
        load_dataset(demo_copy, check_images=False)
    assert_names(info.value, [TJ, *fragments])


@pytest.mark.parametrize("case", list(DATASET_HANDLED))
def test_harmless_variants_load_the_same_labels(demo_dir, demo_copy, case):
    DATASET_HANDLED[case](demo_copy)
    expected, got = load_dataset(demo_dir, check_images=False), load_dataset(demo_copy, check_images=False)
    assert list(got.train["id"]) == list(expected.train["id"])
    assert list(got.categories.table["name"]) == list(expected.categories.table["name"])
    changed = [n for n, (a, b) in enumerate(zip(expected.train["categories"], got.train["categories"])) if a != b]
    assert changed == ([1] if case == "an image with an empty label list" else [])
    if changed:
        assert got.train["categories"][1] == [] and got.train["supercats"][1] == []


@pytest.mark.slow
@pytest.mark.parametrize("case", ["quote left open (truncated)", "unknown category id", "train.json truncated"])
def test_the_cli_prints_one_line_and_keeps_earlier_outputs(demo_copy, tmp_path, case):
    folds = tmp_path / "folds.csv"
    assert subprocess.run([sys.executable, "-m", "fathom", "folds", "--data", str(demo_copy), "--out", str(folds)],
                          capture_output=True).returncode == 0
    before = folds.read_bytes()
    DATASET_ERRORS[case][0](demo_copy)
    result = subprocess.run([sys.executable, "-m", "fathom", "folds", "--data", str(demo_copy), "--out", str(folds)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    assert_names(Exception(lines[0]), DATASET_ERRORS[case][1])
    assert folds.read_bytes() == before


# ---- images ---------------------------------------------------------------------------------------------

def frame(mode: str = "RGB") -> Image.Image:
    gradient = np.linspace(0, 255, 48 * 64).reshape(48, 64).astype(np.uint8)
    rgb = Image.fromarray(np.stack([gradient, gradient[::-1], np.full_like(gradient, 90)], -1))
    if mode == "I;16":
        return Image.fromarray(gradient.astype(np.uint16) * 257)  # 16-bit grayscale
    return rgb.convert(mode)


def png_bytes(image: Image.Image, fmt: str = "PNG") -> bytes:
    import io

    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


IMAGE_ERRORS = {
    "zero bytes": (b"", "empty file"),
    "not an image": (b"this is not a png" * 10, "not an image"),
    "garbage after a PNG signature": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "not an image"),
}


@pytest.mark.parametrize("case", list(IMAGE_ERRORS))
def test_unusable_images_are_named(demo_dir, tmp_path, case):
    data, reason = IMAGE_ERRORS[case]
    images = tmp_path / "images"
    shutil.copytree(demo_dir / "images", images)
    victim = images / f"{sorted(load_dataset(demo_dir, check_images=False).train['id'])[3]}.png"  # a train frame
    victim.write_bytes(data)
    assert reason in unusable_reason(str(victim))
    with pytest.raises(DataError) as info:
        load_dataset(demo_dir, images_dir=images)
    assert_names(info.value, ["images", "1 of", victim.name, reason, "--allow-missing-images"])
    kept = load_dataset(demo_dir, images_dir=images, allow_missing_images=True)
    assert victim.stem not in set(kept.train["id"]) and len(kept.train) == 149


def test_a_missing_image_is_named(demo_dir, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(demo_dir / "images", images)
    victim = sorted(images.glob("*.png"))[0]
    victim.unlink()
    with pytest.raises(DataError) as info:
        load_dataset(demo_dir, images_dir=images)
    assert_names(info.value, [victim.name, "missing"])


def test_a_truncated_image_is_named_when_it_is_decoded(tmp_path):
    path = tmp_path / "cut.png"
    whole = png_bytes(frame())
    path.write_bytes(whole[: len(whole) // 2])
    assert unusable_reason(str(path)) is None  # the header is intact: the check at load time is header-only
    with pytest.raises(DataError) as info:
        ImageCache(tmp_path / "cache", 16).ensure(str(path))
    assert_names(info.value, ["cut.png", "cannot decode image", "re-download"])
    assert "truncated" in unusable_reason(str(path), every_byte=True)
    assert not list((tmp_path / "cache").rglob("*.npy")), "no cache file for an image that did not decode"


def truncate_a_train_frame(demo_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the demo images in which one train PNG stops halfway (its header intact), as an
    interrupted download leaves it; returns (images folder, the broken frame)."""
    images = tmp_path / "images"
    shutil.copytree(demo_dir / "images", images)
    victim = images / f"{sorted(load_dataset(demo_dir, check_images=False).train['id'])[5]}.png"
    whole = victim.read_bytes()
    victim.write_bytes(whole[: len(whole) // 2])
    return images, victim


def read_colour_stats(path: Path, tmp_path: Path) -> None:
    from fathom.data.features import colour_stats

    colour_stats(str(path))


def read_eda_samples(path: Path, tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from fathom import eda

    ds = load_dataset(tmp_path / "labels", path.parent, check_images=False)
    ds = type(ds)(ds.root, ds.categories, ds.train[ds.train["path"] == str(path)], ds.eval)
    eda.show_samples(ds, load_boxes(tmp_path / "labels"), n=1)


def read_image_cache(path: Path, tmp_path: Path) -> None:
    ImageCache(tmp_path / "cache", 32, side="long").ensure(str(path))


PIXEL_READERS = {"image cache": read_image_cache, "colour statistics (prior, osd)": read_colour_stats,
                 "EDA sample frames": read_eda_samples}  # explain: test_explain_distill


@pytest.mark.parametrize("reader", list(PIXEL_READERS))
def test_every_reader_of_pixels_names_a_truncated_frame(demo_dir, tmp_path, reader):
    shutil.copytree(demo_dir, tmp_path / "labels", ignore=shutil.ignore_patterns("images"))
    _, victim = truncate_a_train_frame(demo_dir, tmp_path)
    with pytest.raises(DataError) as info:
        PIXEL_READERS[reader](victim, tmp_path)
    assert_names(info.value, [victim.name, "cannot decode image", "--allow-missing-images"])


def test_allow_missing_images_drops_a_truncated_train_frame_everywhere(demo_dir, tmp_path, capsys):
    from fathom.cli import main

    images, victim = truncate_a_train_frame(demo_dir, tmp_path)
    assert unusable_reason(str(victim)) is None and "truncated" in unusable_reason(str(victim), every_byte=True)
    folds = tmp_path / "folds.csv"
    common = ["--data", str(demo_dir), "--images", str(images), "--runs", str(tmp_path / "runs")]
    assert main(["folds", "--data", str(demo_dir), "--n-folds", "3", "--out", str(folds)]) == 0
    assert main(["prior", *common, "--folds", str(folds)]) == 2  # header-only check: the reader names it
    assert victim.name in capsys.readouterr().err
    assert main(["prior", *common, "--folds", str(folds), "--allow-missing-images"]) == 0
    oof = Predictions.load(tmp_path / "runs" / "prior" / "oof" / "prior.npz")
    assert victim.stem not in set(oof.ids) and len(oof.ids) == 149


def test_a_truncated_eval_frame_stops_even_when_train_frames_may_be_skipped(demo_dir, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(demo_dir / "images", images)
    victim = images / f"{load_dataset(demo_dir, check_images=False).eval['id'][0]}.png"
    victim.write_bytes(victim.read_bytes()[:-200])
    with pytest.raises(DataError) as info:
        read_image_cache(victim, tmp_path)  # the eval frame stays in the table; its first reader names it
    assert_names(info.value, [victim.name, "cannot decode image"])
    assert victim.stem in set(load_dataset(demo_dir, images, allow_missing_images=True).eval["id"])


@pytest.mark.parametrize("mode", ["L", "I;16", "RGBA", "P", "LA", "CMYK", "jpeg named .png"])
def test_any_image_mode_becomes_8_bit_rgb(tmp_path, mode):
    path = tmp_path / "frame.png"
    if mode == "jpeg named .png":
        path.write_bytes(png_bytes(frame(), "JPEG"))
    elif mode == "CMYK":
        path = tmp_path / "frame.jpg"
        frame("CMYK").save(path)
    else:
        frame(mode).save(path)
    pixels = ImageCache(tmp_path / "cache", 24).resize(str(path))
    assert pixels.dtype == np.uint8 and pixels.shape == (24, 32, 3)
    reference = ImageCache(tmp_path / "cache", 24).resize(str(save(frame(), tmp_path / "rgb.png")))
    if mode in ("L", "I;16", "LA"):  # the grey ramp survives: 16-bit is scaled to 8 bits, not clipped to white
        grey = frame("L") if mode != "I;16" else Image.fromarray(np.asarray(frame("I;16")) // 257)
        grey = np.asarray(grey.convert("L").resize((32, 24), Image.BILINEAR), dtype=float)
        assert np.abs(pixels[..., 0] - grey).mean() < 3 and pixels[..., 0].std() > 0.8 * grey.std()
    else:
        assert np.abs(pixels.astype(float) - reference).mean() < (12 if mode in ("P", "jpeg named .png") else 3)


def save(image: Image.Image, path: Path) -> Path:
    image.save(path)
    return path


# ---- folds, configs, prediction files, checkpoints, scoring files -----------------------------------------

FOLDS_ERRORS = {
    "folds file missing": (None, ["folds.csv", "not found", "python -m fathom folds"]),
    "folds file empty": (lambda t: "", ["folds.csv", "empty file"]),
    "folds wrong header": (lambda t: t.replace("id,fold", "image,fold", 1), ["line 1", "expected header"]),
    "fold is not an integer": (lambda t: t.replace(",0\n", ",zero\n", 1), ["line", "'zero' is not a fold index"]),
    "folds id repeated": (lambda t: t + t.split("\n")[1] + "\n", ["duplicate id"]),
    "train id without a fold": (lambda t: "\n".join(t.split("\n")[:1] + t.split("\n")[2:]), ["have no fold"]),
}


@pytest.mark.parametrize("case", list(FOLDS_ERRORS))
def test_malformed_folds_are_named(demo_dir, tmp_path, case):
    dataset = load_dataset(demo_dir, check_images=False)
    path = tmp_path / "folds.csv"
    change, fragments = FOLDS_ERRORS[case]
    if change is not None:
        write_folds(make_folds(dataset.train, dataset.categories, 3, 0), path)
        path.write_text(change(path.read_text()))
    with pytest.raises(DataError) as info:
        read_folds(path, dataset.train["id"])
    assert_names(info.value, ["folds.csv", *fragments])


CONFIG_ERRORS = {
    "unknown key": ("epochz: 3\n", ["unknown key 'epochz'", "known keys"]),
    "wrong type": ("epochs: ten\n", ["(epochs)", "'ten' is not of type int"]),
    "bool where a number goes": ("lr: true\n", ["(lr)", "not of type float"]),
    "list of the wrong type": ("backbones: resnet18\n", ["(backbones)", "not of type list"]),
    "invalid YAML": ("epochs: [3\n", ["invalid YAML", "line 2 column 1"]),
    "not a mapping": ("- resnet18\n", ["expected a mapping"]),
    "unknown amp mode": ("amp: fp8\n", ["(amp)", "fp8"]),
    "zero epochs": ("epochs: 0\n", ["(epochs)", "epochs must be >= 1, not 0"]),
    "experiment key set per backbone": ("by_backbone: {resnet18: {folds: [0]}}\n",
                                        ["by_backbone.resnet18", "belong to the whole experiment"]),
    "unknown key for one backbone": ("by_backbone: {resnet18: {lrr: 1.0}}\n", ["by_backbone.resnet18", "'lrr'"]),
}


@pytest.mark.parametrize("case", list(CONFIG_ERRORS))
def test_malformed_configs_are_named(tmp_path, case):
    text, fragments = CONFIG_ERRORS[case]
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        load_config(str(path))
    assert_names(info.value, ["broken.yaml", *fragments])


def test_a_bad_override_is_named():
    with pytest.raises(DataError) as info:
        load_config("demo", ["epochs"])
    assert_names(info.value, ["command line", "not key=value"])


def test_config_that_the_model_cannot_follow_is_named(tmp_path):
    with pytest.raises(DataError) as info:
        FathomNet("convnext_atto").check_input_size(16)
    assert_names(info.value, ["(image_size)", "image_size 16 does not fit backbone 'convnext_atto'"])
    FathomNet("convnext_atto").check_input_size(64)
    with pytest.raises(DataError) as info:
        FathomNet("resnet18", weights=str(tmp_path / "missing.pth"))
    assert_names(info.value, ["missing.pth", "not found", "weights"])
    with pytest.raises(FathomError, match="backbone 'resnet_18'"):
        FathomNet("resnet_18")


def bad_prediction_file(path: Path, case: str) -> None:
    good = Predictions(["a", "b"], np.zeros((2, C.N_FINE)), np.zeros((2, C.N_SUPER)))
    good.save(path)
    if case == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif case == "zero bytes":
        path.write_bytes(b"")
    elif case == "missing arrays":
        np.savez(path, ids=np.array(["a"]))
    elif case == "shapes disagree":
        np.savez(path, ids=np.array(["a", "b"]), fine=np.zeros((2, 3)), super=np.zeros((2, C.N_SUPER)))
    elif case == "pickled object array":
        np.savez(path, ids=np.array([{"a": 1}], dtype=object), fine=np.zeros((1, C.N_FINE)),
                 super=np.zeros((1, C.N_SUPER)))
    elif case in ("NaN probability", "probability above 1", "NaN osd"):
        fine = np.zeros((2, C.N_FINE))
        fine[1, 7] = {"NaN probability": np.nan, "probability above 1": 1.5}.get(case, 0.5)
        extras = {"osd": np.array([0.1, np.nan])} if case == "NaN osd" else {}
        Predictions(["a", "b"], fine, np.zeros((2, C.N_SUPER)), extras).save(path)


@pytest.mark.parametrize("case", ["truncated", "zero bytes", "missing arrays", "shapes disagree",
                                  "pickled object array", "NaN probability", "probability above 1", "NaN osd"])
def test_broken_prediction_files_are_named(tmp_path, case):
    path = tmp_path / "resnet18.npz"
    bad_prediction_file(path, case)
    with pytest.raises(DataError) as info:
        Predictions.load(path)
    assert_names(info.value, ["resnet18.npz"])


class RunsCode:
    """A pickle that would create a file when unpickled with weights_only=False."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("case", ["truncated", "pickled code"])
def test_unsafe_or_broken_checkpoints_are_refused(tmp_path, case):
    path, marker = tmp_path / "last.pt", tmp_path / "code-ran"
    if case == "truncated":
        save_checkpoint({"model": {"w": torch.ones(1000)}, "epoch": 1}, path)
        path.write_bytes(path.read_bytes()[:300])
    else:
        torch.save({"model": RunsCode(marker)}, path)
    with pytest.raises(DataError) as info:
        load_checkpoint(path)
    assert_names(info.value, ["last.pt", "unreadable checkpoint", "delete it to retrain"])
    assert not marker.exists(), "loading a checkpoint ran code"


SCORING_ERRORS = {
    "missing file": (None, ["file not found"]),
    "osd not a number": ("id,categories,osd\na,1 2,high\n", ["line 2", "osd 'high'"]),
    "wrong header": ("id,category,osd\na,1,0.5\n", ["line 1", "expected header"]),
}


@pytest.mark.parametrize("case", list(SCORING_ERRORS))
def test_malformed_scoring_files_are_named(tmp_path, case):
    text, fragments = SCORING_ERRORS[case]
    path = tmp_path / "submission.csv"
    if text is not None:
        path.write_text(text)
    with pytest.raises(DataError) as info:
        read_scoring_csv(path)
    assert_names(info.value, ["submission.csv", *fragments])

