"""Orchestration: folds x backbones, one fold folder each, then out-of-fold and test files per backbone.

Where every file goes is fathom.runs; one fold's steps are fathom.train.fold. Under torchrun every rank
trains on its share of each batch and predicts its share of the rows; rank 0 alone writes (see
fathom.train.distributed).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from fathom.atomic import remove_temporaries
from fathom.config import TrainConfig, to_dict
from fathom.data.features import appearance_many
from fathom.data.labels import fine_multi_hot
from fathom.data.layout import Dataset
from fathom.data.sampling import sampling_for
from fathom.errors import DataError
from fathom.metric import map_at_k_from_probs
from fathom.models.prior import frequency_prior_map20
from fathom.predictions import FrameAppearance, Predictions, combine_folds
from fathom.runs import Experiment, Summary, write_record
from fathom.train.distributed import Distributed
from fathom.train.fold import OutOfTime, fingerprint, fold_data, is_done, train_fold
from fathom.train.probe import probe_backbone, train_probes
from fathom.train.tracking import Tracker, wanted

log = logging.getLogger(__name__)


def build_cache(cfg: TrainConfig, dataset: Dataset, dist: Distributed = Distributed()) -> dict[str, Path]:
    """Cache every train and eval frame once (rank 0 builds) where the sampling strategy reads them.
    Returns id -> cache file."""
    cache = sampling_for(cfg).cache()
    table = pd.concat([dataset.train[["id", "path"]], dataset.eval[["id", "path"]]])
    paths = list(table["path"])
    files = cache.build(paths, workers=max(2, cfg.workers * 2)) if dist.is_main else None
    dist.barrier()  # the other ranks only name the files rank 0 has written
    return dict(zip(table["id"], files or [cache.file_for(p) for p in paths]))


def write_appearance(cfg: TrainConfig, exp: Experiment, cache_files: dict[str, Path]) -> None:
    """runs/<exp>/appearance.npz from the cached frames, unless it already holds every frame from this cache
    (an unreadable one is written again): the osd scorers read it, so no stage after training reads pixels."""
    cache = sampling_for(cfg).cache()
    source, ids = f"{cache.dir.name}.{cache.fmt}", list(cache_files)
    try:
        if exp.appearance_file.is_file() and FrameAppearance.load(exp.appearance_file).covers(ids, source):
            return
    except DataError:
        log.warning("%s is unreadable: writing it again", exp.appearance_file)
    FrameAppearance(ids, appearance_many([str(cache_files[i]) for i in ids]), source).save(exp.appearance_file)


def train(cfg: TrainConfig, dataset: Dataset, folds: pd.DataFrame, runs: Path, backbones: list[str] | None = None,
          fold_ids: list[int] | None = None, resume: bool = False) -> dict[str, float]:
    """Train every (backbone, fold); finished folds (done.json with the same fingerprint) are reused.

    Returns {backbone: OOF MAP@20, ..., "prior": the frequency prior's OOF MAP@20 on the same ids} on
    rank 0 (other ranks return {}). With `cfg.time_budget_h`, training stops at the first epoch boundary
    past the budget, every fold resumable (`--resume`); only the backbones that finished are returned.
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
        deadline = time.monotonic() + cfg.time_budget_h * 3600 if cfg.time_budget_h > 0 else math.inf
        return train_folds(cfg, dataset, folds, Experiment(runs, cfg.name), backbones or cfg.backbones, fold_ids,
                           resume, dist, deadline)
    finally:
        dist.close()


def train_folds(cfg: TrainConfig, dataset: Dataset, folds: pd.DataFrame, exp: Experiment, backbones: list[str],
                fold_ids: list[int], resume: bool, dist: Distributed, deadline: float = math.inf) -> dict[str, float]:
    for backbone in backbones:  # a missing or unusable GPU stops here, before the cache or any fold
        dist.device(cfg.for_backbone(backbone).device)
    cache_files = build_cache(cfg, dataset, dist)
    sampling = sampling_for(cfg)
    boxes = sampling.boxes(dataset)
    if dist.is_main:
        for folder in (exp.root, exp.prediction_dir("oof"), exp.prediction_dir("test")):
            remove_temporaries(folder)  # a fold's staging folder is cleaned when its run starts
        write_appearance(cfg, exp, cache_files)
    scores, parts, stopped = {}, [], False
    for backbone in backbones:
        tracker = Tracker(dist.is_main and wanted(cfg.wandb), cfg.wandb_project, group=cfg.name,
                          name=f"{cfg.name}/{backbone}", config={**to_dict(cfg), "backbone": backbone},
                          directory=exp.root)
        own = cfg.for_backbone(backbone)
        try:
            parts = [fold_predictions(own, dataset, cache_files, folds, exp, backbone, fold, sampling_for(own), boxes,
                                      dist, resume, tracker, deadline)
                     for fold in fold_ids]
            if dist.is_main:
                scores[backbone] = assemble(dataset, exp, backbone, parts)
                tracker.summarize({"oof_map20": scores[backbone]})
        except OutOfTime as stop:
            left = [f"{b} fold {k}" for b in backbones for k in fold_ids if not exp.fold(b, k).is_finished()]
            log.warning("time budget of %g h reached (%s): %d fold(s) left (%s); every fold is resumable: run train "
                        "again with --resume (on Kaggle: attach this output as RESUME_FROM)", cfg.time_budget_h,
                        stop, len(left), ", ".join(left))
            stopped = True
            break
        finally:
            tracker.finish()
    if not stopped and probe_backbone(cfg) in backbones:
        try:
            train_probes(cfg, dataset, folds, exp, cache_files, boxes, dist, resume, deadline)
        except OutOfTime as stop:
            log.warning("time budget of %g h reached (%s): the probes are left; train again with --resume",
                        cfg.time_budget_h, stop)
    if dist.is_main and scores:
        oof_ids = np.concatenate([part["oof"].ids for part in parts])  # every trained fold's images
        scores["prior"] = frequency_prior_map20(dataset, folds, oof_ids)
        previous = exp.summary()
        summary = Summary({**(previous.oof_map20 if previous else {}), **scores}, fold_ids, dist.world)
        write_record(summary, exp.summary_file)
    return scores


def fold_predictions(cfg: TrainConfig, dataset: Dataset, cache_files: dict[str, Path], folds: pd.DataFrame,
                     exp: Experiment, backbone: str, fold: int, sampling, boxes, dist: Distributed, resume: bool,
                     tracker: Tracker, deadline: float = math.inf) -> dict[str, Predictions]:
    """One fold's {oof, test} predictions: reused when it finished with the same fingerprint, else trained."""
    data = fold_data(cfg, dataset, cache_files, folds, fold, exp.runs)
    fold_dir, key = exp.fold(backbone, fold), fingerprint(cfg, data)
    if is_done(fold_dir, key, dist):
        log.info("%s fold %d: done, reusing its predictions", backbone, fold)
        return {split: Predictions.load(fold_dir.predictions(split)) for split in ("oof", "test")}
    return train_fold(cfg, data, fold_dir, sampling, boxes, dataset.categories.parent, dist, key, resume, tracker,
                      deadline)


def assemble(dataset: Dataset, exp: Experiment, backbone: str, parts: list[dict]) -> float:
    """Write runs/<exp>/oof/<backbone>.npz and test/<backbone>.npz; returns the OOF MAP@20."""
    oof, test = combine_folds(parts)
    oof.save(exp.predictions("oof", backbone))
    test.save(exp.predictions("test", backbone))
    labels = dataset.train.set_index("id").loc[oof.ids, "categories"]
    return map_at_k_from_probs(oof.fine, fine_multi_hot(labels, dataset.categories))
