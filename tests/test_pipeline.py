"""The CLI stages chained as run.sh chains them, on the small demo folder."""

import json
import subprocess
import sys

import pandas as pd
import pytest


def fathom(*args, cwd):
    return subprocess.run([sys.executable, "-m", "fathom", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, check=True)


@pytest.mark.slow
def test_prior_pipeline_writes_a_valid_scored_submission(demo_dir, tmp_path):
    fathom("folds", "--data", demo_dir, "--out", tmp_path / "folds.csv", cwd=tmp_path)
    run = fathom("prior", "--data", demo_dir, "--folds", tmp_path / "folds.csv", "--runs", tmp_path / "runs",
                 cwd=tmp_path)
    assert "OOF MAP@20" in run.stdout
    run = fathom("submit", "--data", demo_dir, "--exp", "prior", "--runs", tmp_path / "runs",
                 "--out", tmp_path / "subs", cwd=tmp_path)
    assert "demo eval score" in run.stdout
    record = json.loads((tmp_path / "subs" / "prior.json").read_text())
    assert 0 < record["eval_score"]["map20"] < 1 and record["eval_score"]["sauc"] is not None
    fathom("validate-submission", tmp_path / "subs" / "submission.csv", "--data", demo_dir, cwd=tmp_path)
    sub = pd.read_csv(tmp_path / "subs" / "submission.csv", dtype={"categories": str})
    solution = pd.read_csv(demo_dir / "solution.csv")
    assert list(sub["id"]) == list(solution["id"])
    assert sub["categories"].str.split(" ").map(len).eq(20).all()
    scored = json.loads(fathom("score", "--solution", demo_dir / "solution.csv", "--submission",
                               tmp_path / "subs" / "submission.csv", cwd=tmp_path).stdout)
    assert scored == record["eval_score"]


@pytest.mark.slow
def test_prior_ranks_by_train_frequency(demo_dir, tmp_path):
    from fathom.data.layout import load_dataset
    from fathom.predictions import Predictions

    fathom("folds", "--data", demo_dir, "--out", tmp_path / "folds.csv", cwd=tmp_path)
    fathom("prior", "--data", demo_dir, "--folds", tmp_path / "folds.csv", "--runs", tmp_path / "runs", cwd=tmp_path)
    test = Predictions.load(tmp_path / "runs" / "prior" / "test" / "prior.npz")
    oof = Predictions.load(tmp_path / "runs" / "prior" / "oof" / "prior.npz")
    ds = load_dataset(demo_dir, check_images=False)
    most_common = pd.Series([c for cats in ds.train["categories"] for c in cats]).value_counts().index[0]
    assert ds.categories.ids[test.fine[0].argmax()] == most_common
    assert list(oof.ids) == list(ds.train["id"]) and list(test.ids) == list(ds.eval["id"])
    assert len(set(test.osd.round(12))) > 1  # the prior's colour novelty


@pytest.mark.slow
def test_cli_reports_bad_data_in_one_line(tmp_path):
    run = subprocess.run([sys.executable, "-m", "fathom", "folds", "--data", tmp_path / "nowhere", "--out",
                          tmp_path / "f.csv"], capture_output=True, text=True)
    assert run.returncode == 2 and "nowhere" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.slow
def test_train_overrides_may_stand_anywhere(demo_dir, tmp_path, capsys):
    from fathom.cli import main

    folds = tmp_path / "folds.csv"
    fathom("folds", "--data", demo_dir, "--out", folds, cwd=tmp_path)
    for argv in (["train", "epochs=0", "--config", "demo", "--data", demo_dir, "--folds", folds],
                 ["train", "--config", "demo", "--backbone", "resnet18", "epochs=0", "--data", demo_dir,
                  "--folds", folds]):
        assert main([str(a) for a in argv]) == 2  # the override was read: it is the error
        assert "(epochs): epochs must be >= 1" in capsys.readouterr().err
    assert main(["train", "--config", "demo", "--bogus", "--folds", str(folds)]) == 2
    err = capsys.readouterr().err.strip()
    assert "unrecognized arguments: --bogus" in err and "\n" not in err


@pytest.mark.parametrize("module, absent", [
    ("fathom.submit", ("fathom.ensemble", "fathom.data.images", "fathom.data.cache", "PIL.Image", "torch")),
    ("fathom.ensemble.fit", ("fathom.data.images", "torch", "timm")),
    ("fathom.report", ("torch", "timm")),  # it imports folds and the prior too
])
def test_the_stages_that_need_no_model_import_no_model_and_submit_reads_no_pixels(module, absent):
    """submit only writes: nothing that tunes the ensemble or reads an image; the label-only stages pay no
    torch import (seconds each in `bash run.sh`)."""
    code = f"import sys, {module}; print(' '.join(m for m in {absent!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == [], f"{module} imports {loaded}"
