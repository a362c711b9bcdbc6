"""Orchestration: folds x backbones, one fold folder each, then out-of-fold and test files per backbone.

runs/<exp>/<backbone>/fold_<k>/  config.yaml, meta.json, metrics.csv, best.pt, last.pt, oof.npz, test.npz
runs/<exp>/oof/<backbone>.npz    validation predictions of every trained fold, by train id
runs/<exp>/test/<backbone>.npz   eval predictions averaged over folds (osd = 1 - max fine probability)
"""

from __future__ import annotations

import json
import logging
import math
import platform
import random
from pathlib import Path

import numpy as np
import pandas as pd
import timm
import torch
import yaml
from timm.scheduler import CosineLRScheduler
from timm.utils import ModelEmaV3

from fathom.atomic import atomic_open, write_csv, write_json
from fathom.config import TrainConfig, to_dict
from fathom.constants import N_FINE, N_SUPER
from fathom.data.labels import fine_multi_hot, super_multi_hot
from fathom.data.layout import Dataset
from fathom.errors import DataError
from fathom.metric import map_at_k_from_probs
from fathom.models.net import FathomNet
from fathom.predictions import Predictions, mean_of, prediction_path, run_dir
from fathom.submit import git_commit
from fathom.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from fathom.train.data import FrameDataset, ImageCache, eval_transform, make_loader, train_transform
from fathom.train.loop import predict, train_one_epoch
from fathom.train.loss import FathomLoss, pos_weights
from fathom.train.precision import Precision

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def fold_dir(runs: Path, cfg: TrainConfig, backbone: str, fold: int) -> Path:
    return run_dir(runs, cfg.name) / backbone / f"fold_{fold}"


def write_run_info(out: Path, cfg: TrainConfig, device: torch.device, precision: Precision) -> None:
    with atomic_open(out / "config.yaml") as fh:
        yaml.safe_dump(to_dict(cfg), fh, sort_keys=False)
    write_json({"git_commit": git_commit(), "python": platform.python_version(), "torch": torch.__version__,
                "timm": timm.__version__, "device": str(device), "precision": precision.name}, out / "meta.json")


class FoldTrainer:
    """Trains one backbone on one fold; `run()` returns its validation and eval predictions."""

    def __init__(self, cfg: TrainConfig, dataset: Dataset, cache_files: dict[str, Path], folds: pd.DataFrame,
                 backbone: str, fold: int, runs: Path, device: torch.device):
        self.cfg, self.backbone, self.fold, self.device = cfg, backbone, fold, device
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
        self.files = {"train": [cache_files[i] for i in self.train_ids],
                      "valid": [cache_files[i] for i in self.valid_ids],
                      "eval": [cache_files[i] for i in self.eval_ids]}
        self.precision = Precision.decide(cfg.amp, device)

    def loader(self, split: str, transform, epoch: int = 0) -> torch.utils.data.DataLoader:
        n = len(self.files[split])
        fine, sup = self.targets.get(split, (np.zeros((n, N_FINE), np.float32), np.zeros((n, N_SUPER), np.float32)))
        dataset = FrameDataset(self.files[split], fine, sup, transform, seed=self.cfg.seed)
        dataset.epoch = epoch
        return make_loader(dataset, self.cfg.batch_size, split == "train", self.cfg.workers, self.device,
                           seed=self.cfg.seed * 1000 + epoch)

    def build(self):
        cfg = self.cfg
        seed_everything(cfg.seed + self.fold)
        model = FathomNet(self.backbone, cfg.pretrained, cfg.weights.get(self.backbone), cfg.drop_rate).to(self.device)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        data_cfg = model.data_config()
        self.transforms = {"train": train_transform(cfg.image_size, data_cfg["mean"], data_cfg["std"]),
                           "eval": eval_transform(cfg.image_size, data_cfg["mean"], data_cfg["std"])}
        loss_fn = FathomLoss(pos_weights(self.targets["train"][0], cfg.pos_weight_power, cfg.pos_weight_cap),
                             cfg.super_weight, cfg.label_smoothing).to(self.device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        batches = len(self.files["train"]) // cfg.batch_size if len(self.files["train"]) > cfg.batch_size else 1
        steps = math.ceil(batches / cfg.grad_accum)
        scheduler = CosineLRScheduler(optimizer, t_initial=max(1, cfg.epochs * steps), lr_min=cfg.lr * 0.01,
                                      warmup_t=int(cfg.warmup_epochs * steps), warmup_lr_init=cfg.lr * 0.01,
                                      t_in_epochs=False)
        ema = ModelEmaV3(model, decay=cfg.ema_decay) if cfg.ema else None
        return model, loss_fn, optimizer, scheduler, ema

    def run(self, resume: bool = False) -> dict[str, np.ndarray]:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        write_run_info(self.out, cfg, self.device, self.precision)
        model, loss_fn, optimizer, scheduler, ema = self.build()
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
        for epoch in range(start, cfg.epochs):
            metrics, step = train_one_epoch(model, self.loader("train", self.transforms["train"], epoch), loss_fn,
                                            optimizer, scheduler, self.precision, step, cfg.grad_accum,
                                            cfg.clip_grad, ema, cfg.channels_last,
                                            desc=f"{self.backbone} f{self.fold} e{epoch}")
            scored = ema.module if ema is not None else model
            valid = predict(scored, self.loader("valid", self.transforms["eval"]), self.precision,
                            cfg.channels_last, loss_fn)
            row = {"epoch": epoch, **metrics, "val_loss": valid["loss"],
                   "val_map20": map_at_k_from_probs(valid["fine"], self.targets["valid"][0])}
            history.append(row)
            write_csv(pd.DataFrame(history), self.out / "metrics.csv")
            log.info("%s fold %d epoch %d: loss %.4f val MAP@20 %.4f (%.1f img/s)", self.backbone, self.fold, epoch,
                     row["train_loss"], row["val_map20"], row["train_images_per_s"])
            if row["val_map20"] > best:
                best, stale = row["val_map20"], 0
                save_checkpoint({"model": scored.state_dict(), "epoch": epoch, "val_map20": best}, self.out / "best.pt")
            else:
                stale += 1
            save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "scheduler": scheduler.state_dict(), "scaler": self.precision.scaler.state_dict(),
                             "ema": ema.state_dict() if ema is not None else None, "epoch": epoch, "step": step,
                             "best": best, "history": history, "rng": rng_state()}, self.out / "last.pt")
            if cfg.patience and stale >= cfg.patience:
                log.info("%s fold %d: early stop after epoch %d", self.backbone, self.fold, epoch)
                break
        return self.predict_best(model)

    def predict_best(self, model) -> dict[str, np.ndarray]:
        """Validation (OOF) and eval predictions of the best checkpoint, saved in the fold folder."""
        model.load_state_dict(load_checkpoint(self.out / "best.pt", self.device)["model"])
        out = {}
        for split, ids, name in (("valid", self.valid_ids, "oof"), ("eval", self.eval_ids, "test")):
            probs = predict(model, self.loader(split, self.transforms["eval"]), self.precision, self.cfg.channels_last)
            out[name] = Predictions(ids, probs["fine"], probs["super"], 1.0 - probs["fine"].max(1))
            out[name].save(self.out / f"{name}.npz")
        write_json({"val_map20": map_at_k_from_probs(out["oof"].fine, self.targets["valid"][0])}, self.out / "done.json")
        return out


