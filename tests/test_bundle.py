"""`python -m fathom bundle`: contents, refusals, atomic rebuild, and how notebooks consume it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fathom.bundle import build_bundle, read_manifest, restore_run, weight_overrides
from fathom.errors import DataError, FathomError


def fake_run(runs: Path, exp: str = "e") -> Path:
    """A run folder as training leaves it: one finished fold (resume state kept, a TTA file), one run of
    another fold begun in its staging folder."""
    files = {runs / exp / "resnet18" / "fold_0": ("best.pt", "last.pt", "config.yaml", "oof.npz", "test.npz",
                                                  "tta/oof.npz", "done.json"),
             runs / exp / "staging" / "resnet18" / "fold_1": ("best.pt", "last.pt", "config.yaml", "meta.json")}
    for folder, names in files.items():
        for name in names:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(name)
    (runs / exp / "summary.json").write_text("{}")
    return runs / exp


@pytest.mark.slow
def test_bundle_holds_wheels_source_weights_and_finished_folds(tmp_path):
    import timm
    from safetensors.torch import save_file

    (tmp_path / "hub").mkdir()
    save_file(timm.create_model("resnet18", num_classes=0).state_dict(), str(tmp_path / "hub" / "resnet18.safetensors"))
    fake_run(tmp_path / "runs")
    out = tmp_path / "b"
    manifest = build_bundle(out, ["resnet18"], tmp_path / "hub", tmp_path / "runs", "e", extra_wheels=[])
    assert manifest == read_manifest(out) and manifest["run"] == {"exp": "e", "folds": {"resnet18": ["fold_0"]}}
    assert [p.name for p in (out / "wheels").glob("*.whl")] == ["fathom-0.1.0-py3-none-any.whl"]
    assert (out / "wheels" / "requirements.txt").read_text().split() == ["fathom"]
    assert (out / "src" / "fathom" / "bundle.py").is_file() and not list(out.rglob("__pycache__"))
    fold = out / "runs" / "e" / "resnet18"
    assert sorted(p.name for p in (fold / "fold_0").iterdir()) == [
        "best.pt", "config.yaml", "done.json", "oof.npz", "test.npz", "tta"]  # no last.pt
    assert not (fold / "fold_1").exists() and not (out / "runs" / "e" / "staging").exists()  # runs begun stay out
    assert json.loads((out / "dataset-metadata.json").read_text())["id"].endswith("/fathom-bundle")
    assert "pip install --no-index" in (out / "README.md").read_text()
    [override] = weight_overrides(out)
    assert override == "weights=" + json.dumps({"resnet18": str((out / "weights" / "resnet18.safetensors").resolve())})
    assert not list(tmp_path.glob(".b.*"))  # no build folder left beside it


@pytest.mark.slow
def test_extra_wheels_come_from_pip_download(tmp_path):
    first = tmp_path / "first"
    build_bundle(first, extra_wheels=[])
    # the only index reachable offline: a folder holding a wheel (here fathom's own, under its name)
    build_bundle(tmp_path / "b", extra_wheels=["fathom"], pip_args=["--no-index", "--find-links", str(first / "wheels")])
    assert (tmp_path / "b" / "wheels" / "requirements.txt").read_text().split() == ["fathom", "fathom"]
    with pytest.raises(FathomError, match="downloading wheels of no-such-package"):
        build_bundle(tmp_path / "c", extra_wheels=["no-such-package"], pip_args=["--no-index"])
    assert not (tmp_path / "c").exists() and not list(tmp_path.glob(".c.*"))


@pytest.mark.slow
def test_weights_that_do_not_fit_are_refused_when_bundling(tmp_path):
    import timm
    from safetensors.torch import save_file

    (tmp_path / "hub").mkdir()
    save_file(timm.create_model("resnet34", num_classes=0).state_dict(), str(tmp_path / "hub" / "resnet18.safetensors"))
    with pytest.raises(DataError, match="do not fit backbone 'resnet18'"):
        build_bundle(tmp_path / "b", ["resnet18"], tmp_path / "hub", extra_wheels=[])
    with pytest.raises(DataError, match="no weights file for backbone 'densenet121'"):
        build_bundle(tmp_path / "b", ["densenet121"], tmp_path / "hub", extra_wheels=[])
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_rebuild_replaces_a_bundle_but_never_another_folder(tmp_path):
    out = tmp_path / "b"
    build_bundle(out, extra_wheels=[])
    (out / "stale.txt").write_text("from the old bundle")
    build_bundle(out, extra_wheels=[])
    assert not (out / "stale.txt").exists() and (out / "bundle.json").is_file()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(DataError, match="not a bundle"):
        build_bundle(tmp_path / "mine", extra_wheels=[])
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_restore_run_links_checkpoints_and_copies_the_rest(tmp_path):
    source = fake_run(tmp_path / "input" / "runs")
    dest = restore_run(source, tmp_path / "work" / "runs")
    fold = dest / "resnet18" / "fold_0"
    assert dest == tmp_path / "work" / "runs" / "e" and (fold / "best.pt").is_symlink()
    tta = fold / "tta" / "oof.npz"
    assert not tta.is_symlink() and tta.read_text() == "tta/oof.npz"
    assert tta.stat().st_mtime == (source / "resnet18" / "fold_0" / "tta" / "oof.npz").stat().st_mtime
    tta.write_text("re-predicted")
    restore_run(source, tmp_path / "work" / "runs")  # a rerun of the notebook starts again from the input
    assert tta.read_text() == "tta/oof.npz"
    assert (source / "resnet18" / "fold_0" / "tta" / "oof.npz").read_text() == "tta/oof.npz"
    with pytest.raises(DataError, match="no finished folds"):
        restore_run(tmp_path / "input" / "runs" / "nothing", tmp_path / "work" / "runs")


def test_restore_run_merges_sessions_of_one_experiment(tmp_path):
    first = fake_run(tmp_path / "session1" / "runs")
    second = tmp_path / "session2" / "runs" / "e"
    (second / "densenet121" / "fold_0").mkdir(parents=True)
    (second / "densenet121" / "fold_0" / "done.json").write_text("{}")
    dest = restore_run([first, second], tmp_path / "work" / "runs")
    assert (dest / "resnet18" / "fold_0" / "done.json").is_file() and (dest / "densenet121" / "fold_0").is_dir()
    with pytest.raises(DataError, match="resnet18/fold_0 is also in"):
        restore_run([first, first], tmp_path / "other")
    (tmp_path / "s3" / "runs" / "f" / "resnet18" / "fold_0").mkdir(parents=True)
    with pytest.raises(DataError, match="different experiments"):
        restore_run([first, tmp_path / "s3" / "runs" / "f"], tmp_path / "other")


def test_a_folder_without_manifest_is_named(tmp_path):
    with pytest.raises(DataError, match="not a fathom bundle"):
        weight_overrides(tmp_path)


def test_restore_for_training_copies_finished_folds_and_runs_begun(tmp_path):
    from fathom.bundle import restore_for_training

    fake_run(tmp_path / "v1" / "runs")  # fold_0 finished, fold_1 begun in staging (with last.pt)
    later = tmp_path / "v2" / "runs" / "e"
    for fold in ("fold_0", "fold_1"):  # a later session: a retrain of fold_0 begun, fold_1 further
        (later / "staging" / "resnet18" / fold).mkdir(parents=True)
        (later / "staging" / "resnet18" / fold / "last.pt").write_text(f"later {fold}")
    (later / "probe" / "resnet18" / "fold_0").mkdir(parents=True)
    (later / "probe" / "resnet18" / "fold_0" / "done.json").write_text("{}")
    restored = restore_for_training([tmp_path / "v1", tmp_path / "v2"], tmp_path / "runs", "e")
    assert restored == ["probe/resnet18/fold_0 (finished)", "resnet18/fold_0 (finished)",
                        "staging/resnet18/fold_0 (unfinished)", "staging/resnet18/fold_1 (unfinished)"]
    dest = tmp_path / "runs" / "e"
    assert (dest / "resnet18" / "fold_0" / "done.json").is_file()
    assert (dest / "resnet18" / "fold_0" / "last.pt").read_text() == "last.pt", "a run begun never replaces a fold"
    assert (dest / "staging" / "resnet18" / "fold_1" / "last.pt").read_text() == "later fold_1"
    assert not (dest / "staging" / "resnet18" / "fold_1" / "best.pt").exists()
    assert not any(p.is_symlink() for p in dest.rglob("*")), "copies: the output must stand without its inputs"
    assert restore_for_training([], tmp_path / "runs", "e") == []
    with pytest.raises(DataError, match="holds no runs/e/ folder"):
        restore_for_training([tmp_path / "hub-that-is-not-there"], tmp_path / "runs", "e")


def test_every_upload_command_shown_keeps_the_subfolders():
    """`kaggle datasets create/version` skips subfolders unless given --dir-mode tar (or zip): every such
    command the README, docs, notebooks and the bundle's own README and manifest show carries it."""
    import re

    from conftest import REPO
    from fathom.bundle import UPLOAD, bundle_readme

    texts = {p.relative_to(REPO): p.read_text() for p in [REPO / "README.md", *(REPO / "docs").glob("*.md"),
                                                          *(REPO / "notebooks").glob("*.ipynb")]}
    texts["bundle README"] = bundle_readme({"git_commit": "x", "wheels": ["fathom"], "weights": {}, "run": None})
    texts["bundle.json"] = UPLOAD
    shown = [(name, m.group(0)) for name, text in texts.items()
             for m in re.finditer(r"kaggle datasets (?:create|version)[^`\n\"]*", text)]
    assert len(shown) >= 6
    assert [s for s in shown if "--dir-mode tar" not in s[1] and "--dir-mode zip" not in s[1]] == []
