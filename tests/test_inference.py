"""TTA prediction, then the ensemble, submission and report end to end on a tiny trained experiment."""

import dataclasses
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import tiny_config
from fathom.ensemble.fit import fit_ensemble
from fathom.data.layout import load_dataset
from fathom.errors import DataError
from fathom.folds import make_folds
from fathom.infer.tta import predict_experiment
from fathom.models.net import FathomNet
from fathom.predictions import Predictions
from fathom.report import write_report
from fathom.submission import validate_submission_file
from fathom.submit import submit
from fathom.predictor import Predictor, predict
from fathom.runs import Experiment, SubmissionRecord, read_record, write_record
from fathom.atomic import without_nan
from fathom.train.precision import Precision
from fathom.train.run import train


def batches(images):
    zeros = torch.zeros(len(images), 1)
    return [(images, zeros, zeros)]


def test_hflip_tta_shapes_and_invariance_on_a_mirror_symmetric_frame():
    torch.manual_seed(0)
    model = FathomNet("resnet18").eval()
    precision = Precision.decide("fp32", torch.device("cpu"))
    half = torch.rand(3, 3, 32, 16)
    symmetric = torch.cat([half, torch.flip(half, dims=[3])], dim=3)
    plain = predict(model, batches(symmetric), precision, channels_last=False)
    flipped = predict(model, batches(symmetric), precision, channels_last=False, flips=(False, True))
    assert plain["fine"].shape == (3, 290) and plain["super"].shape == (3, 20)
    assert np.allclose(plain["fine"], flipped["fine"], atol=1e-6)
    # on any frame, the TTA output is the mean of the frame's and its mirror's probabilities (after sigmoid)
    frame = torch.rand(2, 3, 32, 32)
    both = predict(model, batches(frame), precision, channels_last=False, flips=(False, True))
    mirror = predict(model, batches(torch.flip(frame, dims=[3])), precision, channels_last=False)
    assert np.allclose(predict(model, batches(frame), precision, channels_last=False, flips=(True,))["fine"],
                       mirror["fine"], atol=1e-6)
    alone = predict(model, batches(frame), precision, channels_last=False)
    assert np.allclose(both["fine"], (alone["fine"] + mirror["fine"]) / 2, atol=1e-6)
    assert np.allclose(both["super"], (alone["super"] + mirror["super"]) / 2, atol=1e-6)


@pytest.fixture(scope="module")
def trained(demo_dir, tmp_path_factory):
    """Two backbones x two folds of 3, one epoch at 32 px: an experiment to predict, ensemble and report."""
    root = tmp_path_factory.mktemp("inference")
    dataset = load_dataset(demo_dir)
    folds = make_folds(dataset.train, dataset.categories, n_folds=3, seed=0)
    cfg = tiny_config(root, backbones=["resnet18", "resnet10t"], folds=[0, 1], epochs=1)
    train(cfg, dataset, folds, root / "runs")
    return dataset, root


@pytest.mark.slow
def test_predicting_again_reproduces_the_training_predictions_that_tta_reuses(trained):
    """TTA takes its 1x view from the training run's oof/test files: predicting it again must agree."""
    dataset, root = trained
    fold = root / "runs" / "tiny" / "resnet18" / "fold_1"
    predictor = Predictor.from_fold(fold, ["tta_hflip=false"])
    path_of = dict(zip(pd.concat([dataset.train["id"], dataset.eval["id"]]),
                       pd.concat([dataset.train["path"], dataset.eval["path"]])))
    for name in ("oof", "test"):
        saved = Predictions.load(fold / f"{name}.npz")
        again = predictor.predict([path_of[i] for i in saved.ids])
        assert np.allclose(again["fine"], saved.fine, atol=1e-5) and np.allclose(again["super"], saved.super, atol=1e-5)
    predict_experiment(dataset, root / "runs", "tiny", ["tta_hflip=false"])
    reused = Predictions.load(fold / "tta" / "oof.npz")
    assert reused.views == ("1x",)
    assert np.array_equal(reused.fine, Predictions.load(fold / "oof.npz").fine)


