import os
import subprocess
import sys
from collections import Counter

import pandas as pd
import pytest

from fathom.data.layout import load_dataset
from fathom.errors import DataError
from fathom.folds import make_folds, read_folds

from conftest import REPO


def test_folds_disjoint_cover_and_deterministic(demo_dir):
    ds = load_dataset(demo_dir, check_images=False)
    a = make_folds(ds.train, ds.categories, n_folds=5, seed=42)
    b = make_folds(ds.train, ds.categories, n_folds=5, seed=42)
    assert a.equals(b) and list(a["id"]) == list(ds.train["id"])
    assert sorted(a["fold"].unique()) == list(range(5)) and not a["id"].duplicated().any()
    assert not a.equals(make_folds(ds.train, ds.categories, n_folds=5, seed=7))


@pytest.mark.slow
def test_folds_cli_writes_and_summarizes(demo_dir, tmp_path):
    out = tmp_path / "f.csv"
    run = subprocess.run([sys.executable, "-m", "fathom", "folds", "--data", demo_dir, "--out", out],
                         capture_output=True, text=True, check=True)
    assert "categories" in run.stdout and "wrote 150 ids" in run.stdout
    ds = load_dataset(demo_dir, check_images=False)
    assert len(read_folds(out, ds.train["id"])) == 150


@pytest.mark.slow
def test_real_labels_every_common_category_in_every_fold(real_dir):
    ds = load_dataset(real_dir, check_images=False)
    folds = make_folds(ds.train, ds.categories, n_folds=5, seed=42)
    merged = ds.train.merge(folds, on="id")
    counts = Counter(c for cats in merged["categories"] for c in cats)
    for category, n in counts.items():
        if n >= 5:
            in_folds = {f for cats, f in zip(merged["categories"], merged["fold"]) if category in cats}
            assert in_folds == set(range(5)), (category, n, in_folds)


@pytest.mark.slow
def test_committed_real_folds_are_reproducible(real_dir):
    ds = load_dataset(real_dir, check_images=False)
    committed = pd.read_csv(REPO / "folds" / "train_5fold_seed42.csv", dtype={"id": str})
    rebuilt = make_folds(ds.train, ds.categories, n_folds=5, seed=42)
    assert committed.equals(rebuilt)


@pytest.mark.slow
def test_committed_real_dive_folds_keep_dives_whole_and_spread_categories(real_dir):
    """The dive-grouped folds of the real labels: 503 dives, the largest 625 images, none in two folds; at
    least 70 of the 74 categories with >= 5 images in >= 3 dives are in the validation part of >= 3 folds;
    and the committed file is what `fathom folds --group dive` builds from the labels."""
    ds = load_dataset(real_dir, check_images=False)
    committed = pd.read_csv(REPO / "folds" / "train_5fold_seed42_dive.csv", dtype={"id": str})
    assert committed.equals(make_folds(ds.train, ds.categories, n_folds=5, seed=42, group="dive"))
    merged = ds.train.merge(committed, on="id", validate="one_to_one")
    assert merged["dive"].nunique() == 503 and merged["dive"].value_counts().max() == 625
    assert merged.groupby("dive")["fold"].nunique().max() == 1
    images, dives, folds = Counter(), {}, {}
    for cats, dive, fold in zip(merged["categories"], merged["dive"], merged["fold"]):
        for c in cats:
            images[c] += 1
            dives.setdefault(c, set()).add(dive)
            folds.setdefault(c, set()).add(fold)
    common = [c for c in images if images[c] >= 5 and len(dives[c]) >= 3]
    assert len(common) == 74
    assert sum(len(folds[c]) >= 3 for c in common) >= 70
    sizes = merged["fold"].value_counts()
    assert sizes.max() < 1.5 * sizes.min()  # the largest dive is a tenth of the data: sizes stay near 1,190


def test_dive_folds_of_the_demo_keep_dives_whole(demo_dir):
    ds = load_dataset(demo_dir, check_images=False)
    folds = make_folds(ds.train, ds.categories, n_folds=3, seed=0, group="dive")
    merged = ds.train.merge(folds, on="id")
    assert merged.groupby("dive")["fold"].nunique().max() == 1 and sorted(folds["fold"].unique()) == [0, 1, 2]
    assert folds.equals(make_folds(ds.train, ds.categories, n_folds=3, seed=0, group="dive"))


def test_images_without_a_dive_url_are_their_own_group():
    from fathom.data.layout import dive_of

    assert dive_of("https://fathomnet.org/static/m3/framegrabs/Doc%20Ricketts/images/0297/03_50_15_04.png") == (
        "Doc Ricketts", "Doc Ricketts/0297")
    assert dive_of("https://fathomnet.org/static/m3/staging/Mini%20ROV/images/145/x.png") == ("Mini ROV", "Mini ROV/145")
    assert dive_of("") == ("", "") and dive_of("x.png") == ("", "")


def test_read_folds_needs_every_train_id_and_drops_skipped_ones(demo_dir, tmp_path):
    ds = load_dataset(demo_dir, check_images=False)
    folds = make_folds(ds.train, ds.categories)
    folds.to_csv(tmp_path / "f.csv", index=False)
    kept = read_folds(tmp_path / "f.csv", ds.train["id"][5:])  # 5 images skipped
    assert len(kept) == 145 and set(kept["id"]) == set(ds.train["id"][5:])
    folds.iloc[3:].to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(DataError, match="3 train ids have no fold"):
        read_folds(tmp_path / "short.csv", ds.train["id"])


@pytest.mark.slow
def test_folds_files_are_byte_identical_across_runs(demo_dir, tmp_path):
    """Same data and seed: the same bytes, whatever Python's hash seed (set and dict order must not leak)."""
    written = []
    for n, hash_seed in enumerate(("1", "2")):
        out = tmp_path / f"folds{n}.csv"
        subprocess.run([sys.executable, "-m", "fathom", "folds", "--data", demo_dir, "--out", out], check=True,
                       capture_output=True, env={**os.environ, "PYTHONHASHSEED": hash_seed})
        written.append(out.read_bytes())
    assert written[0] == written[1]
