"""The leave-categories-out probes' osd scores (fathom.train.probe): every scorer of
fathom.ensemble.osd_scorers on each probe's validation frames, against the probe's own training frames, with
the frames holding a category the probe never trained on as the known out-of-sample ones.

Dive means: on the test, out-of-sample frames come in whole dives (out of sample means deeper than train's
range, and depth is the dive's), so a dive mean averages a frame's score with others of its own kind. A
probe's held-out frames are spread over dives that hold in-sample frames too, and a plain dive mean would
blend the two. Its NAME@dive scores therefore average over the frames of a dive that share their label: each
dive split into its out-of-sample and its in-sample part, as the test's dives are. Without this every dive
score measured ~0 on the probes of both demo worlds, where dive means are the best candidates on the eval
set (BENCHMARKS.md, "Two demo worlds").
"""

from __future__ import annotations

import numpy as np

from fathom.data.layout import Dataset
from fathom.errors import DataError
from fathom.ensemble.members import dives_of, train_labels
from fathom.ensemble.osd_choice import FoldScores
from fathom.ensemble.osd_scorers import FrameSet, score_all, with_dive_means
from fathom.predictions import FrameAppearance, Predictions
from fathom.runs import Experiment, FoldDir


def probe_unseen(fold_dir: FoldDir, ids: np.ndarray) -> np.ndarray:
    """The probe's unseen.npz flags in `ids` order."""
    try:
        with np.load(fold_dir.unseen_file, allow_pickle=False) as data:
            flags = dict(zip(data["ids"].astype(str), data["unseen"]))
        return np.array([flags[i] for i in ids], dtype=np.float64)
    except (OSError, KeyError, ValueError) as err:
        raise DataError(fold_dir.unseen_file, f"unreadable or not the probe's validation frames ({err})",
                        hint="train the experiment again: the probe is retrained") from None


def dive_parts(dives: np.ndarray, unseen: np.ndarray) -> np.ndarray:
    """Each frame's group for the dive means: its dive's out-of-sample or in-sample part ("" without a dive:
    the frame is its own group)."""
    dives = np.asarray(dives).astype(str)
    return np.where(dives == "", "", np.char.add(dives, np.where(unseen > 0, "|unseen", "|seen")))


def probe_scores(dataset: Dataset, experiment: Experiment, appearance: FrameAppearance) -> list[FoldScores]:
    """One FoldScores per finished probe (`valid` and `unseen`; no eval frames)."""
    out = []
    for fold_dir in experiment.finished_probes():
        valid, train = (Predictions.load(fold_dir.predictions(split)) for split in ("oof", "train"))
        embedded = "embedding" in valid.extras and "embedding" in train.extras
        reference = FrameSet(appearance.of(train.ids), labels=train_labels(dataset, train.ids),
                             embeddings=(train.extras["embedding"].astype(np.float32),) if embedded else None)
        target = FrameSet(appearance.of(valid.ids), fine=valid.fine, sup=valid.super, member_fine=valid.fine[None],
                          tiles=valid.extras.get("tile_evidence"),
                          embeddings=(valid.extras["embedding"].astype(np.float32),) if embedded else None)
        unseen = probe_unseen(fold_dir, valid.ids)
        out.append(FoldScores(fold_dir.fold, with_dive_means(score_all(reference, target),
                                                             dive_parts(dives_of(dataset.train, valid.ids), unseen)),
                              {}, unseen))
    return out
