"""The competition metric, computed exactly as the official FathomNet 2023 scorer does.

score = (MAP@20 + sAUC) / 2 with sAUC = 2 * AUC(osd) - 1.
AP@20 of an image walks the first 20 predicted tokens (strings split on single spaces): at each
token that is a true id and not seen earlier in the list, hits += 1 and the sum gains hits / rank.
The sum is divided by min(#true, 20). A repeated id scores nothing but still takes its rank; an
image with no true labels scores 0. Rows of solution and submission are matched by id.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from fathom.constants import SUBMISSION_COLUMNS, TOP_K
from fathom.data.tables import read_text_csv
from fathom.errors import DataError


def tokens(cell) -> list[str]:
    """A categories cell as the scorer sees it: a string split on single spaces."""
    if cell is None or (isinstance(cell, float) and np.isnan(cell)):
        return []
    text = str(cell)
    return text.split(" ") if text else []


def average_precision_at_k(true: Sequence[str], predicted: Sequence[str], k: int = TOP_K) -> float:
    """AP@k of one image (see module docstring)."""
    if not true:
        return 0.0
    truth = set(true)
    seen: set[str] = set()
    hits, total = 0, 0.0
    for rank, token in enumerate(predicted[:k], start=1):
        if token in truth and token not in seen:
            hits += 1
            total += hits / rank
        seen.add(token)
    return total / min(len(true), k)


def map_at_k(true_cells: Sequence, predicted_cells: Sequence, k: int = TOP_K) -> float:
    """Mean AP@k over rows; the cells are space-separated strings (or token lists)."""
    def as_tokens(cell):
        return list(cell) if isinstance(cell, (list, tuple)) else tokens(cell)

    scores = [average_precision_at_k(as_tokens(t), as_tokens(p), k) for t, p in zip(true_cells, predicted_cells)]
    return float(np.mean(scores)) if scores else 0.0


def scaled_auc(is_out_of_sample: np.ndarray, osd: np.ndarray) -> float:
    """sAUC = 2 * ROC-AUC - 1: 1 is perfect ranking, 0 random. NaN when only one class is present."""
    is_out_of_sample = np.asarray(is_out_of_sample, dtype=float)
    if len(np.unique(is_out_of_sample)) < 2:
        return float("nan")
    return float(2.0 * roc_auc_score(is_out_of_sample, np.asarray(osd, dtype=float)) - 1.0)


class IdMismatchError(ValueError):
    """Solution and submission do not hold the same ids."""


def score_frames(solution: pd.DataFrame, submission: pd.DataFrame) -> dict[str, float]:
    """{'map20', 'sauc', 'score'} of a submission against a solution (both id,categories,osd)."""
    sol = solution.set_index("id")
    sub = submission.set_index("id")
    missing = sol.index.difference(sub.index)
    extra = sub.index.difference(sol.index)
    if len(missing) or len(extra) or sub.index.has_duplicates:
        raise IdMismatchError(
            f"ids differ: {len(missing)} missing from the submission (e.g. {list(missing[:2])}), "
            f"{len(extra)} not in the solution (e.g. {list(extra[:2])}), "
            f"{int(sub.index.duplicated().sum())} duplicated"
        )
    sub = sub.loc[sol.index]
    map20 = map_at_k(list(sol["categories"]), list(sub["categories"]))
    sauc = scaled_auc(sol["osd"].to_numpy(float), sub["osd"].to_numpy(float))
    return {"map20": map20, "sauc": sauc, "score": 0.5 * (map20 + sauc)}


def read_scoring_csv(path) -> pd.DataFrame:
    """Read a solution or submission CSV (id,categories,osd) keeping categories as the raw strings the
    scorer splits; osd as floats. Errors name the file and line."""
    table = read_text_csv(path, SUBMISSION_COLUMNS)
    osd = pd.to_numeric(table["osd"], errors="coerce")
    if osd.isna().any():
        first = table[osd.isna()].iloc[0]
        raise DataError(path, f"osd {first['osd']!r} is not a number", where=f"line {first['line']}")
    return table.assign(osd=osd.astype(float)).drop(columns="line")


def map_at_k_from_probs(probs: np.ndarray, targets: np.ndarray, k: int = TOP_K) -> float:
    """MAP@k from a probability matrix and a multi-hot target matrix (same rule as the scorer).

    The top-k indices of each row play the role of the submitted ids; rows with no positives score 0.
    Used for validation during training, where building strings would be wasteful.
    """
    probs = np.asarray(probs)
    targets = np.asarray(targets) > 0
    k = min(k, probs.shape[1])
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    hit = np.take_along_axis(targets, top, axis=1)
    precision_at_hits = np.cumsum(hit, axis=1) / np.arange(1, k + 1) * hit
    n_true = targets.sum(axis=1)
    ap = np.where(n_true > 0, precision_at_hits.sum(axis=1) / np.maximum(np.minimum(n_true, k), 1), 0.0)
    return float(ap.mean()) if len(ap) else 0.0


def as_json_numbers(scores: dict[str, float]) -> dict[str, float | None]:
    """NaN (e.g. sAUC with one class) becomes None, so the dict serialises as valid JSON."""
    return {key: (None if value != value else value) for key, value in scores.items()}
