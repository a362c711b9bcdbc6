"""DDP: `torchrun --nproc_per_node=2 -m fathom train` on CPU (gloo), checked against one process."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from fathom.config import load_config
from fathom.data.layout import load_dataset
from fathom.folds import make_folds, read_folds, write_folds
from fathom.predictions import Predictions
from fathom.train.checkpoint import load_checkpoint
from fathom.data.sampling import sampling_for
from fathom.train.distributed import Distributed
from fathom.train.fold import build_fold, fold_data
from fathom.train.run import build_cache

pytestmark = pytest.mark.slow  # trains, spawns processes or benchmarks: the full suite only

OVERRIDES = ["backbones=[resnet18]", "image_size=32", "folds=[0]", "epochs=2", "limit=40", "batch_size=8",
             "workers=0", "amp=fp32", "infer_amp=train", "lr=0.001", "keep_last=true"]  # the demo's crops and tiles, in fp32


def test_two_processes_train_one_model_and_rank_zero_writes(demo_dir, tmp_path):
    dataset = load_dataset(demo_dir)
    folds_csv = tmp_path / "folds.csv"
    write_folds(make_folds(dataset.train, dataset.categories, n_folds=3, seed=0), folds_csv)
    overrides = OVERRIDES + [f"cache_dir={tmp_path / 'cache'}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    env.pop("WANDB_API_KEY", None)
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "fathom", "train",
         "--data", str(demo_dir), "--folds", str(folds_csv), "--runs", str(tmp_path / "runs"), "--config", "demo",
         *overrides], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("demo/resnet18: OOF MAP@20") == 1  # printed by rank 0 only

    fold = tmp_path / "runs" / "demo" / "resnet18" / "fold_0"
    assert json.loads((fold / "meta.json").read_text())["processes"] == 2
    metrics = pd.read_csv(fold / "metrics.csv")
    assert list(metrics["epoch"]) == [0, 1] and np.isfinite(metrics["train_loss"]).all()
    assert load_checkpoint(fold / "last.pt")["epoch"] == 1

    # The OOF rows gathered from two ranks equal one process predicting with the saved best model.
    cfg = load_config("demo", overrides)
    folds = read_folds(folds_csv, dataset.train["id"])
    cfg = cfg.for_backbone("resnet18")
    data = fold_data(cfg, dataset, build_cache(cfg, dataset), folds, 0, tmp_path / "runs")
    sampling = sampling_for(cfg)
    parts = build_fold(cfg, data, "resnet18", 0, sampling, sampling.boxes(dataset), dataset.categories.parent,
                       Distributed())
    parts.predictor.model.load_state_dict(load_checkpoint(fold / "best.pt")["model"])
    single = parts.predictor.frames("valid", data.files["valid"], parts.transforms["eval"])
    oof = Predictions.load(fold / "oof.npz")
    assert list(oof.ids) == list(data.ids["valid"])
    np.testing.assert_allclose(oof.fine, single["fine"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(oof.super, single["super"], rtol=1e-4, atol=1e-6)
