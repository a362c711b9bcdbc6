"""Choosing the out-of-sample score without test labels, from saved candidate scores.

`OsdScores` holds every single scorer's scores (fathom.ensemble.osd_scorers, each also as NAME@dive) of
the sets the choice reads, as named arrays in runs/<exp>/ensemble/osd_scores.npz: per fold k, the
validation frames (`valid`) and the eval frames (`test`) as fold k's model scores them against its own
training frames, each set scored on its own; which validation frames hold a category fold k's training part
never shows (`unseen`); and the submission's scores of the eval frames (`eval`). `choose_osd` redoes the
choice from them alone.

The rule (`choose_osd`):
1. Candidates: every single score, then the rank average of every pair of frame scores and of every pair
   of dive scores ('a+b').
2. Two measurements per candidate, each an sAUC averaged over folds:
   - held_out_categories: validation frames holding an unseen category against the other validation frames;
   - train_vs_test: the eval frames against the validation frames. Were the in-sample eval frames like
     validation frames, a score would separate the two sets exactly as far as it finds the out-of-sample ones.
3. Shift check: when the eval frames' appearance tells them from validation frames with an sAUC above
   MAX_OOS_SHARE (`shift_sauc`, a cross-fitted classifier), the in-sample eval frames are unlike validation
   frames too, and train_vs_test counts only for the shift-robust candidates (every part `_aligned`).
4. Estimate: the mean of the measurements that count, each weighted by the inverse of its sampling variance
   under no separation; a fold's sAUC has variance 4 (n1 + n0 + 1) / (12 n1 n0) (the Mann-Whitney AUC's,
   times 4 for sAUC = 2 AUC - 1), the mean over F folds the sum of those over F^2. It depends only on the
   frame counts, so a measurement on a handful of unseen-category frames weighs little.
5. The candidate with the best estimate is chosen; ties go to the earlier one (singles before pairs).
The demo's eval solution, when present, is reported beside the estimates and never used to choose.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fathom.atomic import write_npz
from fathom.ensemble.osd_scorers import DIVE, combined
from fathom.errors import DataError
from fathom.metric import scaled_auc

CRITERIA = ("held_out_categories", "train_vs_test")
MAX_OOS_SHARE = 0.5  # the largest out-of-sample share of the test assumed (see the shift check)
SHIFT_ROBUST = "_aligned"  # the scorers that standardise each scored set by its own statistics

Scores = dict[str, np.ndarray]
Task = tuple[Scores, np.ndarray]  # (scores of a set's frames, 1 = out-of-sample)


@dataclass
class FoldScores:
    fold: int
    valid: Scores  # fold k's validation frames, scored against its training frames
    test: Scores  # the eval frames, scored by fold k's model against the same frames
    unseen: np.ndarray  # [N_k] 1 where a validation frame holds a category the training part never shows


@dataclass
class OsdScores:
    """Every candidate's raw material: the measurement sets per fold and the submission's eval scores."""

    folds: list[FoldScores]
    eval: Scores
    shift_sauc: float | None  # how separable validation and eval frames are by appearance

    @property
    def held_out(self) -> list[Task]:
        return [(f.valid, f.unseen) for f in self.folds]

    @property
    def shift(self) -> list[Task]:
        return [({n: np.concatenate([f.valid[n], f.test[n]]) for n in f.valid},
                 np.r_[np.zeros(len(f.unseen)), np.ones(len(f.test[next(iter(f.test))]))]) for f in self.folds]

    @property
    def unseen_images(self) -> int:
        return int(sum(f.unseen.sum() for f in self.folds))

    def save(self, path: Path) -> None:
        arrays = {f"eval/{n}": v for n, v in self.eval.items()}
        for f in self.folds:
            arrays[f"fold_{f.fold}/unseen"] = f.unseen
            arrays.update({f"fold_{f.fold}/{part}/{n}": v for part in ("valid", "test")
                           for n, v in getattr(f, part).items()})
        arrays["shift_sauc"] = np.float64(np.nan if self.shift_sauc is None else self.shift_sauc)
        write_npz(path, **arrays)

    @classmethod
    def load(cls, path: Path) -> "OsdScores":
        if not Path(path).is_file():
            raise DataError(path, "no saved osd scores", hint="run `python -m fathom ensemble` for the experiment")
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        shift = float(arrays.pop("shift_sauc"))
        part = lambda prefix: {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}  # noqa: E731
        folds = sorted({int(k.split("/")[0][len("fold_"):]) for k in arrays if k.startswith("fold_")})
        return cls([FoldScores(k, part(f"fold_{k}/valid/"), part(f"fold_{k}/test/"), arrays[f"fold_{k}/unseen"])
                    for k in folds], part("eval/"), None if shift != shift else shift)


def candidates(singles: list[str]) -> list[str]:
    """The singles, then the rank average of every pair of frame scores and of every pair of dive scores."""
    kinds = [[n for n in singles if not n.endswith(DIVE)], [n for n in singles if n.endswith(DIVE)]]
    return singles + [f"{a}+{b}" for kind in kinds for a, b in itertools.combinations(kind, 2)]


def shift_robust(name: str) -> bool:
    """Whether every part of candidate `name` standardises each scored set by its own statistics."""
    return all(SHIFT_ROBUST in part for part in name.split("+"))


def is_shifted(shift_sauc: float | None) -> bool:
    """Whether validation and eval frames are separable beyond MAX_OOS_SHARE (a shift every eval frame shares)."""
    return shift_sauc is not None and shift_sauc > MAX_OOS_SHARE


def usable(tasks: list[Task]) -> list[Task]:
    """The tasks that hold both classes (an sAUC needs positives and negatives)."""
    return [(scores, labels) for scores, labels in tasks if 0 < labels.sum() < len(labels)]


def mean_sauc(tasks: list[Task], name: str) -> float:
    """Mean sAUC of candidate `name` over the usable tasks."""
    values = [scaled_auc(labels, combined(scores, name)) for scores, labels in usable(tasks)]
    return float(np.mean(values)) if values else float("nan")


def sauc_variance(tasks: list[Task]) -> float:
    """Sampling variance of the mean sAUC over the usable tasks under no separation (rule step 4); inf when
    no task is usable."""
    labels = [lab for _, lab in usable(tasks)]
    if not labels:
        return float("inf")
    per_task = [4 * (len(lab) + 1) / (12 * lab.sum() * (len(lab) - lab.sum())) for lab in labels]
    return float(np.sum(per_task) / len(per_task) ** 2)


def criterion_weights(held_out: list[Task], shift: list[Task]) -> dict[str, float]:
    """Each measurement's share of an estimate when both count: inverse variance, normalised to sum 1."""
    precision = {"held_out_categories": 1 / sauc_variance(held_out), "train_vs_test": 1 / sauc_variance(shift)}
    total = sum(precision.values())
    return {k: v / total if total else 0.0 for k, v in precision.items()}


