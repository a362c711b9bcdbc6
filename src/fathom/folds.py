"""Multilabel stratified K folds, built once and written as `id,fold`.

Stratified on the 290 fine labels plus the 20 super-categories with iterative-stratification's
MultilabelStratifiedKFold, so rare categories spread over folds and every fold sees each family.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

from fathom.atomic import write_csv
from fathom.data.categories import Categories
from fathom.data.labels import fine_multi_hot, super_multi_hot
from fathom.data.tables import read_text_csv
from fathom.errors import DataError


def make_folds(train: pd.DataFrame, categories: Categories, n_folds: int = 5, seed: int = 42) -> pd.DataFrame:
    """DataFrame(id, fold) in the order of `train`; deterministic given the seed."""
    targets = np.hstack([fine_multi_hot(train["categories"], categories),
                         super_multi_hot(train["categories"], categories)])
    splitter = MultilabelStratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    fold = np.full(len(train), -1, dtype=np.int64)
    for k, (_, valid) in enumerate(splitter.split(np.zeros(len(train)), targets)):
        assert (fold[valid] == -1).all(), "folds overlap"
        fold[valid] = k
    assert (fold >= 0).all(), "some ids are in no fold"
    return pd.DataFrame({"id": train["id"].to_numpy(), "fold": fold})


def summarize(folds: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    """Per fold: validation images, label instances and distinct categories present."""
    merged = train[["id", "categories"]].merge(folds, on="id", validate="one_to_one")
    rows = []
    for k, part in merged.groupby("fold"):
        labels = [c for cats in part["categories"] for c in cats]
        rows.append({"fold": int(k), "images": len(part), "labels": len(labels), "categories": len(set(labels))})
    return pd.DataFrame(rows)


def write_folds(folds: pd.DataFrame, path: str | Path) -> None:
    write_csv(folds, path)


def read_folds(path: str | Path, ids) -> pd.DataFrame:
    """Read `id,fold` and keep the rows of the given train ids; every one of them must have a fold."""
    path = Path(path)
    folds = read_text_csv(path, ["id", "fold"], hint="build it with `python -m fathom folds`")
    for line, value in zip(folds["line"], folds["fold"]):
        if not value.strip().isdigit():
            raise DataError(path, f"fold {value!r} is not a fold index (0, 1, ...)", where=f"line {line}")
    folds["fold"] = folds["fold"].astype(np.int64)
    duplicated = folds["id"].duplicated()
    if duplicated.any():
        first = folds[duplicated].iloc[0]
        raise DataError(path, f"duplicate id {first['id']}", where=f"line {first['line']}")
    ids = set(ids)
    missing = ids - set(folds["id"])
    if missing:
        raise DataError(path, f"{len(missing)} train ids have no fold, e.g. {sorted(missing)[0]}",
                        hint="rebuild the folds for this data folder with `python -m fathom folds`")
    # Extra ids are images skipped by --allow-missing-images: the remaining ids keep their folds.
    return folds.loc[folds["id"].isin(ids), ["id", "fold"]].reset_index(drop=True)
