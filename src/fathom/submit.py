"""Turn an experiment into submission files (CSV + JSON record), scored when the data has a solution.

An experiment with trained folds is ensembled first (fathom.ensemble.fit: weights, exponents and the
out-of-sample score chosen on its OOF predictions, written to runs/<exp>/ensemble.json). One without
(the frequency prior) is the equal-weight mean of its runs/<exp>/test/*.npz, osd included.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fathom import constants as C
from fathom.atomic import write_json
from fathom.data.layout import Dataset
from fathom.errors import DataError
from fathom.metric import as_json_numbers, read_scoring_csv, score_frames
from fathom.predictions import Predictions, finished_folds, mean_of, run_dir
from fathom.provenance import git_commit
from fathom.submission import make_submission, write_submission


def equal_blend(dataset: Dataset, runs: Path, exp: str) -> tuple[dict, Predictions]:
    """The mean of every model in runs/<exp>/test/ (each must carry its own osd)."""
    files = sorted((run_dir(runs, exp) / "test").glob("*.npz"))
    if not files:
        raise DataError(run_dir(runs, exp) / "test", "no test predictions", hint=f"train experiment {exp!r} first")
    blended = mean_of([Predictions.load(f) for f in files], dataset.eval["id"].to_numpy())
    if blended.osd is None:
        raise DataError(run_dir(runs, exp) / "test", "every model's predictions must include an osd score")
    record = {"members": [f.stem for f in files], "weights": "equal", "osd": {"method": "mean of the models' osd"}}
    return record, blended


def score_on_solution(dataset: Dataset, prediction: Predictions, osd: np.ndarray | None = None) -> dict[str, float]:
    """{map20, sauc, score} of the submission built from `prediction` (its own osd unless given) against the
    data's solution.csv (the demo's), without writing it."""
    table = make_submission(prediction.ids, prediction.fine, prediction.osd if osd is None else osd,
                            dataset.categories.ids, order=dataset.eval["id"].to_numpy())
    return score_frames(read_scoring_csv(dataset.root / C.SOLUTION_CSV), table)


def submit(dataset: Dataset, runs: Path, exp: str, out_dir: Path, name: str) -> dict:
    """Write <out_dir>/<name>.csv, submission.csv and <name>.json; returns the record."""
    if finished_folds(runs, exp):
        from fathom.ensemble.fit import fit_ensemble

        ensemble, predictions = fit_ensemble(dataset, runs, exp)
    else:
        ensemble, predictions = equal_blend(dataset, runs, exp)
    eval_ids = dataset.eval["id"].to_numpy()
    table = make_submission(predictions.ids, predictions.fine, predictions.osd, dataset.categories.ids, order=eval_ids)
    for path in (out_dir / f"{name}.csv", out_dir / "submission.csv"):
        write_submission(table, path, eval_ids, dataset.categories.ids)
    record = {"name": name, "exp": exp, "git_commit": git_commit(), "rows": len(table), **ensemble}
    solution = dataset.root / C.SOLUTION_CSV
    if solution.is_file():
        scores = score_frames(read_scoring_csv(solution), read_scoring_csv(out_dir / f"{name}.csv"))
        record["eval_score"] = as_json_numbers(scores)
    write_json(record, out_dir / f"{name}.json")
    return record
