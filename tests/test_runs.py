"""fathom.runs (paths and typed records) and the prediction file layout: refused, never misread."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest

from fathom.atomic import write_npz
from fathom.constants import N_FINE, N_SUPER
from fathom.errors import DataError
from fathom.predictions import Predictions, combine_folds, concat, mean_of
from fathom.runs import (Done, EnsembleRecord, Experiment, FoldDir, OofScores, OsdChoice, OsdScore, StrategyScore,
                         SubmissionRecord, Summary, read_record, write_record)


def predictions(ids, seed=0, views=(), **extras) -> Predictions:
    rng = np.random.default_rng(seed)
    n = len(ids)
    return Predictions(np.array(ids), rng.random((n, N_FINE)), rng.random((n, N_SUPER)), extras, views)


def ensemble_record() -> EnsembleRecord:
    return EnsembleRecord(
        exp="e", git_commit="abc", members=["a", "b"], folds=[0, 1], tta=True, strategy="equal weights",
        weights={"a": 0.5, "b": 0.5}, exponents={"a": 1.0, "b": 0.0},
        oof_map20=OofScores({"a": {"0": 0.5, "1": 0.4}}, {"a": 0.45}, None, {"0": 0.5, "1": 0.4}),
        strategies={"equal weights": StrategyScore(0.45, 0.46, {"a": 0.5, "b": 0.5}, 0.0, 0.3)},
        osd=OsdChoice("max_prob", {"max_prob": OsdScore(0.2, float("nan"), 0.2, 0.05)}, 3, 0.05, probes=2))


def test_every_path_of_a_run_comes_from_the_layer(tmp_path):
    exp = Experiment(tmp_path, "e")
    fold = exp.fold("resnet18", 3)
    assert fold.path == tmp_path / "e" / "resnet18" / "fold_3" and (fold.backbone, fold.fold) == ("resnet18", 3)
    assert fold.predictions("oof").name == "oof.npz" and fold.predictions("test", tta=True) == fold.path / "tta" / "test.npz"
    assert fold.staging.path == tmp_path / "e" / "staging" / "resnet18" / "fold_3" and fold.staging.label == fold.label
    probe = exp.probe("resnet18", 1)
    assert probe.staging.path == tmp_path / "e" / "staging" / "probe" / "resnet18" / "fold_1"
    assert probe.label == probe.staging.label == "resnet18 probe 1"
    assert exp.predictions("oof", "resnet18", tta=True) == tmp_path / "e" / "tta" / "oof" / "resnet18.npz"
    assert exp.ensemble_predictions("test") == tmp_path / "e" / "ensemble" / "test.npz"
    with pytest.raises(ValueError, match="split"):
        fold.predictions("valid")


def test_finished_folds_are_the_ones_with_done_records_in_fold_order(tmp_path):
    exp = Experiment(tmp_path, "e")
    for backbone, k in (("b", 10), ("b", 2), ("a", 0), ("a", 1)):
        exp.fold(backbone, k).path.mkdir(parents=True)
        if k != 1:
            exp.fold(backbone, k).write_done(Done("f", 0.5, 1.0))
    assert {b: [d.fold for d in ds] for b, ds in exp.finished_folds().items()} == {"a": [0], "b": [2, 10]}
    with pytest.raises(DataError, match="no finished folds"):
        Experiment(tmp_path, "other").require_finished_folds()


def test_a_folder_replacement_cut_between_its_renames_is_finished_by_the_next_writer(tmp_path):
    """replace_folder moves the old fold aside, then renames the staging folder into its place: a kill between
    the two leaves no fold folder; Experiment.settle (every writer runs it under the lock) finishes the move."""
    from fathom.atomic import aside_of, replace_folder

    exp = Experiment(tmp_path, "e")
    fold = exp.fold("resnet18", 0)
    for folder, run in ((fold.path, "old"), (fold.staging.path, "new")):
        folder.mkdir(parents=True)
        (folder / "done.json").write_text(run)
    os.rename(fold.path, aside_of(fold.staging.path))  # the first rename, then the kill
    assert not exp.finished_folds()
    assert exp.settle() == [fold.path]
    assert fold.done_file.read_text() == "new" and not fold.staging.path.exists()
    assert not aside_of(fold.staging.path).exists() and exp.settle() == []
    staging = fold.path / "tta.staging"  # a fold's TTA set: cut after the second rename, before the old one went
    (staging).mkdir()
    (staging / "oof.npz").write_text("new views")
    fold.tta_dir.mkdir()
    replace_folder(staging, fold.tta_dir)
    aside_of(staging).mkdir()
    assert exp.settle() == [fold.tta_dir] and (fold.tta_dir / "oof.npz").read_text() == "new views"


def test_a_staged_folder_replaces_its_target_whole_or_not_at_all(tmp_path):
    from fathom.atomic import staged_folder

    target = tmp_path / "tta"
    target.mkdir()
    (target / "oof.npz").write_text("old")
    (target / "test.npz").write_text("old")
    with pytest.raises(RuntimeError):
        with staged_folder(target) as staging:
            (staging / "oof.npz").write_text("new")
            raise RuntimeError("killed between the files")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tta"]
    assert (target / "oof.npz").read_text() == (target / "test.npz").read_text() == "old"
    (tmp_path / "tta.staging").mkdir()  # a SIGKILL's leftover: the next run of the step removes it
    (tmp_path / "tta.staging" / "oof.npz").write_text("half")
    with staged_folder(target) as staging:
        (staging / "oof.npz").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tta"] and [p.name for p in target.iterdir()] == ["oof.npz"]


def test_tta_files_of_different_views_are_refused_naming_the_fold(tmp_path):
    exp = Experiment(tmp_path, "e")
    folds = [exp.fold("resnet18", k) for k in (0, 1)]
    for fold, views in zip(folds, (("1x", "1x+hflip"), ("1x",))):
        for split in ("oof", "test"):
            predictions(["x"], 0, views=views).save(fold.predictions(split, tta=True))
    assert folds[0].tta_views() == ["1x", "1x+hflip"] and folds[0].has_tta()
    with pytest.raises(DataError, match=r"resnet18 fold 0: 1x, 1x\+hflip; resnet18 fold 1: 1x"):
        exp.same_tta_views(folds)
    predictions(["x"], 0, views=("1x",)).save(folds[0].predictions("test", tta=True))
    with pytest.raises(DataError, match=r"tta: resnet18 fold 0: its oof and test TTA files hold different views"):
        exp.same_tta_views(folds)
    assert exp.same_tta_views(folds[1:]) == ["1x"]


def test_records_round_trip_with_nan_written_as_null(tmp_path):
    record = ensemble_record()
    write_record(record, tmp_path / "ensemble.json")
    assert json.loads((tmp_path / "ensemble.json").read_text())["osd"]["sauc"]["max_prob"]["train_vs_test"] is None
    again = read_record(EnsembleRecord, tmp_path / "ensemble.json")
    assert np.isnan(again.osd.chosen.train_vs_test) and again.osd.chosen.held_out_categories == 0.2
    assert dataclasses.replace(again, osd=record.osd) == record and again.chosen.demo_eval_map20 == 0.3
    submission = SubmissionRecord("n", "e", "abc", 400, ["a", "b"], None, {"map20": 0.2, "sauc": None})
    write_record(submission, tmp_path / "n.json")
    assert read_record(SubmissionRecord, tmp_path / "n.json") == submission
    write_record(Summary({"a": 0.5, "prior": 0.4}, [0, 1], 1), tmp_path / "summary.json")
    assert read_record(Summary, tmp_path / "summary.json").oof_map20["prior"] == 0.4


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(surprise=1), r"unknown keys \['surprise'\]"),
    (lambda d: d.pop("fingerprint"), r"missing keys \['fingerprint'\]"),
    (lambda d: d.update(val_map20="high"), "val_map20: expected float"),
    (lambda d: d.update(tile_val_map20=[0.1]), "tile_val_map20: expected an object|expected dict"),
])
def test_a_done_record_of_another_version_is_refused_by_name(tmp_path, edit, message):
    fold = FoldDir(tmp_path / "fold_0")
    fold.path.mkdir()
    fold.write_done(Done("f", 0.5, 1.0, "max", {"max": 0.5}, {"eval": 7.0}))
    data = json.loads(fold.done_file.read_text())
    edit(data)
    fold.done_file.write_text(json.dumps(data))
    with pytest.raises(DataError, match="done.json") as err:
        fold.done()
    assert err.match(message)


def test_prediction_extras_are_named_and_travel_through_every_combination(tmp_path):
    a = predictions(["x", "y"], 0, tile_evidence=np.array([0.1, 0.2]), embedding=np.ones((2, 8)))
    b = predictions(["z"], 1, tile_evidence=np.array([0.3]))
    both = concat([a, b])
    assert list(both.extras) == ["tile_evidence"] and np.allclose(both.extras["tile_evidence"], [0.1, 0.2, 0.3])
    mean = mean_of([a, a.aligned_to(["y", "x"])], ["y", "x"])
    assert np.allclose(mean.extras["tile_evidence"], [0.2, 0.1])
    assert "embedding" not in mean.extras  # each model has its own feature space: never averaged or mixed
    oof, test = combine_folds([{"oof": a, "test": a}, {"oof": b, "test": a}])
    assert "osd" not in test.extras and np.allclose(test.extras["tile_evidence"], [0.1, 0.2])
    a.save(tmp_path / "a.npz")
    loaded = Predictions.load(tmp_path / "a.npz")
    assert loaded.extras["embedding"].dtype == np.float16 and np.array_equal(loaded.fine, a.fine.astype(np.float32))
    with pytest.raises(ValueError, match="carry no out-of-sample score"):
        loaded.osd
    with pytest.raises(ValueError, match="unknown prediction extra 'confidence'"):
        predictions(["x"], confidence=np.zeros(1))
    with pytest.raises(ValueError, match="tile_evidence has 1 rows, not 2"):
        predictions(["x", "y"], tile_evidence=np.zeros(1))


def test_a_prediction_file_of_the_old_layout_is_refused_not_misread(tmp_path):
    """Layout 1 held an `osd` array that meant 1 - max fine, tile evidence or a blend, by writer."""
    rng = np.random.default_rng(0)
    old = tmp_path / "oof.npz"
    write_npz(old, ids=np.array(["x"]), fine=rng.random((1, N_FINE)), super=rng.random((1, N_SUPER)),
              osd=np.array([0.3]))
    with pytest.raises(DataError, match="layout 1, this code reads layout 2") as err:
        Predictions.load(old)
    assert err.match("run the step that wrote it again")
    unknown = tmp_path / "extra.npz"
    write_npz(unknown, ids=np.array(["x"]), fine=rng.random((1, N_FINE)), super=rng.random((1, N_SUPER)),
              format=np.int64(2), logits=np.zeros(1))
    with pytest.raises(DataError, match=r"unknown arrays \['logits'\]"):
        Predictions.load(unknown)


def test_bench_demo_tabulates_each_target_with_its_margin_from_the_run_files(tmp_path):
    """`bench demo` reads summary.json, ensemble.json and the two submission records; it trains nothing."""
    from fathom.bench.demo import demo_table, demo_targets

    runs, subs = tmp_path / "runs", tmp_path / "subs"
    exp = Experiment(runs, "e")
    write_record(Summary({"a": 0.56, "b": 0.52, "prior": 0.49}, [0, 1], 1), exp.summary_file)
    record = ensemble_record()
    chosen = OsdScore(0.1, 0.8, 0.7, 0.04, demo_eval=0.65)
    write_record(dataclasses.replace(record, osd=dataclasses.replace(record.osd, sauc={"max_prob": chosen})),
                 exp.ensemble_file)
    with pytest.raises(DataError, match=r"ensemble.json: names members with no finished fold .*\['a', 'b'\]"):
        demo_targets(runs, "e", subs)  # a record of other runs is refused where it is read
    for backbone in ("a", "b"):
        exp.fold(backbone, 0).path.mkdir(parents=True)
        exp.fold(backbone, 0).write_done(Done("f", 0.5, 1.0))
    with pytest.raises(DataError, match="no scored e.json and prior.json"):
        demo_targets(runs, "e", subs)
    for name, score in (("e", 0.5), ("prior", 0.12)):
        write_record(SubmissionRecord(name, name, "abc", 3, [], None, {"map20": 0.2, "sauc": 0.1, "score": score}),
                     subs / f"{name}.json")
    rows = {r["what"]: r for r in demo_targets(runs, "e", subs)["rows"]}
    assert rows["a held-out OOF MAP@20"]["margin"] == pytest.approx(0.02) and rows["a held-out OOF MAP@20"]["met"]
    assert rows["b held-out OOF MAP@20"]["margin"] == pytest.approx(-0.02) and not rows["b held-out OOF MAP@20"]["met"]
    assert rows["ensemble demo eval score"]["margin"] == pytest.approx(0.28)
    assert rows["chosen osd: demo eval sAUC"]["margin"] == pytest.approx(0.05)
    assert rows["chosen osd: estimate minus eval sAUC, absolute"]["margin"] == pytest.approx(0.05)
    table = demo_table(demo_targets(runs, "e", subs))
    assert "| b held-out OOF MAP@20 | 0.5200 | 0.4900 | >= prior + 0.05 | -0.0200 | no |" in table


@pytest.mark.parametrize("name", ["/abs/path", "../../x", "..", "a/b", ".hidden", "", "a\\b", "x y"])
def test_names_that_would_escape_their_folder_stop_with_one_line(tmp_path, name):
    from fathom.config import load_config
    from fathom.runs import SubmissionFiles

    with pytest.raises(DataError, match="not a plain name"):
        Experiment(tmp_path, name)
    with pytest.raises(DataError, match="submission name .* not a plain name"):
        SubmissionFiles(tmp_path, name)
    with pytest.raises(DataError, match=r"command line \(name\)"):
        load_config("demo", [f"name={name!r}"])
    with pytest.raises(DataError, match="backbone"):
        Experiment(tmp_path, "e").fold(name, 0)
    assert Experiment(tmp_path, "demo-content.v2+x_1").fold("convnext_tiny.fb_in22k", 0).backbone == "convnext_tiny.fb_in22k"