def build_cache(cfg: TrainConfig, dataset: Dataset) -> dict[str, Path]:
    """Cache every train and eval frame at the training size once; returns id -> cache file."""
    cache = ImageCache(cfg.cache_dir, cfg.image_size)
    table = pd.concat([dataset.train[["id", "path"]], dataset.eval[["id", "path"]]])
    return dict(zip(table["id"], cache.build(list(table["path"]), workers=max(2, cfg.workers * 2))))


def train(cfg: TrainConfig, dataset: Dataset, folds: pd.DataFrame, runs: Path, backbones: list[str] | None = None,
          fold_ids: list[int] | None = None, resume: bool = False) -> dict[str, float]:
    """Train every (backbone, fold); finished folds (done.json) are reused. Returns OOF MAP@20 per backbone."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    known_folds = set(folds["fold"])
    fold_ids = fold_ids or cfg.folds
    for k in fold_ids:
        if k not in known_folds:
            raise DataError("config", f"fold {k} is not in the folds file (folds {sorted(known_folds)})", where="folds")
    cache_files = build_cache(cfg, dataset)
    scores = {}
    for backbone in backbones or cfg.backbones:
        parts = []
        for fold in fold_ids:
            out = fold_dir(runs, cfg, backbone, fold)
            if (out / "done.json").is_file():
                log.info("%s fold %d: done, reusing its predictions", backbone, fold)
                parts.append({name: Predictions.load(out / f"{name}.npz") for name in ("oof", "test")})
                continue
            trainer = FoldTrainer(cfg, dataset, cache_files, folds, backbone, fold, runs, device)
            parts.append(trainer.run(resume=resume))
        scores[backbone] = assemble(cfg, dataset, runs, backbone, parts)
    write_json({"oof_map20": scores}, run_dir(runs, cfg.name) / "summary.json")
    return scores


def assemble(cfg: TrainConfig, dataset: Dataset, runs: Path, backbone: str, parts: list[dict]) -> float:
    """Write runs/<exp>/oof/<backbone>.npz and test/<backbone>.npz; returns the OOF MAP@20."""
    oof = Predictions(np.concatenate([p["oof"].ids for p in parts]), np.vstack([p["oof"].fine for p in parts]),
                      np.vstack([p["oof"].super for p in parts]), np.concatenate([p["oof"].osd for p in parts]))
    test = mean_of([p["test"] for p in parts], parts[0]["test"].ids)
    test.osd = 1.0 - test.fine.max(1)  # of the fold mean, not the mean of each fold's osd
    oof.save(prediction_path(runs, cfg.name, "oof", backbone))
    test.save(prediction_path(runs, cfg.name, "test", backbone))
    labels = dataset.train.set_index("id").loc[oof.ids, "categories"]
    return map_at_k_from_probs(oof.fine, fine_multi_hot(labels, dataset.categories))
