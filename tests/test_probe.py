"""Leave-categories-out probes: which categories are held out, what each probe trains on and predicts, and
the osd scores the ensemble reads from them."""

import dataclasses

import numpy as np
import pytest

import conftest
from fathom.data.labels import fine_multi_hot
from fathom.data.layout import load_dataset
from fathom.ensemble.osd_choice import OsdScores
from fathom.ensemble.probes import dive_parts, probe_scores
from fathom.folds import make_folds
from fathom.predictions import FrameAppearance, Predictions
from fathom.runs import Experiment
from fathom.train.probe import MAX_CATEGORY_SHARE, held_out_categories, probe_config, probe_splits
from fathom.train.run import train


@pytest.fixture(scope="module")
def split(demo_dir):
    dataset = load_dataset(demo_dir)
    return dataset, make_folds(dataset.train, dataset.categories, n_folds=5, seed=0, group="dive")


def test_whole_super_categories_are_held_out_until_the_share_without_the_dominant_one_and_by_the_seed():
    rng = np.random.default_rng(0)
    parent = np.arange(290) % 29  # 29 families of 10 categories
    labels = (rng.random((500, 290)) < np.r_[0.45, rng.uniform(0, 0.01, 289)]).astype(np.float32)
    held = held_out_categories(labels, parent, 0.35, seed=1)
    assert 0 not in parent[held]  # category 0 is in 45% of the frames: its family is never held out
    assert set(held) == set(np.flatnonzero(np.isin(parent, parent[held])))  # whole families
    covered = lambda families: (labels[:, np.isin(parent, families)] > 0).any(1).mean()  # noqa: E731
    assert covered(parent[held]) >= 0.35
    assert (labels.mean(0)[held] <= MAX_CATEGORY_SHARE).all()
    assert list(held) == list(held_out_categories(labels, parent, 0.35, seed=1))
    assert list(held) != list(held_out_categories(labels, parent, 0.35, seed=2))
    assert len(held_out_categories(labels, parent, 0.0, seed=1)) == 0


def test_each_probe_trains_on_the_other_half_of_the_dives_without_a_held_out_category(split):
    dataset, folds = split
    cfg = conftest.tiny_config("unused", probe_share=0.35)
    (train_a, valid_a), (train_b, valid_b) = probe_splits(cfg, dataset, folds)
    assert set(valid_a["id"]) | set(valid_b["id"]) == set(dataset.train["id"]) and not set(valid_a["id"]) & set(valid_b["id"])
    assert not set(valid_a["dive"]) & set(valid_b["dive"]) - {""}  # the folds are dive-grouped: so are the halves
    labels = fine_multi_hot(dataset.train["categories"], dataset.categories)
    held = held_out_categories(labels, dataset.categories.parent, 0.35, cfg.seed)
    for train_part, valid in ((train_a, valid_a), (train_b, valid_b)):
        assert set(train_part["id"]) <= set(dataset.train["id"]) - set(valid["id"])
        assert not fine_multi_hot(train_part["categories"], dataset.categories)[:, held].any()
    one_fold = folds.assign(fold=0)  # a folds file with one fold: half 1 predicts nothing, half 0 trains on nothing
    (nothing, everything), (_, none) = probe_splits(cfg, dataset, one_fold)
    assert nothing.empty and none.empty and len(everything) == len(dataset.train)
    assert probe_config(conftest.tiny_config("unused", probe_epochs=1, distill_from="x")).epochs == 1
    assert probe_config(conftest.tiny_config("unused", distill_from="x")).distill_from == ""


