"""Re-predict an experiment's finished folds with test-time augmentation.

Each fold's best checkpoint predicts its validation images (the OOF rows) and the eval images under
every view: the mirrored frame when `tta_hflip`, and each scale in `tta_scales` (a multiple of the
training image size; whole frames are read from their own image cache at that size, tiled folds resize
the whole view and each tile). Views are averaged after the sigmoid, extras (tile evidence) included.
The fold's resolved `config.yaml` supplies the architecture, image size, batch size and precision it
trained with; `key=value` overrides change only the views (or batch size / workers). Prediction goes
through the same `fathom.predictor.Predictor` as training's (`Predictor.from_fold`). Files: fathom.runs
(each fold's tta/, the experiment's tta/), each folder written aside and swapped in whole once complete
(fathom.atomic.staged_folder): a kill leaves the previous set, never oof files of one run and test files of
another.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fathom.atomic import staged_folder, write_json
from fathom.config import TrainConfig
from fathom.data.layout import Dataset
from fathom.errors import DataError
from fathom.predictions import Predictions, combine_folds
from fathom.runs import SPLITS, Experiment, FoldDir

log = logging.getLogger(__name__)


def view_names(cfg: TrainConfig) -> list[str]:
    """The TTA views a config asks for, e.g. ['1x', '1x+hflip'] ('1x+own_bn' with `tta_adapt_bn`: BatchNorm
    statistics of the predicted set itself)."""
    flips = ["", "+hflip"] if cfg.tta_hflip else [""]
    own = "+own_bn" if cfg.tta_adapt_bn else ""
    return [f"{scale:g}x{flip}{own}" for scale in cfg.tta_scales for flip in flips]


def predict_fold(fold_dir: FoldDir, path_of: dict[str, str], overrides: list[str] = ()) -> dict[str, Predictions]:
    """TTA predictions of one fold's validation rows and eval rows (the ids its training run predicted).
    The 1x view is the training run's own oof/test predictions (a test checks they are what predicting
    again gives), so only the other views cost time: with that view alone no model is loaded."""
    predictor, cfg = None, fold_dir.prediction_config(overrides)
    if view_names(cfg) != ["1x"]:
        from fathom.predictor import Predictor  # torch and timm: only when a view needs the model

        predictor = Predictor.from_fold(fold_dir, overrides)
    out, views = {}, tuple(view_names(cfg))
    with staged_folder(fold_dir.tta_dir) as staging:
        for split in SPLITS:
            trained = Predictions.load(fold_dir.predictions(split))
            ids = trained.ids
            missing = [i for i in ids if i not in path_of]
            if missing:
                raise DataError(fold_dir.predictions(split),
                                f"{len(missing)} ids are not in the dataset (e.g. {missing[0]})",
                                hint="predict with the data folder the experiment was trained on")
            probs = trained.arrays() if predictor is None else predictor.predict([path_of[i] for i in ids],
                                                                                 plain=trained)
            out[split] = Predictions(ids, probs.pop("fine"), probs.pop("super"), probs, views)
            out[split].save(staging / fold_dir.predictions(split, tta=True).name)
    return out


def predict_experiment(dataset: Dataset, runs: Path, exp: str, overrides: list[str] = ()) -> dict[str, list[str]]:
    """TTA for every finished fold of every backbone; returns {backbone: views}."""
    experiment = Experiment(runs, exp)
    folds = experiment.require_finished_folds()
    path_of = {**dict(zip(dataset.train["id"], dataset.train["path"])),
               **dict(zip(dataset.eval["id"], dataset.eval["path"]))}
    used, combined = {}, {}
    for backbone, dirs in folds.items():
        parts = []
        for fold_dir in dirs:
            log.info("%s fold %d: predicting with TTA", backbone, fold_dir.fold)
            parts.append(predict_fold(fold_dir, path_of, overrides))
        combined[backbone] = dict(zip(SPLITS, combine_folds(parts)))
        used[backbone] = list(parts[0]["oof"].views)  # every fold's, from the same overrides
    tta_root = experiment.views_file.parent
    with staged_folder(tta_root) as staging:
        for backbone, splits in combined.items():
            for split, predictions in splits.items():
                predictions.save(staging / experiment.predictions(split, backbone, tta=True).relative_to(tta_root))
        write_json(used, staging / experiment.views_file.name)
    return used
