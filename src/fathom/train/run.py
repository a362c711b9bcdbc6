"""Orchestration: folds x backbones, one fold folder each, then out-of-fold and test files per backbone.

runs/<exp>/<backbone>/fold_<k>/  config.yaml, meta.json, metrics.csv, best.pt, last.pt, oof.npz, test.npz
runs/<exp>/oof/<backbone>.npz    validation predictions of every trained fold, by train id
runs/<exp>/test/<backbone>.npz   eval predictions averaged over folds (osd = 1 - max fine probability)
runs/<exp>/summary.json          OOF MAP@20 of each backbone next to the frequency prior's on the same ids

Under torchrun every rank trains on its share of each batch and predicts its share of the rows; rank 0
alone writes (see fathom.train.distributed).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import timm
import torch
import yaml
from timm.scheduler import CosineLRScheduler
from timm.utils import ModelEmaV3
from torch.utils.data import Subset

from fathom.atomic import atomic_open, remove_temporaries, write_csv, write_json
from fathom.config import TrainConfig, to_dict
from fathom.constants import N_FINE, N_SUPER
from fathom.data.labels import fine_multi_hot, prior_log_odds, repeat_factors, super_multi_hot
from fathom.data.layout import Dataset, load_boxes
from fathom.errors import DataError
from fathom.infer.tiles import COMBINERS, DEFAULT_RULE, TilePlan, combine, frame_predictions, prediction_rows
from fathom.metric import map_at_k_from_probs
from fathom.models.net import FathomNet
from fathom.predictions import Predictions, combine_folds, prediction_path, run_dir
from fathom.provenance import git_commit
from fathom.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from fathom.train.data import (CropDataset, CropSampling, EpochSampler, FrameDataset, crop_transform, eval_transform,
                               frame_cache, make_loader, train_transform)
from fathom.train.distributed import Distributed
from fathom.train.loop import predict, train_one_epoch
from fathom.train.loss import FathomLoss, pos_weights
from fathom.train.mixing import MultiLabelMix
from fathom.train.optimizer import make_optimizer
from fathom.train.precision import Precision
from fathom.train.tracking import Tracker, wanted

log = logging.getLogger(__name__)
RUN_TIME_KEYS = ("workers", "cache_dir", "wandb", "tta_hflip", "tta_scales")  # change no trained weights
CROP_KEYS = tuple(k for k in to_dict(TrainConfig()) if k.startswith(("crop_", "tile_")))  # act under sampling: crops
FINGERPRINT_VERSION = 2  # bump when a TrainConfig default changes


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


def fold_dir(runs: Path, cfg: TrainConfig, backbone: str, fold: int) -> Path:
    return run_dir(runs, cfg.name) / backbone / f"fold_{fold}"


def write_run_info(out: Path, cfg: TrainConfig, device: torch.device, precision: Precision, world: int) -> None:
    with atomic_open(out / "config.yaml") as fh:
        yaml.safe_dump(to_dict(cfg), fh, sort_keys=False)
    write_json({"git_commit": git_commit(), "python": platform.python_version(), "torch": torch.__version__,
                "timm": timm.__version__, "device": str(device), "precision": precision.name,
                "processes": world}, out / "meta.json")


class FoldTrainer:
    """Trains one backbone on one fold; `run()` returns its validation and eval predictions."""

    def __init__(self, cfg: TrainConfig, dataset: Dataset, cache_files: dict[str, Path], folds: pd.DataFrame,
                 backbone: str, fold: int, runs: Path, dist: Distributed = Distributed(),
                 boxes: dict[str, tuple[np.ndarray, np.ndarray]] | None = None):
        cfg = cfg.for_backbone(backbone)
        self.tiled = cfg.sampling == "crops"  # box-aware crops for training, tiles for prediction
        self.cfg, self.backbone, self.fold, self.dist = cfg, backbone, fold, dist
        self.device = device = dist.device()
        self.out = fold_dir(runs, cfg, backbone, fold)
        in_fold = dataset.train["id"].map(folds.set_index("id")["fold"]) == fold
        train, valid = dataset.train[~in_fold], dataset.train[in_fold]
        if cfg.limit:
            train, valid = train.head(cfg.limit), valid.head(cfg.limit)
        self.train_ids, self.valid_ids = train["id"].to_numpy(), valid["id"].to_numpy()
        self.eval_ids = dataset.eval["id"].to_numpy()[: cfg.limit or None]
        cats = dataset.categories
        self.targets = {name: (fine_multi_hot(part["categories"], cats), super_multi_hot(part["categories"], cats))
                        for name, part in (("train", train), ("valid", valid))}
        self.labels = self.targets["train"]  # true labels: class weights, sampling and the prior come from them
        if cfg.distill_from:
            self.targets["train"] = distilled_targets(runs, cfg, self.train_ids, *self.labels)
        if self.tiled:
            if boxes is None:
                raise ValueError("sampling: crops needs the training boxes (image_boxes)")
            no_box = (np.zeros((0, 4)), np.zeros(0, np.int64))
            self.boxes, self.box_classes = zip(*(boxes.get(i, no_box) for i in self.train_ids))
            self.frame_sizes = train[["width", "height"]].to_numpy(np.float64)
            self.parent = cats.parent
        self.files = {"train": [cache_files[i] for i in self.train_ids],
                      "valid": [cache_files[i] for i in self.valid_ids],
                      "eval": [cache_files[i] for i in self.eval_ids]}
        self.precision = Precision.decide(cfg.amp, device)
        self.loaders: dict[str, torch.utils.data.DataLoader] = {}
        self.plans: dict[str, TilePlan] = {}

    def fingerprint(self) -> str:
        """What a finished fold depends on: its resolved config (less run-time plumbing) and its images.
        Keys at their default value are left out, so an option added later (off by default) keeps
        finished folds; a change of a default in code must bump FINGERPRINT_VERSION instead."""
        defaults = to_dict(TrainConfig())
        unused = CROP_KEYS if self.cfg.sampling == "frames" else ()  # crop geometry set for a switch not taken
        settings = {k: v for k, v in to_dict(self.cfg).items()
                    if k not in RUN_TIME_KEYS and k not in unused and v != defaults[k]}
        content = json.dumps([FINGERPRINT_VERSION, settings,
                              *(list(map(str, self.files[s])) for s in ("train", "valid", "eval"))])
        return hashlib.sha256(content.encode()).hexdigest()[:16]

    def is_done(self) -> bool:
        """True when this fold finished with the same fingerprint (its predictions can be reused)."""
        done = self.out / "done.json"
        if not done.is_file():
            return False
        if json.loads(done.read_text()).get("fingerprint") == self.fingerprint():
            return True
        log.warning("%s fold %d: config or data changed since it finished; training it again", self.backbone,
                    self.fold)
        return False

    def dataset(self, split: str) -> torch.utils.data.Dataset:
        """Training samples (frames, or crops and frames), or the rows to predict: frames, or each frame's
        whole view and tiles (`self.plans[split]` says which row is which)."""
        n, cfg = len(self.files[split]), self.cfg
        fine, sup = self.targets.get(split, (np.zeros((n, N_FINE), np.float32), np.zeros((n, N_SUPER), np.float32)))
        if split != "train":
            dataset, plan = prediction_rows(self.files[split], cfg, self.transforms["eval"], (fine, sup))
            if plan is not None:
                self.plans[split] = plan
            return dataset
        if self.tiled:
            sampling = CropSampling(cfg.crop_size, cfg.crop_frame_ratio, cfg.crop_background_ratio, cfg.crop_jitter,
                                    cfg.crop_min_visible)
            return CropDataset(self.files[split], fine, sup, self.transforms["train"], self.transforms["crop"],
                               self.boxes, self.box_classes, self.frame_sizes, self.parent, sampling, seed=cfg.seed)
        return FrameDataset(self.files[split], fine, sup, self.transforms["train"], seed=cfg.seed)

    def loader(self, split: str) -> torch.utils.data.DataLoader:
        """The fold's loader of a split, made once (its workers persist): training batches (this rank's
        share under DDP; `set_epoch` on its sampler picks the epoch) or this rank's rows to predict."""
        if split in self.loaders:
            return self.loaders[split]
        train = split == "train"
        dataset = self.dataset(split)
        n = len(dataset)
        weights = repeat_factors(self.labels[0], self.cfg.repeat_threshold) if self.cfg.sampler == "balanced" else None
        sampler = EpochSampler(n, self.cfg.seed, self.dist.world, self.dist.rank, weights) if train else None
        if not train and self.dist.enabled:
            dataset = Subset(dataset, self.dist.shard(n).tolist())
        self.loaders[split] = make_loader(dataset, self.cfg.batch_size, train, self.cfg.workers, self.device,
                                          sampler=sampler)
        return self.loaders[split]

    def predict_rows(self, model, split: str, loss_fn: FathomLoss | None = None) -> dict:
        """Probabilities of every row of the split's prediction loader (frames, or views when tiled), on
        every rank (each rank predicts its shard)."""
        loader = self.loader(split)
        n = len(loader.dataset.dataset if isinstance(loader.dataset, Subset) else loader.dataset)
        probs = predict(model, loader, self.precision, self.cfg.channels_last, loss_fn)
        shard = len(self.dist.shard(n))
        loss = self.dist.sum(probs.pop("loss") * shard) / max(n, 1)
        return {**self.dist.gather_rows(probs, n), "loss": loss}

    def predict(self, model, split: str, loss_fn: FathomLoss | None = None, rule: str | None = None) -> dict:
        """{fine, super, osd, loss} of every frame of `split`. Tiled: the views combined by `rule` (default:
        the configured one, or max while `auto` has not chosen yet); loss = the mean binary cross-entropy
        of the combined fine probabilities."""
        if not self.tiled:
            rows = self.predict_rows(model, split, loss_fn)
            return {**rows, "osd": 1.0 - rows["fine"].max(1)}
        views = self.predict_rows(model, split)
        rule = rule or (DEFAULT_RULE if self.cfg.tile_combine == "auto" else self.cfg.tile_combine)
        out = frame_predictions(views, self.plans[split], rule, self.cfg.tile_topk)
        loss = mean_bce(out["fine"], self.targets[split][0]) if loss_fn is not None else 0.0
        return {**out, "loss": loss, "views": views}

    def build(self):
        cfg = self.cfg
        seed_everything(cfg.seed + self.fold, cfg.deterministic)
        model = FathomNet.for_config(self.backbone, cfg)
        model.check_input_size(cfg.image_size)
        fine_frequency = self.labels[0].mean(0)
        model.start_at_prior(fine_frequency, self.labels[1].mean(0), fine_shift=cfg.logit_adjustment)
        model = model.to(self.device)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        data_cfg = model.data_config()
        self.transforms = {name: make(cfg.image_size, data_cfg["mean"], data_cfg["std"]) for name, make in
                           (("train", train_transform), ("crop", crop_transform), ("eval", eval_transform))}
        loss_fn = FathomLoss(pos_weights(self.labels[0], cfg.pos_weight_power, cfg.pos_weight_cap),
                             cfg.super_weight, cfg.label_smoothing, cfg.loss, cfg.asl_gamma_neg, cfg.asl_gamma_pos,
                             cfg.asl_clip, cfg.focal_gamma,
                             logit_shift=cfg.logit_adjustment * prior_log_odds(fine_frequency)).to(self.device)
        self.mix = MultiLabelMix(cfg.mixup_alpha, cfg.cutmix_alpha, cfg.mix_prob) \
            if cfg.mixup_alpha or cfg.cutmix_alpha else None
        optimizer = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.weight_decay, self.device)
        per_rank = len(self.files["train"]) // self.dist.world
        batches = per_rank // cfg.batch_size if per_rank > cfg.batch_size else 1
        steps = math.ceil(batches / cfg.grad_accum)
        scheduler = CosineLRScheduler(optimizer, t_initial=max(1, cfg.epochs * steps), lr_min=cfg.lr * 0.01,
                                      warmup_t=int(cfg.warmup_epochs * steps), warmup_lr_init=cfg.lr * 0.01,
                                      t_in_epochs=False)
        ema = ModelEmaV3(model, decay=cfg.ema_decay) if cfg.ema else None
        return model, loss_fn, optimizer, scheduler, ema

    def run(self, resume: bool = False, tracker: Tracker | None = None) -> dict[str, np.ndarray]:
        cfg = self.cfg
        self.started = time.perf_counter()
        main = self.dist.is_main
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            for leftover in remove_temporaries(self.out):
                log.info("%s fold %d: removed %s, left by a killed write", self.backbone, self.fold, leftover.name)
            write_run_info(self.out, cfg, self.device, self.precision, self.dist.world)
        model, loss_fn, optimizer, scheduler, ema = self.build()
        trained = self.dist.wrap(model)
        start, step, best, history = 0, 0, -1.0, []
        if resume and (self.out / "last.pt").is_file():
            state = load_checkpoint(self.out / "last.pt", self.device)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            self.precision.scaler.load_state_dict(state["scaler"])
            if ema is not None:
                ema.load_state_dict(state["ema"])
            start, step, best, history = state["epoch"] + 1, state["step"], state["best"], state["history"]
            set_rng_state(state["rng"])
            log.info("%s fold %d: resumed after epoch %d", self.backbone, self.fold, state["epoch"])
        stale = 0
        batches = self.loader("train")
        for epoch in range(start, cfg.epochs):
            batches.sampler.set_epoch(epoch)
            metrics, step = train_one_epoch(trained, batches, loss_fn,
                                            optimizer, scheduler, self.precision, step, cfg.grad_accum,
                                            cfg.clip_grad, ema, cfg.channels_last,
                                            desc=f"{self.backbone} f{self.fold} e{epoch}", progress=main,
                                            mix=self.mix)
            metrics["train_loss"] = self.dist.mean(metrics["train_loss"])
            metrics["train_images_per_s"] = self.dist.sum(metrics["train_images_per_s"])
            scored = ema.module if ema is not None else model
            valid = self.predict(scored, "valid", loss_fn)
            row = {"epoch": epoch, **metrics, "val_loss": valid["loss"],
                   "val_map20": map_at_k_from_probs(valid["fine"], self.targets["valid"][0])}
            history.append(row)
            if main:
                write_csv(pd.DataFrame(history), self.out / "metrics.csv")
                if tracker is not None:
                    tracker.log(row, prefix=f"fold_{self.fold}/")
            log.info("%s fold %d epoch %d: loss %.4f val MAP@20 %.4f (%.1f img/s)", self.backbone, self.fold, epoch,
                     row["train_loss"], row["val_map20"], row["train_images_per_s"])
            if row["val_map20"] > best:
                best, stale = row["val_map20"], 0
                if main:
                    save_checkpoint({"model": scored.state_dict(), "epoch": epoch, "val_map20": best},
                                    self.out / "best.pt")
            else:
                stale += 1
            if main:
                save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                 "scheduler": scheduler.state_dict(), "scaler": self.precision.scaler.state_dict(),
                                 "ema": ema.state_dict() if ema is not None else None, "epoch": epoch, "step": step,
                                 "best": best, "history": history, "rng": rng_state()}, self.out / "last.pt")
            self.dist.barrier()  # checkpoints are complete before any rank may read them
            if cfg.patience and stale >= cfg.patience:
                log.info("%s fold %d: early stop after epoch %d", self.backbone, self.fold, epoch)
                break
        return self.predict_best(model)

    def predict_best(self, model) -> dict[str, np.ndarray]:
        """Validation (OOF) and eval predictions of the best checkpoint, saved in the fold folder. Tiled:
        with `tile_combine: auto`, the rule with the best validation MAP@20 (every rule's is in done.json)."""
        model.load_state_dict(load_checkpoint(self.out / "best.pt", self.device)["model"])
        valid = self.predict(model, "valid")
        record, rule = {}, None
        if self.tiled:
            views, plan, topk = valid["views"], self.plans["valid"], self.cfg.tile_topk
            scores = {r: map_at_k_from_probs(combine(views["fine"], plan, r, topk), self.targets["valid"][0])
                      for r in COMBINERS}
            rule = max(COMBINERS, key=scores.get) if self.cfg.tile_combine == "auto" else self.cfg.tile_combine
            valid = frame_predictions(views, plan, rule, topk)
            record = {"tile_combine": rule, "tile_val_map20": scores}
        out = {"oof": Predictions(self.valid_ids, valid["fine"], valid["super"], valid["osd"])}
        test = self.predict(model, "eval", rule=rule)
        out["test"] = Predictions(self.eval_ids, test["fine"], test["super"], test["osd"])
        if self.tiled:
            record["views_per_frame"] = {s: len(self.plans[s].frame) / self.plans[s].n_frames for s in self.plans}
        if self.dist.is_main:
            for name, predictions in out.items():
                predictions.save(self.out / f"{name}.npz")
            write_json({"val_map20": map_at_k_from_probs(out["oof"].fine, self.targets["valid"][0]),
                        "fingerprint": self.fingerprint(), **record,
                        "seconds": time.perf_counter() - self.started},  # this session's, when resumed
                       self.out / "done.json")
        self.dist.barrier()  # every rank sees done.json before deciding what to train next
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
    path = run_dir(runs, cfg.distill_from) / "ensemble" / "oof.npz"
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


