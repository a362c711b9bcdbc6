"""The feature-based out-of-sample scores on constructed embeddings with a known answer."""

import numpy as np
import pytest

from fathom.ensemble.novelty import class_mahalanobis, domain_probability, knn_distance, reference_pca
from fathom.ensemble.osd_scorers import FOLD_MODEL, FrameSet, score_all
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


def test_one_reference_pca_serves_every_method_that_projects(shifted_case):
    reference, labels, target, _ = shifted_case  # a reference FrameSet fits it once per member for three scorers
    pca = reference_pca(reference)
    for aligned in (False, True):
        assert np.array_equal(class_mahalanobis(reference, labels, target, aligned, pca=pca),
                              class_mahalanobis(reference, labels, target, aligned))
    assert np.array_equal(domain_probability(reference, target, None, None, pca=pca),
                          domain_probability(reference, target, None, None))


def test_feature_scores_average_members_and_need_embeddings(shifted_case):
    reference, labels, target, is_new = shifted_case
    n = len(target)
    embedded = FrameSet(np.zeros((200, 150)), labels=labels, embeddings=(reference, -reference))
    scores = score_all(embedded, FrameSet(np.zeros((n, 150)), embeddings=(target, -target)), names=FOLD_MODEL)
    assert set(scores) == FOLD_MODEL == {"knn", "knn_aligned", "mahalanobis", "mahalanobis_aligned", "domain"}
    assert all(s.shape == (n,) and np.isfinite(s).all() for s in scores.values())
    assert scaled_auc(is_new, scores["knn_aligned"]) > 0.8
    assert score_all(FrameSet(np.zeros((200, 150))), FrameSet(np.zeros((n, 150))), names=FOLD_MODEL) == {}


def frames(rng, brightness, gain=(1.0, 1.0, 1.0)):
    """Water-coloured frames, one per brightness (deeper = darker), filmed by a camera with these gains."""
    from PIL import Image

    water = np.array([40, 110, 120], np.float32)
    return [Image.fromarray(np.clip(b * water * np.asarray(gain) + rng.normal(0, 2, (36, 64, 3)), 0, 255
                                    ).astype(np.uint8)) for b in brightness]


def test_a_cameras_gains_are_one_shift_in_log_colour_that_alignment_takes_out():
    """Eval frames filmed with other gains: linear colour moves a dark frame less than a bright one, so colour
    novelty flags the bright in-sample frames; in log colour every frame moves by log(gain), so the frames
    darker than any training frame (the out-of-sample ones) stay the farthest, with or without alignment."""
    from fathom.data.features import colour_stats_of, log_colour_stats_of
    from fathom.ensemble.novelty import appearance_distance
    from fathom.models.prior import colour_novelty

    rng = np.random.default_rng(0)
    gain = (1.22, 1.02, 0.84)  # the demo's new camera
    train = frames(rng, rng.uniform(0.5, 1.0, 200))
    in_sample, out_of_sample = rng.uniform(0.5, 1.0, 70), rng.uniform(0.25, 0.45, 30)
    test = frames(rng, np.r_[in_sample, out_of_sample], gain)
    is_new = np.r_[np.zeros(70), np.ones(30)]
    log_train = np.stack([log_colour_stats_of(f) for f in train])
    log_test = np.stack([log_colour_stats_of(f) for f in test])
    plain = np.stack([log_colour_stats_of(f) for f in frames(np.random.default_rng(0), [0.4, 0.9])])
    moved = np.stack([log_colour_stats_of(f) for f in frames(np.random.default_rng(0), [0.4, 0.9], gain)])
    assert np.allclose(moved[:, :3] - plain[:, :3], np.log(gain), atol=0.02)  # the same shift, dark or bright
    linear = colour_novelty(np.stack([colour_stats_of(f) for f in train]),
                            np.stack([colour_stats_of(f) for f in test]))
    assert scaled_auc(is_new, linear) < 0.3
    assert scaled_auc(is_new, appearance_distance(log_train, log_test)) > 0.8
    assert scaled_auc(is_new, appearance_distance(log_train, log_test, aligned=True)) > 0.5
