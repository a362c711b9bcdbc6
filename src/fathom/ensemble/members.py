"""An experiment's models ("members") as aligned arrays, fold by fold.

Every finished fold of every backbone (fathom.runs.FoldDir) holds its validation predictions (OOF
rows) and its eval predictions; with `python -m fathom predict` they exist with TTA too (its tta/ folder),
and then those are used, provided every fold holds the same views. Only folds that every backbone finished are kept. Rows are aligned by id with a check: a member
whose ids differ from the others' is an error naming its file, never a silent misalignment.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fathom.data.labels import fine_multi_hot
from fathom.data.layout import Dataset
from fathom.errors import DataError
from fathom.ensemble.blend import blend
from fathom.predictions import Predictions
from fathom.runs import Experiment, FoldDir

log = logging.getLogger(__name__)


@dataclass
class Members:
    names: list[str]  # backbones
    folds: list[int]
    tta: bool  # True when every file used holds TTA predictions
    oof_ids: np.ndarray  # [N] validation ids of every fold, fold by fold
    fold_of: np.ndarray  # [N] the fold whose model predicted each OOF row
    oof_fine: np.ndarray  # [M, N, 290]
    oof_super: np.ndarray  # [M, N, 20]
    eval_ids: np.ndarray  # [E]
    test_fine: np.ndarray  # [M, F, E, 290] each fold's model on the eval images
    test_super: np.ndarray  # [M, F, E, 20]
    oof_tiles: np.ndarray | None = None  # [M, N] tile evidence, when every member's files carry it
    test_tiles: np.ndarray | None = None  # [M, F, E]
    embeddings: list[list[FoldEmbeddings]] | None = None  # [M][F], when every fold wrote them (train.npz)

    def test_mean(self) -> tuple[np.ndarray, np.ndarray]:
        """[M, E, *] eval probabilities averaged over folds."""
        return self.test_fine.mean(1), self.test_super.mean(1)

    def oof_blend(self, rows: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray | None]:
        """The OOF `rows` blended with `weights`: {fine, sup, member_fine, tiles} (fathom.ensemble.osd_scorers)."""
        tiles = None if self.oof_tiles is None else self.oof_tiles[:, rows]
        return blended(self.oof_fine[:, rows], self.oof_super[:, rows], tiles, weights)

    def eval_blend(self, weights: np.ndarray, position: int | None = None) -> dict[str, np.ndarray | None]:
        """The eval rows as the fold at `position` predicts them (None: averaged over folds), blended."""
        if position is None:
            fine, sup = self.test_mean()
            tiles = None if self.test_tiles is None else self.test_tiles.mean(1)
        else:
            fine, sup = self.test_fine[:, position], self.test_super[:, position]
            tiles = None if self.test_tiles is None else self.test_tiles[:, position]
        return blended(fine, sup, tiles, weights)

    def targets(self, dataset: Dataset) -> np.ndarray:
        """[N, 290] multi-hot labels of the OOF rows."""
        return train_labels(dataset, self.oof_ids)


@dataclass(frozen=True)
class FoldEmbeddings:
    """One fold model's pooled features of its training frames, its validation rows (in OOF order) and
    the eval images, from the training run's own files (one view, the same for all three)."""

    train_ids: np.ndarray
    train: np.ndarray  # [R, D]
    valid: np.ndarray  # [N_k, D]
    test: np.ndarray  # [E, D]


def fold_embeddings(fold_dir: FoldDir, valid_ids: np.ndarray, eval_ids: np.ndarray) -> FoldEmbeddings | None:
    """The fold's embeddings, or None when its files carry none (a fold trained before they existed)."""
    if not fold_dir.predictions("train").is_file():
        return None
    files = {split: Predictions.load(fold_dir.predictions(split)) for split in ("train", "oof", "test")}
    if not all("embedding" in p.extras for p in files.values()):
        return None
    return FoldEmbeddings(files["train"].ids, files["train"].extras["embedding"].astype(np.float32),
                          aligned(fold_dir.predictions("oof"), valid_ids).extras["embedding"].astype(np.float32),
                          aligned(fold_dir.predictions("test"), eval_ids).extras["embedding"].astype(np.float32))


def blended(fine: np.ndarray, sup: np.ndarray, tiles: np.ndarray | None, weights: np.ndarray
            ) -> dict[str, np.ndarray | None]:
    """Member stacks ([M, N, *]; tiles [M, N]) as the osd scorers read them: blended, and each member's fine."""
    return {"fine": blend(fine, weights), "sup": blend(sup, weights), "member_fine": fine,
            "tiles": None if tiles is None else blend(tiles, weights)}


