"""Weight search, super-category re-scoring and the osd choice on constructed cases."""

import numpy as np
import pytest

from fathom.ensemble.blend import blend, greedy_weights, rescore, tune_exponent
from fathom.predictions import LOG_COLOUR, N_APPEARANCE
from fathom.ensemble.osd_choice import FoldScores, OsdScores, candidates, choose_from, choose_osd
from fathom.ensemble.osd_scorers import DIVE, FrameSet, combined, score_all, with_dive_means
from fathom.metric import map_at_k_from_probs


def complementary_members(n=200, c=30, seed=0):
    """A knows the first true class of every row, B the second; C is noise. Only a mix ranks both first."""
    rng = np.random.default_rng(seed)
    targets = np.zeros((n, c))
    pairs = np.array([rng.choice(c, 2, replace=False) for _ in range(n)])
    targets[np.arange(n), pairs[:, 0]] = targets[np.arange(n), pairs[:, 1]] = 1
    base = rng.uniform(0, 0.4, size=(3, n, c))
    a, b, noise = base
    a[np.arange(n), pairs[:, 0]] = 0.9  # A: sure of the first class, blind to the second
    b[np.arange(n), pairs[:, 1]] = 0.9
    return np.stack([a, b, noise]), targets


def test_greedy_weights_find_the_known_best_mix():
    stack, targets = complementary_members()
    weights = greedy_weights(stack, targets)
    assert weights.sum() == pytest.approx(1) and (weights >= 0).all()
    assert weights[2] == 0  # the noise member never helps
    assert weights[0] == pytest.approx(0.5) and weights[1] == pytest.approx(0.5)
    assert map_at_k_from_probs(blend(stack, weights), targets) == pytest.approx(1.0)
    assert max(map_at_k_from_probs(m, targets) for m in stack) < 0.9


def test_greedy_weights_give_nothing_to_members_that_add_nothing():
    stack, targets = complementary_members()
    stack[1], stack[2] = stack[0] ** 2, stack[0] * 0.5  # the same ranking as A: no mix is better than A alone
    assert np.allclose(greedy_weights(stack, targets), [1, 0, 0])


def test_blend_refuses_bad_weights():
    stack = np.ones((2, 3, 4))
    for weights in ([0.7, 0.7], [1.5, -0.5], [1.0]):
        with pytest.raises(ValueError, match="non-negative"):
            blend(stack, np.array(weights))


def test_rescore_multiplies_by_the_parent_super_probability():
    fine = np.array([[0.5, 0.4, 0.3]])
    sup = np.array([[0.1, 0.8]])
    parent = np.array([0, 1, 1])
    assert np.allclose(rescore(fine, sup, parent, b=1.0), [[0.05, 0.32, 0.24]])
    assert np.allclose(rescore(fine, sup, parent, b=0.0), fine)
    # MAP@20 only sees the ranking, which depends on b / a alone
    rng = np.random.default_rng(1)
    fine, sup, parent = rng.uniform(size=(50, 290)), rng.uniform(size=(50, 20)), rng.integers(0, 20, 290)
    assert (np.argsort(rescore(fine, sup, parent, b=1.0, a=2.0), 1) ==
            np.argsort(rescore(fine, sup, parent, b=0.5), 1)).all()


def test_tune_exponent_uses_an_informative_super_head_and_ignores_a_useless_one():
    rng = np.random.default_rng(2)
    n, parent = 300, np.repeat(np.arange(20), 15)[:290]
    truth = rng.integers(0, 290, n)
    targets = np.zeros((n, 290))
    targets[np.arange(n), truth] = 1
    fine = rng.uniform(0, 1, (n, 290))
    fine[np.arange(n), truth] += 0.3  # the fine head is weak ...
    informative = np.full((n, 20), 0.05)
    informative[np.arange(n), parent[truth]] = 0.95  # ... the super head knows the family
    assert tune_exponent(fine, informative, parent, targets) > 0
    before = map_at_k_from_probs(fine, targets)
    assert map_at_k_from_probs(rescore(fine, informative, parent, 1.0), targets) > before + 0.1
    assert tune_exponent(fine, np.full((n, 20), 0.5), parent, targets) == 0.0  # flat: ties go to b = 0


