"""The category table: fine ids 1..290 <-> indices 0..289, names, super-categories 0..19."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fathom.constants import N_FINE, N_SUPER
from fathom.data.tables import read_text_csv
from fathom.errors import DataError


@dataclass(frozen=True)
class Categories:
    """Category metadata. `table` columns: id, index, name, supercat, super_index (sorted by id)."""

    table: pd.DataFrame

    @property
    def ids(self) -> np.ndarray:
        return self.table["id"].to_numpy()

    @property
    def super_names(self) -> list[str]:
        return list(self.table.drop_duplicates("super_index").sort_values("super_index")["supercat"])

    @property
    def parent(self) -> np.ndarray:
        """super_index of each fine index: parent[i] is the super-category of fine index i."""
        return self.table["super_index"].to_numpy()

    def index_of(self, ids) -> np.ndarray:
        """Fine indices (0..289) of category ids; raises KeyError on an unknown id."""
        lookup = dict(zip(self.table["id"], self.table["index"]))
        return np.array([lookup[int(i)] for i in ids], dtype=np.int64)

    def super_of(self, ids) -> np.ndarray:
        """Super-category indices (0..19) of fine category ids."""
        return self.parent[self.index_of(ids)]


def load_categories(path: str | Path) -> Categories:
    """Read category_key.csv (id,name,supercat) and check it describes 290 fine / 20 super classes.

    Super-category indices follow sorted super-category names, so they are stable across runs.
    """
    path = Path(path)
    df = read_text_csv(path, ["id", "name", "supercat"], hint="point --data at the competition folder")
    for row, value, supercat in zip(df["line"], df["id"], df["supercat"]):
        if not value.strip().isdigit():
            raise DataError(path, f"id {value!r} is not a positive integer", where=f"line {row}")
        if not supercat.strip():
            raise DataError(path, "empty supercat", where=f"line {row}")
    df["id"] = df["id"].astype(int)
    duplicated = df["id"].duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0]) + 2
        raise DataError(path, f"duplicate id {df['id'][row - 2]}", where=f"line {row}")
    if len(df) != N_FINE or set(df["id"]) != set(range(1, N_FINE + 1)):
        raise DataError(path, f"expected ids 1..{N_FINE}, found {len(df)} rows ({df['id'].min()}..{df['id'].max()})")
    supers = sorted(df["supercat"].unique())
    if len(supers) != N_SUPER:
        raise DataError(path, f"expected {N_SUPER} super-categories, found {len(supers)}")
    df = df.sort_values("id").reset_index(drop=True)
    df["index"] = np.arange(N_FINE)
    df["super_index"] = df["supercat"].map({name: i for i, name in enumerate(supers)})
    return Categories(df[["id", "index", "name", "supercat", "super_index"]])
