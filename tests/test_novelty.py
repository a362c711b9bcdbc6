"""The feature-based out-of-sample scores on constructed embeddings with a known answer."""

import numpy as np
import pytest

from fathom.ensemble.novelty import FeatureSet, class_mahalanobis, domain_probability, knn_distance
from fathom.ensemble.osd_choice import Evidence, feature_scores
from fathom.metric import scaled_auc


def clusters(rng, n, centres, spread=0.3):
    """n points around the given class centres (round robin), with their one-hot labels [n, 290]."""
    which = np.arange(n) % len(centres)
    labels = np.zeros((n, 290))
    labels[np.arange(n), which] = 1
    return centres[which] + rng.normal(0, spread, (n, centres.shape[1])), labels


@pytest.fixture
def shifted_case():
    """Reference: 4 known classes. Target: the same classes, all moved by one shared shift (another camera),
    plus a fifth of frames from a class train never shows (the out-of-sample ones)."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (5, 16))
    reference, labels = clusters(rng, 200, centres[:4])
    known, _ = clusters(rng, 80, centres[:4])
    novel, _ = clusters(rng, 20, centres[4:])
    shift = np.full(16, 2.5)
    target = np.vstack([known, novel]) + shift
    return reference, labels, target, np.r_[np.zeros(80), np.ones(20)]


def test_distance_scores_rank_the_unseen_class_first(shifted_case):
    reference, labels, target, is_new = shifted_case
    for score in (knn_distance(reference, target, aligned=True), class_mahalanobis(reference, labels, target),
                  class_mahalanobis(reference, labels, target, aligned=True)):
        assert score.shape == (100,) and scaled_auc(is_new, score) > 0.8


def test_alignment_takes_out_a_shift_every_target_frame_shares(shifted_case):
    reference, _, target, _ = shifted_case
    moved = knn_distance(reference, target, aligned=True)
    assert np.allclose(moved, knn_distance(reference, target * 1.7 - 4.0, aligned=True))  # any affine camera


def test_domain_classifier_is_cross_fitted_and_ranks_beyond_the_shared_shift(shifted_case):
    reference, _, target, is_new = shifted_case
    score = domain_probability(reference, target, None, None)
    assert score.shape == (100,) and scaled_auc(is_new, score) > 0.5
    # cross-fitted: a target frame that is a copy of a reference frame is not recognised as a target
    copies = domain_probability(reference, reference[:50].copy(), None, None)
    assert abs(scaled_auc(np.r_[np.zeros(25), np.ones(25)], copies)) < 0.5


def test_feature_scores_average_members_and_need_embeddings(shifted_case):
    reference, labels, target, is_new = shifted_case
    n = len(target)
    evidence = Evidence(np.full((n, 290), 0.1), np.full((n, 20), 0.1), np.full((2, n, 290), 0.1),
                        np.zeros((n, 150)), np.zeros((200, 150)),
                        features=[FeatureSet(reference, labels, target), FeatureSet(-reference, labels, -target)])
    scores = feature_scores(evidence)
    assert set(scores) == {"knn", "knn_aligned", "mahalanobis", "mahalanobis_aligned", "domain"}
    assert all(s.shape == (n,) and np.isfinite(s).all() for s in scores.values())
    assert scaled_auc(is_new, scores["knn_aligned"]) > 0.8
    evidence.features = None
    assert feature_scores(evidence) == {}
