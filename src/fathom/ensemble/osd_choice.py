"""Choosing the out-of-sample score without test labels, from saved candidate scores.

`OsdScores` holds every single scorer's scores (fathom.ensemble.osd_scorers, each also as NAME@dive) of
the sets the choice reads, as named arrays in runs/<exp>/ensemble/osd_scores.npz: per fold k, the
validation frames (`valid`) and the eval frames (`test`) as fold k's model scores them against its own
training frames, each set scored on its own, and which validation frames hold a category fold k's training
part never shows (`unseen`); per leave-categories-out probe (fathom.train.probe), its validation frames and
which of them hold a category it never trained on; and the submission's scores of the eval frames (`eval`).
`choose_osd` redoes the choice from them alone.

The rule (`choose_osd`):
1. Candidates: every single score, then the rank average of every pair of frame scores and of every pair
   of dive scores ('a+b').
2. Two measurements per candidate, each an sAUC averaged over its sets:
   - held_out_categories: the probes' validation frames holding a category the probe never trained on
     against its other validation frames (hundreds of frames); a candidate the probes cannot score
     (disagreement: a probe is one model), or every candidate without probes, on the folds' own unseen-category
     frames (a few dozen);
   - train_vs_test: the eval frames against the validation frames, on the test itself.
3. The estimate of a candidate is the measurement that can measure it: train_vs_test for the shift-robust
   candidates (every part in SHIFT_ROBUST: it standardises each scored set by its own statistics and stays
   comparable between sets), held_out_categories for every other. Why not both for all: the in-sample eval
   frames are unlike validation frames too (new dives, another camera, other scenes), and a score that sees
   that separates them from validation frames as well, so train_vs_test rewards the shift, not the
   out-of-sample frames (on the demo's content world and on a held-out benchmark, pooling both measurements
   picked candidates whose eval sAUC was a fraction of their estimate); the feature scores rank within each
   scored set (a rank average over members), so their train_vs_test is 0 by construction. And a shift-robust
   appearance score measures ~0 on held-out categories whatever it does on the test: a new species does not
   change the water.
4. The candidate with the best estimate less its standard error is chosen (ties go to the earlier one:
   singles before pairs). The standard error is that of the measurement under no separation
   (`sauc_variance`): a set's sAUC has variance 4 (n1 + n0 + 1) / (12 n1 n0) (the Mann-Whitney AUC's, times 4
   for sAUC = 2 AUC - 1), the mean over F sets the sum of those over F^2. Among 210 candidates the largest
   of many noisy estimates wins by its noise as often as by its merit; the subtraction makes a measurement on
   a few dozen frames (the folds' own unseen-category frames, ±0.09 on the demo) beat one on hundreds (the
   probes, ±0.04) only by more than its extra noise.
The demo's eval solution, when present, is reported beside the estimates and never used to choose. What the
rule assumes and cannot know: docs/ensemble-and-osd.md.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fathom.atomic import write_npz
from fathom.ensemble.osd_scorers import DIVE, SHIFT_ROBUST, combined
from fathom.errors import DataError
from fathom.metric import scaled_auc

CRITERIA = ("held_out_categories", "train_vs_test")

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
    probes: list[FoldScores] = field(default_factory=list)  # leave-categories-out probes (valid and unseen only)

    @property
    def held_out(self) -> list[Task]:
        """The held-out-categories tasks: the probes' when any of them can be measured on, else the folds' own
        unseen frames."""
        return [(f.valid, f.unseen) for f in self.probes] if self.probes_measured else self.fold_held_out

    @property
    def probes_measured(self) -> int:
        """How many probes the held-out-categories measurement reads (0 when none holds both classes)."""
        return len(self.probes) if usable([(f.valid, f.unseen) for f in self.probes]) else 0

    @property
    def fold_held_out(self) -> list[Task]:
        """The folds' own unseen-category tasks (for the candidates the probes cannot score)."""
        return [(f.valid, f.unseen) for f in self.folds]

    @property
    def shift(self) -> list[Task]:
        return [({n: np.concatenate([f.valid[n], f.test[n]]) for n in f.valid},
                 np.r_[np.zeros(len(f.unseen)), np.ones(len(f.test[next(iter(f.test))]))]) for f in self.folds]

    @property
    def unseen_images(self) -> int:
        """How many known out-of-sample frames the held-out-categories measurement has."""
        return int(sum(labels.sum() for _, labels in self.held_out))

    def save(self, path: Path) -> None:
        arrays = {f"eval/{n}": v for n, v in self.eval.items()}
        for prefix, sets in (("fold", self.folds), ("probe", self.probes)):
            for f in sets:
                arrays[f"{prefix}_{f.fold}/unseen"] = f.unseen
                arrays.update({f"{prefix}_{f.fold}/{part}/{n}": v for part in ("valid", "test")
                               for n, v in getattr(f, part).items()})
        write_npz(path, **arrays)

    @classmethod
    def load(cls, path: Path) -> "OsdScores":
        if not Path(path).is_file():
            raise DataError(path, "no saved osd scores", hint="run `python -m fathom ensemble` for the experiment")
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        part = lambda prefix: {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}  # noqa: E731

        def sets(prefix: str) -> list[FoldScores]:
            numbers = sorted({int(k.split("/")[0][len(prefix) + 1:]) for k in arrays if k.startswith(f"{prefix}_")})
            return [FoldScores(k, part(f"{prefix}_{k}/valid/"), part(f"{prefix}_{k}/test/"),
                               arrays[f"{prefix}_{k}/unseen"]) for k in numbers]
        return cls(sets("fold"), part("eval/"), sets("probe"))


