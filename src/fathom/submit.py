"""Turn an experiment into submission files (CSV + JSON record), scored when the data has a solution.

An experiment with trained folds is ensembled first (fathom.ensemble.fit: weights, exponents and the
out-of-sample score chosen on its OOF predictions, written to runs/<exp>/ensemble.json). One without
(the frequency prior) is the equal-weight mean of its runs/<exp>/test/*.npz, osd included.
Records: fathom.runs.SubmissionRecord (submissions/<name>.json), EnsembleRecord (runs/<exp>/ensemble.json).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fathom import constants as C
from fathom.data.layout import Dataset
from fathom.errors import DataError
from fathom.metric import as_json_numbers, read_scoring_csv, score_frames
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


def score_on_solution(dataset: Dataset, prediction: Predictions, osd: np.ndarray | None = None) -> dict[str, float]:
    """{map20, sauc, score} of the submission built from `prediction` (its own osd unless given) against the
    data's solution.csv (the demo's), without writing it."""
    table = make_submission(prediction.ids, prediction.fine, prediction.osd if osd is None else osd,
                            dataset.categories.ids, order=dataset.eval["id"].to_numpy())
    return score_frames(read_scoring_csv(dataset.root / C.SOLUTION_CSV), table)


def submit(dataset: Dataset, runs: Path, exp: str, out_dir: Path, name: str, osd: str | None = None
           ) -> SubmissionRecord:
    """Write <out_dir>/<name>.csv, submission.csv and <name>.json; returns the record. `osd`: pin the
    out-of-sample method instead of the label-free choice (an ensembled experiment only)."""
    experiment = Experiment(runs, exp)
    ensemble: EnsembleRecord | None = None
    if experiment.finished_folds():
        from fathom.ensemble.fit import fit_ensemble

        ensemble, predictions = fit_ensemble(dataset, runs, exp, osd=osd)
        members = ensemble.members
    else:
        if osd is not None:
            raise DataError(experiment.root, f"--osd {osd}: experiment {exp!r} has no trained folds to choose among",
                            hint="the prior's osd is its colour novelty")
        members, predictions = equal_blend(dataset, experiment)
    eval_ids = dataset.eval["id"].to_numpy()
    table = make_submission(predictions.ids, predictions.fine, predictions.osd, dataset.categories.ids, order=eval_ids)
    files = SubmissionFiles(out_dir, name)
    for path in (files.csv, files.latest):
        write_submission(table, path, eval_ids, dataset.categories.ids)
    solution = dataset.root / C.SOLUTION_CSV
    scores = score_frames(read_scoring_csv(solution), read_scoring_csv(files.csv)) \
        if solution.is_file() else None
    record = SubmissionRecord(name, exp, git_commit(), len(table), members, ensemble,
                              as_json_numbers(scores) if scores is not None else None)
    write_record(record, files.record)
    return record
