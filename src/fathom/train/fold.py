"""One backbone on one fold, in three explicit steps: `fold_data` (its images and targets), `build_fold`
(everything it trains with) and `fit` (the epochs), then `predict_best` (its OOF and eval files).

Nothing here branches on `sampling`: the strategy (fathom.data.sampling) makes the training set and the
prediction views, and the predictor (fathom.predictor) combines views into frames.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import platform
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import timm
import torch
import yaml
from timm.scheduler import CosineLRScheduler
from timm.utils import ModelEmaV3

from fathom.atomic import atomic_open, remove_temporaries, replace_folder, write_csv, write_json
from fathom.config import TrainConfig, to_dict
from fathom.data.labels import fine_multi_hot, prior_log_odds, repeat_factors, super_multi_hot
from fathom.data.layout import Dataset
from fathom.data.loaders import EpochSampler, make_loader
from fathom.data.sampling import Boxes, Frames, TrainingFrames, sampling_for
from fathom.data.transforms import crop_transform, eval_transform, train_transform
from fathom.errors import DataError
from fathom.metric import map_at_k_from_probs
from fathom.models.net import FathomNet
from fathom.predictions import Predictions
from fathom.predictor import Predictor
from fathom.provenance import git_commit
from fathom.runs import STAGING, Done, Experiment, FoldDir
from fathom.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from fathom.train.distributed import Distributed
from fathom.train.loop import train_one_epoch
from fathom.train.loss import FathomLoss, pos_weights
from fathom.train.mixing import MultiLabelMix
from fathom.train.optimizer import make_optimizer
from fathom.train.precision import Precision
from fathom.train.tracking import Tracker

log = logging.getLogger(__name__)
# Keys that change no trained weight: where files go, how fast they load, which lists of folds and
# backbones an experiment holds, how prediction augments. Every other key of the resolved config is in
# a fold's fingerprint.
NOT_TRAINING_KEYS = ("name", "backbones", "folds", "by_backbone", "workers", "cache_dir", "wandb", "wandb_project",
                     "device", "time_budget_h", "keep_last", "checkpoint_every", "tta_hflip", "tta_scales",
                     "tta_adapt_bn", "probe_share", "probe_backbone", "probe_epochs")


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, numpy and torch; `deterministic` also restricts CUDA to deterministic kernels (cuBLAS
    needs its workspace setting before its first call; an op without such a kernel warns)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


@dataclass(frozen=True)
class FoldData:
    """One fold's images: ids, cached files and targets of its training, validation and eval parts."""

    ids: dict[str, np.ndarray]  # train, valid, eval
    files: dict[str, list[Path]]
    targets: dict[str, tuple[np.ndarray, np.ndarray]]  # train (soft when distilling), valid: (fine, super)
    labels: tuple[np.ndarray, np.ndarray]  # the training part's true labels: weights, sampling, the prior
    train_sizes: np.ndarray  # [N, 2] original (width, height) of the training frames

    def training_frames(self) -> TrainingFrames:
        return TrainingFrames(self.files["train"], *self.targets["train"], self.ids["train"], self.train_sizes)


def fold_data(cfg: TrainConfig, dataset: Dataset, cache_files: dict[str, Path], folds: pd.DataFrame, fold: int,
              runs: Path) -> FoldData:
    in_fold = dataset.train["id"].map(folds.set_index("id")["fold"]) == fold
    return split_data(cfg, dataset, cache_files, dataset.train[~in_fold], dataset.train[in_fold], runs)