def candidates(singles: list[str]) -> list[str]:
    """The singles, then the rank average of every pair of frame scores and of every pair of dive scores."""
    kinds = [[n for n in singles if not n.endswith(DIVE)], [n for n in singles if n.endswith(DIVE)]]
    return singles + [f"{a}+{b}" for kind in kinds for a, b in itertools.combinations(kind, 2)]


def shift_robust(name: str) -> bool:
    """Whether every part of candidate `name` is a SHIFT_ROBUST score (or its dive mean)."""
    return all(part.removesuffix(DIVE) in SHIFT_ROBUST for part in name.split("+"))


def estimated_by(name: str) -> str:
    """The measurement that is candidate `name`'s estimate (rule step 3)."""
    return "train_vs_test" if shift_robust(name) else "held_out_categories"


def usable(tasks: list[Task]) -> list[Task]:
    """The tasks that hold both classes (an sAUC needs positives and negatives)."""
    return [(scores, labels) for scores, labels in tasks if 0 < labels.sum() < len(labels)]


def scores_all(tasks: list[Task], name: str) -> bool:
    """Whether every set of `tasks` holds every part of candidate `name`."""
    return bool(tasks) and all(part in scores for scores, _ in tasks for part in name.split("+"))


def mean_sauc(tasks: list[Task], name: str) -> float:
    """Mean sAUC of candidate `name` over the usable tasks (NaN when none is, or a task lacks a part of it)."""
    if not scores_all(tasks, name):
        return float("nan")
    values = [scaled_auc(labels, combined(scores, name)) for scores, labels in usable(tasks)]
    return float(np.mean(values)) if values else float("nan")


def sauc_variance(tasks: list[Task]) -> float:
    """Sampling variance of the mean sAUC over the usable tasks under no separation; inf when no task is
    usable."""
    labels = [lab for _, lab in usable(tasks)]
    if not labels:
        return float("inf")
    per_task = [4 * (len(lab) + 1) / (12 * lab.sum() * (len(lab) - lab.sum())) for lab in labels]
    return float(np.sum(per_task) / len(per_task) ** 2)


def measure(name: str, held_out: list[Task], shift: list[Task], fallback: list[Task] = ()) -> dict[str, float]:
    """Both measurements of candidate `name`, its estimate and that estimate's standard error under no
    separation (rule steps 2 and 3). `held_out`: the probes' tasks; `fallback`: the folds' own unseen-category
    tasks, for a candidate the probes cannot score."""
    held = held_out if scores_all(held_out, name) else list(fallback)
    row = {"held_out_categories": mean_sauc(held, name), "train_vs_test": mean_sauc(shift, name)}
    source = estimated_by(name)
    row["estimate"] = row[source]
    row["standard_error"] = float(np.sqrt(sauc_variance(shift if source == "train_vs_test" else held)))
    return row


def choose_osd(held_out: list[Task], shift: list[Task], fallback: list[Task] = ()
               ) -> tuple[str, dict[str, dict[str, float]]]:
    """(chosen candidate, {candidate: {criterion: sAUC, 'estimate', 'standard_error'}}): the rule of this
    module's docstring."""
    names = candidates(list(shift[0][0]) if shift else list(held_out[0][0]))
    table = {name: measure(name, held_out, shift, fallback) for name in names}
    chosen = max(names, key=lambda n: (np.nan_to_num(table[n]["estimate"] - table[n]["standard_error"], nan=-np.inf),
                                       -names.index(n)))
    return chosen, table


def choose_from(scores: OsdScores) -> tuple[str, dict[str, dict[str, float]]]:
    """choose_osd on saved scores."""
    return choose_osd(scores.held_out, scores.shift, scores.fold_held_out)
