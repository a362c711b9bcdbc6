"""Choosing the out-of-sample score without test labels.

Candidates: the single-model scores of `fathom.osd` on the blended probabilities (max_prob, entropy,
energy, super), the disagreement between members, the colour novelty of the frame (Mahalanobis
distance of its colour statistics from the training frames'), for tiled members (`sampling: crops`) the
tile evidence of fathom.data.tiles (a tile sure of a family but of no known species), and the rank average of every pair of
them ('max_prob+colour'): a content score (nothing here looks like a known species) and an appearance
score (this water looks unlike the training dives) catch different kinds of shift.

Two label-free measurements, each an sAUC averaged over folds (fold k's model scores the rows):
- held_out_categories: fold k's validation images that hold a category its training part never
  shows (new species) against the other validation images;
- train_vs_test: the eval images against fold k's validation images. In-sample test frames come from
  the training distribution, so they are indistinguishable from validation frames, and a score ranks
  the out-of-sample test frames first exactly as far as it separates test from train: this sAUC is the
  true one diluted by the in-sample share of the test set, not a different ranking.
The method with the best precision-weighted mean of the two is chosen: each measurement is weighted by
the inverse of its sAUC's sampling variance, from the Mann-Whitney variance under no separation,
(n1 + n0 + 1) / (12 n1 n0), which depends only on the image counts. A fold may hold ten images of
unseen categories: with equal weights its +-0.3 noise picked a method that was worst on the demo's
eval set. The demo's eval solution, when present, is reported beside them but never used to choose.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from fathom.data.features import N_COLOUR
from fathom.ensemble.novelty import FeatureSet, class_mahalanobis, domain_probability, knn_distance
from fathom.metric import scaled_auc
from fathom.models.prior import colour_novelty
from fathom.osd import SINGLE_MODEL, disagreement, rank_average

CRITERIA = ("held_out_categories", "train_vs_test")
# train_vs_test assumes in-sample test frames look like validation frames. Then no score can tell the eval
# set from validation better than its out-of-sample share lets it (sAUC <= that share); assuming at most
# half of the test is out of sample, a cross-fitted classifier that separates validation from eval frames on
# their appearance with sAUC above this has found a shift all eval frames share, and train_vs_test would
# reward flagging it: the criterion is left out of the choice.
MAX_OOS_SHARE = 0.5


@dataclass
class Evidence:
    """What the osd methods read about a set of images."""

    fine: np.ndarray  # [N, 290] blended probabilities
    sup: np.ndarray  # [N, 20]
    member_fine: np.ndarray  # [M, N, 290] each member's probabilities
    appearance: np.ndarray  # [N, 150] appearance of the frames (fathom.data.features: colour first)
    appearance_reference: np.ndarray  # [R, 150] the training frames' appearance
    tiles: np.ndarray | None = None  # [N] tile evidence of tiled members (fathom.data.tiles.tile_evidence), blended
    features: list[FeatureSet] | None = None  # per member: one fold model's embeddings of its training frames
    # and of these rows (None: probabilities only, e.g. the fold-averaged eval probabilities)

    def join(self, other: "Evidence") -> "Evidence":
        """Rows of both (the references of `self`)."""
        tiles = None if self.tiles is None or other.tiles is None else np.concatenate([self.tiles, other.tiles])
        features = (None if self.features is None or other.features is None
                    else [a.join(b) for a, b in zip(self.features, other.features)])
        return Evidence(np.vstack([self.fine, other.fine]), np.vstack([self.sup, other.sup]),
                        np.concatenate([self.member_fine, other.member_fine], axis=1),
                        np.vstack([self.appearance, other.appearance]), self.appearance_reference, tiles, features)


def probability_scores(evidence: Evidence) -> dict[str, np.ndarray]:
    """The methods that read predicted probabilities and colour (higher = more likely out-of-sample)."""
    scores = {name: method(evidence.fine, evidence.sup) for name, method in SINGLE_MODEL.items()}
    if len(evidence.member_fine) >= 2:
        scores["disagreement"] = disagreement(evidence.member_fine)
    scores["colour"] = colour_novelty(evidence.appearance_reference[:, :N_COLOUR], evidence.appearance[:, :N_COLOUR])
    if evidence.tiles is not None:
        scores["tiles"] = evidence.tiles
    return scores


def feature_scores(evidence: Evidence) -> dict[str, np.ndarray]:
    """The feature-based methods (fathom.ensemble.novelty), each the rank average over the members; empty
    without embeddings."""
    if not evidence.features:
        return {}
    per_member = {
        "knn": lambda f: knn_distance(f.reference, f.target),
        "knn_aligned": lambda f: knn_distance(f.reference, f.target, aligned=True),
        "mahalanobis": lambda f: class_mahalanobis(f.reference, f.reference_labels, f.target),
        "mahalanobis_aligned": lambda f: class_mahalanobis(f.reference, f.reference_labels, f.target, aligned=True),
        "domain": lambda f: domain_probability(f.reference, f.target, evidence.appearance_reference,
                                               evidence.appearance),
    }
    return {name: rank_average([score(f) for f in evidence.features]) for name, score in per_member.items()}


def single_scores(evidence: Evidence) -> dict[str, np.ndarray]:
    """Every single method's score (higher = more likely out-of-sample)."""
    return {**probability_scores(evidence), **feature_scores(evidence)}


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


def criterion_weights(held_out: list, shift: list, shift_sauc: float | None = None) -> dict[str, float]:
    """Each measurement's share of the pooled sAUC: inverse variance, normalised to sum 1; train_vs_test gets
    none when validation and eval frames are separable beyond MAX_OOS_SHARE (`shift_sauc`)."""
    precision = {"held_out_categories": 1 / sauc_variance(held_out), "train_vs_test": 1 / sauc_variance(shift)}
    if shift_sauc is not None and shift_sauc > MAX_OOS_SHARE:
        precision["train_vs_test"] = 0.0
    total = sum(precision.values())
    return {k: v / total if total else 0.0 for k, v in precision.items()}


def choose_osd(held_out: list[tuple[dict, np.ndarray]], shift: list[tuple[dict, np.ndarray]],
               shift_sauc: float | None = None) -> tuple[str, dict, dict[str, float]]:
    """(chosen method, {method: {criterion: sAUC, 'pooled': ...}}, criterion weights) over the singles
    and their pairs. Ties go to the earlier candidate (singles before pairs). `shift_sauc`: how separable
    validation and eval frames are (see MAX_OOS_SHARE)."""
    singles = list(held_out[0][0]) if held_out else list(shift[0][0])
    names = singles + [f"{a}+{b}" for a, b in itertools.combinations(singles, 2)]
    weights = criterion_weights(held_out, shift, shift_sauc)
    table = {name: measure(name, held_out, shift, weights) for name in names}
    chosen = max(names, key=lambda n: (np.nan_to_num(table[n]["pooled"], nan=-np.inf), -names.index(n)))
    return chosen, table, weights


def measure(name: str, held_out: list, shift: list, weights: dict[str, float]) -> dict[str, float]:
    row = {"held_out_categories": mean_sauc(held_out, name), "train_vs_test": mean_sauc(shift, name)}
    used = {k: w for k, w in weights.items() if w and row[k] == row[k]}
    row["pooled"] = (float(sum(w * row[k] for k, w in used.items()) / sum(used.values())) if used
                     else float("nan"))
    return row