@pytest.mark.slow
def test_adapted_batch_norm_normalises_with_the_predicted_frames_statistics_and_then_restores_the_trained_ones(
        trained):
    """tta_adapt_bn (AdaBN): each predicted set with its own BatchNorm statistics. Within the block the running
    means are those of the set's frames; after it the trained buffers are back bit for bit, so the next set
    (and the OOF split) is not predicted with the previous set's statistics."""
    dataset, root = trained
    fold = root / "runs" / "tiny" / "resnet18" / "fold_1"
    predictor = Predictor.from_fold(fold, ["tta_hflip=false", "tta_adapt_bn=true"])
    stem = predictor.model.backbone.bn1
    trained_state = {k: v.clone() for k, v in predictor.model.state_dict().items()}
    paths = list(dataset.eval["path"])
    with predictor.batch_norm_of(paths):
        adapted_mean = stem.running_mean.clone()
        assert not torch.allclose(adapted_mean, trained_state["backbone.bn1.running_mean"])
        assert not predictor.model.training and not stem.training
    assert all(torch.equal(v, trained_state[k]) for k, v in predictor.model.state_dict().items())
    adapted = predictor.predict(paths)
    plain = Predictor.from_fold(fold, ["tta_hflip=false"]).predict(paths)
    assert adapted["fine"].shape == plain["fine"].shape and not np.allclose(adapted["fine"], plain["fine"])
    assert all(torch.equal(v, trained_state[k]) for k, v in predictor.model.state_dict().items())
    views = predict_experiment(dataset, root / "runs", "tiny", ["tta_hflip=false", "tta_adapt_bn=true"])
    assert views["resnet18"] == ["1x+own_bn"]


