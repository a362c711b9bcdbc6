"""The out-of-sample scorers: name -> function of a reference set and a target set of frames.

Every scorer returns one float per target frame, higher = more likely out-of-sample, or None when the sets
lack what it reads (no embeddings, no tiles, one member). The same function scores a fold's validation
frames, the eval frames a fold's model predicted (the measurements of fathom.ensemble.osd_choice) and the
eval frames of the submission (`eval_scores`).

- max_prob, entropy, energy, super: the ensemble's blended probabilities (fathom.osd);
- disagreement: the spread of the members' probabilities;
- colour: Mahalanobis distance of the frame's colour statistics from the reference frames' (the prior's);
- log_colour, log_colour_aligned: the same on log colour (fathom.data.features), the second with each set
  standardised by its own statistics (a shift every frame of a set shares is taken out);
- tiles: the tile evidence of tiled members (`sampling: crops`, fathom.data.tiles);
- knn, knn_aligned, mahalanobis, mahalanobis_aligned, domain: one fold model's embeddings of the target
  against those of its own training frames (fathom.ensemble.novelty), rank-averaged over the members.
  These read a fold's model (FOLD_MODEL): for the submission each fold scores the eval frames against its
  own training frames and the folds' scores are rank-averaged. The others read the ensemble's probabilities
  averaged over folds and every training frame's appearance.

`NAME@dive` is a score averaged over the frames of the same dive in the scored set (`with_dive_means`), and
'a+b' the rank average of two scores (`combined`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as np
import pandas as pd

from fathom.ensemble.novelty import (appearance_distance, class_mahalanobis, domain_probability, knn_distance,
                                     reference_pca)
from fathom.models.prior import colour_novelty
from fathom.osd import SINGLE_MODEL, disagreement, rank_average
from fathom.predictions import COLOUR, LOG_COLOUR

DIVE = "@dive"


@dataclass(frozen=True, eq=False)
class FrameSet:
    """What the scorers read about a set of frames (a reference set needs appearance, and labels and
    embeddings for the feature scorers; a target set what its scorers read)."""

    appearance: np.ndarray  # [N, N_APPEARANCE] (fathom.predictions: COLOUR, LOG_COLOUR, grey thumbnail)
    fine: np.ndarray | None = None  # [N, 290] the ensemble's blended probabilities
    sup: np.ndarray | None = None  # [N, 20]
    member_fine: np.ndarray | None = None  # [M, N, 290] each member's probabilities
    tiles: np.ndarray | None = None  # [N] blended tile evidence
    embeddings: tuple[np.ndarray, ...] | None = None  # per member [N, D]: one fold model's pooled features
    labels: np.ndarray | None = None  # [N, 290] multi-hot (a reference set's)

    @cached_property
    def pcas(self) -> list:
        """One PCA per member's embeddings, fitted once for every scorer that projects onto it."""
        return [reference_pca(e) for e in self.embeddings]


Scorer = Callable[[FrameSet, FrameSet], "np.ndarray | None"]


def probability_scorer(method) -> Scorer:
    return lambda reference, target: method(target.fine, target.sup)


def disagreement_scorer(reference: FrameSet, target: FrameSet) -> np.ndarray | None:
    return disagreement(target.member_fine) if len(target.member_fine) >= 2 else None


def tiles_scorer(reference: FrameSet, target: FrameSet) -> np.ndarray | None:
    return target.tiles


def appearance_scorer(columns: slice, distance) -> Scorer:
    return lambda reference, target: distance(reference.appearance[:, columns], target.appearance[:, columns])


def per_member(score: Callable[[FrameSet, FrameSet, int], np.ndarray]) -> Scorer:
    """A feature scorer: `score(reference, target, member)` rank-averaged over the members."""
    def scorer(reference: FrameSet, target: FrameSet) -> np.ndarray | None:
        if reference.embeddings is None or target.embeddings is None:
            return None
        return rank_average([score(reference, target, m) for m in range(len(reference.embeddings))])
    return scorer