def test_probe_dive_means_split_each_dive_into_its_out_of_sample_and_in_sample_part():
    from fathom.ensemble.osd_scorers import dive_means

    dives = np.array(["Ventana/0001", "Ventana/0001", "Ventana/0001", "Tiburon/0002", ""])
    unseen = np.array([1.0, 0.0, 1.0, 1.0, 1.0])
    parts = dive_parts(dives, unseen)
    assert list(parts) == ["Ventana/0001|unseen", "Ventana/0001|seen", "Ventana/0001|unseen", "Tiburon/0002|unseen", ""]
    score = np.array([1.0, 5.0, 3.0, 7.0, 9.0])
    assert list(dive_means(score, parts)) == [2.0, 5.0, 2.0, 7.0, 9.0]


@pytest.mark.slow
def test_train_writes_the_probes_and_the_ensemble_scores_their_validation_frames(split, tmp_path):
    dataset, folds = split
    cfg = conftest.tiny_config(tmp_path, epochs=1, probe_share=0.35, reference_frames=32)
    train(cfg, dataset, folds, tmp_path / "runs")
    experiment = Experiment(tmp_path / "runs", "tiny")
    probes = experiment.finished_probes()
    assert [(p.backbone, p.fold, p.label) for p in probes] == [("resnet18", 0, "resnet18 probe 0"),
                                                                ("resnet18", 1, "resnet18 probe 1")]
    assert experiment.fold("resnet18", 0).label == "resnet18 fold 0"
    appearance = FrameAppearance.load(experiment.appearance_file)
    scored = probe_scores(dataset, experiment, appearance)
    for probe, scores in zip(probes, scored):
        assert not probe.predictions("test").exists()  # a probe predicts no eval frames
        valid = Predictions.load(probe.predictions("oof"))
        labels = fine_multi_hot(dataset.train.set_index("id").loc[valid.ids, "categories"], dataset.categories)
        with np.load(probe.unseen_file) as saved:
            assert list(saved["ids"]) == list(valid.ids)
        assert 0 < scores.unseen.sum() < len(scores.unseen) and labels[scores.unseen > 0].any(1).all()
        assert {"max_prob", "knn", "log_colour_aligned", "max_prob@dive"} <= set(scores.valid)
        assert all(len(v) == len(valid.ids) for v in scores.valid.values())
    held = OsdScores([], {"max_prob": np.zeros(3)}, scored)
    assert [labels for _, labels in held.held_out] == [s.unseen for s in scored] and held.probes_measured == 2
    blank = [dataclasses.replace(s, unseen=np.zeros_like(s.unseen)) for s in scored]  # nothing held out: unusable
    own = [dataclasses.replace(scored[0], fold=3)]
    assert OsdScores(own, {}, blank).held_out[0][1] is own[0].unseen and OsdScores(own, {}, blank).probes_measured == 0
    held.save(tmp_path / "osd.npz")
    again = OsdScores.load(tmp_path / "osd.npz")
    assert [p.fold for p in again.probes] == [0, 1] and again.unseen_images == held.unseen_images
    np.testing.assert_array_equal(again.probes[1].valid["knn"], scored[1].valid["knn"])
    finished = [p.done_file.stat().st_mtime_ns for p in probes]
    train(cfg, dataset, folds, tmp_path / "runs")  # finished probes are reused
    assert [p.done_file.stat().st_mtime_ns for p in experiment.finished_probes()] == finished
    train(dataclasses.replace(cfg, probe_share=0.0), dataset, folds, tmp_path / "runs")  # probes off: removed,
    assert experiment.finished_probes() == [] and experiment.fold("resnet18", 0).is_finished()  # members kept


def test_on_the_real_label_structure_the_held_out_families_reach_the_share_without_the_dominant_one(real_dir):
    dataset = load_dataset(real_dir, check_images=False)
    labels = fine_multi_hot(dataset.train["categories"], dataset.categories)
    parent = dataset.categories.parent
    held = held_out_categories(labels, parent, 0.35, seed=42)
    dominant = int(np.argmax(labels.mean(0)))
    assert parent[dominant] not in parent[held] and (labels[:, held] > 0).any(1).mean() >= 0.35
    assert set(held) == set(np.flatnonzero(np.isin(parent, parent[held])))
