"""Prediction files: `.npz` with `ids`, per-class probabilities and named per-image extras.

Arrays: `ids` [N] str, `fine` [N, 290] and `super` [N, 20] probabilities, `format` (the layout's
version), and any of the extras, each with N rows:
- `tile_evidence` [N]: a tiled fold's out-of-sample evidence (fathom.data.tiles.tile_evidence);
- `embedding` [N, D] float16: a pooled feature vector per image;
- `osd` [N]: the out-of-sample score itself, written only by the steps that choose it (the ensemble,
  the prior): a fold's files never hold one.
and `views` [V] str: the test-time augmentation views a fold's TTA file averaged (fathom.infer.tta).
Files of an older layout (format 1 held an `osd` array whose meaning depended on the writer) are
refused with a message to write them again, never misread. Where files live: fathom.runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from fathom.atomic import write_npz
from fathom.constants import N_FINE, N_SUPER
from fathom.errors import DataError

FORMAT = 2
# The appearance vector's layout (FrameAppearance.values; fathom.data.features computes it): colour (mean and
# std of R, G, B), log colour (mean, std and LOG_PERCENTILES of log R, G, B), a grey thumbnail.
GREY_THUMBNAIL = (16, 9)  # (width, height): the layout of the water, lamps and seabed, not the animals
LOG_PERCENTILES = (10, 50, 90)
N_COLOUR = 6
N_LOG_COLOUR = 3 * (2 + len(LOG_PERCENTILES))
COLOUR = slice(0, N_COLOUR)
LOG_COLOUR = slice(N_COLOUR, N_COLOUR + N_LOG_COLOUR)
N_APPEARANCE = N_COLOUR + N_LOG_COLOUR + GREY_THUMBNAIL[0] * GREY_THUMBNAIL[1]
EXTRAS = {"tile_evidence": np.float64, "embedding": np.float16, "osd": np.float64}  # name -> stored dtype


@dataclass
class Predictions:
    ids: np.ndarray
    fine: np.ndarray
    super: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    views: tuple[str, ...] = ()  # TTA files: the views averaged, e.g. ('1x', '1x+hflip')

    def __post_init__(self):
        self.ids = np.asarray(self.ids).astype(str)
        n = len(self.ids)
        if self.fine.shape != (n, N_FINE) or self.super.shape != (n, N_SUPER):
            raise ValueError(f"shapes: ids {n}, fine {self.fine.shape}, super {self.super.shape}")
        for name, values in self.extras.items():
            if name not in EXTRAS:
                raise ValueError(f"unknown prediction extra {name!r} (known: {', '.join(EXTRAS)})")
            if len(values) != n:
                raise ValueError(f"{name} has {len(values)} rows, not {n}")

    @property
    def osd(self) -> np.ndarray:
        """The out-of-sample score (only predictions of a step that chose one carry it)."""
        if "osd" not in self.extras:
            raise ValueError("these predictions carry no out-of-sample score")
        return self.extras["osd"]

    def arrays(self) -> dict[str, np.ndarray]:
        """{fine, super, each extra}: the per-image arrays, as a predictor returns them."""
        return {"fine": self.fine, "super": self.super, **self.extras}

    def rows(self, order: np.ndarray) -> "Predictions":
        return Predictions(self.ids[order], self.fine[order], self.super[order],
                           {k: v[order] for k, v in self.extras.items()}, self.views)

    def aligned_to(self, ids: Sequence[str]) -> "Predictions":
        """The same predictions reordered to `ids`; raises when the id sets differ."""
        ids = np.asarray(ids).astype(str)
        position = {i: n for n, i in enumerate(self.ids)}
        if len(position) != len(self.ids) or len(ids) != len(self.ids) or any(i not in position for i in ids):
            raise ValueError("prediction ids do not match the expected ids")
        return self.rows(np.array([position[i] for i in ids], dtype=np.int64))

    def save(self, path: str | Path) -> None:
        write_npz(path, ids=self.ids, fine=self.fine.astype(np.float32), super=self.super.astype(np.float32),
                  format=np.int64(FORMAT), **{k: np.asarray(v).astype(EXTRAS[k]) for k, v in self.extras.items()},
                  **({"views": np.array(self.views, dtype=str)} if self.views else {}))

    @staticmethod
    def views_of(path: str | Path) -> tuple[str, ...]:
        """The `views` of a prediction file (reads that array alone); () when it holds none."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                return tuple(map(str, data["views"])) if "views" in data.files else ()
        except FileNotFoundError:
            raise DataError(path, "prediction file not found") from None
        except Exception as err:
            raise DataError(path, f"unreadable prediction file ({err.__class__.__name__}: {str(err)[:160]})",
                            hint="delete it and run the step that writes it again") from None

    @classmethod
    def load(cls, path: str | Path) -> "Predictions":
        path = Path(path)
        if not path.is_file():
            raise DataError(path, "prediction file not found")
        try:
            with np.load(path, allow_pickle=False) as data:
                check_layout(path, data.files, int(data["format"]) if "format" in data.files else 1)
                extras = {k: data[k] for k in data.files if k in EXTRAS}
                views = tuple(map(str, data["views"])) if "views" in data.files else ()
                predictions = cls(data["ids"], data["fine"], data["super"], extras, views)
        except DataError:
            raise
        except Exception as err:  # a truncated zip, a pickled array, shapes that disagree
            raise DataError(path, f"unreadable prediction file ({err.__class__.__name__}: {str(err)[:160]})",
                            hint="delete it and run the step that writes it again") from None
        for head in ("fine", "super"):
            values = getattr(predictions, head)
            if not (np.isfinite(values).all() and values.min(initial=0) >= 0 and values.max(initial=0) <= 1):
                raise DataError(path, f"{head} probabilities must be finite and within [0, 1]",
                                where=f"row {int(np.argwhere(~((values >= 0) & (values <= 1)))[0, 0])}",
                                hint="delete it and run the step that writes it again")
        for name, values in predictions.extras.items():
            if name not in PER_MODEL and not np.isfinite(np.asarray(values, np.float64)).all():
                raise DataError(path, f"{name} holds NaN or infinity",
                                hint="delete it and run the step that writes it again")
        return predictions


