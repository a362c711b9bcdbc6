"""Leave-categories-out probes: out-of-sample validation frames by the hundred, for choosing the osd score.

Dive-grouped folds leave a few dozen validation frames holding a category their training part never shows:
too few to rank osd scores (a standard error of ~0.15 on an sAUC). A probe holds categories out on purpose:

- a seeded set of categories (`held_out_categories`): whole super-categories, every fine category of each,
  so that a probe meets animals of a kind it has never seen, as the deep test frames do (a held-out fine
  category whose siblings it trained on looks like them, and no score can tell it apart: measured on the
  demo). Super-categories are taken in a seeded order, skipping any with a category in more than
  MAX_CATEGORY_SHARE of the training frames (the dominant one), until the frames holding one reach
  `probe_share` of them;
- the folds file's folds split into two halves of dives (even and odd folds); probe h trains on the other
  half without any frame holding a held-out category and predicts every frame of half h;
- half h's frames that hold a category the probe never trained on (held out, or absent from its half) are
  its known out-of-sample frames, saved in the probe's unseen.npz; the others are in-sample. A probe predicts
  no eval frames (it writes oof.npz and train.npz, no test.npz).

A probe is one member's recipe (`probe_backbone`, by default the first backbone, `probe_epochs`) trained on
less data: cheaper than the members, and scored by the same osd scorers (fathom.ensemble.osd_scorers). Its
folders are runs/<exp>/probe/<backbone>/fold_<h>/, fold folders like any other (done.json last, reused
when their fingerprint matches).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil

import numpy as np
import pandas as pd

from fathom.atomic import write_npz
from fathom.config import TrainConfig
from fathom.data.labels import fine_multi_hot, holds_unseen
from fathom.data.layout import Dataset
from fathom.data.sampling import Boxes, sampling_for
from fathom.runs import Experiment
from fathom.train.distributed import Distributed
from fathom.train.fold import FoldData, fingerprint, is_done, split_data, train_fold

log = logging.getLogger(__name__)
HALVES = 2
MAX_CATEGORY_SHARE = 0.1  # a category in more of the training frames (the dominant one) is never held out


def probe_backbone(cfg: TrainConfig) -> str:
    return cfg.probe_backbone or cfg.backbones[0]


def probe_config(cfg: TrainConfig) -> TrainConfig:
    """The probes' settings: the probe backbone's own, with `probe_epochs`, and no distillation (a teacher's
    soft labels would teach the held-out categories)."""
    own = cfg.for_backbone(probe_backbone(cfg))
    return dataclasses.replace(own, epochs=cfg.probe_epochs or own.epochs, distill_from="")


def held_out_categories(labels: np.ndarray, parent: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Sorted fine indices held out (`labels`: multi-hot [N, 290]; `parent`: each fine index's super index):
    every category of the super-categories taken in a seeded order, those present and without a category in
    more than MAX_CATEGORY_SHARE of the frames, until the frames holding one reach `share`."""
    frequency = labels.mean(0)
    families = [f for f in np.unique(parent)
                if frequency[parent == f].max() > 0 and frequency[parent == f].max() <= MAX_CATEGORY_SHARE]
    held, covered = [], np.zeros(len(labels), bool)
    for family in np.random.default_rng(seed).permutation(families):
        if covered.mean() >= share:
            break
        members = np.flatnonzero(parent == family)
        held.extend(members)
        covered |= (labels[:, members] > 0).any(1)
    return np.sort(np.asarray(held, dtype=int))


def unseen_flags(data: FoldData) -> np.ndarray:
    """1.0 where a validation frame holds a category the training part never shows."""
    return holds_unseen(data.targets["valid"][0], data.labels[0])


def probe_splits(cfg: TrainConfig, dataset: Dataset, folds: pd.DataFrame) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """(training rows, validation rows) of each half's probe."""
    labels = fine_multi_hot(dataset.train["categories"], dataset.categories)
    held = held_out_categories(labels, dataset.categories.parent, cfg.probe_share, cfg.seed)
    holds = (labels[:, held] > 0).any(1)
    half = dataset.train["id"].map(folds.set_index("id")["fold"]).to_numpy() % HALVES
    return [(dataset.train[(half != h) & ~holds], dataset.train[half == h]) for h in range(HALVES)]


def remove_other_probes(cfg: TrainConfig, exp: Experiment) -> None:
    """Probe folders of another backbone (or every one, with `probe_share` 0) go: the ensemble reads every
    finished probe of the experiment, and those would measure a recipe the config no longer asks for."""
    keep = exp.probe(probe_backbone(cfg), 0).path.parent if cfg.probe_share else None
    for root in (exp.probe_root, exp.staging_root / exp.probe_root.name):  # finished probes, probes begun
        for folder in sorted(root.glob("*")) if root.is_dir() else []:
            if folder.name != (keep.name if keep else None) and folder.is_dir():
                log.info("removing %s: the config's probes are %s", folder, keep.name if keep else "off")
                shutil.rmtree(folder)


def train_probes(cfg: TrainConfig, dataset: Dataset, folds: pd.DataFrame, exp: Experiment, cache_files: dict,
                 boxes: Boxes | None, dist: Distributed, resume: bool = False, deadline: float = math.inf) -> None:
    """Train (or reuse) every half's probe; none when `probe_share` is 0. OutOfTime past `deadline`."""
    if dist.is_main:
        remove_other_probes(cfg, exp)
    dist.barrier()
    if not cfg.probe_share:
        return
    own = probe_config(cfg)
    for half, (train, valid) in enumerate(probe_splits(cfg, dataset, folds)):
        if train.empty or valid.empty:  # a folds file with one fold, or every frame holding a held-out category
            log.warning("probe %d: no frames to %s; skipped (the osd choice measures on the folds' own unseen "
                        "frames)", half, "train on" if train.empty else "predict")
            continue
        data = split_data(own, dataset, cache_files, train, valid, exp.runs, with_eval=False)
        fold_dir, key = exp.probe(probe_backbone(cfg), half), fingerprint(own, data)
        if is_done(fold_dir, key, dist):
            log.info("%s: done, reusing it", fold_dir.label)
            continue
        unseen = unseen_flags(data)
        log.info("%s: trains on %d frames, predicts %d, of which %d hold a category it never sees",
                 fold_dir.label, len(data.ids["train"]), len(unseen), int(unseen.sum()))
        train_fold(own, data, fold_dir, sampling_for(own), boxes, dataset.categories.parent, dist, key, resume,
                   deadline=deadline, write_extra=lambda stage, unseen=unseen, ids=data.ids["valid"]: write_npz(
                       stage.unseen_file, ids=ids.astype(str), unseen=unseen))
