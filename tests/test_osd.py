"""Out-of-sample scores: each method ranks a confident image below an unsure one, never rounds."""

import numpy as np
import pytest

from fathom import osd
from fathom.metric import scaled_auc


def frames():
    """Row 0: one confident class (in-sample-like). Row 1: everything lukewarm (unfamiliar)."""
    fine = np.full((2, 290), 0.01)
    fine[0, 5] = 0.95
    fine[1, :8] = 0.3
    sup = np.full((2, 20), 0.05)
    sup[0, 2] = 0.97
    sup[1, :4] = 0.35
    return fine, sup


@pytest.mark.parametrize("method", sorted(osd.SINGLE_MODEL))
def test_each_method_scores_the_unsure_frame_higher(method):
    fine, sup = frames()
    scores = osd.SINGLE_MODEL[method](fine, sup)
    assert scores.shape == (2,) and scores.dtype == np.float64 and np.isfinite(scores).all()
    assert scores[1] > scores[0]


def test_energy_is_minus_logsumexp_of_the_logits():
    fine = np.array([[0.5, 0.5], [0.9, 0.1]])
    expected = -np.log(np.exp(0.0) + np.exp(0.0)), -np.log(9.0 + 1 / 9.0)
    np.testing.assert_allclose(osd.energy(fine), expected, rtol=1e-5)
    assert np.isfinite(osd.energy(np.array([[0.0, 1.0]]))).all()  # clipped, never inf


def test_disagreement_needs_two_models_and_grows_with_spread():
    a = np.array([[0.9, 0.1], [0.5, 0.5]])
    b = np.array([[0.9, 0.1], [0.1, 0.9]])
    np.testing.assert_allclose(osd.disagreement([a, b]), [0.0, 0.2])
    with pytest.raises(ValueError, match="at least two models"):
        osd.disagreement([a])


def test_rank_average_combines_scales_and_keeps_order_information():
    s1 = np.array([1.0, 2.0, 3.0, 4.0])
    s2 = np.array([100.0, 300.0, 200.0, 400.0])
    combined = osd.rank_average([s1, s2])
    np.testing.assert_allclose(combined, [0.0, 0.5, 0.5, 1.0])
    labels = np.array([0, 0, 1, 1])
    assert scaled_auc(labels, combined) == pytest.approx(scaled_auc(labels, s1 + s2 / 100))
