"""`python -m fathom submit`: write an experiment's eval predictions as submission files (CSV + JSON record),
scored when the data has a solution (the demo's).

An experiment with trained folds submits its ensemble's predictions (runs/<exp>/ensemble/test.npz and
ensemble.json, written by `python -m fathom ensemble`); one without (the frequency prior) the equal-weight
mean of its runs/<exp>/test/*.npz, osd included. Nothing is tuned, chosen or read from pixels here.
Records: fathom.runs.SubmissionRecord (submissions/<name>.json).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fathom import constants as C
from fathom.data.layout import Dataset
from fathom.errors import DataError
from fathom.metric import IdMismatchError, as_json_numbers, read_scoring_csv, score_frames
from fathom.predictions import Predictions, mean_of
from fathom.provenance import git_commit
from fathom.runs import EnsembleRecord, Experiment, SubmissionFiles, SubmissionRecord, write_record
from fathom.submission import make_submission, write_submission


def equal_blend(dataset: Dataset, experiment: Experiment) -> tuple[list[str], Predictions]:
    """(the models, the mean of every model in runs/<exp>/test/): each must carry its own osd (the prior)."""
    files = experiment.prediction_files("test")
    folder = experiment.prediction_dir("test")
    if not files:
        raise DataError(folder, "no test predictions", hint=f"train experiment {experiment.name!r} first")
    blended = mean_of([Predictions.load(f) for f in files], dataset.eval["id"].to_numpy())
    if "osd" not in blended.extras:
        raise DataError(folder, "every model's predictions must include an osd score",
                        hint=f"models with trained folds are ensembled: train experiment {experiment.name!r}")
    return [f.stem for f in files], blended


def ensembled(experiment: Experiment) -> tuple[EnsembleRecord, Predictions]:
    """The ensemble stage's record and eval predictions; refused when a fold or its TTA files are newer."""
    hint = f"run `python -m fathom ensemble --exp {experiment.name}`"
    record = experiment.ensemble()
    written = experiment.ensemble_predictions("test")
    if not written.is_file():
        raise DataError(written, "the ensemble's eval predictions are missing", hint=hint)
    folds = [d for dirs in experiment.finished_folds().values() for d in dirs]
    if record.tta:
        experiment.same_tta_views([d for d in folds if d.backbone in record.members and d.fold in record.folds])
    inputs = [d.done_file for d in folds]
    inputs += [experiment.views_file] if experiment.views_file.is_file() else []
    newer = [p for p in inputs if p.stat().st_mtime_ns > written.stat().st_mtime_ns]
    if newer:
        raise DataError(written, f"older than {newer[0]} (a fold was trained or predicted after the ensemble)",
                        hint=hint)
    return record, Predictions.load(written)


def scored(solution: Path, table) -> dict[str, float]:
    """score_frames of a submission table against the solution file; a solution that does not hold the
    submission's ids (a missing or extra row) is a DataError naming it."""
    try:
        return score_frames(read_scoring_csv(solution), table)
    except IdMismatchError as err:
        raise DataError(solution, f"does not match the eval images ({err})",
                        hint="the solution needs one row per eval.json image") from None


def score_on_solution(dataset: Dataset, prediction: Predictions, osd: np.ndarray | None = None) -> dict[str, float]:
    """{map20, sauc, score} of the submission built from `prediction` (its own osd unless given) against the
    data's solution.csv (the demo's), without writing it."""
    table = make_submission(prediction.ids, prediction.fine, prediction.osd if osd is None else osd,
                            dataset.categories.ids, order=dataset.eval["id"].to_numpy())
    return scored(dataset.root / C.SOLUTION_CSV, table)


def submit(dataset: Dataset, runs: Path, exp: str, out_dir: Path, name: str) -> SubmissionRecord:
    """Write <out_dir>/<name>.csv, submission.csv and <name>.json; returns the record."""
    experiment = Experiment(runs, exp)
    ensemble: EnsembleRecord | None = None
    if experiment.finished_folds():
        ensemble, predictions = ensembled(experiment)
        members = ensemble.members
    else:
        members, predictions = equal_blend(dataset, experiment)
    eval_ids = dataset.eval["id"].to_numpy()
    table = make_submission(predictions.ids, predictions.fine, predictions.osd, dataset.categories.ids, order=eval_ids)
    files = SubmissionFiles(out_dir, name)
    for path in (files.csv, files.latest):
        write_submission(table, path, eval_ids, dataset.categories.ids)
    solution = dataset.root / C.SOLUTION_CSV
    scores = scored(solution, read_scoring_csv(files.csv)) if solution.is_file() else None
    record = SubmissionRecord(name, exp, git_commit(), len(table), members, ensemble,
                              as_json_numbers(scores) if scores is not None else None)
    write_record(record, files.record)
    return record