def split_data(cfg: TrainConfig, dataset: Dataset, cache_files: dict[str, Path], train: pd.DataFrame,
               valid: pd.DataFrame, runs: Path, with_eval: bool = True) -> FoldData:
    """The FoldData of training on the rows `train` and validating on `valid` (rows of dataset.train), and
    of predicting the eval images unless `with_eval` is False (no test.npz is written then)."""
    if cfg.limit:
        train, valid = train.head(cfg.limit), valid.head(cfg.limit)
    ids = {"train": train["id"].to_numpy(), "valid": valid["id"].to_numpy(),
           "eval": dataset.eval["id"].to_numpy()[: cfg.limit or None] if with_eval else np.array([], dtype=object)}
    cats = dataset.categories
    targets = {name: (fine_multi_hot(part["categories"], cats), super_multi_hot(part["categories"], cats))
               for name, part in (("train", train), ("valid", valid))}
    labels = targets["train"]
    if cfg.distill_from:
        targets["train"] = distilled_targets(runs, cfg, ids["train"], *labels)
    return FoldData(ids, {split: [cache_files[i] for i in part] for split, part in ids.items()}, targets, labels,
                    train[["width", "height"]].to_numpy(np.float64))


def fingerprint(cfg: TrainConfig, data: FoldData) -> str:
    """What a finished fold depends on: its resolved config (less NOT_TRAINING_KEYS and the keys its
    sampling strategy ignores, e.g. crop geometry under whole frames) and its images' ids. A changed default
    changes it too: no version to bump by hand."""
    ignored = {*NOT_TRAINING_KEYS, *sampling_for(cfg).inert_keys}
    settings = {k: v for k, v in to_dict(cfg).items() if k not in ignored}
    # local weight files by content, not by path: a bundle mounted elsewhere by a later session is the same start
    settings["weights"] = {backbone: file_identity(path) for backbone, path in sorted(cfg.weights.items())}
    # the images by id: not their cache files, whose names and folder change with the mount, the mtime or
    # the scratch disk of a new Kaggle session (a fold restored there must still count as done)
    content = json.dumps([settings, *(list(map(str, data.ids[s])) for s in ("train", "valid", "eval"))])
    return hashlib.sha256(content.encode()).hexdigest()[:16]