def check_layout(path: Path, names: list[str], version: int) -> None:
    if version != FORMAT:
        raise DataError(path, f"prediction file of layout {version}, this code reads layout {FORMAT}",
                        hint="run the step that wrote it again (train, predict or submit)")
    missing = {"ids", "fine", "super"} - set(names)
    if missing:
        raise DataError(path, f"missing arrays {sorted(missing)}")
    unknown = set(names) - {"ids", "fine", "super", "format", "views", *EXTRAS}
    if unknown:
        raise DataError(path, f"unknown arrays {sorted(unknown)}", hint="run the step that wrote it again")


PER_MODEL = {"embedding"}  # extras that mean nothing once rows of different models are mixed or averaged


def common_extras(parts: list[Predictions]) -> list[str]:
    return [k for k in EXTRAS if k not in PER_MODEL and all(k in p.extras for p in parts)]


def mean_of(predictions: list[Predictions], ids: Sequence[str]) -> Predictions:
    """Equal-weight mean of several predictions, each aligned to `ids` first (the extras all of them carry
    are averaged too, except embeddings: each model has its own feature space)."""
    aligned = [p.aligned_to(ids) for p in predictions]
    return Predictions(np.asarray(ids), np.mean([p.fine for p in aligned], 0), np.mean([p.super for p in aligned], 0),
                       {k: np.mean([p.extras[k] for p in aligned], 0) for k in common_extras(aligned)})


def concat(parts: list[Predictions]) -> Predictions:
    """Rows of several predictions stacked (e.g. the validation rows of every fold); ids must not repeat."""
    ids = np.concatenate([p.ids for p in parts])
    if len(set(ids)) != len(ids):
        raise ValueError("an id occurs in more than one part")
    return Predictions(ids, np.vstack([p.fine for p in parts]), np.vstack([p.super for p in parts]),
                       {k: np.concatenate([p.extras[k] for p in parts]) for k in common_extras(parts)})


def combine_folds(parts: list[dict[str, Predictions]]) -> tuple[Predictions, Predictions]:
    """(every fold's validation rows stacked, the eval rows averaged over folds, extras included)."""
    return concat([p["oof"] for p in parts]), mean_of([p["test"] for p in parts], parts[0]["test"].ids)


@dataclass
class FrameAppearance:
    """runs/<exp>/appearance.npz: every train and eval frame's appearance vector (the layout above, computed
    by fathom.data.features), read once from the experiment's image cache by `train`, so that no
    stage after it reads pixels. `source`: which cache it was read from (its folder name and format)."""

    ids: np.ndarray
    values: np.ndarray  # [N, N_APPEARANCE]
    source: str

    def __post_init__(self):
        self.ids = np.asarray(self.ids).astype(str)
        if len(self.values) != len(self.ids):
            raise ValueError(f"appearance: {len(self.values)} rows for {len(self.ids)} ids")

    def of(self, ids: Sequence[str]) -> np.ndarray:
        """[len(ids), N_APPEARANCE] in `ids` order; an id it lacks is a DataError."""
        row = {i: n for n, i in enumerate(self.ids)}
        ids = np.asarray(ids).astype(str)
        missing = [i for i in ids if i not in row]
        if missing:
            raise DataError("appearance.npz", f"{len(missing)} frames have no appearance vector (e.g. {missing[0]})",
                            hint="run `python -m fathom train` again on this data (finished folds are reused)")
        return self.values[[row[i] for i in ids]]

    def covers(self, ids: Sequence[str], source: str) -> bool:
        return self.source == source and set(np.asarray(ids).astype(str)) <= set(self.ids)

    def save(self, path: str | Path) -> None:
        write_npz(path, ids=self.ids, values=np.asarray(self.values), source=np.str_(self.source))

    @classmethod
    def load(cls, path: str | Path, hint: str = "") -> "FrameAppearance":
        path = Path(path)
        if not path.is_file():
            raise DataError(path, "no frame appearance file", hint=hint)
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(data["ids"], data["values"], str(data["source"]))
        except Exception as err:  # a truncated zip, a missing array
            raise DataError(path, f"unreadable appearance file ({err.__class__.__name__}: {str(err)[:160]})",
                            hint=hint) from None