def train_labels(dataset: Dataset, ids: np.ndarray) -> np.ndarray:
    """[len(ids), 290] multi-hot labels of training images."""
    return fine_multi_hot(dataset.train.set_index("id")["categories"].loc[ids], dataset.categories)


def dives_of(table: pd.DataFrame, ids: np.ndarray) -> np.ndarray:
    """The dive of each image in `ids` ("" where its url names none), from a split table."""
    return table.set_index("id")["dive"].astype(str).loc[ids].to_numpy()


def load_members(dataset: Dataset, runs: Path, exp: str, tta: bool = True,
                 backbones: list[str] | None = None) -> Members:
    """Members of `exp` (all backbones, or `backbones`) on the folds every one of them finished; TTA files
    when all of them exist and `tta`."""
    experiment = Experiment(runs, exp)
    by_backbone = experiment.require_finished_folds()
    if backbones is not None:
        unknown = sorted(set(backbones) - set(by_backbone))
        if unknown:
            raise DataError(experiment.root, f"no finished folds of {', '.join(unknown)}",
                            hint=f"its backbones: {', '.join(sorted(by_backbone))}")
        by_backbone = {b: by_backbone[b] for b in backbones}
    common = sorted(set.intersection(*({d.fold for d in dirs} for dirs in by_backbone.values())))
    if not common:
        raise DataError(experiment.root, "no fold was finished by every backbone",
                        hint="train the missing folds or pass the backbones that share folds")
    dirs = {b: [d for d in ds if d.fold in common] for b, ds in by_backbone.items()}
    for b, ds in by_backbone.items():
        if len(ds) > len(common):
            log.warning("%s: using folds %s only (the folds every backbone finished)", b, common)
    use_tta = tta and all(d.has_tta() for ds in dirs.values() for d in ds)
    if tta and not use_tta:
        log.warning("%s: not every fold has TTA predictions (run `python -m fathom predict --exp %s`); using the "
                    "predictions saved by training", exp, exp)
    if use_tta:
        experiment.same_tta_views([d for ds in dirs.values() for d in ds])
    names = sorted(dirs)
    eval_ids = dataset.eval["id"].to_numpy().astype(str)
    oof_ids, fold_of, oof, test = [], [], {n: [] for n in names}, {n: [] for n in names}
    for position, fold in enumerate(common):
        ids = None
        for name in names:
            fold_dir = dirs[name][position]
            part = aligned(fold_dir.predictions("oof", use_tta), ids)
            ids = part.ids
            oof[name].append(part)
            test[name].append(aligned(fold_dir.predictions("test", use_tta), eval_ids))
        oof_ids.append(ids)
        fold_of.append(np.full(len(ids), fold))
    tiled = all("tile_evidence" in p.extras for n in names for p in oof[n] + test[n])
    embeddings = [[fold_embeddings(dirs[n][position], oof[n][position].ids, eval_ids)
                   for position in range(len(common))] for n in names]
    if not all(e is not None for per_member in embeddings for e in per_member):
        log.warning("%s: some folds carry no embeddings (trained before they were written): the feature-based "
                    "out-of-sample scores are left out; retrain to get them", exp)
        embeddings = None
    return Members(
        names=names, folds=common, tta=use_tta, oof_ids=np.concatenate(oof_ids), fold_of=np.concatenate(fold_of),
        oof_fine=np.stack([np.vstack([p.fine for p in oof[n]]) for n in names]),
        oof_super=np.stack([np.vstack([p.super for p in oof[n]]) for n in names]),
        eval_ids=eval_ids,
        test_fine=np.stack([np.stack([p.fine for p in test[n]]) for n in names]),
        test_super=np.stack([np.stack([p.super for p in test[n]]) for n in names]),
        oof_tiles=(np.stack([np.concatenate([p.extras["tile_evidence"] for p in oof[n]]) for n in names])
                   if tiled else None),
        test_tiles=np.stack([np.stack([p.extras["tile_evidence"] for p in test[n]]) for n in names]) if tiled else None,
        embeddings=embeddings)


def aligned(path: Path, ids: np.ndarray | None) -> Predictions:
    """The predictions in `path`, reordered to `ids` (when given); a different id set is an error."""
    predictions = Predictions.load(path)
    if ids is None:
        return predictions
    try:
        return predictions.aligned_to(ids)
    except ValueError:
        raise DataError(path, f"its {len(predictions.ids)} ids differ from the other models' {len(ids)}",
                        hint="all members must be predicted on the same folds and eval images") from None