def frame_sets(n, rng, confident, bright, members=2):
    """(reference, target): n target images, confident ones with one high class, bright ones with unusual colour
    statistics (linear and log), against 100 reference frames."""
    fine = rng.uniform(0, 0.2, (n, 290))
    fine[:, 0] = np.where(confident, 0.95, 0.1)
    appearance = rng.normal(size=(n, N_APPEARANCE))
    appearance[:, :LOG_COLOUR.stop] += np.where(bright, 6.0, 0.0)[:, None]
    target = FrameSet(appearance, fine, rng.uniform(0, 1, (n, 20)), np.stack([fine, fine * 0.9])[:members])
    return FrameSet(rng.normal(size=(100, N_APPEARANCE))), target


def single_scores(n, rng, confident, bright, dives=None, members=2):
    scores = score_all(*frame_sets(n, rng, confident, bright, members))
    return scores if dives is None else with_dive_means(scores, dives)


SINGLES = {"max_prob", "entropy", "energy", "super", "disagreement", "colour", "log_colour", "log_colour_aligned"}


def test_single_scores_cover_every_method():
    rng = np.random.default_rng(3)
    scores = single_scores(40, rng, np.ones(40, bool), np.zeros(40, bool))
    assert set(scores) == SINGLES
    assert all(s.shape == (40,) and np.isfinite(s).all() for s in scores.values())
    assert "disagreement" not in single_scores(40, rng, np.ones(40, bool), np.zeros(40, bool), members=1)


def test_dive_scores_are_the_mean_over_the_frames_of_a_dive():
    rng = np.random.default_rng(5)
    dives = np.array(["Ventana/0001"] * 3 + ["Tiburon/0002"] * 2 + [""] * 3)  # "": no dive in the url
    scores = single_scores(8, rng, rng.random(8) < 0.5, np.zeros(8, bool), dives)
    assert set(scores) == SINGLES | {name + DIVE for name in SINGLES}
    frame, dive = scores["max_prob"], scores["max_prob@dive"]
    assert np.allclose(dive[:3], frame[:3].mean()) and np.allclose(dive[3:5], frame[3:5].mean())
    assert np.allclose(dive[5:], frame[5:])  # frames without a dive are their own group
    names = candidates(list(scores))
    assert "max_prob+colour" in names and "max_prob@dive+colour@dive" in names
    assert not any(("@dive" in n.split("+")[0]) != ("@dive" in n.split("+")[1]) for n in names if "+" in n)


def test_each_candidate_is_estimated_by_the_measurement_that_can_measure_it():
    """A shift-robust score by train vs test (on the test itself), every other score by held-out categories."""
    rng = np.random.default_rng(4)
    new = np.arange(60) < 15  # held-out categories: the new-species images are the unconfident ones
    held_out = [(single_scores(60, rng, ~new, np.zeros(60, bool)), new.astype(float))]
    is_test = np.arange(80) >= 40  # train vs test: the test images look different and are less confident
    shift = [(single_scores(80, rng, ~is_test, is_test), is_test.astype(float))]
    chosen, table = choose_osd(held_out, shift)
    assert table["max_prob"]["held_out_categories"] == pytest.approx(1.0)
    assert table["max_prob"]["train_vs_test"] == pytest.approx(1.0)  # measured and reported, never counted
    assert table["max_prob"]["estimate"] == table["max_prob"]["held_out_categories"]
    assert table["log_colour_aligned"]["estimate"] == table["log_colour_aligned"]["train_vs_test"]
    assert table["colour"]["estimate"] == table["colour"]["held_out_categories"] < 0.5  # not robust: no credit
    assert table[chosen]["estimate"] == max(row["estimate"] for row in table.values())
    assert np.allclose(combined(held_out[0][0], "max_prob+colour"), combined(held_out[0][0], "colour+max_prob"))


