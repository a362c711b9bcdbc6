"""A first honest model: the category prior, with a colour-novelty out-of-sample score.

Fine and super probabilities are the training images' label frequencies (every image gets the same
ranking). osd is the Mahalanobis distance of an image's colour statistics from the training images'
(Ledoit-Wolf covariance): frames that look unlike the training frames (deeper water is darker and
bluer) rank as more likely out-of-sample. It needs no labels and no GPU, and it is the floor every
trained model must beat.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.covariance import LedoitWolf

from fathom.data.categories import Categories
from fathom.data.labels import fine_multi_hot, super_multi_hot
from fathom.data.layout import Dataset as Competition
from fathom.metric import map_at_k_from_probs
from fathom.predictions import Predictions, concat


def label_frequencies(train: pd.DataFrame, categories: Categories) -> tuple[np.ndarray, np.ndarray]:
    """Share of training images holding each fine [290] and super [20] category."""
    return (fine_multi_hot(train["categories"], categories).mean(0),
            super_multi_hot(train["categories"], categories).mean(0))


def colour_novelty(reference: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Mahalanobis distance of each query row from the reference rows' distribution."""
    return np.sqrt(LedoitWolf().fit(reference).mahalanobis(query))


def predict_prior(train: pd.DataFrame, train_features: np.ndarray, target_ids, target_features: np.ndarray,
                  categories: Categories) -> Predictions:
    """Prior predictions for `target_ids`, fitted on `train` (and its colour features)."""
    fine, sup = label_frequencies(train, categories)
    n = len(target_ids)
    return Predictions(np.asarray(target_ids), np.tile(fine, (n, 1)), np.tile(sup, (n, 1)),
                       {"osd": colour_novelty(train_features, target_features)})


def fit_prior(train: pd.DataFrame, folds: pd.DataFrame, eval_ids, train_features: np.ndarray,
              eval_features: np.ndarray, categories: Categories) -> tuple[Predictions, Predictions]:
    """Out-of-fold predictions for every train image and test predictions from all of train."""
    fold = folds.set_index("id").loc[train["id"], "fold"].to_numpy()
    parts = []
    for k in np.unique(fold):
        fit, hold = fold != k, fold == k
        parts.append(predict_prior(train[fit], train_features[fit], train["id"][hold].to_numpy(),
                                   train_features[hold], categories))
    oof = concat(parts)
    test = predict_prior(train, train_features, eval_ids, eval_features, categories)
    return oof.aligned_to(train["id"]), test


def frequency_prior_map20(dataset: Competition, folds: pd.DataFrame, ids: np.ndarray) -> float:
    """MAP@20 on the validation images `ids` of ranking every category by its frequency in the rest of
    the training images (each image's own training part): the floor a backbone must beat."""
    fold_of = dataset.train["id"].map(folds.set_index("id")["fold"]).to_numpy()
    fine = fine_multi_hot(dataset.train["categories"], dataset.categories)
    row_of = {i: n for n, i in enumerate(dataset.train["id"])}
    rows = np.array([row_of[i] for i in ids])
    frequencies = {k: fine[fold_of != k].mean(0) for k in np.unique(fold_of[rows])}
    return map_at_k_from_probs(np.stack([frequencies[k] for k in fold_of[rows]]), fine[rows])
