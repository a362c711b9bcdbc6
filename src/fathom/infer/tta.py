"""Re-predict an experiment's finished folds with test-time augmentation.

Each fold's best checkpoint predicts its validation images (the OOF rows) and the eval images under
every view: the mirrored frame when `tta_hflip`, and each scale in `tta_scales` (a multiple of the
training image size; whole frames are read from their own image cache at that size, tiled folds resize
the whole view and each tile). Views are averaged after the sigmoid, extras (tile evidence) included.
The fold's resolved `config.yaml` supplies the architecture, image size, batch size and precision it
trained with; `key=value` overrides change only the views (or batch size / workers). Prediction goes
through the same `fathom.predictor.Predictor` as training's. Files: fathom.runs (`*_tta.npz`, tta/).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from fathom.atomic import write_json
from fathom.config import TrainConfig
from fathom.data.layout import Dataset
from fathom.data.sampling import sampling_for
from fathom.data.transforms import eval_transform
from fathom.device import choose_device
from fathom.errors import DataError
from fathom.models.net import FathomNet
from fathom.predictions import Predictions, combine_folds
from fathom.predictor import Predictor
from fathom.runs import Experiment, FoldDir
from fathom.train.checkpoint import load_checkpoint
from fathom.train.precision import Precision

log = logging.getLogger(__name__)
OVERRIDABLE = {"tta_hflip", "tta_scales", "batch_size", "infer_batch_size", "workers", "cache_dir", "device"}


def view_names(cfg: TrainConfig) -> list[str]:
    """The TTA views a config asks for, e.g. ['1x', '1x+hflip']."""
    flips = ["", "+hflip"] if cfg.tta_hflip else [""]
    return [f"{scale:g}x{flip}" for scale in cfg.tta_scales for flip in flips]


def fold_config(fold_dir: FoldDir, overrides: list[str] = ()) -> TrainConfig:
    for item in overrides:
        if item.partition("=")[0] not in OVERRIDABLE:
            raise DataError("command line", f"{item!r}: prediction may only change {', '.join(sorted(OVERRIDABLE))}",
                            hint="other settings are fixed by how the fold was trained")
    return fold_dir.train_config(["device=auto", *overrides])  # where it trained says nothing of where it predicts


class FoldPredictor:
    """One fold's best checkpoint, ready to predict any images of the dataset under the TTA views."""

    def __init__(self, fold_dir: FoldDir | Path, overrides: list[str] = (), device: torch.device | None = None):
        fold_dir = fold_dir if isinstance(fold_dir, FoldDir) else FoldDir(Path(fold_dir))
        self.fold_dir, self.cfg = fold_dir, fold_config(fold_dir, overrides)
        cfg = self.cfg
        self.device = device = device or choose_device(cfg.device)
        model = FathomNet.for_config(fold_dir.backbone, cfg, trained=True)
        model.load_state_dict(load_checkpoint(fold_dir.best, device)["model"])
        model.to(device)
        if cfg.channels_last:
            model.to(memory_format=torch.channels_last)
        self.sampling = sampling_for(cfg)
        self.predictor = Predictor(model, self.sampling, Precision.for_prediction(cfg.amp, cfg.infer_amp, device),
                                   cfg.prediction_batch_size, cfg.workers, cfg.channels_last)
        self.rule = fold_dir.done().tile_combine  # the rule the fold chose (None: whole frames)

    @property
    def model(self) -> torch.nn.Module:
        return self.predictor.model

    def predict(self, paths: list[str], plain: Predictions | None = None) -> dict[str, np.ndarray]:
        """{fine, super, extras} of the images at `paths`, averaged over the views (equal weights).

        `plain`: the training run's own predictions of these images (the 1x view: same checkpoint,
        transform and precision), reused instead of predicted again.
        """
        cfg, total, count = self.cfg, {}, 0
        for scale in cfg.tta_scales:
            flips = (False, True) if cfg.tta_hflip else (False,)
            if scale == 1.0 and plain is not None:
                total = accumulate(total, {"fine": plain.fine, "super": plain.super, **plain.extras}, 1)
                count, flips = count + 1, flips[1:]
            if not flips:
                continue
            total = accumulate(total, self.predict_view(paths, max(8, round(cfg.image_size * scale)), flips),
                               len(flips))
            count += len(flips)
        return {head: value / count for head, value in total.items()}

    def predict_view(self, paths: list[str], size: int, flips: tuple[bool, ...]) -> dict[str, np.ndarray]:
        """One scale's per-frame probabilities (flips averaged), views resized to `size`."""
        stats = self.model.data_config()
        files = self.sampling.cache(size).build(paths, workers=max(2, self.cfg.workers * 2))
        return self.predictor.frames(None, files, eval_transform(size, stats["mean"], stats["std"]), self.rule, flips)


def accumulate(total: dict[str, np.ndarray], out: dict[str, np.ndarray], weight: int) -> dict[str, np.ndarray]:
    return {head: total.get(head, 0.0) + value * weight for head, value in out.items()}


def predict_fold(fold_dir: FoldDir, path_of: dict[str, str], overrides: list[str] = ()) -> dict[str, Predictions]:
    """TTA predictions of one fold's validation rows and eval rows (the ids its training run predicted).
    The 1x view is the training run's own oof/test predictions (a test checks they are what predicting
    again gives), so only the other views cost time."""
    predictor = FoldPredictor(fold_dir, overrides)
    out = {}
    for split in ("oof", "test"):
        trained = Predictions.load(fold_dir.predictions(split))
        ids = trained.ids
        missing = [i for i in ids if i not in path_of]
        if missing:
            raise DataError(fold_dir.predictions(split),
                            f"{len(missing)} ids are not in the dataset (e.g. {missing[0]})",
                            hint="predict with the data folder the experiment was trained on")
        probs = predictor.predict([path_of[i] for i in ids], plain=trained)
        out[split] = Predictions(ids, probs.pop("fine"), probs.pop("super"), probs)
        out[split].save(fold_dir.predictions(split, tta=True))
    return out


def predict_experiment(dataset: Dataset, runs: Path, exp: str, overrides: list[str] = ()) -> dict[str, list[str]]:
    """TTA for every finished fold of every backbone; returns {backbone: views}."""
    experiment = Experiment(runs, exp)
    folds = experiment.require_finished_folds()
    path_of = {**dict(zip(dataset.train["id"], dataset.train["path"])),
               **dict(zip(dataset.eval["id"], dataset.eval["path"]))}
    used = {}
    for backbone, dirs in folds.items():
        parts = []
        for fold_dir in dirs:
            log.info("%s fold %d: predicting with TTA", backbone, fold_dir.fold)
            parts.append(predict_fold(fold_dir, path_of, overrides))
        oof, test = combine_folds(parts)
        oof.save(experiment.predictions("oof", backbone, tta=True))
        test.save(experiment.predictions("test", backbone, tta=True))
        used[backbone] = view_names(fold_config(dirs[0], overrides))
    write_json(used, experiment.views_file)
    return used