def build_cache(cfg: TrainConfig, dataset: Dataset, dist: Distributed = Distributed()) -> dict[str, Path]:
    """Cache every train and eval frame once (rank 0 builds): at the training size, or at the crop scale
    with `sampling: crops`. Returns id -> cache file."""
    cache = frame_cache(cfg)
    table = pd.concat([dataset.train[["id", "path"]], dataset.eval[["id", "path"]]])
    paths = list(table["path"])
    files = cache.build(paths, workers=max(2, cfg.workers * 2)) if dist.is_main else None
    dist.barrier()  # the other ranks only name the files rank 0 has written
    return dict(zip(table["id"], files or [cache.file_for(p) for p in paths]))


def image_boxes(dataset: Dataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """train id -> (its boxes [n, 4] as x, y, w, h in original-frame pixels, their fine class indices [n])."""
    boxes = load_boxes(dataset.root, dataset.categories)
    classes = dataset.categories.index_of(boxes["category_id"].to_numpy())
    xywh = boxes[["x", "y", "w", "h"]].to_numpy(np.float64)
    return {i: (xywh[rows], classes[rows]) for i, rows in boxes.groupby("id").indices.items()}


def train(cfg: TrainConfig, dataset: Dataset, folds: pd.DataFrame, runs: Path, backbones: list[str] | None = None,
          fold_ids: list[int] | None = None, resume: bool = False) -> dict[str, float]:
    """Train every (backbone, fold); finished folds (done.json) are reused.

    Returns {backbone: OOF MAP@20, ..., "prior": the frequency prior's OOF MAP@20 on the same ids} on
    rank 0 (other ranks return {}).
    """
    known_folds = set(folds["fold"])
    fold_ids = fold_ids or cfg.folds
    for k in fold_ids:
        if k not in known_folds:
            raise DataError("config", f"fold {k} is not in the folds file (folds {sorted(known_folds)})", where="folds")
    dist = Distributed.from_env()
    if not dist.is_main:
        logging.getLogger("fathom").setLevel(logging.WARNING)  # one log, from rank 0
    try:
        return train_folds(cfg, dataset, folds, runs, backbones or cfg.backbones, fold_ids, resume, dist)
    finally:
        dist.close()


def train_folds(cfg: TrainConfig, dataset: Dataset, folds: pd.DataFrame, runs: Path, backbones: list[str],
                fold_ids: list[int], resume: bool, dist: Distributed) -> dict[str, float]:
    cache_files = build_cache(cfg, dataset, dist)
    boxes = image_boxes(dataset) if cfg.sampling == "crops" else None
    if dist.is_main:
        for folder in (run_dir(runs, cfg.name), *(run_dir(runs, cfg.name) / split for split in ("oof", "test"))):
            remove_temporaries(folder)  # fold folders are cleaned when their fold starts
    scores = {}
    for backbone in backbones:
        tracker = Tracker(dist.is_main and wanted(cfg.wandb), cfg.wandb_project, group=cfg.name,
                          name=f"{cfg.name}/{backbone}", config={**to_dict(cfg), "backbone": backbone},
                          directory=run_dir(runs, cfg.name))
        try:
            parts = []
            for fold in fold_ids:
                trainer = FoldTrainer(cfg, dataset, cache_files, folds, backbone, fold, runs, dist, boxes)
                if trainer.is_done():
                    log.info("%s fold %d: done, reusing its predictions", backbone, fold)
                    parts.append({name: Predictions.load(trainer.out / f"{name}.npz") for name in ("oof", "test")})
                    continue
                parts.append(trainer.run(resume=resume, tracker=tracker))
            if dist.is_main:
                scores[backbone] = assemble(cfg, dataset, runs, backbone, parts)
                tracker.summarize({"oof_map20": scores[backbone]})
        finally:
            tracker.finish()
    if dist.is_main:
        oof_ids = np.concatenate([part["oof"].ids for part in parts])  # every trained fold's images
        scores["prior"] = frequency_prior_map20(dataset, folds, oof_ids)
        summary = run_dir(runs, cfg.name) / "summary.json"
        previous = json.loads(summary.read_text())["oof_map20"] if summary.is_file() else {}
        write_json({"oof_map20": {**previous, **scores}, "folds": fold_ids, "processes": dist.world}, summary)
    return scores


def frequency_prior_map20(dataset: Dataset, folds: pd.DataFrame, ids: np.ndarray) -> float:
    """MAP@20 on the validation images `ids` of ranking every category by its frequency in the rest of
    the training images (each image's own training part): the floor a backbone must beat."""
    fold_of = dataset.train["id"].map(folds.set_index("id")["fold"]).to_numpy()
    fine = fine_multi_hot(dataset.train["categories"], dataset.categories)
    row_of = {i: n for n, i in enumerate(dataset.train["id"])}
    rows = np.array([row_of[i] for i in ids])
    frequencies = {k: fine[fold_of != k].mean(0) for k in np.unique(fold_of[rows])}
    return map_at_k_from_probs(np.stack([frequencies[k] for k in fold_of[rows]]), fine[rows])


def assemble(cfg: TrainConfig, dataset: Dataset, runs: Path, backbone: str, parts: list[dict]) -> float:
    """Write runs/<exp>/oof/<backbone>.npz and test/<backbone>.npz; returns the OOF MAP@20."""
    oof, test = combine_folds(parts)
    oof.save(prediction_path(runs, cfg.name, "oof", backbone))
    test.save(prediction_path(runs, cfg.name, "test", backbone))
    labels = dataset.train.set_index("id").loc[oof.ids, "categories"]
    return map_at_k_from_probs(oof.fine, fine_multi_hot(labels, dataset.categories))