@pytest.mark.slow
def test_tta_ensemble_submission_and_report_end_to_end(trained, tmp_path):
    dataset, root = trained
    runs = root / "runs"
    views = predict_experiment(dataset, runs, "tiny", ["tta_scales=[1.0,1.5]"])
    assert views["resnet18"] == ["1x", "1x+hflip", "1.5x", "1.5x+hflip"]
    oof = Predictions.load(runs / "tiny" / "tta" / "oof" / "resnet10t.npz")
    test = Predictions.load(runs / "tiny" / "tta" / "test" / "resnet10t.npz")
    validation = [Predictions.load(runs / "tiny" / "resnet10t" / f"fold_{k}" / "oof.npz").ids for k in (0, 1)]
    assert len(oof.ids) == len(set(oof.ids)) and set(oof.ids) == set(np.concatenate(validation))
    assert list(test.ids) == list(dataset.eval["id"])

    with pytest.raises(DataError, match="ensemble.json.*run `python -m fathom ensemble --exp tiny`"):
        submit(dataset, runs, "tiny", tmp_path / "subs", "tiny")  # submit writes; the ensemble stage tunes
    labels_only = tmp_path / "labels_only"  # the ensemble stage reads no pixels: the data without its images
    shutil.copytree(dataset.root, labels_only, ignore=shutil.ignore_patterns("images"))
    fit_ensemble(load_dataset(labels_only, check_images=False), runs, "tiny")
    submitted = submit(dataset, runs, "tiny", tmp_path / "subs", "tiny")
    record = submitted.ensemble
    assert record.tta is True and record.members == ["resnet10t", "resnet18"]
    assert sum(record.weights.values()) == pytest.approx(1.0) and min(record.weights.values()) >= 0
    assert record.exponents["a"] == 1.0 and record.exponents["b"] >= 0
    assert record.strategy in record.strategies
    for row in record.strategies.values():
        assert 0 <= row.held_out <= 1 and 0 <= row.in_sample <= 1 and row.demo_eval_map20 is not None
    assert record.chosen.held_out >= record.strategies["best single"].held_out
    assert record.osd.method in record.osd.sauc and submitted.eval_score is not None and record.git_commit
    as_json = lambda r: without_nan(dataclasses.asdict(r))  # noqa: E731 (NaN is written as null)
    assert as_json(Experiment(runs, "tiny").ensemble()) == as_json(record)  # the records read back as written
    assert as_json(read_record(SubmissionRecord, tmp_path / "subs" / "tiny.json")) == as_json(submitted)
    validate_submission_file(tmp_path / "subs" / "submission.csv", dataset.eval["id"], dataset.categories.ids)
    sub = pd.read_csv(tmp_path / "subs" / "tiny.csv")
    assert sub["osd"].nunique() > 1

    fold = runs / "tiny" / "resnet18" / "fold_0"
    own = {split: Predictions.load(fold / f"{split}.npz") for split in ("train", "oof", "test")}
    assert all(p.extras["embedding"].dtype == np.float16 and p.extras["embedding"].shape[1] == 512
               for p in own.values())
    assert not set(own["train"].ids) & set(own["oof"].ids)  # the fold model's own training frames
    assert "embedding" not in Predictions.load(runs / "tiny" / "oof" / "resnet18.npz").extras  # never mixed
    assert {"knn", "knn_aligned", "mahalanobis", "mahalanobis_aligned", "domain"} <= set(record.osd.sauc)
    assert all(row.demo_eval is not None for row in record.osd.sauc.values())

    report = write_report(dataset, runs, "tiny", tmp_path / "subs").read_text()
    assert "held-out MAP@20" in report and f"Chosen: **{record.osd.method}**" in report
    assert "## Validation against the test" in report and "| frequency prior |" in report
    assert "| knn_aligned |" in report and "| domain |" in report and "On the demo eval solution" in report
    assert "TTA gain" in report and "fold 1" in report
    for png in ("report_ap_vs_frequency.png", "report_oof_by_backbone.png"):
        assert (runs / "tiny" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_members_with_different_ids_are_refused(trained, tmp_path):
    import shutil

    dataset, root = trained
    runs = tmp_path / "runs"
    shutil.copytree(root / "runs" / "tiny", runs / "tiny")
    for name in ("oof.npz", "tta/oof.npz"):
        path = runs / "tiny" / "resnet18" / "fold_0" / name
        if path.is_file():
            p = Predictions.load(path)
            dataclasses.replace(p, ids=np.r_[p.ids[:-1], ["someone-else"]]).save(path)
    with pytest.raises(DataError, match="fold_0/(tta/)?oof.*ids differ"):
        fit_ensemble(dataset, runs, "tiny")


@pytest.mark.slow
def test_predict_refuses_overrides_that_would_change_the_trained_model(trained):
    dataset, root = trained
    with pytest.raises(DataError, match="prediction may only change"):
        predict_experiment(dataset, root / "runs", "tiny", ["image_size=64"])


@pytest.mark.slow
def test_a_retrained_fold_comes_without_tta_files_until_predicted_again(trained, tmp_path):
    """A retrain replaces the whole fold folder, TTA files of the old model included; the ensemble then uses
    the training's own predictions, and a new `predict` brings TTA back."""
    import shutil

    from fathom.ensemble.members import load_members

    dataset, root = trained
    runs = tmp_path / "runs"
    shutil.copytree(root / "runs" / "tiny", runs / "tiny")
    predict_experiment(dataset, runs, "tiny", ["tta_hflip=false"])
    assert load_members(dataset, runs, "tiny").tta
    folds = make_folds(dataset.train, dataset.categories, n_folds=3, seed=0)
    cfg = tiny_config(root, backbones=["resnet18", "resnet10t"], folds=[0, 1], epochs=1, lr=5e-4)
    train(cfg, dataset, folds, runs, backbones=["resnet18"], fold_ids=[1])
    assert not (runs / "tiny" / "resnet18" / "fold_1" / "tta").exists()
    assert (runs / "tiny" / "resnet18" / "fold_0" / "tta" / "oof.npz").is_file()
    assert not load_members(dataset, runs, "tiny").tta
    predict_experiment(dataset, runs, "tiny", ["tta_hflip=false"])
    assert load_members(dataset, runs, "tiny").tta


@pytest.mark.slow
def test_cli_predict_ensemble_submit_report_print_the_choice(trained, tmp_path, capsys):
    import shutil

    from fathom.cli import main

    dataset, root = trained
    runs = tmp_path / "runs"
    shutil.copytree(root / "runs" / "tiny", runs / "tiny")
    common = ["--data", str(dataset.root), "--exp", "tiny", "--runs", str(runs)]
    assert main(["predict", *common, "workers=0"]) == 0
    assert "TTA views 1x, 1x+hflip" in capsys.readouterr().out
    assert main(["ensemble", *common, "--osd", "knn_aligned"]) == 0
    assert "osd = knn_aligned (pinned by --osd)" in capsys.readouterr().out
    assert main(["submit", *common, "--out", str(tmp_path / "subs")]) == 0
    assert json.loads((tmp_path / "subs" / "tiny.json").read_text())["ensemble"]["osd"]["method"] == "knn_aligned"
    assert main(["ensemble", *common, "--osd", "psychic"]) == 2
    assert "unknown osd method 'psychic'" in capsys.readouterr().err
    assert main(["ensemble", *common]) == 0
    assert "held out (best single" in capsys.readouterr().out
    assert main(["submit", *common, "--out", str(tmp_path / "subs")]) == 0
    assert main(["report", *common]) == 0
    out = capsys.readouterr().out
    assert "demo eval score" in out and (tmp_path / "subs" / "submission.csv").is_file()
    assert f"wrote {runs / 'tiny' / 'report.md'}" in out
    # the closing lines: every backbone and the ensemble against the prior, held out and on the demo eval
    prior = {"map20": 0.2, "sauc": 0.0, "score": 0.1}
    write_record(SubmissionRecord("prior", "prior", "x", 1, [], None, prior), tmp_path / "subs" / "prior.json")
    assert main(["report", *common, "--out", str(tmp_path / "subs")]) == 0
    closing = capsys.readouterr().out.strip().splitlines()[-4:]
    assert sorted(line.split(":")[0] for line in closing[:2]) == ["tiny/resnet10t", "tiny/resnet18"]
    assert all("held-out OOF MAP@20" in line and "against the frequency prior's" in line for line in closing[:3])
    ours = json.loads((tmp_path / "subs" / "tiny.json").read_text())["eval_score"]
    assert closing[3] == (f"tiny ensemble: demo eval score {ours['score']:.4f} (MAP@20 {ours['map20']:.4f}, sAUC "
                          f"{ours['sauc']:.4f}) against the frequency prior's 0.1000 (MAP@20 0.2000, sAUC 0.0000) "
                          f"({ours['score'] - 0.1:+.4f})")
