"""Small animals: the crop label rule, crop placement, tiling, the combiners, and `sampling: crops` end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import write_experiment
from fathom.config import load_config
from fathom.data.crops import axis_starts, crop_labels, cut, sample_window, tile_windows, visible_share
from fathom.data.layout import load_dataset
from fathom.demo.make import make_demo
from fathom.errors import DataError
from fathom.folds import read_folds
from fathom.data.tiles import COMBINERS, TileDataset, TilePlan, cached_shapes, combine, tile_evidence
from fathom.predictions import Predictions
from fathom.runs import FoldDir
from fathom.data.cache import ImageCache
from fathom.data.loaders import CropDataset, CropDraw
from fathom.data.transforms import crop_transform, eval_transform, train_transform

WINDOW = (100, 100, 200, 200)  # x0, y0, x1, y1


@pytest.mark.parametrize("box, shown", [
    ((120, 120, 20, 20), True),  # fully inside
    ((190, 150, 20, 10), True),  # cut by the right edge, half inside: exactly the threshold
    ((192, 150, 20, 10), False),  # 40% inside
    ((90, 90, 20, 20), False),  # cut by a corner: a quarter inside
    ((300, 300, 20, 20), False),  # fully outside
    ((150, 150, 0, 10), True),  # zero area, centre inside (the real train.json has one)
    ((250, 150, 0, 0), False),  # zero area, centre outside
])
def test_a_box_labels_a_crop_when_half_its_area_is_inside(box, shown):
    assert crop_labels(np.array([box]), np.array([7]), WINDOW, 0.5) == ([7] if shown else [])


def test_several_boxes_give_each_shown_category_once():
    boxes = np.array([(110, 110, 10, 10), (150, 150, 10, 10), (195, 195, 20, 20), (0, 0, 5, 5), (180, 120, 40, 10)])
    classes = np.array([3, 3, 9, 1, 5])
    assert crop_labels(boxes, classes, WINDOW, 0.5) == [3, 5]  # 9: 1/16 inside; 1: outside; 5: exactly half
    assert crop_labels(boxes, classes, WINDOW, 0.01) == [3, 5, 9]
    assert np.allclose(visible_share(boxes, WINDOW), [1, 1, 1 / 16, 0, 0.5])


@pytest.mark.parametrize("width, height, tile, overlap", [
    (960, 540, 384, 0.25), (1920, 1080, 384, 0.25), (720, 368, 384, 0.25), (320, 180, 128, 0.0),
    (300, 100, 128, 0.5), (100, 50, 128, 0.25), (129, 128, 128, 0.25)])
def test_tiles_cover_every_pixel_and_overlap_as_asked(width, height, tile, overlap):
    windows = tile_windows(width, height, tile, overlap)
    covered = np.zeros((height, width), bool)
    for x0, y0, x1, y1 in windows:
        assert x1 - x0 == tile == y1 - y0
        assert x0 >= 0 and y0 >= 0 and (x1 <= width or x0 == 0) and (y1 <= height or y0 == 0)
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    for length in (width, height):
        starts = axis_starts(length, tile, overlap)
        if len(starts) > 1:
            assert (np.diff(starts) <= tile * (1 - overlap) + 1).all()  # at least the asked overlap


def test_a_1920x1080_frame_gives_six_tiles_at_half_resolution(tmp_path):
    """The full config's geometry: cached at long side 960 (960x540), 384-px tiles overlapping by a quarter:
    3 x 2 tiles, plus the whole frame; at native resolution it would be 7 x 4 = 28."""
    assert len(tile_windows(960, 540, 384, 0.25)) == 6
    assert len(tile_windows(1920, 1080, 384, 0.25)) == 28
    path = tmp_path / "frame.png"
    Image.new("RGB", (1920, 1080), (10, 60, 90)).save(path)
    small = tmp_path / "small.png"
    Image.new("RGB", (720, 368), (10, 60, 90)).save(small)
    files = ImageCache(tmp_path / "cache", 960, side="long").build([str(path), str(small)])
    assert cached_shapes(files) == [(540, 960), (368, 720)]  # never enlarged
    plan = TilePlan.of(cached_shapes(files), 384, 0.25)
    assert np.bincount(plan.frame).tolist() == [7, 4] and plan.windows[0] is None and plan.windows[7] is None


def test_cut_keeps_the_scale_and_fills_outside_with_the_mean_colour():
    frame = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    assert np.array_equal(cut(frame, (2, 1, 6, 5)), frame[1:5, 2:6])
    padded = cut(frame, (0, 0, 10, 10))
    assert padded.shape == (10, 10, 3) and np.array_equal(padded[:6, :8], frame)
    assert (padded[8:, :] == frame.reshape(-1, 3).mean(0).astype(np.uint8)).all()


def test_crops_hold_their_box_and_background_crops_stay_in_the_frame():
    rng = np.random.default_rng(0)
    boxes = np.array([(700, 400, 30, 20), (10, 10, 40, 40)])
    for _ in range(200):
        x0, y0, x1, y1 = sample_window(rng, 960, 540, boxes, 256, jitter=0.5, background=False)
        assert 0 <= x0 and x1 <= 960 and 0 <= y0 and y1 <= 540 and x1 - x0 == 256
        assert max(visible_share(boxes, (x0, y0, x1, y1))) == 1.0  # the box it was placed on is inside
        x0, y0, x1, y1 = sample_window(rng, 960, 540, boxes, 256, jitter=0.5, background=True)
        assert 0 <= x0 and x1 <= 960 and 0 <= y0 and y1 <= 540
    assert sample_window(rng, 100, 60, boxes, 128, 0.5, False) == (0, 0, 128, 128)


def test_combiners_on_a_hand_computed_frame():
    # frame 0: whole view + 2 tiles; frame 1: whole view + 1 tile
    plan = TilePlan(np.array([0, 0, 0, 1, 1]), [None, (0, 0, 1, 1), (1, 0, 2, 1), None, (0, 0, 1, 1)], 2)
    probs = np.array([[0.1, 0.5], [0.8, 0.5], [0.2, 0.5], [0.3, 0.0], [0.1, 1.0]])
    assert np.allclose(combine(probs, plan, "max"), [[0.8, 0.5], [0.3, 1.0]])
    assert np.allclose(combine(probs, plan, "mean"), [[1.1 / 3, 0.5], [0.2, 0.5]])
    assert np.allclose(combine(probs, plan, "noisy_or"), [[1 - 0.9 * 0.2 * 0.8, 1 - 0.125], [1 - 0.7 * 0.9, 1.0]],
                       atol=1e-5)
    assert np.allclose(combine(probs, plan, "topk_mean", topk=2), [[0.5, 0.5], [0.2, 0.5]])
    assert set(COMBINERS) == {"max", "noisy_or", "topk_mean", "mean"}
    # tile evidence: tiles only (the whole view's 0.9 x (1 - 0.1) is ignored), max over a frame's tiles
    sup = np.array([[0.9], [0.5], [1.0], [1.0], [0.2]])
    fine = np.array([[0.1, 0.0], [0.6, 0.0], [0.5, 0.0], [0.0, 0.0], [0.5, 0.0]])
    assert np.allclose(tile_evidence(fine, sup, plan), [0.5, 0.1])


def test_crop_samples_are_labelled_by_their_boxes_and_reproducible(tmp_path):
    frame = np.zeros((100, 200, 3), np.uint8)  # the cached frame: half of a 400 x 200 original
    np.save(tmp_path / "f.npy", frame)
    boxes = [np.array([(40.0, 40.0, 20.0, 20.0), (300.0, 100.0, 40.0, 40.0)])]  # original pixels
    classes = [np.array([4, 11])]
    parent = np.arange(290) // 15
    fine_image, sup_image = np.zeros((1, 290), np.float32), np.zeros((1, 20), np.float32)
    fine_image[0, [4, 11, 50]] = 1  # the image's own labels (a category without a box, too)
    sup_image[0, parent[[4, 11, 50]]] = 1
    mean, std = (0.5,) * 3, (0.25,) * 3

    def dataset(frame_ratio):
        return CropDataset([tmp_path / "f.npy"], fine_image, sup_image, train_transform(32, mean, std),
                           crop_transform(32, mean, std), boxes, classes, np.array([[400, 200]]), parent,
                           CropDraw(64, frame_ratio, 0.0, 0.5, 0.5), seed=1)

    crops = dataset(0.0)
    seen = set()
    for epoch in range(30):
        image, fine, sup = crops[(epoch, 0)]
        assert image.shape == (3, 32, 32)
        shown = set(np.flatnonzero(fine.numpy()))
        assert shown and shown <= {4, 11} and 50 not in shown  # a crop shows a box, never the box-less label
        assert set(np.flatnonzero(sup.numpy())) == set(parent[list(shown)])
        seen |= shown
        again = crops[(epoch, 0)]
        assert np.array_equal(image.numpy(), again[0].numpy()) and np.array_equal(fine.numpy(), again[1].numpy())
    assert seen == {4, 11}  # both boxes get picked
    _, fine, sup = dataset(1.0)[(0, 0)]  # whole frames carry the image's labels
    assert np.array_equal(fine.numpy(), fine_image[0]) and np.array_equal(sup.numpy(), sup_image[0])


def test_tile_dataset_yields_the_whole_frame_then_its_tiles(tmp_path):
    frame = np.zeros((60, 100, 3), np.uint8)
    frame[:, 50:] = 255
    np.save(tmp_path / "f.npy", frame)
    plan = TilePlan.of([(60, 100)], 64, 0.25)
    views = TileDataset([tmp_path / "f.npy"], plan, eval_transform(16, (0, 0, 0), (1, 1, 1)))
    assert len(views) == 1 + 2
    whole, left, right = (views[v][0].numpy() for v in range(3))
    assert 0.4 < whole.mean() < 0.6 and left.mean() < whole.mean() < right.mean()


def test_config_checks_the_crop_keys(tmp_path):
    for override, message in (("crop_min_visible=0", "> 0 and <= 1"), ("tile_overlap=0.95", ">= 0 and <= 0.9"),
                              ("crop_frame_ratio=1.5", ">= 0 and <= 1"), ("tile_combine=median", "one of"),
                              ("sampling=boxes", "one of"), ("crop_size=0", ">= 1"),
                              ("by_backbone={resnet18: {sampling: crops}}", "whole experiment")):
        with pytest.raises(DataError, match=message):
            load_config("demo", [override])


def test_the_default_demo_has_small_animals(tmp_path):
    """As in the real data (median box ~48 px in a 1920-px frame, 2.5%), most demo animals are a few
    percent of the frame: at 64-px whole-frame input they shrink to a pixel or two."""
    make_demo(tmp_path / "d", n_train=12, n_eval=2, seed=3)
    data = json.loads((tmp_path / "d" / "object_detection" / "train.json").read_text())
    long_side = {i["id"]: max(i["width"], i["height"]) for i in data["images"]}
    share = [max(a["bbox"][2:]) / long_side[a["image_id"]] for a in data["annotations"]]
    assert max(long_side.values()) == 640 and 0.015 < np.median(share) < 0.05 and max(share) <= 0.08


@pytest.mark.slow
def test_crops_and_tiles_end_to_end(demo_dir, tmp_path):
    """`sampling: crops` trains on crops, predicts every frame whole and tiled, picks the combiner on each
    fold's validation images, reuses that rule in TTA, and hands tile evidence to the osd choice."""
    from fathom.ensemble.fit import fit_ensemble
    from fathom.infer.tta import predict_experiment
    from fathom.predictor import Predictor
    from fathom.train.run import train

    folds_csv, config = write_experiment(tmp_path, demo_dir, {
        "name": "crops", "sampling": "crops", "crop_long_side": 96, "crop_size": 48, "epochs": 1, "batch_size": 16,
        "amp": "fp32"})
    dataset = load_dataset(demo_dir)
    cfg = load_config(str(config))
    scores = train(cfg, dataset, read_folds(folds_csv, dataset.train["id"]), tmp_path / "runs")
    assert 0 <= scores["resnet18"] <= 1
    fold = tmp_path / "runs" / "crops" / "resnet18" / "fold_0"
    done = FoldDir(fold).done()
    assert set(done.tile_val_map20) == set(COMBINERS)
    assert done.tile_combine == max(COMBINERS, key=done.tile_val_map20.get)
    assert done.val_map20 == pytest.approx(done.tile_val_map20[done.tile_combine])
    # 96 x 54 cached frames: the whole frame and 3 x 2 tiles of 48 px; the smaller 77 x 39 ones: 1 + 2 x 1
    assert 3 < done.views_per_frame["eval"] < 7
    assert (tmp_path / "cache" / "long96").is_dir() and not (tmp_path / "cache" / "short32").exists()

    oof = Predictions.load(fold / "oof.npz")
    evidence = oof.extras["tile_evidence"]
    assert "osd" not in oof.extras  # a fold's file holds evidence; the ensemble step chooses the osd
    assert ((0 <= evidence) & (evidence <= 1)).all() and not np.allclose(evidence, 1 - oof.fine.max(1))
    path_of = dict(zip(pd.concat([dataset.train["id"], dataset.eval["id"]]),
                       pd.concat([dataset.train["path"], dataset.eval["path"]])))
    again = Predictor.from_fold(fold, ["tta_hflip=false"]).predict([path_of[i] for i in oof.ids])
    assert np.allclose(again["fine"], oof.fine, atol=1e-5) and np.allclose(again["tile_evidence"], evidence, atol=1e-5)

    assert predict_experiment(dataset, tmp_path / "runs", "crops")["resnet18"] == ["1x", "1x+hflip"]
    tta = Predictions.load(fold / "tta" / "oof.npz")
    test = Predictions.load(tmp_path / "runs" / "crops" / "test" / "resnet18.npz")
    assert "tile_evidence" in tta.extras and "tile_evidence" in test.extras  # oof and test files agree
    record, prediction = fit_ensemble(dataset, tmp_path / "runs", "crops", write=False)
    assert record.tta and "tiles" in record.osd.sauc and len(prediction.ids) == len(dataset.eval)
