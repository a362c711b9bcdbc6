"""Out-of-sample scores on features: how far a frame lies from the frames a fold model trained on.

Each scorer sees a reference set (a fold model's own training frames: their pooled embeddings, labels and
appearance) and a target set (the frames to score: the eval images, or, when the choice is rehearsed, a
fold's validation images from dives the model never saw). Higher = more likely out-of-sample.

- knn:         mean cosine distance to the k nearest reference embeddings (scikit-learn NearestNeighbors);
- mahalanobis: class-conditional Mahalanobis distance on the embeddings (Lee et al. 2018): the distance to
               the nearest class mean under one within-class covariance, Ledoit-Wolf shrunk (scikit-learn),
               on a PCA of the reference embeddings;
- appearance:  Mahalanobis distance (Ledoit-Wolf) of a frame's appearance statistics, e.g. its log colour
               (fathom.data.features), from the reference frames';
- domain:      a train-vs-target domain classifier (logistic regression on PCA'd embeddings plus the
               appearance vector), cross-fitted with scikit-learn's cross_val_predict so that no target
               frame is scored by a model that saw it: P(target | x) ranks the targets by how far they are
               beyond the shift they share.

`aligned=True` standardises the reference and the target each by its own mean and spread first (mean and
variance alignment, as in CORAL): a shift every target frame shares (another camera, other lamps) moves
the whole target set and is taken out; what stays is how unusual a frame is within its own set.
"""

from __future__ import annotations

import numpy as np
from sklearn.covariance import LedoitWolf
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fathom.models.prior import colour_novelty

K_NEIGHBOURS = 10
PCA_DIMS = 32
MIN_CLASS_FRAMES = 3
DOMAIN_FOLDS = 5
DOMAIN_C = 0.05  # strong L2: the classifier ranks by how far a frame is beyond the shared shift


def standardised(x: np.ndarray, like: np.ndarray | None = None) -> np.ndarray:
    """x scaled by the mean and spread of `like` (x's own by default)."""
    like = x if like is None else like
    return (x - like.mean(0)) / (like.std(0) + 1e-6)


def prepared(reference: np.ndarray, target: np.ndarray, aligned: bool) -> tuple[np.ndarray, np.ndarray]:
    reference, target = np.asarray(reference, np.float64), np.asarray(target, np.float64)
    if aligned:
        return standardised(reference), standardised(target)
    return standardised(reference), standardised(target, reference)


def knn_distance(reference: np.ndarray, target: np.ndarray, aligned: bool = False, k: int = K_NEIGHBOURS
                 ) -> np.ndarray:
    reference, target = prepared(reference, target, aligned)
    unit = lambda x: x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)  # noqa: E731
    index = NearestNeighbors(n_neighbors=min(k, len(reference)), metric="cosine").fit(unit(reference))
    distances, _ = index.kneighbors(unit(target))
    return distances.mean(1)


def reference_pca(reference: np.ndarray) -> PCA:
    """The PCA of the standardised reference embeddings that mahalanobis and domain project onto. It is the
    same for every method reading one member's reference: fit it once (`pca=`) and pass it to each."""
    reference = standardised(np.asarray(reference, np.float64))
    return PCA(n_components=min(PCA_DIMS, *reference.shape), random_state=0).fit(reference)


def class_mahalanobis(reference: np.ndarray, labels: np.ndarray, target: np.ndarray, aligned: bool = False,
                      pca: PCA | None = None) -> np.ndarray:
    """`pca`: reference_pca(reference), when the caller has it already."""
    pca = reference_pca(reference) if pca is None else pca
    reference, target = prepared(reference, target, aligned)
    reference, target = pca.transform(reference), pca.transform(target)
    classes = [c for c in range(labels.shape[1]) if labels[:, c].sum() >= MIN_CLASS_FRAMES]
    if not classes:
        return np.sqrt(LedoitWolf().fit(reference).mahalanobis(target))
    means = np.stack([reference[labels[:, c] > 0].mean(0) for c in classes])
    present = labels[:, classes] > 0  # each reference frame's residual is taken from its most common class
    own = np.argmax(np.where(present, labels[:, classes].sum(0), -1), axis=1)
    has = present.any(1)
    precision = LedoitWolf().fit(reference[has] - means[own[has]]).precision_
    diff = target[:, None, :] - means[None]  # [T, C, d]
    return np.sqrt(np.einsum("tcd,de,tce->tc", diff, precision, diff).min(1))


def appearance_distance(reference: np.ndarray, target: np.ndarray, aligned: bool = False) -> np.ndarray:
    """Mahalanobis distance of each target row from the reference rows (the prior's colour_novelty), after
    `prepared` (with `aligned`, each set standardised by its own statistics)."""
    return colour_novelty(*prepared(reference, target, aligned))


def cross_fitted_logits(a: np.ndarray, b: np.ndarray, seed: int = 0) -> np.ndarray | None:
    """Log-odds of "a row of `b`" for every row of [a; b], each from a logistic regression fitted without
    it (scikit-learn's cross_val_predict); None when either set is too small to cross-fit."""
    splits = min(DOMAIN_FOLDS, len(a), len(b))
    if splits < 2:
        return None
    x, y = np.vstack([a, b]).astype(np.float64), np.r_[np.zeros(len(a)), np.ones(len(b))]
    model = make_pipeline(StandardScaler(), LogisticRegression(C=DOMAIN_C, max_iter=2000))
    return cross_val_predict(model, x, y, cv=StratifiedKFold(splits, shuffle=True, random_state=seed),
                             method="decision_function")


def domain_probability(reference: np.ndarray, target: np.ndarray, appearance_reference: np.ndarray | None,
                       appearance_target: np.ndarray | None, seed: int = 0, pca: PCA | None = None) -> np.ndarray:
    """Cross-fitted P(target | x) of every target frame (log-odds, so ties at 1.0 do not hide the order).
    `pca`: reference_pca(reference), when the caller has it already."""
    pca = reference_pca(reference) if pca is None else pca
    reference, target = np.asarray(reference, np.float64), np.asarray(target, np.float64)
    parts = [pca.transform(standardised(reference)), pca.transform(standardised(target, reference))]
    if appearance_reference is not None:
        parts = [np.hstack([parts[0], appearance_reference]), np.hstack([parts[1], appearance_target])]
    logits = cross_fitted_logits(*parts, seed=seed)
    return np.zeros(len(target)) if logits is None else logits[len(reference):]