def knn(aligned: bool) -> Scorer:
    return per_member(lambda r, t, m: knn_distance(r.embeddings[m], t.embeddings[m], aligned=aligned))


def mahalanobis(aligned: bool) -> Scorer:
    return per_member(lambda r, t, m: class_mahalanobis(r.embeddings[m], r.labels, t.embeddings[m], aligned=aligned,
                                                        pca=r.pcas[m]))


domain = per_member(lambda r, t, m: domain_probability(r.embeddings[m], t.embeddings[m], r.appearance, t.appearance,
                                                       pca=r.pcas[m]))

SCORERS: dict[str, Scorer] = {
    **{name: probability_scorer(method) for name, method in SINGLE_MODEL.items()},
    "disagreement": disagreement_scorer,
    "colour": appearance_scorer(COLOUR, colour_novelty),
    "log_colour": appearance_scorer(LOG_COLOUR, appearance_distance),
    "log_colour_aligned": appearance_scorer(LOG_COLOUR, lambda r, t: appearance_distance(r, t, aligned=True)),
    "tiles": tiles_scorer,
    "knn": knn(aligned=False),
    "knn_aligned": knn(aligned=True),
    "mahalanobis": mahalanobis(aligned=False),
    "mahalanobis_aligned": mahalanobis(aligned=True),
    "domain": domain,
}
FOLD_MODEL = frozenset({"knn", "knn_aligned", "mahalanobis", "mahalanobis_aligned", "domain"})
# Scores that take out a shift every frame of a scored set shares and stay comparable between sets: what
# train vs test can measure (fathom.ensemble.osd_choice). The aligned feature scores are not: a rank average
# over members puts every scored set on the same 0..1 scale.
SHIFT_ROBUST = frozenset({"log_colour_aligned"})


def score_all(reference: FrameSet, target: FrameSet, names=SCORERS) -> dict[str, np.ndarray]:
    """{name: score of every target frame} for the scorers (of `names`) the sets can feed, in registry order."""
    scores = {name: SCORERS[name](reference, target) for name in SCORERS if name in names}
    return {name: np.asarray(score, np.float64) for name, score in scores.items() if score is not None}


def eval_scores(reference: FrameSet, target: FrameSet, fold_scores: list[dict[str, np.ndarray]],
                dives: np.ndarray) -> dict[str, np.ndarray]:
    """The submission's scores of the eval frames: the non-FOLD_MODEL scorers on `target` (fold-averaged
    probabilities) against `reference` (every training frame); each FOLD_MODEL score the rank average of the
    folds' own scores of the eval frames (`fold_scores`, one dict per fold); then the dive means."""
    scores = score_all(reference, target, names=SCORERS.keys() - FOLD_MODEL)
    scores.update({name: rank_average([fold[name] for fold in fold_scores])
                   for name in SCORERS if name in FOLD_MODEL and name in fold_scores[0]})
    return with_dive_means({name: scores[name] for name in SCORERS if name in scores}, dives)


def dive_means(score: np.ndarray, dives: np.ndarray) -> np.ndarray:
    """Each row's score replaced by the mean over the rows of its dive (a row without a dive keeps its own)."""
    groups = np.where(dives == "", np.char.add("frame ", np.arange(len(dives)).astype(str)), dives)
    return pd.Series(score).groupby(groups).transform("mean").to_numpy()


def with_dive_means(scores: dict[str, np.ndarray], dives: np.ndarray) -> dict[str, np.ndarray]:
    """The scores and, for each, its dive mean (NAME@dive) over rows whose dives are `dives`."""
    dives = np.asarray(dives).astype(str)
    return {**scores, **{name + DIVE: dive_means(score, dives) for name, score in scores.items()}}


def combined(scores: dict[str, np.ndarray], name: str) -> np.ndarray:
    """The score called `name`: a single score, or 'a+b', the rank average of two."""
    if name in scores:
        return scores[name]
    return rank_average([scores[part] for part in name.split("+")])
