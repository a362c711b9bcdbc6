"""`python -m fathom bench quality`: what each ingredient of the recipe buys, on data with a solution.

Experiments, trained with the engine (finished folds are reused, so a second run only re-scores):
  <base>                    the config as given (default `demo`) on whole frames (`sampling: frames`): its
                            backbones and folds, weighted BCE, super-category head
  <base>-no_class_weights   the same with plain BCE (pos_weight_power 0)
  <base>-no_super_head      the same with super_weight 0 (the head is there, untrained)
  <base>-<method>           resnet18 alone (or a pixel baseline) with one method option on, see METHODS
  <base>-crops              the same with `sampling: crops` (crops of the base config's crop_size from frames
                            cached at crop_long_side; tiled prediction): equal training compute
  seed                      the seed projects' recipe: densenet121, plain BCE, Adam lr 1e-3 without weight
                            decay, no super head, one random 80/20 split; the other settings (image size,
                            epochs, augmentation, batch) are the base config's
Each model trains the base config's epochs on 80% of the training images (a fold's training part, or
the seed's random 80%): the compute budget per model is fixed, and a row's cost is its model count.

Rows are ensembles of those experiments (fathom.ensemble.fit with one option changed each):
  full recipe               TTA, strategy chosen on held-out folds, label-free osd choice
  <backbone> alone          the full recipe with one member
  no class weighting        full recipe on <base>-no_class_weights
  no super head             full recipe on <base>-no_super_head
  no TTA                    training's own predictions
  equal weights             the plain mean of the members
  no re-scoring             the strategy chosen among those without the super-category exponent
  untuned osd               osd = 1 - max probability (what a single model gives) instead of the choice
  seed recipe               osd 0.5 for every image (sAUC 0)
  crops and tiles           full recipe on <base>-crops; `<backbone> alone, crops and tiles` per member;
                            result["small_animals"]: training images/s, prediction frames/s and each tile
                            combiner's validation MAP@20, whole frames against crops
  methods (METHODS)         one option of fathom's method set (pixel baselines, losses, sampler, logit
                            adjustment, mixing, label smoothing, MLP head) on resnet18 alone: compare with
                            the "resnet18 alone" row; `--no-methods` leaves them out
  resnet18 distilled        `python -m fathom distill` of the full recipe into resnet18 (without TTA);
                            result["distill"] holds its speed against the full recipe's
Each row: MAP@20, sAUC and score of its submission on the demo's solution.csv, and its held-out OOF
MAP@20 (each fold scored by the recipe tuned on the other folds; the seed's single model has nothing
tuned, so its score on its 20% validation is already held out).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from fathom import constants as C
from fathom.config import TrainConfig, apply
from fathom.data.layout import Dataset
from fathom.distill import distill
from fathom.ensemble.fit import STRATEGIES, fit_ensemble
from fathom.errors import DataError
from fathom.infer.tta import predict_experiment
from fathom.predictions import Predictions
from fathom.runs import Experiment
from fathom.submit import score_on_solution
from fathom.train.run import train

log = logging.getLogger(__name__)
SEED_RECIPE = {"name": "seed", "backbones": ["densenet121"], "folds": [0], "pos_weight_power": 0.0,
               "super_weight": 0.0, "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "by_backbone": {}}


SMALL_ANIMALS = {"sampling": "crops"}  # crops and tiles at the base config's crop_long_side and crop_size
METHOD_BACKBONE = "resnet18"  # the method rows change one option of this backbone's recipe
METHODS = {  # key: (row name, config changes)
    "pixels_linear": ("pixels_linear (logistic regression on pixels)", {"backbones": ["pixels_linear"]}),
    "pixels_mlp": ("pixels_mlp (fully connected net on pixels)", {"backbones": ["pixels_mlp"]}),
    "balanced": (f"{METHOD_BACKBONE} + balanced sampler", {"sampler": "balanced"}),
    "logit_adjustment": (f"{METHOD_BACKBONE} + logit adjustment (tau 1)", {"logit_adjustment": 1.0}),
    "mixup": (f"{METHOD_BACKBONE} + mixup (alpha 0.4)", {"mixup_alpha": 0.4}),
    "cutmix": (f"{METHOD_BACKBONE} + cutmix (alpha 1)", {"cutmix_alpha": 1.0}),
    "label_smoothing": (f"{METHOD_BACKBONE} + label smoothing 0.1", {"label_smoothing": 0.1}),
    "asl": (f"{METHOD_BACKBONE} + ASL", {"loss": "asl"}),
    "focal": (f"{METHOD_BACKBONE} + focal loss", {"loss": "focal"}),
    "mlp_head": (f"{METHOD_BACKBONE} + MLP head", {"head": "mlp"}),
}


def experiments(base: TrainConfig, methods: bool = True) -> dict[str, TrainConfig]:
    """The configs to train: the base and one ablation per training ingredient, the seed recipe, and
    (with `methods`) one single-backbone experiment per method option."""
    base = apply(base, {"sampling": "frames"}, "bench (whole frames)")  # each ingredient, crops too, against frames
    seed = {**base.by_backbone.get("densenet121", {}), **SEED_RECIPE}  # densenet121's own precision, if set
    configs = {"full": base,
               "no_class_weights": apply(base, {"name": f"{base.name}-no_class_weights", "pos_weight_power": 0.0},
                                         "bench"),
               "no_super_head": apply(base, {"name": f"{base.name}-no_super_head", "super_weight": 0.0}, "bench"),
               "seed": apply(dataclasses.replace(base, by_backbone={}), seed, "bench (seed recipe)"),
               "crops": apply(base, {"name": f"{base.name}-crops", **SMALL_ANIMALS}, "bench (crops)")}
    for key, (_, changes) in METHODS.items() if methods else ():
        configs[key] = apply(base, {"name": f"{base.name}-{key}", "backbones": [METHOD_BACKBONE], **changes},
                             f"bench ({key})")
    return configs


def random_split(dataset: Dataset, seed: int, share: float = 0.2) -> pd.DataFrame:
    """id -> fold: fold 0 is a random `share` of the training images (validation), fold 1 the rest."""
    ids = dataset.train["id"].to_numpy()
    _, valid = train_test_split(ids, test_size=share, random_state=seed)
    return pd.DataFrame({"id": ids, "fold": np.where(np.isin(ids, valid), 0, 1)})


def train_seconds(runs: Path, exp: str) -> float | None:
    """Wall seconds of every finished fold of `exp` (None when a fold predates the timing)."""
    done = [d.done() for dirs in Experiment(runs, exp).finished_folds().values() for d in dirs]
    return sum(d.seconds for d in done) if done else None


def row(name: str, dataset: Dataset, runs: Path, exp: str, models: int, seconds: float | None,
        constant_osd: bool = False, **options) -> dict:
    record, prediction = fit_ensemble(dataset, runs, exp, write=False, **options)
    scores = score_on_solution(dataset, prediction, np.full(len(prediction.ids), 0.5) if constant_osd else None)
    chosen = record.chosen
    held_out = chosen.held_out if chosen.held_out == chosen.held_out else chosen.in_sample  # 1 fold
    return {"row": name, "exp": exp, "models": models, "train_s": seconds, **scores,
            "oof_map20": held_out, "strategy": record.strategy,
            "osd": "constant 0.5" if constant_osd else record.osd.method, "tta": record.tta}


def cost_of(runs: Path, cfg: TrainConfig, predict_s: float) -> dict:
    """What an experiment's sampling costs and how its tiles were combined: mean training images/s over
    every epoch of every fold, frames/s of `python -m fathom predict` (the hflip view of every OOF and eval
    frame, all members), and, when tiled, views per frame and each combiner's mean validation MAP@20."""
    dirs = [d for ds in Experiment(runs, cfg.name).finished_folds().values() for d in ds]
    done = [d.done() for d in dirs]
    speed = np.mean([pd.read_csv(d.metrics)["train_images_per_s"].mean() for d in dirs])
    frames = sum(len(Predictions.load(d.predictions(split)).ids) for d in dirs for split in ("oof", "test"))
    out = {"exp": cfg.name, "sampling": cfg.sampling, "train_img_s": float(speed),
           "predict_frames_s": frames / predict_s}
    if all(d.tile_val_map20 is not None for d in done):  # tiled folds
        out["views_per_frame"] = float(np.mean([d.views_per_frame["eval"] for d in done]))
        out["combiner_val_map20"] = {rule: float(np.mean([d.tile_val_map20[rule] for d in done]))
                                     for rule in done[0].tile_val_map20}
        out["chosen"] = sorted({d.tile_combine for d in done})
    return out


