"""`explain` (Grad-CAM overlays) and `distill` (a student on an ensemble's soft labels), end to end on tiny data."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from fathom.cli import main
from fathom.data.layout import load_dataset
from fathom.errors import FathomError
from fathom.explain import class_activation_maps, last_feature_layer
from fathom.models.net import FathomNet
from fathom.predictions import Predictions
from fathom.train.fold import distilled_targets

from conftest import write_experiment

pytestmark = pytest.mark.slow  # trains, spawns processes or benchmarks: the full suite only


@pytest.mark.parametrize("backbone", ["resnet18", "densenet121", "efficientnet_b0", "convnext_atto"])
def test_grad_cam_maps_each_backbone(backbone):
    model = FathomNet(backbone)
    predictor = types.SimpleNamespace(model=model, cfg=types.SimpleNamespace(image_size=64), device=torch.device("cpu"))
    frame = np.random.default_rng(0).integers(0, 255, (48, 80, 3), dtype=np.uint8)
    order, probs, maps = class_activation_maps(predictor, frame, top=3)
    assert len(order) == 3 and (np.diff(probs) <= 0).all() and maps.shape == (3, 64, 64)
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1


def test_pixel_baselines_are_refused_by_name():
    with pytest.raises(FathomError, match="'pixels_linear' has no feature maps"):
        last_feature_layer(FathomNet("pixels_linear"))


@pytest.fixture(scope="module")
def teacher(demo_dir, tmp_path_factory):
    """A tiny two-fold resnet10t experiment, trained, ensembled and submitted, in its own folder."""
    root = tmp_path_factory.mktemp("teacher")
    write_experiment(root, demo_dir, {"name": "tiny", "backbones": ["resnet10t"], "epochs": 1, "batch_size": 16,
                                      "tta_hflip": False})
    common = ["--data", str(demo_dir), "--runs", str(root / "runs")]
    assert main(["train", "--config", str(root / "tiny.yaml"), "--folds", str(root / "folds.csv"), *common]) == 0
    assert main(["ensemble", "--exp", "tiny", *common]) == 0
    assert main(["submit", "--exp", "tiny", *common, "--out", str(root / "subs")]) == 0
    return root, common


def test_explain_writes_one_readable_overlay_per_image(teacher, demo_dir, tmp_path):
    root, common = teacher
    dataset = load_dataset(demo_dir)
    held_out = str(Predictions.load(root / "runs" / "tiny" / "resnet10t" / "fold_1" / "oof.npz").ids[0])
    eval_id = str(dataset.eval["id"][0])
    assert main(["explain", "--exp", "tiny", "--ids", held_out, eval_id, "--out", str(tmp_path / "cam"), *common]) == 0
    for image_id in (held_out, eval_id):
        png = Image.open(tmp_path / "cam" / f"{image_id}.png")
        assert png.width > 3 * png.height and png.width >= 1000  # the frame plus three overlays, side by side
        assert np.asarray(png.convert("L")).std() > 20  # not blank
    assert main(["explain", "--exp", "tiny", "--ids", "no-such-image", "--out", str(tmp_path / "x"), *common]) == 2


def test_explain_names_a_frame_that_does_not_decode(teacher, demo_dir, tmp_path, capsys):
    import shutil

    root, common = teacher
    images = tmp_path / "images"
    shutil.copytree(demo_dir / "images", images)
    eval_id = str(load_dataset(demo_dir).eval["id"][0])
    victim = images / f"{eval_id}.png"
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])  # header intact, pixels cut
    assert main(["explain", "--exp", "tiny", "--ids", eval_id, "--out", str(tmp_path / "cam"), *common,
                 "--images", str(images)]) == 2
    err = capsys.readouterr().err
    assert victim.name in err and "cannot decode image" in err and "Traceback" not in err


def test_soft_targets_mix_the_teacher_with_the_labels(teacher):
    root, _ = teacher
    oof = Predictions.load(root / "runs" / "tiny" / "ensemble" / "oof.npz")
    ids = np.array([oof.ids[0], "not-in-the-teacher"])
    fine, sup = np.zeros((2, 290), np.float32), np.zeros((2, 20), np.float32)
    fine[:, 0], sup[:, 0] = 1, 1
    cfg = types.SimpleNamespace(distill_from="tiny", distill_weight=0.25)
    soft_fine, soft_sup = distilled_targets(root / "runs", cfg, ids, fine, sup)
    np.testing.assert_allclose(soft_fine[0], 0.25 * np.clip(oof.fine[0], 0, 1) + 0.75 * fine[0], rtol=1e-6)
    np.testing.assert_allclose(soft_sup[0], 0.25 * np.clip(oof.super[0], 0, 1) + 0.75 * sup[0], rtol=1e-6)
    assert np.array_equal(soft_fine[1], fine[1]) and fine[0, 1] == 0  # no teacher row: labels kept; input untouched


def test_distill_trains_a_student_and_reports_the_trade(teacher, capsys):
    root, common = teacher
    assert main(["distill", "--exp", "tiny", "--student", "resnet18", "--folds", str(root / "folds.csv"),
                 "--config", str(root / "tiny.yaml"), *common]) == 0
    printed = capsys.readouterr().out
    assert "teacher (tiny)" in printed and "student (tiny-distill-resnet18)" in printed and "x the teacher" in printed
    result = json.loads((root / "runs" / "tiny-distill-resnet18" / "distill.json").read_text())
    for role in ("teacher", "student"):
        r = result[role]
        assert r["images_per_s"] > 0 and 0 <= r["oof_map20_held_out"] <= 1 and 0 <= r["eval"]["map20"] <= 1
    assert result["teacher"]["forward_passes_per_image"] == 2 and result["student"]["forward_passes_per_image"] == 2
    student_cfg = yaml.safe_load((root / "runs" / "tiny-distill-resnet18" / "resnet18" / "fold_0" / "config.yaml")
                                 .read_text())
    assert student_cfg["distill_from"] == "tiny" and student_cfg["backbones"] == ["resnet18"]
    assert result["speedup"] == pytest.approx(result["student"]["images_per_s"] / result["teacher"]["images_per_s"])
