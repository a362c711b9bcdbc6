"""Prediction files: `.npz` with `ids` and per-class probabilities in a fixed layout.

Layout of a run: runs/<exp>/oof/<model>.npz (out-of-fold, train ids) and runs/<exp>/test/<model>.npz
(eval ids). Arrays: ids [N] str, fine [N, 290] and super [N, 20] probabilities, osd [N] (optional).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from fathom.atomic import write_npz
from fathom.constants import N_FINE, N_SUPER
from fathom.errors import DataError


@dataclass
class Predictions:
    ids: np.ndarray
    fine: np.ndarray
    super: np.ndarray
    osd: np.ndarray | None = None

    def __post_init__(self):
        self.ids = np.asarray(self.ids).astype(str)
        n = len(self.ids)
        if self.fine.shape != (n, N_FINE) or self.super.shape != (n, N_SUPER):
            raise ValueError(f"shapes: ids {n}, fine {self.fine.shape}, super {self.super.shape}")
        if self.osd is not None and self.osd.shape != (n,):
            raise ValueError(f"osd shape {self.osd.shape} != ({n},)")

    def aligned_to(self, ids: Sequence[str]) -> "Predictions":
        """The same predictions reordered to `ids`; raises when the id sets differ."""
        ids = np.asarray(ids).astype(str)
        position = {i: n for n, i in enumerate(self.ids)}
        if len(position) != len(self.ids) or len(ids) != len(self.ids) or any(i not in position for i in ids):
            raise ValueError("prediction ids do not match the expected ids")
        order = np.array([position[i] for i in ids], dtype=np.int64)
        return Predictions(ids, self.fine[order], self.super[order], None if self.osd is None else self.osd[order])

    def save(self, path: str | Path) -> None:
        arrays = {"ids": self.ids, "fine": self.fine.astype(np.float32), "super": self.super.astype(np.float32)}
        if self.osd is not None:
            arrays["osd"] = self.osd.astype(np.float64)
        write_npz(path, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> "Predictions":
        path = Path(path)
        if not path.is_file():
            raise DataError(path, "prediction file not found")
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = {"ids", "fine", "super"} - set(data.files)
                if missing:
                    raise DataError(path, f"missing arrays {sorted(missing)}")
                return cls(data["ids"], data["fine"], data["super"], data["osd"] if "osd" in data.files else None)
        except DataError:
            raise
        except Exception as err:  # a truncated zip, a pickled array, shapes that disagree
            raise DataError(path, f"unreadable prediction file ({err.__class__.__name__}: {str(err)[:160]})",
                            hint="delete it and run the step that writes it again") from None


def mean_of(predictions: list[Predictions], ids: Sequence[str]) -> Predictions:
    """Equal-weight mean of several predictions, each aligned to `ids` first (osd kept when all have one)."""
    aligned = [p.aligned_to(ids) for p in predictions]
    osd = None if any(p.osd is None for p in aligned) else np.mean([p.osd for p in aligned], 0)
    return Predictions(np.asarray(ids), np.mean([p.fine for p in aligned], 0),
                       np.mean([p.super for p in aligned], 0), osd)


def concat(parts: list[Predictions]) -> Predictions:
    """Rows of several predictions stacked (e.g. the validation rows of every fold); ids must not repeat."""
    ids = np.concatenate([p.ids for p in parts])
    if len(set(ids)) != len(ids):
        raise ValueError("an id occurs in more than one part")
    osd = None if any(p.osd is None for p in parts) else np.concatenate([p.osd for p in parts])
    return Predictions(ids, np.vstack([p.fine for p in parts]), np.vstack([p.super for p in parts]), osd)


def combine_folds(parts: list[dict[str, Predictions]]) -> tuple[Predictions, Predictions]:
    """(every fold's validation rows stacked, the eval rows averaged over folds); the eval osd is
    1 - max fine probability of that mean, not the mean of each fold's osd."""
    oof = concat([p["oof"] for p in parts])
    test = mean_of([p["test"] for p in parts], parts[0]["test"].ids)
    test.osd = 1.0 - test.fine.max(1)
    return oof, test


def run_dir(runs: str | Path, exp: str) -> Path:
    return Path(runs) / exp


def prediction_path(runs: str | Path, exp: str, split: str, model: str) -> Path:
    if split not in ("oof", "test"):
        raise ValueError(split)
    return run_dir(runs, exp) / split / f"{model}.npz"


def finished_folds(runs: Path, exp: str) -> dict[str, list[Path]]:
    """backbone -> its fold folders that finished training (done.json), in fold order."""
    found: dict[str, list[Path]] = {}
    for done in sorted(run_dir(runs, exp).glob("*/fold_*/done.json"), key=lambda p: (p.parent.parent.name,
                                                                                      fold_index(p.parent))):
        found.setdefault(done.parent.parent.name, []).append(done.parent)
    return found


def require_finished_folds(runs: Path, exp: str) -> dict[str, list[Path]]:
    """finished_folds, or an error saying to train first."""
    found = finished_folds(runs, exp)
    if not found:
        raise DataError(run_dir(runs, exp), "no finished folds (done.json)", hint=f"train experiment {exp!r} first")
    return found


def fold_index(fold_dir: Path) -> int:
    return int(fold_dir.name.removeprefix("fold_"))
