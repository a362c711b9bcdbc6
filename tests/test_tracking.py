"""wandb tracking: optional, offline without a network, never fatal, never writes the API key."""

import logging

import pytest

from conftest import tiny_config
from fathom.data.layout import load_dataset
from fathom.folds import make_folds
from fathom.train.run import train
from fathom.train.tracking import Tracker, wanted

pytestmark = pytest.mark.slow  # trains, spawns processes or benchmarks: the full suite only

SECRET = "feedc0de" * 5  # looks like a 40-character wandb key


@pytest.fixture
def wandb_env(tmp_path, monkeypatch):
    for var in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_API_KEY", SECRET)


def tiny(tmp_path, demo_dir, **changes):
    dataset = load_dataset(demo_dir)
    folds = make_folds(dataset.train, dataset.categories, n_folds=3, seed=0)
    return tiny_config(tmp_path, name="tracked", epochs=1, limit=24, **changes), dataset, folds


def test_off_unless_asked(monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert not wanted(False) and wanted(True)
    monkeypatch.setenv("WANDB_API_KEY", SECRET)
    assert wanted(False)
    tracker = Tracker(False, "p", "g", "n", {}, None)
    tracker.log({"a": 1})  # a disabled tracker accepts calls and does nothing
    tracker.finish()


def test_offline_run_logs_metrics_and_never_the_key(wandb_env, demo_dir, tmp_path, caplog, capfd):
    cfg, dataset, folds = tiny(tmp_path, demo_dir)  # WANDB_API_KEY in the environment turns tracking on
    with caplog.at_level(logging.DEBUG):
        train(cfg, dataset, folds, tmp_path / "runs")
    printed = capfd.readouterr()
    assert SECRET not in caplog.text + printed.out + printed.err  # logs and console
    logs = list((tmp_path / "runs" / "tracked" / "wandb").rglob("*.wandb"))
    assert logs, "wandb wrote no offline run"
    assert b"fold_0/val_map20" in logs[0].read_bytes()
    for root in (tmp_path / "runs", tmp_path / "wandb-home"):
        for path in root.rglob("*"):
            if path.is_file():
                assert SECRET.encode() not in path.read_bytes(), path


def test_a_failing_wandb_is_a_warning(wandb_env, demo_dir, tmp_path, monkeypatch, caplog):
    import wandb

    def refuses(*args, **kwargs):
        raise wandb.errors.CommError("network unreachable")

    monkeypatch.setattr(wandb, "init", refuses)
    cfg, dataset, folds = tiny(tmp_path, demo_dir, wandb=True)
    with caplog.at_level(logging.WARNING, logger="fathom"):
        scores = train(cfg, dataset, folds, tmp_path / "runs")
    assert "resnet18" in scores and "wandb disabled" in caplog.text
    assert (tmp_path / "runs" / "tracked" / "resnet18" / "fold_0" / "metrics.csv").is_file()
