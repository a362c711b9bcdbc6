"""Choosing the out-of-sample score without test labels.

Candidates: the single-model scores of `fathom.osd` on the blended probabilities (max_prob, entropy,
energy, super), the disagreement between members, appearance novelty (colour: Mahalanobis distance of
the frame's colour statistics from the training frames', the prior's score; log_colour: the same on log
colour, fathom.data.features), for tiled members (`sampling: crops`) the tile evidence of
fathom.data.tiles, the feature-based scores of fathom.ensemble.novelty, and:
- `NAME@dive`: the score averaged over the frames of the same dive in the scored set (the dive from
  `coco_url`). Out of sample means deeper than train's range, and depth is mostly a property of the dive:
  a dive's frames share its water, lamps and fauna, so the mean over a dive keeps that and averages away
  what varies from frame to frame. Frames without a dive are their own group.
- the rank average of every pair of the same kind (frame or dive) ('max_prob+log_colour'): a content score
  and an appearance score catch different kinds of shift.

Two label-free measurements, each an sAUC averaged over folds (fold k's model scores the rows):
- held_out_categories: fold k's validation images that hold a category its training part never
  shows (new species) against the other validation images;
- train_vs_test: the eval images against fold k's validation images, each set scored on its own. Were the
  in-sample test frames like validation frames, a score would rank the out-of-sample test frames first
  exactly as far as it separates test from validation: the true sAUC diluted by the in-sample share.
The whole test set is shifted, though (new dives, another camera): when a cross-fitted classifier tells
validation from eval frames by their appearance beyond MAX_OOS_SHARE, in-sample eval frames are unlike
validation frames too and train vs test rewards any score that flags the shared shift. It then counts only
for the shift-robust methods, the `_aligned` ones, which standardise each scored set by its own statistics
and so take out a shift every frame of the set shares (on log colour, a camera's gains exactly).
Each method's estimate is the precision-weighted mean of the measurements that count for it: each
measurement is weighted by the inverse of its sAUC's sampling variance, from the Mann-Whitney variance under
no separation, (n1 + n0 + 1) / (12 n1 n0), which depends only on the image counts (a fold may hold ten
images of unseen categories, whose +-0.3 noise once picked the worst method on the demo's eval set). The
method with the best estimate is chosen. The demo's eval solution, when present, is reported beside them
but never used to choose.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fathom.data.features import COLOUR, LOG_COLOUR
from fathom.ensemble.novelty import (FeatureSet, appearance_distance, class_mahalanobis, domain_probability,
                                     knn_distance, reference_pca)
from fathom.metric import scaled_auc
from fathom.models.prior import colour_novelty
from fathom.osd import SINGLE_MODEL, disagreement, rank_average

CRITERIA = ("held_out_categories", "train_vs_test")
# train_vs_test assumes in-sample test frames look like validation frames. Then no score can tell the eval
# set from validation better than its out-of-sample share lets it (sAUC <= that share); assuming at most
# half of the test is out of sample, a cross-fitted classifier that separates validation from eval frames on
# their appearance with sAUC above this has found a shift all eval frames share, and train_vs_test would
# reward flagging it: the criterion then counts for the shift-robust methods only.
MAX_OOS_SHARE = 0.5
SHIFT_ROBUST = "_aligned"  # the methods that standardise each scored set by its own statistics
DIVE = "@dive"


@dataclass
class Evidence:
    """What the osd methods read about a set of images."""

    fine: np.ndarray  # [N, 290] blended probabilities
    sup: np.ndarray  # [N, 20]
    member_fine: np.ndarray  # [M, N, 290] each member's probabilities
    appearance: np.ndarray  # [N, N_APPEARANCE] the frames' appearance (fathom.data.features: COLOUR, LOG_COLOUR, grey)
    appearance_reference: np.ndarray  # [R, N_APPEARANCE] the training frames' appearance
    tiles: np.ndarray | None = None  # [N] tile evidence of tiled members (fathom.data.tiles.tile_evidence), blended
    features: list[FeatureSet] | None = None  # per member: one fold model's embeddings of its training frames
    # and of these rows (None: probabilities only, e.g. the fold-averaged eval probabilities)
    dives: np.ndarray | None = None  # [N] each row's dive ("" when its url names none); None: no @dive scores


def probability_scores(evidence: Evidence) -> dict[str, np.ndarray]:
    """The methods that read predicted probabilities and colour (higher = more likely out-of-sample)."""
    scores = {name: method(evidence.fine, evidence.sup) for name, method in SINGLE_MODEL.items()}
    if len(evidence.member_fine) >= 2:
        scores["disagreement"] = disagreement(evidence.member_fine)
    reference, target = evidence.appearance_reference, evidence.appearance
    scores["colour"] = colour_novelty(reference[:, COLOUR], target[:, COLOUR])
    scores["log_colour"] = appearance_distance(reference[:, LOG_COLOUR], target[:, LOG_COLOUR])
    scores["log_colour_aligned"] = appearance_distance(reference[:, LOG_COLOUR], target[:, LOG_COLOUR], aligned=True)
    if evidence.tiles is not None:
        scores["tiles"] = evidence.tiles
    return scores


def feature_scores(evidence: Evidence) -> dict[str, np.ndarray]:
    """The feature-based methods (fathom.ensemble.novelty), each the rank average over the members; empty
    without embeddings."""
    if not evidence.features:
        return {}
    per_member = {
        "knn": lambda f, pca: knn_distance(f.reference, f.target),
        "knn_aligned": lambda f, pca: knn_distance(f.reference, f.target, aligned=True),
        "mahalanobis": lambda f, pca: class_mahalanobis(f.reference, f.reference_labels, f.target, pca=pca),
        "mahalanobis_aligned": lambda f, pca: class_mahalanobis(f.reference, f.reference_labels, f.target,
                                                                aligned=True, pca=pca),
        "domain": lambda f, pca: domain_probability(f.reference, f.target, evidence.appearance_reference,
                                                    evidence.appearance, pca=pca),
    }
    pcas = [reference_pca(f.reference) for f in evidence.features]  # one fit per member, read by three methods
    return {name: rank_average([score(f, pca) for f, pca in zip(evidence.features, pcas)])
            for name, score in per_member.items()}


def dive_means(score: np.ndarray, dives: np.ndarray) -> np.ndarray:
    """Each row's score replaced by the mean over the rows of its dive (a row without a dive keeps its own)."""
    groups = np.where(dives == "", np.char.add("frame ", np.arange(len(dives)).astype(str)), dives)
    return pd.Series(score).groupby(groups).transform("mean").to_numpy()


