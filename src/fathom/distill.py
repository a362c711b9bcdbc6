"""`python -m fathom distill`: one student backbone trained on an ensemble's soft labels, and what it trades.

The student is an experiment of the same engine (`<exp>-distill-<student>`): the config given (default
`demo`) for the student backbone, on the teacher's folds, with `distill_from: <exp>` — its training
targets mix the teacher ensemble's held-out OOF probabilities with the true labels (fathom.train.run.
distilled_targets). It is then ensembled on its own (best single; osd chosen label-free) like any
experiment. The report sets student against teacher: held-out OOF MAP@20, eval MAP@20 / sAUC / score
when the data has a solution, and inference images/s of what each needs to predict one image: every
(member, fold, TTA view) of the teacher ensemble with a non-zero weight, against the student's folds.

Caveat: a teacher soft label of a training image comes from a teacher fold model that never saw that
image, but did see the student's validation images; the student's OOF score may gain a little from
that, its eval score cannot.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import pandas as pd

from fathom import constants as C
from fathom.atomic import write_json
from fathom.config import TrainConfig
from fathom.data.layout import Dataset
from fathom.ensemble.fit import fit_ensemble
from fathom.infer.tta import view_names
from fathom.predictor import Predictor
from fathom.metric import as_json_numbers
from fathom.predictions import Predictions
from fathom.provenance import git_commit
from fathom.runs import EnsembleRecord, Experiment, FoldDir
from fathom.submit import score_on_solution
from fathom.train.run import train

log = logging.getLogger(__name__)
TIMED_IMAGES = 64


def student_config(base: TrainConfig, teacher: str, student: str, folds: list[int], weight: float) -> TrainConfig:
    return dataclasses.replace(base.for_backbone(student), name=f"{teacher}-distill-{student}", backbones=[student],
                               folds=folds, distill_from=teacher, distill_weight=weight, by_backbone={})


def images_per_second(fold_dir: FoldDir, paths: list[str]) -> tuple[float, int]:
    """(images/s of one fold model predicting `paths` one view at a time, its number of TTA views)."""
    views = len(view_names(fold_dir.prediction_config()))
    predictor = Predictor.from_fold(fold_dir, ["tta_hflip=false", "tta_scales=[1.0]"])
    predictor.predict(paths[:8])  # warm-up: cache, kernels
    start = time.perf_counter()
    predictor.predict(paths)
    return len(paths) / (time.perf_counter() - start), views


def inference_speed(runs: Path, exp: str, weights: dict[str, float], paths: list[str], tta: bool) -> dict:
    """Images/s of predicting with every (member with weight > 0) x fold x view of `exp`: each member's
    fold 0 is timed on `paths` for one view; the other folds and views cost the same."""
    found = Experiment(runs, exp).require_finished_folds()
    seconds_per_image, models = 0.0, 0
    for member, weight in weights.items():
        if weight <= 0:
            continue
        rate, views = images_per_second(found[member][0], paths)
        views = views if tta else 1
        seconds_per_image += len(found[member]) * views / rate
        models += len(found[member]) * views
    return {"images_per_s": 1.0 / seconds_per_image, "forward_passes_per_image": models}


def eval_score(dataset: Dataset, prediction: Predictions) -> dict | None:
    """The eval score when the data has a solution (the demo), else None."""
    if not (dataset.root / C.SOLUTION_CSV).is_file():
        return None
    return as_json_numbers(score_on_solution(dataset, prediction))


def distill(dataset: Dataset, folds: pd.DataFrame, base: TrainConfig, runs: Path, teacher: str, student: str,
            weight: float = 0.5) -> dict:
    """Train the student (finished folds are reused), ensemble it, and compare it with the teacher."""
    record = Experiment(runs, teacher).ensemble()
    cfg = student_config(base, teacher, student, record.folds, weight)
    train(cfg, dataset, folds, runs)
    student_record, student_prediction = fit_ensemble(dataset, runs, cfg.name, tta=False)
    teacher_prediction = Predictions.load(Experiment(runs, teacher).ensemble_predictions("test"))
    paths = dataset.eval["path"].tolist()[:TIMED_IMAGES]

    def summary(rec: EnsembleRecord, prediction: Predictions, exp: str, tta: bool) -> dict:
        return {"exp": exp, "members": [m for m, w in rec.weights.items() if w > 0],
                "oof_map20_held_out": rec.chosen.held_out,
                "eval": eval_score(dataset, prediction), "osd": rec.osd.method,
                **inference_speed(runs, exp, rec.weights, paths, tta)}

    result = {"teacher": summary(record, teacher_prediction, teacher, record.tta),
              "student": summary(student_record, student_prediction, cfg.name, False),
              "student_backbone": student, "distill_weight": weight, "git_commit": git_commit()}
    result["speedup"] = result["student"]["images_per_s"] / result["teacher"]["images_per_s"]
    write_json(result, Experiment(runs, cfg.name).distill_file)
    return result


def distill_table(result: dict) -> str:
    rows = ["| model | members | forward passes / image | images/s | OOF MAP@20 (held out) | eval MAP@20 | eval sAUC "
            "| eval score |", "|---|---|---|---|---|---|---|---|"]
    for role in ("teacher", "student"):
        r, e = result[role], result[role]["eval"] or {}
        cells = [f"{role} ({r['exp']})", ", ".join(r["members"]), str(r["forward_passes_per_image"]),
                 f"{r['images_per_s']:.0f}", f"{r['oof_map20_held_out']:.3f}",
                 *(f"{e[k]:.3f}" if k in e else "-" for k in ("map20", "sauc", "score"))]
        rows.append("| " + " | ".join(cells) + " |")
    rows.append(f"\nstudent inference is {result['speedup']:.1f}x the teacher's images/s")
    return "\n".join(rows)