def run_quality_bench(dataset: Dataset, folds: pd.DataFrame, base: TrainConfig, runs: Path,
                      methods: bool = True) -> dict:
    """Train (or reuse) every experiment, then score every row. Needs the data's solution.csv."""
    if not (dataset.root / C.SOLUTION_CSV).is_file():
        raise DataError(dataset.root / C.SOLUTION_CSV, "the quality benchmark scores against a solution file",
                        hint="run it on the demo data (`python -m fathom demo-data`)")
    configs = experiments(base, methods)
    predict_s = {}
    for key, cfg in configs.items():
        start = time.perf_counter()
        split = random_split(dataset, cfg.seed) if key == "seed" else folds
        train(cfg, dataset, split, runs)
        if key != "seed":
            started = time.perf_counter()
            predict_experiment(dataset, runs, cfg.name)
            predict_s[key] = time.perf_counter() - started
        log.info("bench quality: %s ready (%.0f s)", cfg.name, time.perf_counter() - start)
    seconds = {key: train_seconds(runs, cfg.name) for key, cfg in configs.items()}
    full, n_full = configs["full"].name, len(base.backbones) * len(base.folds)
    rows = [row("full recipe", dataset, runs, full, n_full, seconds["full"])]
    rows += [row(f"{b} alone", dataset, runs, full, len(base.folds), None, backbones=[b]) for b in base.backbones]
    rows += [row("no class weighting", dataset, runs, configs["no_class_weights"].name, n_full,
                 seconds["no_class_weights"]),
             row("no super head", dataset, runs, configs["no_super_head"].name, n_full, seconds["no_super_head"]),
             row("no TTA", dataset, runs, full, n_full, seconds["full"], tta=False),
             row("equal weights", dataset, runs, full, n_full, seconds["full"], strategies=("equal weights",)),
             row("no re-scoring", dataset, runs, full, n_full, seconds["full"],
                 strategies=tuple(s for s in STRATEGIES if "re-scoring" not in s)),
             row("untuned osd (1 - max prob)", dataset, runs, full, n_full, seconds["full"], osd="max_prob"),
             row("seed recipe", dataset, runs, "seed", 1, seconds["seed"], tta=False, constant_osd=True),
             row("crops and tiles", dataset, runs, configs["crops"].name, n_full, seconds["crops"])]
    rows += [row(f"{b} alone, crops and tiles", dataset, runs, configs["crops"].name, len(base.folds), None,
                 backbones=[b]) for b in base.backbones]
    rows += [row(METHODS[key][0], dataset, runs, configs[key].name, len(base.folds), seconds[key])
             for key in METHODS if key in configs]
    result = {"base_config": dataclasses.asdict(base), "rows": rows,
              "small_animals": [cost_of(runs, configs[key], predict_s[key]) for key in ("full", "crops")]}
    if methods:  # the student needs the full recipe's ensemble (ensemble/oof.npz) as its teacher
        fit_ensemble(dataset, runs, full)
        result["distill"] = distill(dataset, folds, base, runs, full, METHOD_BACKBONE)
        student = result["distill"]["student"]["exp"]
        rows.append(row(f"{METHOD_BACKBONE} distilled from the full recipe", dataset, runs, student, len(base.folds),
                        train_seconds(runs, student), tta=False))
    return result