def single_scores(evidence: Evidence) -> dict[str, np.ndarray]:
    """Every single method's score (higher = more likely out-of-sample), and its dive mean (NAME@dive) when
    the rows' dives are known."""
    scores = {**probability_scores(evidence), **feature_scores(evidence)}
    return scores if evidence.dives is None else with_dive_means(scores, evidence.dives)


def with_dive_means(scores: dict[str, np.ndarray], dives: np.ndarray) -> dict[str, np.ndarray]:
    """The scores and, for each, its dive mean (NAME@dive) over rows whose dives are `dives`."""
    dives = np.asarray(dives).astype(str)
    return {**scores, **{name + DIVE: dive_means(score, dives) for name, score in scores.items()}}


def stacked(*score_sets: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The scores of several sets, each scored on its own, as the rows of one."""
    return {name: np.concatenate([scores[name] for scores in score_sets]) for name in score_sets[0]}


def candidates(singles: list[str]) -> list[str]:
    """The singles, then the rank average of every pair of frame scores and of every pair of dive scores."""
    kinds = [[n for n in singles if not n.endswith(DIVE)], [n for n in singles if n.endswith(DIVE)]]
    return singles + [f"{a}+{b}" for kind in kinds for a, b in itertools.combinations(kind, 2)]


def shift_robust(name: str) -> bool:
    """Whether every part of method `name` standardises each scored set by its own statistics."""
    return all(SHIFT_ROBUST in part for part in name.split("+"))


def combined(scores: dict[str, np.ndarray], name: str) -> np.ndarray:
    """The score called `name`: a single method, or 'a+b', the rank average of two."""
    if name in scores:
        return scores[name]
    return rank_average([scores[part] for part in name.split("+")])


def usable(tasks: list[tuple[dict, np.ndarray]]) -> list[tuple[dict, np.ndarray]]:
    """The tasks that hold both classes (an sAUC needs positives and negatives)."""
    return [(scores, labels) for scores, labels in tasks if 0 < labels.sum() < len(labels)]


def mean_sauc(tasks: list[tuple[dict[str, np.ndarray], np.ndarray]], name: str) -> float:
    """Mean sAUC of method `name` over the usable tasks (scores, is_out_of_sample)."""
    values = [scaled_auc(labels, combined(scores, name)) for scores, labels in usable(tasks)]
    return float(np.mean(values)) if values else float("nan")


def sauc_variance(tasks: list[tuple[dict, np.ndarray]]) -> float:
    """Sampling variance of the mean sAUC over the usable tasks, from each task's Mann-Whitney variance
    under no separation, 4 (n1 + n0 + 1) / (12 n1 n0); inf when no task is usable."""
    labels = [lab for _, lab in usable(tasks)]
    if not labels:
        return float("inf")
    per_task = [4 * (len(lab) + 1) / (12 * lab.sum() * (len(lab) - lab.sum())) for lab in labels]
    return float(np.sum(per_task) / len(per_task) ** 2)


def criterion_weights(held_out: list, shift: list) -> dict[str, float]:
    """Each measurement's share of a method's estimate when both count: inverse variance, normalised to sum 1."""
    precision = {"held_out_categories": 1 / sauc_variance(held_out), "train_vs_test": 1 / sauc_variance(shift)}
    total = sum(precision.values())
    return {k: v / total if total else 0.0 for k, v in precision.items()}


def is_shifted(shift_sauc: float | None) -> bool:
    """Whether validation and eval frames are separable beyond MAX_OOS_SHARE (a shift every eval frame shares)."""
    return shift_sauc is not None and shift_sauc > MAX_OOS_SHARE


def choose_osd(held_out: list[tuple[dict, np.ndarray]], shift: list[tuple[dict, np.ndarray]],
               shift_sauc: float | None = None) -> tuple[str, dict, dict[str, float]]:
    """(chosen method, {method: {criterion: sAUC, 'pooled': the estimate}}, criterion weights) over the
    candidates. Ties go to the earlier candidate (singles before pairs). `shift_sauc`: how separable
    validation and eval frames are (see MAX_OOS_SHARE)."""
    names = candidates(list(held_out[0][0]) if held_out else list(shift[0][0]))
    weights = criterion_weights(held_out, shift)
    shifted = is_shifted(shift_sauc)
    table = {name: measure(name, held_out, shift, weights, shifted) for name in names}
    chosen = max(names, key=lambda n: (np.nan_to_num(table[n]["pooled"], nan=-np.inf), -names.index(n)))
    return chosen, table, weights


def measure(name: str, held_out: list, shift: list, weights: dict[str, float], shifted: bool = False
            ) -> dict[str, float]:
    """Both measurements of method `name` and its estimate ('pooled'): their precision-weighted mean over
    those that count for it (under a shared shift, train vs test counts for shift-robust methods only)."""
    row = {"held_out_categories": mean_sauc(held_out, name), "train_vs_test": mean_sauc(shift, name)}
    counts = {"held_out_categories": True, "train_vs_test": shift_robust(name) or not shifted}
    used = {k: w for k, w in weights.items() if w and counts[k] and row[k] == row[k]}
    row["pooled"] = (float(sum(w * row[k] for k, w in used.items()) / sum(used.values())) if used
                     else float("nan"))
    return row
