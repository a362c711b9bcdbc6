"""The submission writer (a pure function) and the validator that guards every write.

Format: `id,categories,osd`; categories = up to 20 integer ids separated by single spaces, most
probable first (the scorer compares string tokens, so `160`, never `160.0` or `[160]`); osd = a
finite float whose ranking is all that matters, written at full precision.
"""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from fathom.atomic import atomic_open
from fathom.constants import SUBMISSION_COLUMNS, TOP_K
from fathom.errors import DataError

INTEGER_TOKEN = re.compile(r"[1-9][0-9]*")
MAX_REPORTED = 10


def make_submission(
    ids: Sequence[str],
    fine_probs: np.ndarray,
    osd: np.ndarray,
    category_ids: np.ndarray,
    order: Sequence[str] | None = None,
    k: int = TOP_K,
) -> pd.DataFrame:
    """Rank the k most probable categories of each row; rows follow `order` (the eval ids) when given.

    `fine_probs[:, j]` is the probability of category `category_ids[j]`. Ties keep index order.
    """
    ids = [str(i) for i in ids]
    fine_probs = np.asarray(fine_probs, dtype=np.float64)
    osd = np.asarray(osd, dtype=np.float64)
    if fine_probs.shape != (len(ids), len(category_ids)) or osd.shape != (len(ids),):
        raise ValueError(f"shapes disagree: {len(ids)} ids, probs {fine_probs.shape}, osd {osd.shape}")
    if not np.isfinite(fine_probs).all() or not np.isfinite(osd).all():
        raise ValueError("probabilities and osd must be finite")
    top = np.argsort(-fine_probs, axis=1, kind="stable")[:, :k]
    ranked = np.asarray(category_ids)[top]
    df = pd.DataFrame(
        {"id": ids, "categories": [" ".join(str(int(c)) for c in row) for row in ranked], "osd": osd}
    )
    if order is not None:
        order = [str(i) for i in order]
        if len(set(order)) != len(order) or set(order) != set(ids):
            raise ValueError(f"prediction ids ({len(ids)}) are not the same set as the expected ids ({len(order)})")
        df = df.set_index("id").loc[order].reset_index()
    return df


def submission_problems(
    text: str, expected_ids: Iterable[str], category_ids: Iterable[int], k: int = TOP_K
) -> list[str]:
    """Everything wrong with a submission's CSV text, each as 'line N: ...'; empty when valid."""
    problems: list[str] = []
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))  # newline="": as csv needs
    try:
        rows = list(reader)
    except csv.Error as err:  # e.g. a NUL byte or a lone quote at the end
        return [f"line {reader.line_num}: not a CSV file ({err})"]
    if not rows or rows[0] != SUBMISSION_COLUMNS:
        header = ",".join(rows[0]) if rows else "(empty file)"
        return [f"line 1: header must be {','.join(SUBMISSION_COLUMNS)!r}, found {header!r}"]
    valid = {str(int(c)) for c in category_ids}
    seen: dict[str, int] = {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != 3:
            problems.append(f"line {line}: expected 3 fields, found {len(row)}")
            continue
        image_id, cell, osd = row
        if image_id in seen:
            problems.append(f"line {line}: duplicate id {image_id} (first on line {seen[image_id]})")
        seen.setdefault(image_id, line)
        problems += [f"line {line}: {p}" for p in category_problems(cell, valid, k)]
        problems += [f"line {line}: {p}" for p in osd_problems(osd)]
    expected = set(map(str, expected_ids))
    missing = sorted(expected - seen.keys())
    extra = sorted(seen.keys() - expected)
    if missing:
        problems.append(f"{len(missing)} expected ids are missing, e.g. {missing[:3]}")
    if extra:
        problems.append(f"{len(extra)} ids are not eval images, e.g. {extra[:3]} (line {seen[extra[0]]})")
    return problems


def category_problems(cell: str, valid: set[str], k: int) -> list[str]:
    if not cell:
        return ["categories is empty: list up to 20 ids"]
    if cell.startswith("[") or cell.endswith("]"):
        return [f"categories {cell[:40]!r} has brackets: write ids separated by spaces"]
    tokens = cell.split(" ")
    problems = []
    if len(tokens) > k:
        problems.append(f"{len(tokens)} category ids, at most {k} allowed")
    for token in tokens:
        if not INTEGER_TOKEN.fullmatch(token):
            problems.append(f"category token {token!r} is not an integer id (write 160, not 160.0; single spaces)")
            break
        if token not in valid:
            problems.append(f"category id {token} is out of range")
            break
    if len(set(tokens)) != len(tokens):
        problems.append("a category id is repeated (it would waste a rank)")
    return problems


def osd_problems(value: str) -> list[str]:
    try:
        osd = float(value)
    except ValueError:
        return [f"osd {value!r} is not a number"]
    return [] if math.isfinite(osd) else [f"osd {value!r} must be a finite number"]


def validate_submission_file(path: str | Path, expected_ids: Iterable[str], category_ids: Iterable[int]) -> None:
    """Raise a DataError listing (the first few) problems of the file at `path`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    text = path.read_text(encoding="utf-8", errors="replace")
    raise_problems(path, submission_problems(text, expected_ids, category_ids))


def raise_problems(path: Path, problems: list[str]) -> None:
    if problems:
        shown = "; ".join(problems[:MAX_REPORTED])
        more = f" (and {len(problems) - MAX_REPORTED} more)" if len(problems) > MAX_REPORTED else ""
        raise DataError(path, f"invalid submission: {shown}{more}")


def write_submission(df: pd.DataFrame, path: str | Path, expected_ids: Iterable[str], category_ids: Iterable[int]) -> None:
    """Validate, then write atomically: an invalid table never replaces a previous file."""
    path = Path(path)
    text = df[SUBMISSION_COLUMNS].to_csv(index=False, lineterminator="\n")  # floats keep full precision
    raise_problems(path, submission_problems(text, expected_ids, category_ids))
    with atomic_open(path, "w", newline="") as fh:
        fh.write(text)
