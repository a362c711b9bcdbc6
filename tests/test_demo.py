import hashlib
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fathom.data.layout import load_dataset
from fathom.demo import make
from fathom.demo.make import make_demo
from fathom.errors import DataError


def digest(folder):
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_deterministic_given_seed(tmp_path):
    for name in ("a", "b"):
        make_demo(tmp_path / name, n_train=20, n_eval=10, size=96, seed=5)
    make_demo(tmp_path / "c", n_train=20, n_eval=10, size=96, seed=6)
    assert digest(tmp_path / "a") == digest(tmp_path / "b") != digest(tmp_path / "c")


def test_a_frame_that_fails_to_save_stops_the_build_before_the_marker(tmp_path, monkeypatch):
    saved, save_png = [], make.save_png

    def save_or_fail(picture, path):  # frames are saved on the writer's thread, while the next renders
        if len(saved) == 3:
            raise OSError(28, "No space left on device", str(path))
        saved.append(path)
        save_png(picture, path)

    monkeypatch.setattr(make, "save_png", save_or_fail)
    with pytest.raises(OSError, match="No space left"):
        make_demo(tmp_path / "e", n_train=12, n_eval=4, size=64)
    assert not (tmp_path / "e" / make.MARKER).exists()  # the folder does not count as built
    assert not (tmp_path / "e" / "multilabel_classification").exists()
    monkeypatch.undo()
    assert make_demo(tmp_path / "e", n_train=12, n_eval=4, size=64)  # the next call rebuilds the leftover
    assert len(list((tmp_path / "e" / "images").iterdir())) == 16


def test_a_folder_with_other_files_is_never_taken_for_a_demo(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="holds no demo data"):
        make_demo(tmp_path / "mine", n_train=5, n_eval=5, size=64)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_up_to_date_folder_is_not_rebuilt(tmp_path):
    assert make_demo(tmp_path / "d", n_train=5, n_eval=5, size=64)
    assert not make_demo(tmp_path / "d", n_train=5, n_eval=5, size=64)
    assert make_demo(tmp_path / "d", n_train=6, n_eval=5, size=64)
    assert len(list((tmp_path / "d" / "images").iterdir())) == 11  # old images were cleared


def test_label_statistics_follow_the_competition(tmp_path):
    make_demo(tmp_path / "s", n_train=800, n_eval=10, size=32, seed=0)  # tiny frames: labels are what matters
    train = load_dataset(tmp_path / "s", check_images=False).train
    counts = Counter(c for cats in train["categories"] for c in cats)
    per_image = train["categories"].map(len)
    assert 0.33 < counts.most_common(1)[0][1] / len(train) < 0.5  # one category in ~40% of images
    assert sum(n < 5 for n in counts.values()) >= 40  # a long tail
    assert len(counts) < 0.5 * 290  # most categories never occur in train
    assert 1.35 < per_image.mean() < 1.8 and (per_image >= 6).sum() >= 3


def test_eval_is_shifted(demo_dir):
    ds = load_dataset(demo_dir, check_images=False)
    solution = pd.read_csv(demo_dir / "solution.csv", dtype={"categories": str})
    seen = {c for cats in ds.train["categories"] for c in cats}
    eval_labels = solution["categories"].str.split(" ").map(lambda t: {int(x) for x in t})
    unseen_share = eval_labels.map(lambda s: len(s - seen) / len(s))
    assert set(solution["osd"]) == {0, 1} and list(solution["id"]) == list(ds.eval["id"])
    assert unseen_share[solution["osd"] == 1].mean() > unseen_share[solution["osd"] == 0].mean() + 0.1

    def darkness(ids):
        return np.mean([255 - np.asarray(Image.open(demo_dir / "images" / f"{i}.png")).mean() for i in ids])

    assert darkness(solution["id"][solution["osd"] == 1]) > darkness(solution["id"][solution["osd"] == 0])


def test_eval_comes_mostly_from_unseen_dives_of_another_platform_mix(tmp_path):
    """The whole-test shift: ~91% of eval frames from dives train never shows, Doc Ricketts most of eval
    and a minority of train, and every frame's dive in its coco_url."""
    make_demo(tmp_path / "w", n_train=300, n_eval=200, size=32, seed=0)
    ds = load_dataset(tmp_path / "w", check_images=False)
    assert (ds.train["dive"] != "").all() and (ds.eval["dive"] != "").all()
    unseen = ~ds.eval["dive"].isin(set(ds.train["dive"]))
    assert 0.85 < unseen.mean() < 0.95
    assert (ds.eval["platform"] == "Doc Ricketts").mean() > 0.6 > 0.5 > (ds.train["platform"] == "Doc Ricketts").mean()
    assert ds.train["dive"].nunique() >= 20 and ds.train["dive"].value_counts().max() <= 30
    assert ds.train["date_captured"].str[:4].astype(int).max() < ds.eval.loc[unseen, "date_captured"].str[:4].astype(int).min()


def test_images_match_json_sizes(demo_dir):
    ds = load_dataset(demo_dir)
    for row in ds.train.head(10).itertuples():
        assert Image.open(row.path).size == (row.width, row.height)