def file_identity(path: str) -> str:
    """What a fingerprint records of a local weights file: its content's sha256 (its name when it is missing:
    the run then fails where it loads the file)."""
    file = Path(path)
    if not file.is_file():
        return file.name
    stat = file.stat()
    return content_hash(str(file.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=None)
def content_hash(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file, computed once per (path, size, mtime): every fold of a run fingerprints the same file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def is_done(fold_dir: FoldDir, expected: str, dist: Distributed = Distributed()) -> bool:
    """True when the fold finished with the fingerprint `expected` (its predictions can be reused). A run that
    finished in the staging folder but was cut before replacing the fold folder replaces it now."""
    if dist.is_main:
        adopt_finished_staging(fold_dir, expected)
    dist.barrier()
    if not fold_dir.is_finished():
        return False
    try:
        if fold_dir.done().fingerprint == expected:
            return True
    except DataError as err:  # a record of another version
        log.warning("%s", err)
    log.warning("%s fold %d: config or data changed since it finished; training it again", fold_dir.backbone,
                fold_dir.fold)
    return False


def adopt_finished_staging(fold_dir: FoldDir, expected: str) -> None:
    """Move a staging folder that finished (done.json) with the fingerprint `expected` into the fold's place."""
    stage = fold_dir.staging
    try:
        finished = stage.is_finished() and stage.done().fingerprint == expected
    except DataError:
        finished = False
    if finished:
        log.info("%s: its run finished before it replaced the fold folder; replacing it now", fold_dir.label)
        replace_folder(stage.path, fold_dir.path)


def prepare_staging(stage: FoldDir, expected: str, resume: bool) -> None:
    """The staging folder a run of the fold writes into: kept when `resume` and a run with the fingerprint
    `expected` began it (temporaries of killed writes removed), else emptied."""
    if stage.path.exists():
        if resume and stage.fingerprint_started() == expected:
            for leftover in remove_temporaries(stage.path):
                log.info("%s: removed %s, left by a killed write", stage.label, leftover.name)
            return
        log.info("%s: discarding an unfinished run in %s (%s)", stage.label, stage.path,
                 "no --resume" if not resume else "begun with another config or data")
        shutil.rmtree(stage.path)
    stage.path.mkdir(parents=True)


@dataclass
class FoldParts:
    """Everything one fold trains with, built once by `build_fold`."""

    model: torch.nn.Module  # the raw model (optimised; its state is in last.pt)
    trained: torch.nn.Module  # the same, wrapped for DDP when distributed
    loss_fn: FathomLoss
    optimizer: torch.optim.Optimizer
    scheduler: CosineLRScheduler
    ema: ModelEmaV3 | None
    mix: MultiLabelMix | None
    precision: Precision
    transforms: dict
    batches: torch.utils.data.DataLoader  # training batches (this rank's share)
    predictor: Predictor  # validation, OOF and eval: the EMA model when there is one
    validated: tuple[int, dict, object] | None = None  # (epoch, rows, views) of the latest validation


def build_fold(cfg: TrainConfig, data: FoldData, backbone: str, fold: int, sampling: Frames, boxes: Boxes | None,
               parent: np.ndarray, dist: Distributed) -> FoldParts:
    seed_everything(cfg.seed + fold, cfg.deterministic)
    device = dist.device(cfg.device)
    precision = Precision.decide(cfg.amp, device)
    model = FathomNet.for_config(backbone, cfg)
    model.check_input_size(cfg.image_size)
    fine_frequency = data.labels[0].mean(0)
    model.start_at_prior(fine_frequency, data.labels[1].mean(0), fine_shift=cfg.logit_adjustment)
    model = model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    stats = model.data_config()
    transforms = {name: make(cfg.image_size, stats["mean"], stats["std"]) for name, make in
                  (("train", train_transform), ("crop", crop_transform), ("eval", eval_transform))}
    loss_fn = FathomLoss(pos_weights(data.labels[0], cfg.pos_weight_power, cfg.pos_weight_cap),
                         cfg.super_weight, cfg.label_smoothing, cfg.loss, cfg.asl_gamma_neg, cfg.asl_gamma_pos,
                         cfg.asl_clip, cfg.focal_gamma,
                         logit_shift=cfg.logit_adjustment * prior_log_odds(fine_frequency)).to(device)
    mix = MultiLabelMix(cfg.mixup_alpha, cfg.cutmix_alpha, cfg.mix_prob) if cfg.mixup_alpha or cfg.cutmix_alpha \
        else None
    optimizer = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.weight_decay, device)
    per_rank = len(data.files["train"]) // dist.world
    steps = math.ceil((per_rank // cfg.batch_size if per_rank > cfg.batch_size else 1) / cfg.grad_accum)
    scheduler = CosineLRScheduler(optimizer, t_initial=max(1, cfg.epochs * steps), lr_min=cfg.lr * 0.01,
                                  warmup_t=int(cfg.warmup_epochs * steps), warmup_lr_init=cfg.lr * 0.01,
                                  t_in_epochs=False)
    ema = ModelEmaV3(model, decay=cfg.ema_decay) if cfg.ema else None
    training_set = sampling.training_set(data.training_frames(), transforms, parent, boxes)
    weights = repeat_factors(data.labels[0], cfg.repeat_threshold) if cfg.sampler == "balanced" else None
    batches = make_loader(training_set, cfg.batch_size, True, cfg.workers, device,
                          sampler=EpochSampler(len(training_set), cfg.seed, dist.world, dist.rank, weights))
    predictor = Predictor(ema.module if ema is not None else model, sampling,
                          Precision.for_prediction(cfg.amp, cfg.infer_amp, device), cfg.prediction_batch_size,
                          cfg.workers, cfg.channels_last, dist)
    return FoldParts(model, dist.wrap(model), loss_fn, optimizer, scheduler, ema, mix, precision, transforms,
                     batches, predictor)


def resume_from(parts: FoldParts, path: Path) -> tuple[int, int, float, list[dict]]:
    """Load last.pt into the parts; returns (first epoch to run, step, best val MAP@20, history)."""
    state = load_checkpoint(path, parts.precision.device)
    parts.model.load_state_dict(state["model"])
    parts.optimizer.load_state_dict(state["optimizer"])
    parts.scheduler.load_state_dict(state["scheduler"])
    parts.precision.scaler.load_state_dict(state["scaler"])
    if parts.ema is not None:
        parts.ema.load_state_dict(state["ema"])
    set_rng_state(state["rng"])
    return state["epoch"] + 1, state["step"], state["best"], state["history"]


def validate(parts: FoldParts, data: FoldData, epoch: int) -> dict[str, float]:
    """{val_loss, val_map20} of the validation frames (loss: mean binary cross-entropy of the per-frame
    fine probabilities, whatever the sampling). Its rows are kept: predict_best reuses them when this epoch's
    model is the best one."""
    rows, views = parts.predictor.rows("valid", data.files["valid"], parts.transforms["eval"])
    parts.validated = (epoch, rows, views)
    frames = parts.predictor.sampling.frames(rows, views, None)
    fine_targets = data.targets["valid"][0]
    return {"val_loss": mean_bce(frames["fine"], fine_targets),
            "val_map20": map_at_k_from_probs(frames["fine"], fine_targets)}


class OutOfTime(Exception):
    """The training time budget ran out at an epoch boundary; last.pt holds everything to resume."""


def past_deadline(dist: Distributed, deadline: float) -> bool:
    """Whether the budget is spent, decided alike on every rank (their clocks may differ: all stop if one must)."""
    return bool(dist.sum(float(time.monotonic() > deadline)))


def fit(cfg: TrainConfig, parts: FoldParts, data: FoldData, fold_dir: FoldDir, dist: Distributed,
        resume: bool = False, tracker: Tracker | None = None, deadline: float = math.inf) -> None:
    """The epochs: train, validate, keep best.pt (best validation MAP@20) and last.pt (resume: every
    `checkpoint_every` epochs and after the last). Past `deadline` (time.monotonic()) it writes last.pt if the
    latest epoch is not in it and raises OutOfTime before the next epoch, every rank alike."""
    name, main = fold_dir.label, dist.is_main
    start, step, best, history = 0, 0, -1.0, []
    if resume and fold_dir.last.is_file():
        start, step, best, history = resume_from(parts, fold_dir.last)
        log.info("%s: resumed after epoch %d", name, start - 1)
    stale, unsaved = 0, None  # unsaved: the last epoch whose state last.pt does not hold yet

    def save_last(epoch: int) -> None:
        """last.pt: everything to resume after `epoch` (the state now: nothing changes between epochs)."""
        if main:
            save_checkpoint({"model": parts.model.state_dict(), "optimizer": parts.optimizer.state_dict(),
                             "scheduler": parts.scheduler.state_dict(), "scaler": parts.precision.scaler.state_dict(),
                             "ema": parts.ema.state_dict() if parts.ema is not None else None, "epoch": epoch,
                             "step": step, "best": best, "history": history, "rng": rng_state()}, fold_dir.last)
        dist.barrier()  # checkpoints are complete before any rank may read them

    for epoch in range(start, cfg.epochs):
        if past_deadline(dist, deadline):
            if unsaved is not None:
                save_last(unsaved)
            raise OutOfTime(f"{name}: stopped before epoch {epoch} of {cfg.epochs}")
        parts.batches.sampler.set_epoch(epoch)
        metrics, step = train_one_epoch(parts.trained, parts.batches, parts.loss_fn, parts.optimizer, parts.scheduler,
                                        parts.precision, step, cfg.grad_accum, cfg.clip_grad, parts.ema,
                                        cfg.channels_last, desc=f"{fold_dir.backbone} f{fold_dir.fold} e{epoch}",
                                        progress=main, mix=parts.mix)
        metrics["train_loss"] = dist.mean(metrics["train_loss"])
        metrics["train_images_per_s"] = dist.sum(metrics["train_images_per_s"])
        validates = on_schedule(epoch, cfg.epochs, cfg.val_every)
        row = {"epoch": epoch, **metrics, **(validate(parts, data, epoch) if validates else {})}
        history.append(row)
        if main:
            write_csv(pd.DataFrame(history), fold_dir.metrics)
            if tracker is not None:
                tracker.log(row, prefix=f"fold_{fold_dir.fold}/")
        log.info("%s epoch %d: loss %.4f %s(%.1f img/s)", name, epoch, row["train_loss"],
                 f"val MAP@20 {row['val_map20']:.4f} " if validates else "", row["train_images_per_s"])
        if validates and row["val_map20"] > best:
            best, stale = row["val_map20"], 0
            if main:
                save_checkpoint({"model": parts.predictor.model.state_dict(), "epoch": epoch, "val_map20": best},
                                fold_dir.best)
        elif validates:
            stale += 1
        dist.barrier()  # best.pt is complete before any rank may read it
        unsaved = epoch
        if on_schedule(epoch, cfg.epochs, cfg.checkpoint_every):
            save_last(epoch)
            unsaved = None
        if cfg.patience and stale >= cfg.patience:
            log.info("%s: early stop after epoch %d", name, epoch)
            break


def on_schedule(epoch: int, epochs: int, every: int) -> bool:
    """Whether epoch `epoch` (0-based) of `epochs` is one of every `every`-th and the last: the epochs that are
    validated (`val_every`; the last always is, so best.pt exists) and that write last.pt (`checkpoint_every`)."""
    return (epoch + 1) % every == 0 or epoch == epochs - 1


def predict_best(cfg: TrainConfig, parts: FoldParts, data: FoldData, fold_dir: FoldDir, dist: Distributed,
                 key: str, started: float) -> dict[str, Predictions]:
    """Validation (OOF) and eval predictions of the best checkpoint, saved in the fold folder; done.json
    last. Tiled: the rule chosen on validation combines both (every rule's MAP@20 is in done.json)."""
    predictor, eval_transform_ = parts.predictor, parts.transforms["eval"]
    best = load_checkpoint(fold_dir.best, parts.precision.device)
    predictor.model.load_state_dict(best["model"])
    reference = reference_sample(len(data.ids["train"]), cfg.reference_frames, cfg.seed + fold_dir.fold)
    files = {**data.files, "train": [data.files["train"][i] for i in reference]}
    ids = {**data.ids, "train": data.ids["train"][reference]}
    rows, views = {}, {}
    # The last validation's rows are the best model's when that epoch was the best: the same weights, loader and
    # views. Not under DDP: each rank validated with its own BatchNorm buffers, best.pt holds rank 0's.
    if not dist.enabled and parts.validated is not None and parts.validated[0] == best["epoch"]:
        rows["valid"], views["valid"] = parts.validated[1:]
    splits = [split for split in ("valid", "eval", "train") if len(files[split])]
    for split in splits:
        if split not in rows:
            rows[split], views[split] = predictor.rows(split if split != "train" else None, files[split],
                                                       eval_transform_)
    rule, rule_scores = predictor.sampling.choose_rule(rows["valid"], views["valid"], data.targets["valid"][0])
    out = {name: as_predictions(ids[split], predictor.sampling.frames(rows[split], views[split], rule))
           for name, split in (("oof", "valid"), ("test", "eval"), ("train", "train")) if split in splits}
    if dist.is_main:
        for split, predictions in out.items():
            predictions.save(fold_dir.predictions(split))
        if not cfg.keep_last:
            fold_dir.last.unlink(missing_ok=True)  # resume state of a finished fold: only best.pt predicts
        fold_dir.write_done(Done(
            fingerprint=key, val_map20=map_at_k_from_probs(out["oof"].fine, data.targets["valid"][0]),
            seconds=time.perf_counter() - started, tile_combine=rule, tile_val_map20=rule_scores,
            views_per_frame={split: views[split].per_frame for split in ("valid", "eval") if split in splits}
            if rule is not None else None))
    return out


def reference_sample(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted indices of the training frames predicted as the out-of-sample reference (train.npz): all of
    them when `size` is 0 or at least n, else a sample of `size` drawn from `seed`. Under tiling a training
    frame costs ~7 views, and on the demo these frames were more than half of a fold's final prediction rows."""
    if not size or size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def as_predictions(ids: np.ndarray, frames: dict[str, np.ndarray]) -> Predictions:
    return Predictions(ids, frames["fine"], frames["super"], {k: v for k, v in frames.items()
                                                              if k not in ("fine", "super")})


def write_run_info(fold_dir: FoldDir, cfg: TrainConfig, precision: Precision, world: int, key: str) -> None:
    with atomic_open(fold_dir.config) as fh:
        yaml.safe_dump(to_dict(cfg), fh, sort_keys=False)
    write_json({"fingerprint": key, "git_commit": git_commit(), "python": platform.python_version(),
                "torch": torch.__version__, "timm": timm.__version__, "device": str(precision.device),
                "precision": precision.name, "processes": world}, fold_dir.meta)


def train_fold(cfg: TrainConfig, data: FoldData, fold_dir: FoldDir, sampling: Frames, boxes: Boxes | None,
               parent: np.ndarray, dist: Distributed, key: str, resume: bool = False,
               tracker: Tracker | None = None, deadline: float = math.inf,
               write_extra: Callable[[FoldDir], None] | None = None) -> dict[str, Predictions]:
    """Build, fit and predict one fold; returns its {oof, test} predictions. OutOfTime past `deadline`.

    A transaction: the run writes into the fold's staging folder (`FoldDir.staging`; `write_extra` adds files
    there, e.g. a probe's unseen.npz), which replaces the fold folder whole once done.json is written. A kill
    or an error at any point leaves the previous finished fold (or none) and the staging folder, which
    `resume` continues when a run with the same fingerprint began it."""
    if past_deadline(dist, deadline):  # before building the fold's model and loaders
        raise OutOfTime(f"{fold_dir.label}: not started")
    started, stage = time.perf_counter(), fold_dir.staging
    if dist.is_main:
        prepare_staging(stage, key, resume)
        if write_extra is not None:
            write_extra(stage)
    parts = build_fold(cfg, data, fold_dir.backbone, fold_dir.fold, sampling, boxes, parent, dist)
    if dist.is_main:
        write_run_info(stage, cfg, parts.precision, dist.world, key)
    fit(cfg, parts, data, stage, dist, resume, tracker, deadline)
    out = predict_best(cfg, parts, data, stage, dist, key, started)
    if dist.is_main:
        replace_folder(stage.path, fold_dir.path)
        for parent in stage.path.parents:  # staging/<backbone>/ and staging/ when nothing else is begun
            try:
                parent.rmdir()
            except OSError:
                break
            if parent.name == STAGING:
                break
    dist.barrier()  # every rank sees the finished fold before deciding what to train next
    return out


def mean_bce(probs: np.ndarray, targets: np.ndarray) -> float:
    """Mean binary cross-entropy of probabilities against 0/1 (or soft) targets."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-6, 1 - 1e-6)
    return float(-(targets * np.log(p) + (1 - targets) * np.log1p(-p)).mean())


def distilled_targets(runs: Path, cfg: TrainConfig, ids: np.ndarray, fine: np.ndarray,
                      sup: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knowledge distillation: training targets = w * the teacher ensemble's held-out OOF probabilities +
    (1 - w) * the true labels, for the images the teacher has OOF rows for (others keep their labels).
    Each soft label comes from a teacher fold model that never trained on that image."""
    path = Experiment(runs, cfg.distill_from).ensemble_predictions("oof")
    if not path.is_file():
        raise DataError(path, f"no ensemble of experiment {cfg.distill_from!r} to distil from",
                        hint=f"run `python -m fathom submit --exp {cfg.distill_from}` first")
    teacher = Predictions.load(path)
    row_of = {i: n for n, i in enumerate(teacher.ids)}
    rows = np.array([row_of.get(i, -1) for i in ids])
    has = rows >= 0
    w = cfg.distill_weight
    fine, sup = fine.copy(), sup.copy()
    fine[has] = w * np.clip(teacher.fine[rows[has]], 0, 1) + (1 - w) * fine[has]
    sup[has] = w * np.clip(teacher.super[rows[has]], 0, 1) + (1 - w) * sup[has]
    log.info("distilling from %s: soft targets for %d of %d training images", cfg.distill_from, has.sum(), len(ids))
    return fine.astype(np.float32), sup.astype(np.float32)
