"""fathom.kaggle: inputs found by content under any of Kaggle's mount layouts, frames fetched with the internet
on, the closing lines, the kernel folder `kaggle kernels push` takes, and the progress-bar rule."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from conftest import REPO
from fathom.errors import DataError
from fathom.kaggle import COMPETITION, closing_lines, fetch_frames, find_inputs, write_kernel
from fathom.runs import Done, Experiment, write_record
from test_download import FAST
from test_runs import ensemble_record


def attach(demo_dir: Path, root: Path, layout: str) -> dict[str, Path]:
    """The competition (labels), a frames dataset, a bundle and an earlier output under `root`, mounted as
    Kaggle's classic sessions (`classic`) or newer ones (`nested`) do."""
    places = {"classic": {"competition": COMPETITION, "images": "my-frames", "bundle": "fathom-bundle",
                          "output": "fathom-train"},
              "nested": {"competition": f"competitions/{COMPETITION}", "images": "datasets/me/my-frames/frames",
                         "bundle": "datasets/me/fathom-bundle", "output": "notebooks/me/fathom-train"}}[layout]
    where = {name: root / rel for name, rel in places.items()}
    shutil.copytree(demo_dir, where["competition"], ignore=shutil.ignore_patterns("images"))
    shutil.copytree(demo_dir / "images", where["images"])
    where["bundle"].mkdir(parents=True)
    (where["bundle"] / "bundle.json").write_text("{}")
    (where["output"] / "runs" / "demo").mkdir(parents=True)
    return where


@pytest.mark.parametrize("layout", ["classic", "nested"])
def test_inputs_are_found_by_what_they_hold_under_either_mount_layout(demo_dir, tmp_path, layout):
    where = attach(demo_dir, tmp_path / "input", layout)
    (tmp_path / "input" / "decoy").mkdir()  # another dataset holding a few frames of other names
    (tmp_path / "input" / "decoy" / "frame.png").write_bytes(b"not ours")
    inputs = find_inputs(tmp_path / "input", exp="demo")
    assert (inputs.competition, inputs.images, inputs.bundle) == (where["competition"], where["images"],
                                                                 where["bundle"])
    assert inputs.outputs == (where["output"],) and inputs.runs() == [where["output"] / "runs" / "demo"]
    assert find_inputs(tmp_path / "input", exp="other").outputs == ()
    assert f"images: {where['images']}" in inputs.lines()
    assert inputs.require("competition", "images", "bundle") is inputs


def test_what_is_missing_is_one_line_saying_how_to_attach_it(tmp_path):
    (tmp_path / "input").mkdir()
    inputs = find_inputs(tmp_path / "input")
    assert inputs.lines()[:3] == ["competition: not found", "images: not found", "bundle: not found"]
    with pytest.raises(DataError) as err:
        inputs.require("competition", "images")
    text = str(err.value)
    assert "\n" not in text and f"Competitions > {COMPETITION}" in text and "turn the internet on" in text
    assert find_inputs(tmp_path / "nowhere").competition is None  # no /kaggle/input at all: nothing found


def test_frames_are_fetched_from_their_coco_url_and_failures_are_kept_in_the_output(server, tmp_path):
    competition = tmp_path / "competition"
    for split, faults in (("train", ["ok", "gone"]), ("eval", ["ok"])):
        path = competition / "object_detection" / f"{split}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"images": [
            {"id": n + 1, "file_name": f"{split}-{f}.png", "coco_url": server.url(f, f"{split}-{f}.png"), "width": 24,
             "height": 16} for n, f in enumerate(faults)]}))
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(DataError, match="1 frames of object_detection/train.json could not be downloaded.*"
                                        "ALLOW_MISSING_IMAGES"):
        fetch_frames(competition, tmp_path / "frames", work, settings=FAST)
    assert "train-gone.png" in (work / "train_download_failures.csv").read_text()
    out = fetch_frames(competition, tmp_path / "frames", work, allow_missing=True, settings=FAST)
    assert sorted(p.name for p in out.glob("*.png")) == ["eval-ok.png", "train-ok.png"]


def test_the_closing_lines_give_the_estimated_score_and_the_submit_command(tmp_path):
    record = ensemble_record()
    exp = Experiment(tmp_path / "runs", "e")
    for member in record.members:
        exp.fold(member, 0).path.mkdir(parents=True)
        exp.fold(member, 0).write_done(Done("f", 0.5, 1.0))
    write_record(record, exp.ensemble_file)
    lines = closing_lines(tmp_path / "runs", "e", tmp_path / "submission.csv")
    estimate = (record.chosen.held_out + record.osd.chosen.estimate) / 2
    assert f"estimated score (MAP@20 + sAUC) / 2: {estimate:.4f}" in "\n".join(lines)
    assert lines[-1].startswith(f"submit it: kaggle competitions submit -c {COMPETITION} -f submission.csv -m ")


def test_the_kernel_folder_holds_the_notebook_with_its_parameters_and_the_metadata_push_reads(tmp_path, capsys):
    from fathom.cli import main

    out = tmp_path / "kernel"
    assert main(["kaggle-kernel", "--out", str(out), "--user", "me", "--dataset", "me/fathom-bundle",
                 "--resume-from", "me/fathom-train", "--no-internet", "--set", 'OVERRIDES=["folds=[0]"]',
                 "--set", "TIME_BUDGET_H=9"]) == 0
    assert "kaggle kernels push -p" in capsys.readouterr().out
    metadata = json.loads((out / "kernel-metadata.json").read_text())
    assert metadata == {"id": "me/fathom-train", "title": "fathom-train", "code_file": "02_train_kaggle.ipynb",
                        "language": "python", "kernel_type": "notebook", "is_private": True, "enable_gpu": True,
                        "enable_tpu": False, "enable_internet": False, "dataset_sources": ["me/fathom-bundle"],
                        "competition_sources": [COMPETITION], "kernel_sources": ["me/fathom-train"],
                        "model_sources": [], "machine_shape": "NvidiaTeslaT4"}
    book = nbformat.read(out / "02_train_kaggle.ipynb", as_version=4)
    nbformat.validate(book)
    at = next(n for n, c in enumerate(book.cells) if "parameters" in c.metadata.get("tags", []))
    assert book.cells[at + 1].source.splitlines() == ["INTERNET = False", "OVERRIDES = ['folds=[0]']",
                                                      "TIME_BUDGET_H = 9"]
    original = nbformat.read(REPO / "notebooks" / "02_train_kaggle.ipynb", as_version=4)
    assert len(book.cells) == len(original.cells) + 1
    with pytest.raises(DataError, match="is not OWNER/SLUG"):
        write_kernel(tmp_path / "other", REPO / "notebooks" / "02_train_kaggle.ipynb", "me/x", datasets=["bundle"])
    assert not (tmp_path / "other").exists()


def test_progress_bars_show_in_a_notebook_or_terminal_and_under_torchrun_only_where_asked(monkeypatch):
    from fathom.progress import FORCED, progress

    monkeypatch.delenv(FORCED, raising=False)
    assert progress(range(3), enabled=False).disable
    monkeypatch.setenv(FORCED, "1")  # a torchrun process under a notebook: stdout is a pipe
    bar = progress(range(3))
    assert not bar.disable and bar.mininterval == 30.0
    assert progress(range(3), enabled=False).disable  # other ranks
