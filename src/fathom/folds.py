"""Multilabel stratified K folds, built once and written as `id,fold`.

Stratified on the 290 fine labels plus the 20 super-categories, so rare categories spread over folds
and every fold sees each family.

- `group=None` (random folds): iterative-stratification's MultilabelStratifiedKFold over images. They
  measure in-distribution skill: a fold's validation frames come from the dives its model trained on.
- `group="dive"`: every dive (platform + dive number from `coco_url`, fathom.data.layout.dive_of) lies
  in one fold, as 91% of the real test frames come from dives train never shows. iterative-stratification
  has no grouped splitter, so `grouped_folds` runs the same iterative stratification (Sechidis et al.
  2011) over dives: the label a dive carries that has the fewest unplaced frames goes first, and each
  dive goes to the fold that still wants the most frames of that label (then the most frames at all).
  Images without a parseable url are dives of their own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fathom.atomic import write_csv
from fathom.data.categories import Categories
from fathom.data.labels import fine_multi_hot, super_multi_hot
from fathom.data.tables import read_text_csv
from fathom.errors import DataError


GROUPS = ("dive",)


def make_folds(train: pd.DataFrame, categories: Categories, n_folds: int = 5, seed: int = 42,
               group: str | None = None) -> pd.DataFrame:
    """DataFrame(id, fold) in the order of `train`; deterministic given the seed. `group="dive"`: no dive
    spans two folds."""
    targets = np.hstack([fine_multi_hot(train["categories"], categories),
                         super_multi_hot(train["categories"], categories)])
    if group is not None:
        if group not in GROUPS:
            raise ValueError(f"group must be one of {', '.join(GROUPS)}, not {group!r}")
        dives = np.where(train["dive"] != "", train["dive"], "image:" + train["id"].astype(str))
        fold = grouped_folds(targets, dives, n_folds, seed)
    else:
        from iterstrat.ml_stratifiers import MultilabelStratifiedKFold  # here: stages that only read folds skip it

        splitter = MultilabelStratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        fold = np.full(len(train), -1, dtype=np.int64)
        for k, (_, valid) in enumerate(splitter.split(np.zeros(len(train)), targets)):
            assert (fold[valid] == -1).all(), "folds overlap"
            fold[valid] = k
    assert (fold >= 0).all(), "some ids are in no fold"
    return pd.DataFrame({"id": train["id"].to_numpy(), "fold": fold})


def grouped_folds(targets: np.ndarray, groups: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """[N] fold of each image: iterative stratification of the label matrix `targets` [N, L] over the
    groups (see the module docstring); every image of a group gets the group's fold."""
    rng = np.random.default_rng(seed)
    names, group_of = np.unique(groups, return_inverse=True)
    counts = np.zeros((len(names), targets.shape[1]))
    np.add.at(counts, group_of, targets > 0)
    sizes = np.bincount(group_of, minlength=len(names)).astype(float)
    wanted_labels = np.tile(counts.sum(0) / n_folds, (n_folds, 1))  # [K, L] frames each fold still wants
    wanted_size = np.full(n_folds, sizes.sum() / n_folds)
    fold_of_group = np.full(len(names), -1)
    tie = rng.permutation(len(names))  # seeded order among otherwise equal groups

    def place(g: int, label: int | None) -> None:
        # The fold that can take the most of this group's frames of `label` without overshooting, then the
        # one that wants the most frames (a large dive never lands in a fold already full).
        want = np.minimum(wanted_labels[:, label], counts[g, label]) if label is not None else np.zeros(n_folds)
        room = np.minimum(wanted_size, sizes[g])
        k = max(range(n_folds), key=lambda f: (want[f] + room[f], wanted_size[f], -((f + seed) % n_folds)))
        fold_of_group[g] = k
        wanted_labels[k] -= counts[g]
        wanted_size[k] -= sizes[g]

    while True:
        open_groups = fold_of_group < 0
        remaining = counts[open_groups].sum(0)
        if not (remaining > 0).any():
            break
        label = int(np.argmin(np.where(remaining > 0, remaining, np.inf)))
        carriers = np.flatnonzero(open_groups & (counts[:, label] > 0))
        for g in sorted(carriers, key=lambda g: (-counts[g, label], -sizes[g], tie[g])):
            place(int(g), label)
    for g in sorted(np.flatnonzero(fold_of_group < 0), key=lambda g: (-sizes[g], tie[g])):
        place(int(g), None)  # groups without labels balance the sizes
    return fold_of_group[group_of].astype(np.int64)


def summarize(folds: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    """Per fold: validation images, dives, label instances and distinct categories present."""
    merged = train[["id", "dive", "categories"]].merge(folds, on="id", validate="one_to_one")
    rows = []
    for k, part in merged.groupby("fold"):
        labels = [c for cats in part["categories"] for c in cats]
        rows.append({"fold": int(k), "images": len(part), "dives": part["dive"].nunique(), "labels": len(labels),
                     "categories": len(set(labels))})
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
