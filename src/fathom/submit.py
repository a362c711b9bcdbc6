"""Turn a run's test predictions into submission files (CSV + JSON record), scored when possible."""

from __future__ import annotations

import subprocess
from pathlib import Path

from fathom import constants as C
from fathom.atomic import write_json
from fathom.data.layout import Dataset
from fathom.errors import DataError
from fathom.metric import as_json_numbers, read_scoring_csv, score_frames
from fathom.predictions import Predictions, mean_of, run_dir
from fathom.submission import make_submission, write_submission


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).parent)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def submit(dataset: Dataset, runs: Path, exp: str, out_dir: Path, name: str) -> dict:
    """Write <out_dir>/<name>.csv, submission.csv and <name>.json; returns the record."""
    files = sorted((run_dir(runs, exp) / "test").glob("*.npz"))
    if not files:
        raise DataError(run_dir(runs, exp) / "test", "no test predictions", hint=f"train experiment {exp!r} first")
    eval_ids = dataset.eval["id"].to_numpy()
    blended = mean_of([Predictions.load(f) for f in files], eval_ids)
    if blended.osd is None:
        raise DataError(run_dir(runs, exp) / "test", "every model's predictions must include an osd score")
    table = make_submission(blended.ids, blended.fine, blended.osd, dataset.categories.ids, order=eval_ids)
    for path in (out_dir / f"{name}.csv", out_dir / "submission.csv"):
        write_submission(table, path, eval_ids, dataset.categories.ids)
    record = {"name": name, "exp": exp, "models": [f.stem for f in files], "weights": "equal",
              "git_commit": git_commit(), "rows": len(table)}
    solution = dataset.root / C.SOLUTION_CSV
    if solution.is_file():
        scores = score_frames(read_scoring_csv(solution), read_scoring_csv(out_dir / f"{name}.csv"))
        record["eval_score"] = as_json_numbers(scores)
    write_json(record, out_dir / f"{name}.json")
    return record