def fold_task(n, rng, names, signal=None, positives=None):
    """One measurement task: noise scores for `names`, `signal` separating the positives perfectly."""
    labels = (np.arange(n) < (positives or n // 3)).astype(float)
    return ({name: labels * 3.0 + rng.normal(size=n) if name == signal else rng.normal(size=n) for name in names},
            labels)


@pytest.mark.parametrize("family", ["max_prob", "entropy", "energy", "super", "disagreement", "colour",
                                    "log_colour", "log_colour_aligned", "tiles", "knn", "knn_aligned",
                                    "mahalanobis", "mahalanobis_aligned", "domain"])
def test_every_candidate_family_can_be_chosen(family):
    """The score that separates in the measurement its estimate is taken from wins, whatever its family:
    train vs test for the shift-robust one, the probes' held-out categories for the others, and the folds'
    own unseen-category frames for disagreement (a probe is one model: it has no disagreement)."""
    from fathom.ensemble.osd_choice import estimated_by
    from fathom.ensemble.osd_scorers import SCORERS

    rng = np.random.default_rng(7)
    names = list(SCORERS)
    probe_names = [n for n in names if n != "disagreement"]
    robust = estimated_by(family) == "train_vs_test"
    probe_signal = None if robust or family == "disagreement" else family
    probes = [fold_task(150, rng, probe_names, probe_signal, 60)]
    folds = [fold_task(150, rng, names, family if family == "disagreement" else None, 30)]
    shift = [fold_task(200, rng, names, family if robust else None, 120)]
    chosen, table = choose_osd(probes, shift, folds)
    assert chosen == family, (family, chosen, table[chosen])
    assert table[family]["estimate"] > 0.8


def test_feature_scores_rank_within_each_scored_set_so_train_vs_test_cannot_measure_them():
    """A per-member rank average puts the validation and the eval frames on the same 0..1 scale: their
    train vs test is 0 whatever the frames, which is why it never estimates them."""
    from fathom.ensemble.osd_choice import estimated_by, mean_sauc
    from fathom.ensemble.osd_scorers import SHIFT_ROBUST

    rng = np.random.default_rng(2)
    reference = FrameSet(rng.normal(size=(60, N_APPEARANCE)), embeddings=(rng.normal(size=(60, 8)),))
    valid = FrameSet(rng.normal(size=(40, N_APPEARANCE)), embeddings=(rng.normal(size=(40, 8)),))
    far = FrameSet(rng.normal(size=(50, N_APPEARANCE)), embeddings=(rng.normal(size=(50, 8)) + 5.0,))
    scored = [score_all(reference, side, names={"knn"}) for side in (valid, far)]
    task = ({"knn": np.r_[scored[0]["knn"], scored[1]["knn"]]}, np.r_[np.zeros(40), np.ones(50)])
    assert abs(mean_sauc([task], "knn")) < 0.05  # every eval frame lies far away, and it measures ~0
    assert estimated_by("knn_aligned") == estimated_by("knn") == "held_out_categories"
    assert estimated_by("log_colour_aligned@dive") == estimated_by("log_colour_aligned+log_colour_aligned@dive")
    assert estimated_by("log_colour_aligned+max_prob") == "held_out_categories" and SHIFT_ROBUST == {"log_colour_aligned"}


def members_of(stack, sup, folds):
    from fathom.ensemble.members import Members

    n = stack.shape[1]
    return Members(names=[f"m{i}" for i in range(len(stack))], folds=sorted(set(folds)), tta=False,
                   oof_ids=np.array([f"id{i}" for i in range(n)]), fold_of=np.asarray(folds), oof_fine=stack,
                   oof_super=sup, eval_ids=np.array([]), test_fine=np.zeros((len(stack), 1, 0, stack.shape[2])),
                   test_super=np.zeros((len(stack), 1, 0, 20)))


def test_cross_fitting_checks_each_fold_with_a_recipe_tuned_on_the_others():
    from fathom.ensemble.fit import compare_strategies

    stack, targets = complementary_members(c=290)
    sup = np.full((3, stack.shape[1], 20), 0.5)
    members = members_of(stack, sup, np.arange(stack.shape[1]) % 2)
    table, held_out, chosen = compare_strategies(members, targets, np.arange(290) % 20, "t")
    assert table["tuned weights"]["held_out"] == pytest.approx(1.0)  # the mix generalises to the other fold
    assert table["best single"]["held_out"] < 0.9 and chosen == "tuned weights"  # simpler than + re-scoring on ties
    assert held_out["tuned weights"].shape == stack.shape[1:]


def test_one_fold_cannot_be_checked_so_equal_weights_are_used():
    from fathom.ensemble.fit import compare_strategies

    stack, targets = complementary_members(c=290)
    members = members_of(stack, np.full((3, stack.shape[1], 20), 0.5), np.zeros(stack.shape[1], int))
    table, _, chosen = compare_strategies(members, targets, np.arange(290) % 20, "t")
    assert chosen == "equal weights" and np.isnan(table["tuned weights"]["held_out"])


def test_the_held_out_standard_error_follows_the_frame_counts():
    """Ten unseen-category images give a wide standard error; the mean over two sets halves the variance."""
    from fathom.ensemble.osd_choice import sauc_variance

    few = [({}, np.r_[np.ones(10), np.zeros(300)])]
    many = [({}, np.r_[np.ones(400), np.zeros(300)])]
    assert sauc_variance(few) == pytest.approx(4 * 311 / (12 * 10 * 300))
    assert sauc_variance(many + many) == pytest.approx(sauc_variance(many) / 2)
    assert sauc_variance([({}, np.zeros(5))]) == float("inf")  # one class: nothing to measure


def test_the_saved_scores_redo_the_choice_they_were_made_with(tmp_path):
    """osd_scores.npz holds every candidate's raw scores: loading it gives the same sets, tasks and choice."""
    rng = np.random.default_rng(6)
    folds = []
    for k, n in ((0, 50), (2, 40)):
        unseen = (np.arange(n) < 8).astype(float)
        dives = np.array([f"d{i % 5}" for i in range(n)])
        folds.append(FoldScores(k, single_scores(n, rng, unseen == 0, np.zeros(n, bool), dives),
                                single_scores(30, rng, np.ones(30, bool), np.ones(30, bool), dives[:30]), unseen))
    scores = OsdScores(folds, single_scores(30, rng, np.ones(30, bool), np.ones(30, bool), np.array(["d"] * 30)))
    scores.save(tmp_path / "osd_scores.npz")
    again = OsdScores.load(tmp_path / "osd_scores.npz")
    assert [f.fold for f in again.folds] == [0, 2] and again.probes == [] and again.unseen_images == 16
    for before, after in zip(scores.folds, again.folds):
        assert set(before.valid) == set(after.valid) and all(np.array_equal(before.valid[n], after.valid[n])
                                                             for n in before.valid)
    assert all(np.array_equal(scores.eval[n], again.eval[n]) for n in scores.eval)
    assert [len(labels) for _, labels in again.shift] == [80, 70]
    chosen, table = choose_from(again)
    assert (chosen, table) == choose_from(scores) and len(table) == len(candidates(list(scores.eval)))


def test_the_report_says_whether_the_chosen_estimate_held_on_the_demo_and_which_measurement_failed():
    from fathom.report import osd_verdict
    from fathom.runs import OsdChoice, OsdScore

    def choice(estimate, held_out, train_vs_test, demo_eval):
        return OsdChoice("log_colour_aligned@dive", {"log_colour_aligned@dive": OsdScore(
            held_out, train_vs_test, estimate, 0.04, demo_eval)}, 45)

    held = osd_verdict(choice(0.72, -0.06, 0.85, 0.81))
    assert "(0.7200) is within 0.1" in held and "held out categories by -0.87" in held
    assert "train vs test" not in held  # 0.04 off: not a failure
    missed = osd_verdict(choice(0.30, 0.30, 0.30, 0.81))
    assert "is not within 0.1" in missed and "train vs test by -0.51" in missed
    assert osd_verdict(choice(0.72, -0.06, 0.85, None)) == ""  # real data: no eval solution, no verdict
