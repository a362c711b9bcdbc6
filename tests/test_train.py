"""The training engine end to end at tiny sizes: files written, OOF assembled, kill-and-resume."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import conftest
import fathom.train.fold as fold_module
from fathom.config import TrainConfig
from fathom.data.labels import fine_multi_hot
from fathom.data.layout import load_dataset
from fathom.errors import DataError, FathomError
from fathom.folds import make_folds
from fathom.metric import map_at_k_from_probs
from fathom.models.prior import fit_prior
from fathom.predictions import N_APPEARANCE, FrameAppearance, Predictions
from fathom.train.checkpoint import load_checkpoint
from fathom.train.run import train


@pytest.fixture(scope="module")
def tiny(demo_dir):
    dataset = load_dataset(demo_dir)
    return dataset, make_folds(dataset.train, dataset.categories, n_folds=3, seed=0)


def tiny_config(tmp_path, **changes) -> TrainConfig:
    return conftest.tiny_config(tmp_path, **{"limit": 40, **changes})


def test_validation_runs_every_val_every_epochs_and_after_the_last_under_the_inference_precision(
        tiny, tmp_path, monkeypatch):
    dataset, folds = tiny
    decided = []
    original = fold_module.Precision.for_prediction

    def spy(amp, infer_amp, device):
        decided.append(original(amp, infer_amp, device))
        return decided[-1]

    monkeypatch.setattr(fold_module.Precision, "for_prediction", staticmethod(spy))
    train(tiny_config(tmp_path, epochs=3, val_every=2, amp="fp32", infer_amp="bf16"), dataset, folds, tmp_path / "runs")
    fold0 = tmp_path / "runs" / "tiny" / "resnet18" / "fold_0"
    metrics = pd.read_csv(fold0 / "metrics.csv")
    assert list(metrics["epoch"]) == [0, 1, 2]
    assert list(metrics["val_map20"].notna()) == [False, True, True]  # epoch 1 (every 2nd) and the last
    assert load_checkpoint(fold0 / "best.pt")["epoch"] in (1, 2)
    assert [p.name for p in decided] == ["bf16"]
    assert [fold_module.on_schedule(e, 8, 4) for e in range(8)] == [False] * 3 + [True] + [False] * 3 + [True]
    assert all(fold_module.on_schedule(e, 5, 1) for e in range(5))


def test_reference_frames_samples_the_training_frames_predicted_as_the_osd_reference(tiny, tmp_path):
    dataset, folds = tiny
    assert list(fold_module.reference_sample(5, 0, 0)) == list(range(5)) == list(fold_module.reference_sample(5, 9, 0))
    sample = fold_module.reference_sample(40, 8, 1)
    assert len(set(sample)) == 8 and list(sample) == sorted(sample) and (sample < 40).all()
    assert list(sample) == list(fold_module.reference_sample(40, 8, 1))  # seeded: a rerun predicts the same frames
    train(tiny_config(tmp_path, epochs=1, reference_frames=8), dataset, folds, tmp_path / "runs")
    fold0 = tmp_path / "runs" / "tiny" / "resnet18" / "fold_0"
    reference, oof = (Predictions.load(fold0 / f"{split}.npz") for split in ("train", "oof"))
    in_training_part = dataset.train["id"].map(folds.set_index("id")["fold"]) != 0
    training_part = set(dataset.train["id"][in_training_part].head(40).astype(str))
    assert len(reference.ids) == 8 and set(reference.ids.astype(str)) <= training_part
    assert not set(reference.ids) & set(oof.ids)
    assert reference.extras["embedding"].shape == (8, 512)
    with pytest.raises(DataError, match="reference_frames"):
        tiny_config(tmp_path, reference_frames=-1).validate("test")


@pytest.mark.slow
def test_train_writes_fold_files_and_assembled_predictions(tiny, tmp_path):
    dataset, folds = tiny
    cfg = tiny_config(tmp_path, folds=[0, 1])
    scores = train(cfg, dataset, folds, tmp_path / "runs")
    assert 0 <= scores["resnet18"] <= 1
    fold0 = tmp_path / "runs" / "tiny" / "resnet18" / "fold_0"
    for name in ("config.yaml", "meta.json", "metrics.csv", "best.pt", "oof.npz", "test.npz", "done.json"):
        assert (fold0 / name).is_file(), name
    assert not (fold0 / "last.pt").exists(), "a finished fold's resume state is deleted (keep_last: false)"
    metrics = pd.read_csv(fold0 / "metrics.csv")
    assert list(metrics["epoch"]) == [0, 1] and {"train_loss", "val_map20", "lr"} <= set(metrics.columns)
    oof = Predictions.load(tmp_path / "runs" / "tiny" / "oof" / "resnet18.npz")
    test = Predictions.load(tmp_path / "runs" / "tiny" / "test" / "resnet18.npz")
    assert len(oof.ids) == 80 and len(set(oof.ids)) == 80  # 2 folds x limit 40 validation images
    assert list(test.ids) == list(dataset.eval["id"][:40]) and "osd" not in test.extras
    assert ((oof.fine >= 0) & (oof.fine <= 1)).all()
    # the floor printed next to each backbone: the frequency prior on exactly these OOF images
    features = np.random.default_rng(0).normal(size=(len(dataset.train), 4))
    prior_oof, _ = fit_prior(dataset.train, folds, dataset.eval["id"], features, features[:len(dataset.eval)],
                             dataset.categories)
    prior_oof = prior_oof.aligned_to(dataset.train["id"])
    rows = dataset.train["id"].reset_index(drop=True).pipe(lambda ids: ids[ids.isin(oof.ids)].index).to_numpy()
    labels = fine_multi_hot(dataset.train["categories"].iloc[rows], dataset.categories)
    assert scores["prior"] == pytest.approx(map_at_k_from_probs(prior_oof.fine[rows], labels))
    # every frame's appearance, for the osd scorers of the ensemble stage (which reads no pixels)
    appearance = FrameAppearance.load(tmp_path / "runs" / "tiny" / "appearance.npz")
    assert set(appearance.ids) == set(dataset.train["id"]) | set(dataset.eval["id"])
    assert appearance.values.shape == (len(appearance.ids), N_APPEARANCE) and np.isfinite(appearance.values).all()
    with pytest.raises(DataError, match="no appearance vector"):
        appearance.of(["somebody-else"])


@pytest.mark.slow
def test_finished_folds_are_reused_unless_the_recipe_changed(tiny, tmp_path):
    dataset, folds = tiny
    cfg = tiny_config(tmp_path, epochs=1)
    train(cfg, dataset, folds, tmp_path / "runs")
    done = tmp_path / "runs" / "tiny" / "resnet18" / "fold_0" / "oof.npz"
    stamp = done.stat().st_mtime_ns
    appearance = tmp_path / "runs" / "tiny" / "appearance.npz"
    written = FrameAppearance.load(appearance)
    appearance.write_bytes(appearance.read_bytes()[:100])  # a truncated appearance file is written again
    train(dataclasses.replace(cfg, workers=1), dataset, folds, tmp_path / "runs")  # plumbing: still reused
    assert done.stat().st_mtime_ns == stamp
    again = FrameAppearance.load(appearance)
    assert list(again.ids) == list(written.ids) and np.array_equal(again.values, written.values)
    train(dataclasses.replace(cfg, crop_size=64, tile_combine="max"), dataset, folds, tmp_path / "runs")
    assert done.stat().st_mtime_ns == stamp  # crop keys act only under sampling: crops
    train(dataclasses.replace(cfg, lr=5e-4), dataset, folds, tmp_path / "runs")  # a changed recipe retrains
    assert done.stat().st_mtime_ns != stamp
    stamp = done.stat().st_mtime_ns
    # any other key of the resolved config is covered too, even one nobody remembered to list
    train(dataclasses.replace(cfg, lr=5e-4, pos_weight_cap=9.0), dataset, folds, tmp_path / "runs")
    assert done.stat().st_mtime_ns != stamp


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_state(tiny, tmp_path, monkeypatch):
    dataset, folds = tiny
    cfg = tiny_config(tmp_path, epochs=3, ema=True, ema_decay=0.9, keep_last=True)
    train(cfg, dataset, folds, tmp_path / "straight")

    calls = {"n": 0}
    original = fold_module.train_one_epoch

    def dies_in_second_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed")
        return original(*args, **kwargs)

    monkeypatch.setattr(fold_module, "train_one_epoch", dies_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, dataset, folds, tmp_path / "resumed")
    monkeypatch.setattr(fold_module, "train_one_epoch", original)
    last = tmp_path / "resumed" / "tiny" / "staging" / "resnet18" / "fold_0" / "last.pt"
    assert load_checkpoint(last)["epoch"] == 0 and not (tmp_path / "resumed" / "tiny" / "resnet18").exists()
    train(cfg, dataset, folds, tmp_path / "resumed", resume=True)

    def final(root):
        return load_checkpoint(root / "tiny" / "resnet18" / "fold_0" / "last.pt")

    a, b = final(tmp_path / "straight"), final(tmp_path / "resumed")
    assert a["epoch"] == b["epoch"] == 2
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=1e-4, atol=1e-5)
    assert [round(r["train_loss"], 5) for r in a["history"]] == [round(r["train_loss"], 5) for r in b["history"]]


@pytest.mark.parametrize("checkpoint_every", [1, pytest.param(5, marks=pytest.mark.slow)])
def test_a_time_budget_stops_at_an_epoch_boundary_and_the_run_resumes(tiny, tmp_path, monkeypatch, checkpoint_every):
    """time_budget_h: training stops cleanly before the first epoch that starts past the budget, with
    last.pt to resume from and no done.json; `--resume` (a new session) finishes the fold. With last.pt
    written every 5th epoch only, the stop writes the epoch it holds not yet."""
    import time

    dataset, folds = tiny
    clock = {"now": 0.0}
    original = fold_module.train_one_epoch

    def an_hour_per_epoch(*args, **kwargs):
        clock["now"] += 3600.0
        return original(*args, **kwargs)

    monkeypatch.setattr(time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(fold_module, "train_one_epoch", an_hour_per_epoch)
    cfg = tiny_config(tmp_path, epochs=3, folds=[0, 1], time_budget_h=1.5, checkpoint_every=checkpoint_every)
    assert train(cfg, dataset, folds, tmp_path / "runs") == {}  # no backbone finished: nothing assembled
    fold0, fold1 = (tmp_path / "runs" / "tiny" / "resnet18" / f"fold_{k}" for k in (0, 1))
    staging = tmp_path / "runs" / "tiny" / "staging" / "resnet18"
    assert load_checkpoint(staging / "fold_0" / "last.pt")["epoch"] == 1 and not fold0.exists()
    assert not fold1.exists() and not (staging / "fold_1").exists(), "the next fold does not start past the budget"
    assert not (tmp_path / "runs" / "tiny" / "oof" / "resnet18.npz").exists()

    clock["now"] = 0.0
    scores = train(dataclasses.replace(cfg, time_budget_h=0.0), dataset, folds, tmp_path / "runs", resume=True)
    assert set(scores) == {"resnet18", "prior"}
    assert list(pd.read_csv(fold0 / "metrics.csv")["epoch"]) == [0, 1, 2]  # resumed at epoch 2, not retrained
    assert (fold0 / "done.json").is_file() and not (fold0 / "last.pt").exists()
    assert (fold1 / "done.json").is_file() and not staging.parent.exists(), "finished runs leave no staging folder"


def test_a_failed_retrain_leaves_the_finished_fold_whole_and_resumes_from_its_staging_folder(tiny, tmp_path,
                                                                                                monkeypatch):
    """A fold is a transaction: a retrain with another config writes into staging/ and replaces the fold folder
    only once done.json is written; cut short, the old fold stays byte for byte and is reused by its own
    config; `--resume` of the new config continues the staging folder it began."""
    import hashlib

    dataset, folds = tiny
    cfg = tiny_config(tmp_path, epochs=1)
    runs = tmp_path / "runs"
    train(cfg, dataset, folds, runs)
    fold = runs / "tiny" / "resnet18" / "fold_0"

    def digest() -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(fold.iterdir())}

    before = digest()
    original = fold_module.train_one_epoch
    calls = {"n": 0}

    def dies_in_second_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed")
        return original(*args, **kwargs)

    changed = dataclasses.replace(cfg, epochs=2, lr=5e-4, checkpoint_every=1)
    monkeypatch.setattr(fold_module, "train_one_epoch", dies_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(changed, dataset, folds, runs)
    monkeypatch.setattr(fold_module, "train_one_epoch", original)
    staging = runs / "tiny" / "staging" / "resnet18" / "fold_0"
    assert digest() == before, "the finished fold changed"
    assert load_checkpoint(staging / "last.pt")["epoch"] == 0
    assert yaml.safe_load((staging / "config.yaml").read_text())["lr"] == 5e-4
    first_epoch = pd.read_csv(staging / "metrics.csv")
    train(cfg, dataset, folds, runs)  # its own config: reused as it is
    assert digest() == before
    train(changed, dataset, folds, runs, resume=True)  # the new config's run, continued after its epoch 0
    metrics = pd.read_csv(fold / "metrics.csv")
    assert list(metrics["epoch"]) == [0, 1] and metrics["train_loss"][0] == first_epoch["train_loss"][0]
    assert yaml.safe_load((fold / "config.yaml").read_text())["lr"] == 5e-4 and not staging.exists()


@pytest.mark.slow
def test_the_same_weights_mounted_at_another_path_resume_without_retraining(tiny, tmp_path):
    """A later Kaggle session mounts the bundle elsewhere: its weights' path changes, their content does not,
    so the finished fold is reused; other weights (other bytes) retrain it."""
    import shutil

    import timm
    from safetensors.torch import save_file

    dataset, folds = tiny
    first, second = tmp_path / "input-v1" / "resnet18.safetensors", tmp_path / "input-v2" / "resnet18.safetensors"
    first.parent.mkdir()
    save_file(timm.create_model("resnet18", num_classes=0).state_dict(), str(first))
    second.parent.mkdir()
    shutil.copy(first, second)
    cfg = tiny_config(tmp_path, epochs=1)
    train(dataclasses.replace(cfg, weights={"resnet18": str(first)}), dataset, folds, tmp_path / "runs")
    done = tmp_path / "runs" / "tiny" / "resnet18" / "fold_0" / "done.json"
    stamp = done.stat().st_mtime_ns
    train(dataclasses.replace(cfg, weights={"resnet18": str(second)}), dataset, folds, tmp_path / "runs", resume=True)
    assert done.stat().st_mtime_ns == stamp, "the same weights at another path retrained the fold"
    save_file(timm.create_model("resnet18", num_classes=0).state_dict(), str(second))  # other bytes
    train(dataclasses.replace(cfg, weights={"resnet18": str(second)}), dataset, folds, tmp_path / "runs", resume=True)
    assert done.stat().st_mtime_ns != stamp


def test_fold_out_of_range_is_an_error(tiny, tmp_path):
    dataset, folds = tiny
    with pytest.raises(DataError, match="fold 7 is not in the folds file"):
        train(tiny_config(tmp_path, folds=[7]), dataset, folds, tmp_path / "runs")


def colour_coded(n: int, colours: np.ndarray, rng: np.random.Generator) -> tuple[torch.Tensor, np.ndarray]:
    """n 32-px images whose class is their colour (class c: colours[c]), with pixel noise; multi-hot [n, 290]."""
    label = np.arange(n) % len(colours)
    images = colours[label][:, :, None, None] + rng.normal(0, 0.3, (n, 3, 32, 32))
    targets = np.zeros((n, 290), np.float32)
    targets[np.arange(n), label] = 1
    return torch.tensor(images, dtype=torch.float32), targets


def fit_and_score(images, targets, test_images, test_targets, epochs: int = 5) -> tuple[list[float], float]:
    """A random-init resnet18 trained on (images, targets) by the engine's own epoch; (loss per epoch, MAP@20
    of its predictions of the test images)."""
    from timm.scheduler import CosineLRScheduler

    from fathom.models.net import FathomNet
    from fathom.predictor import predict
    from fathom.train.loop import train_one_epoch
    from fathom.train.loss import FathomLoss, pos_weights
    from fathom.train.optimizer import make_optimizer
    from fathom.train.precision import Precision

    torch.manual_seed(0)
    model = FathomNet("resnet18")
    sup = torch.zeros(len(images), 20)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, torch.tensor(targets), sup),
                                         batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
    precision = Precision.decide("fp32", torch.device("cpu"))
    optimizer = make_optimizer("adamw", model.parameters(), 3e-3, 0.0, precision.device)
    scheduler = CosineLRScheduler(optimizer, t_initial=epochs * len(loader))
    loss_fn, losses, step = FathomLoss(pos_weights(targets), super_weight=0.0), [], 0
    for _ in range(epochs):
        row, step = train_one_epoch(model, loader, loss_fn, optimizer, scheduler, precision, step, progress=False)
        losses.append(row["train_loss"])
    test = [(test_images, torch.zeros(len(test_images), 290), torch.zeros(len(test_images), 20))]
    return losses, map_at_k_from_probs(predict(model, test, precision)["fine"], test_targets)


@pytest.mark.slow
def test_the_engine_learns_what_the_labels_say_and_nothing_from_shuffled_ones():
    """Tiny-size learning: on images whose colour is their class, the training loss falls and the model ranks
    unseen images' classes far better than the same model trained on shuffled labels (which can only learn
    class frequencies). A defect in the loop, loss, optimiser or heads breaks this; a random stream cannot."""
    rng = np.random.default_rng(0)
    colours = rng.uniform(-1.5, 1.5, (4, 3))
    images, targets = colour_coded(96, colours, rng)
    test_images, test_targets = colour_coded(48, colours, rng)
    losses, learned = fit_and_score(images, targets, test_images, test_targets)
    _, shuffled = fit_and_score(images, targets[rng.permutation(len(targets))], test_images, test_targets)
    assert losses[-1] < losses[0]
    assert learned > 0.9 and shuffled < 0.7, (learned, shuffled)


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tiny, tmp_path, monkeypatch):
    dataset, folds = tiny
    cfg = tiny_config(tmp_path, epochs=3)
    original = fold_module.FathomLoss.forward
    batches = {"n": 0}
    per_epoch = 40 // cfg.batch_size

    def diverges_in_second_epoch(self, logits, fine, sup):
        out = original(self, logits, fine, sup)
        if torch.is_grad_enabled():
            batches["n"] += 1
            if batches["n"] > per_epoch:
                out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(fold_module.FathomLoss, "forward", diverges_in_second_epoch)
    with pytest.raises(FathomError, match=r"e1: loss became nan at batch 0; the last good checkpoint is kept"):
        train(cfg, dataset, folds, tmp_path / "runs")
    fold = tmp_path / "runs" / "tiny" / "staging" / "resnet18" / "fold_0"
    assert load_checkpoint(fold / "last.pt")["epoch"] == 0 and load_checkpoint(fold / "best.pt")["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in load_checkpoint(fold / "last.pt")["model"].values()
               if v.is_floating_point())
    assert not (fold / "done.json").exists()


@pytest.mark.slow
def test_the_same_seed_gives_identical_oof_predictions_on_cpu(tiny, tmp_path):
    dataset, folds = tiny
    cfg = tiny_config(tmp_path, workers=1)
    for name in ("first", "second"):
        train(cfg, dataset, folds, tmp_path / name)
    a, b = (Predictions.load(tmp_path / name / "tiny" / "oof" / "resnet18.npz") for name in ("first", "second"))
    assert list(a.ids) == list(b.ids)
    assert np.array_equal(a.fine, b.fine) and np.array_equal(a.super, b.super)
    changed = dataclasses.replace(cfg, seed=4)
    train(changed, dataset, folds, tmp_path / "third")
    assert not np.array_equal(a.fine, Predictions.load(tmp_path / "third" / "tiny" / "oof" / "resnet18.npz").fine)


def test_deterministic_switches_torch_to_deterministic_kernels_and_back(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    try:
        fold_module.seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
        assert fold_module.os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        fold_module.seed_everything(0)
    assert not torch.are_deterministic_algorithms_enabled()