def measure(name: str, held_out: list[Task], shift: list[Task], weights: dict[str, float], shifted: bool = False
            ) -> dict[str, float]:
    """Both measurements of candidate `name` and its estimate ('pooled'): their precision-weighted mean over
    those that count for it (rule step 3)."""
    row = {"held_out_categories": mean_sauc(held_out, name), "train_vs_test": mean_sauc(shift, name)}
    counts = {"held_out_categories": True, "train_vs_test": shift_robust(name) or not shifted}
    used = {k: w for k, w in weights.items() if w and counts[k] and row[k] == row[k]}
    row["pooled"] = (float(sum(w * row[k] for k, w in used.items()) / sum(used.values())) if used
                     else float("nan"))
    return row


def choose_osd(held_out: list[Task], shift: list[Task], shift_sauc: float | None = None
               ) -> tuple[str, dict[str, dict[str, float]], dict[str, float]]:
    """(chosen candidate, {candidate: {criterion: sAUC, 'pooled': the estimate}}, criterion weights): the
    rule of this module's docstring."""
    names = candidates(list(held_out[0][0]) if held_out else list(shift[0][0]))
    weights = criterion_weights(held_out, shift)
    shifted = is_shifted(shift_sauc)
    table = {name: measure(name, held_out, shift, weights, shifted) for name in names}
    chosen = max(names, key=lambda n: (np.nan_to_num(table[n]["pooled"], nan=-np.inf), -names.index(n)))
    return chosen, table, weights


def choose_from(scores: OsdScores) -> tuple[str, dict[str, dict[str, float]], dict[str, float]]:
    """choose_osd on saved scores."""
    return choose_osd(scores.held_out, scores.shift, scores.shift_sauc)
