"""The training engine end to end at tiny sizes: files written, OOF assembled, kill-and-resume."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

import fathom.train.run as run_module
from fathom.config import TrainConfig
from fathom.data.layout import load_dataset
from fathom.errors import DataError
from fathom.folds import make_folds
from fathom.predictions import Predictions
from fathom.train.checkpoint import load_checkpoint
from fathom.train.run import train


@pytest.fixture(scope="module")
def tiny(demo_dir):
    dataset = load_dataset(demo_dir)
    return dataset, make_folds(dataset.train, dataset.categories, n_folds=3, seed=0)


def tiny_config(tmp_path, **changes) -> TrainConfig:
    cfg = TrainConfig(name="tiny", backbones=["resnet18"], pretrained=False, image_size=32, folds=[0], epochs=2,
                      batch_size=16, lr=1e-3, warmup_epochs=0.5, workers=0, limit=40,
                      cache_dir=str(tmp_path / "cache"), seed=3)
    return dataclasses.replace(cfg, **changes)


def test_train_writes_fold_files_and_assembled_predictions(tiny, tmp_path):
    dataset, folds = tiny
    cfg = tiny_config(tmp_path, folds=[0, 1])
    scores = train(cfg, dataset, folds, tmp_path / "runs")
    assert 0 <= scores["resnet18"] <= 1
    fold0 = tmp_path / "runs" / "tiny" / "resnet18" / "fold_0"
    for name in ("config.yaml", "meta.json", "metrics.csv", "best.pt", "last.pt", "oof.npz", "test.npz", "done.json"):
        assert (fold0 / name).is_file(), name
    metrics = pd.read_csv(fold0 / "metrics.csv")
    assert list(metrics["epoch"]) == [0, 1] and {"train_loss", "val_map20", "lr"} <= set(metrics.columns)
    oof = Predictions.load(tmp_path / "runs" / "tiny" / "oof" / "resnet18.npz")
    test = Predictions.load(tmp_path / "runs" / "tiny" / "test" / "resnet18.npz")
    assert len(oof.ids) == 80 and len(set(oof.ids)) == 80  # 2 folds x limit 40 validation images
    assert list(test.ids) == list(dataset.eval["id"][:40]) and np.isfinite(test.osd).all()
    assert ((oof.fine >= 0) & (oof.fine <= 1)).all()


def test_finished_folds_are_reused(tiny, tmp_path):
    dataset, folds = tiny
    cfg = tiny_config(tmp_path, epochs=1)
    train(cfg, dataset, folds, tmp_path / "runs")
    done = tmp_path / "runs" / "tiny" / "resnet18" / "fold_0" / "oof.npz"
    stamp = done.stat().st_mtime_ns
    train(cfg, dataset, folds, tmp_path / "runs")
    assert done.stat().st_mtime_ns == stamp


def test_interrupted_run_resumes_to_the_same_state(tiny, tmp_path, monkeypatch):
    dataset, folds = tiny
    cfg = tiny_config(tmp_path, epochs=3, ema=True, ema_decay=0.9)
    train(cfg, dataset, folds, tmp_path / "straight")

    calls = {"n": 0}
    original = run_module.train_one_epoch

    def dies_in_second_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed")
        return original(*args, **kwargs)

    monkeypatch.setattr(run_module, "train_one_epoch", dies_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, dataset, folds, tmp_path / "resumed")
    monkeypatch.setattr(run_module, "train_one_epoch", original)
    last = tmp_path / "resumed" / "tiny" / "resnet18" / "fold_0" / "last.pt"
    assert load_checkpoint(last)["epoch"] == 0
    train(cfg, dataset, folds, tmp_path / "resumed", resume=True)

    def final(root):
        return load_checkpoint(root / "tiny" / "resnet18" / "fold_0" / "last.pt")

    a, b = final(tmp_path / "straight"), final(tmp_path / "resumed")
    assert a["epoch"] == b["epoch"] == 2
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=1e-4, atol=1e-5)
    assert [round(r["train_loss"], 5) for r in a["history"]] == [round(r["train_loss"], 5) for r in b["history"]]


def test_fold_out_of_range_is_an_error(tiny, tmp_path):
    dataset, folds = tiny
    with pytest.raises(DataError, match="fold 7 is not in the folds file"):
        train(tiny_config(tmp_path, folds=[7]), dataset, folds, tmp_path / "runs")
