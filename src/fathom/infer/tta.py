"""Re-predict an experiment's finished folds with test-time augmentation.

Each fold's best checkpoint predicts its validation images (the OOF rows) and the eval images under
every view: the mirrored frame when `tta_hflip`, and each scale in `tta_scales` (a multiple of the
training image size, read from its own image cache). Views are averaged after the sigmoid. Folds trained
with `sampling: crops` predict every view tiled (fathom.infer.tiles): a scale resizes the whole frame and
each tile to that multiple of image_size. The fold's
resolved `config.yaml` supplies the architecture, image size, batch size and precision it trained with;
`key=value` overrides change only the views (or batch size / workers).

runs/<exp>/<backbone>/fold_<k>/oof_tta.npz, test_tta.npz   one fold, views averaged
runs/<exp>/tta/oof/<backbone>.npz                          the validation rows of every finished fold
runs/<exp>/tta/test/<backbone>.npz                         eval rows averaged over folds
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from fathom.atomic import write_json
from fathom.config import TrainConfig, load_config
from fathom.data.layout import Dataset
from fathom.errors import DataError
from fathom.infer.tiles import DEFAULT_RULE, frame_predictions, prediction_rows
from fathom.models.net import FathomNet
from fathom.predictions import Predictions, combine_folds, require_finished_folds, run_dir
from fathom.train.checkpoint import load_checkpoint
from fathom.train.data import ImageCache, eval_transform, frame_cache, make_loader
from fathom.train.loop import predict
from fathom.train.precision import Precision

log = logging.getLogger(__name__)
OVERRIDABLE = {"tta_hflip", "tta_scales", "batch_size", "workers", "cache_dir"}


def view_names(cfg: TrainConfig) -> list[str]:
    """The TTA views a config asks for, e.g. ['1x', '1x+hflip']."""
    flips = ["", "+hflip"] if cfg.tta_hflip else [""]
    return [f"{scale:g}x{flip}" for scale in cfg.tta_scales for flip in flips]


def fold_config(fold_dir: Path, overrides: list[str] = ()) -> TrainConfig:
    for item in overrides:
        if item.partition("=")[0] not in OVERRIDABLE:
            raise DataError("command line", f"{item!r}: prediction may only change {', '.join(sorted(OVERRIDABLE))}",
                            hint="other settings are fixed by how the fold was trained")
    return load_config(str(fold_dir / "config.yaml"), list(overrides))


class FoldPredictor:
    """One fold's best checkpoint, ready to predict any images of the dataset under the TTA views."""

    def __init__(self, fold_dir: Path, overrides: list[str] = (), device: torch.device | None = None):
        self.fold_dir, self.cfg = fold_dir, fold_config(fold_dir, overrides)
        self.device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
        cfg = self.cfg
        self.model = FathomNet.for_config(fold_dir.parent.name, cfg, trained=True)
        self.model.load_state_dict(load_checkpoint(fold_dir / "best.pt", self.device)["model"])
        self.model.to(self.device)
        if cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.precision = Precision.decide(cfg.amp, self.device)
        self.tiled = cfg.sampling == "crops"
        self.rule = json.loads((fold_dir / "done.json").read_text()).get("tile_combine", DEFAULT_RULE) \
            if self.tiled else None

    def predict(self, paths: list[str], plain: Predictions | None = None) -> dict[str, np.ndarray]:
        """{fine, super, osd} of the images at `paths`, probabilities averaged over the views (equal
        weights). Tiled folds (`sampling: crops`): each view's tiles are combined by the rule the fold
        chose (done.json), then views are averaged, osd included; frame folds: osd = 1 - max fine.

        `plain`: the training run's own predictions of these images (the 1x view: same checkpoint,
        transform and precision), reused instead of predicted again.
        """
        cfg = self.cfg
        total, count = {"fine": 0.0, "super": 0.0, "osd": 0.0}, 0
        for scale in cfg.tta_scales:
            flips = (False, True) if cfg.tta_hflip else (False,)
            if scale == 1.0 and plain is not None:
                total = {head: total[head] + getattr(plain, head) for head in total}
                count, flips = count + 1, flips[1:]
            if not flips:
                continue
            out = self.predict_view(paths, max(8, round(cfg.image_size * scale)), flips)
            total = {head: total[head] + out[head] * len(flips) for head in total}
            count += len(flips)
        out = {head: total[head] / count for head in total}
        if not self.tiled:
            out["osd"] = 1.0 - out["fine"].max(1)
        return out

    def predict_view(self, paths: list[str], size: int, flips: tuple[bool, ...]) -> dict[str, np.ndarray]:
        """One scale's probabilities (flips averaged): frames resized to `size`, or, tiled, each frame's
        whole view and tiles resized to `size` and combined."""
        cfg, data = self.cfg, self.model.data_config()
        transform = eval_transform(size, data["mean"], data["std"])
        cache = frame_cache(cfg) if self.tiled else ImageCache(cfg.cache_dir, size)
        dataset, plan = prediction_rows(cache.build(paths, workers=max(2, cfg.workers * 2)), cfg, transform)
        loader = make_loader(dataset, cfg.batch_size, False, cfg.workers, self.device)
        out = predict(self.model, loader, self.precision, cfg.channels_last, flips=flips)
        if plan is not None:
            return frame_predictions(out, plan, self.rule, cfg.tile_topk)
        return {**out, "osd": 0.0}


def predict_fold(fold_dir: Path, path_of: dict[str, str], overrides: list[str] = ()) -> dict[str, Predictions]:
    """TTA predictions of one fold's validation rows and eval rows (the ids its training run predicted).
    The 1x view is the training run's own oof/test predictions (a test checks they are what predicting
    again gives), so only the other views cost time."""
    predictor = FoldPredictor(fold_dir, overrides)
    out = {}
    for name in ("oof", "test"):
        trained = Predictions.load(fold_dir / f"{name}.npz")
        ids = trained.ids
        missing = [i for i in ids if i not in path_of]
        if missing:
            raise DataError(fold_dir / f"{name}.npz", f"{len(missing)} ids are not in the dataset (e.g. {missing[0]})",
                            hint="predict with the data folder the experiment was trained on")
        probs = predictor.predict([path_of[i] for i in ids], plain=trained)
        out[name] = Predictions(ids, probs["fine"], probs["super"], probs["osd"])
        out[name].save(fold_dir / f"{name}_tta.npz")
    return out


def predict_experiment(dataset: Dataset, runs: Path, exp: str, overrides: list[str] = ()) -> dict[str, list[str]]:
    """TTA for every finished fold of every backbone; returns {backbone: views}."""
    folds = require_finished_folds(runs, exp)
    path_of = {**dict(zip(dataset.train["id"], dataset.train["path"])),
               **dict(zip(dataset.eval["id"], dataset.eval["path"]))}
    used = {}
    for backbone, dirs in folds.items():
        parts = []
        for fold_dir in dirs:
            log.info("%s %s: predicting with TTA", backbone, fold_dir.name)
            parts.append(predict_fold(fold_dir, path_of, overrides))
        oof, test = combine_folds(parts)
        oof.save(run_dir(runs, exp) / "tta" / "oof" / f"{backbone}.npz")
        test.save(run_dir(runs, exp) / "tta" / "test" / f"{backbone}.npz")
        used[backbone] = view_names(fold_config(dirs[0], overrides))
    write_json(used, run_dir(runs, exp) / "tta" / "views.json")
    return used
