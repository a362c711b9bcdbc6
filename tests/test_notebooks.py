"""The three notebooks run end to end on small demo data (nbclient), with their parameters injected
the way papermill does: a cell of assignments right after the cell tagged `parameters`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from conftest import REPO

pytestmark = pytest.mark.slow  # trains, spawns processes or benchmarks: the full suite only

NOTEBOOKS = REPO / "notebooks"


def execute(name: str, cwd: Path, **params) -> nbformat.NotebookNode:
    book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    at = next(n for n, cell in enumerate(book.cells) if "parameters" in cell.metadata.get("tags", []))
    book.cells.insert(at + 1, nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in params.items())))
    NotebookClient(book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return book


def outputs(book, kind: str) -> list:
    return [o for cell in book.cells if cell.cell_type == "code" for o in cell.outputs if kind in o.get("data", {})]


def text_of(book) -> str:
    return "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "")
                   for cell in book.cells if cell.cell_type == "code" for o in cell.outputs)


def test_notebooks_hold_no_pipeline_logic():
    """Thin notebooks: no function or class definitions, no loops over data; the package does the work."""
    for path in NOTEBOOKS.glob("*.ipynb"):
        book = nbformat.read(path, as_version=4)
        nbformat.validate(book)
        code = "\n".join(c.source for c in book.cells if c.cell_type == "code")
        assert "def " not in code and "class " not in code and "for " not in code, path.name
        assert all(not c.get("outputs") for c in book.cells if c.cell_type == "code"), f"{path.name}: clear outputs"
        assert sum("parameters" in c.metadata.get("tags", []) for c in book.cells) == 1, path.name


def test_eda_notebook_on_demo(demo_dir, tmp_path):
    book = execute("01_eda", tmp_path, DATA=str(demo_dir), IMAGES=None)
    assert len(outputs(book, "image/png")) == 4  # long tail, super-categories, box sizes, samples
    text = text_of(book)
    assert "categories_in_train" in text and "median_box_side_px" in text


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A bundle with fathom's wheel and resnet18 'ImageNet' weights (random init: nothing is downloaded)."""
    import timm
    from safetensors.torch import save_file

    from fathom.bundle import build_bundle

    root = tmp_path_factory.mktemp("bundle")
    (root / "hub").mkdir()
    save_file(timm.create_model("resnet18", pretrained=False, num_classes=0).state_dict(),
              str(root / "hub" / "resnet18.safetensors"))
    build_bundle(root / "fathom-bundle", ["resnet18"], weights_from=root / "hub", extra_wheels=[])
    return root / "fathom-bundle"


def mounted_like_kaggle(folder: Path, at: Path, under: str = "", name: str | None = None) -> Path:
    """`folder` as Kaggle mounts a dataset uploaded with `--dir-mode tar`: packed into an archive with its
    subfolders, unpacked under /kaggle/input (`at`/input, then `under`, e.g. "datasets/me"), as `name`,
    every file and folder read-only."""
    import tarfile

    name = name or folder.name
    archive = at / f"{name}.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(folder, arcname=name)
    with tarfile.open(archive) as tar:
        tar.extractall(at / "input" / under, filter="data")
    mounted = at / "input" / under / name
    for path in sorted(mounted.rglob("*"), reverse=True) + [mounted]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    return mounted


def kaggle_like_python(at: Path) -> Path:
    """A bare venv that sees this environment's packages (Kaggle's image has torch, timm, ...) but not fathom."""
    import site

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", at / "venv"], check=True)
    image = at / "image-packages"
    image.mkdir()
    for entry in Path(site.getsitepackages()[0]).iterdir():
        if not entry.name.startswith(("fathom", "__editable__", "_fathom")) and entry.suffix != ".pth":
            (image / entry.name).symlink_to(entry)
    own = next((at / "venv" / "lib").glob("python*/site-packages"))
    (own / "kaggle-image.pth").write_text(f"{image}\n")
    return at / "venv" / "bin" / "python"


@pytest.mark.kaggle
def test_the_bundle_round_trip_installs_and_trains_offline(bundle, demo_dir, tmp_path):
    """The bundle archived and mounted read-only as Kaggle does, 02's own install cell run in a bare
    environment with the internet off (it finds the bundle under INPUT), then a tiny training from the
    installed wheel with the bundle's weights."""
    mounted = mounted_like_kaggle(bundle, tmp_path)
    python = kaggle_like_python(tmp_path)
    book = nbformat.read(NOTEBOOKS / "02_train_kaggle.ipynb", as_version=4)
    install = next(c.source for c in book.cells if c.cell_type == "code" and "find-links" in c.source)
    script = f"""INPUT, INTERNET, PACKAGE, BUNDLE = {str(tmp_path / 'input')!r}, False, None, None
{install}
import fathom
from fathom.bundle import weight_overrides
from fathom.cli import run_command
BUNDLE = {str(mounted)!r}
print("fathom from", fathom.__file__)
run_command("folds", "--data", {str(demo_dir)!r}, "--n-folds", 3, "--out", "folds.csv")
run_command("train", "--data", {str(demo_dir)!r}, "--folds", "folds.csv", "--config", "demo", "--runs", "runs",
            "backbones=[resnet18]", "image_size=32", "epochs=1", "batch_size=16", "folds=[0]", "by_backbone={{}}",
            "workers=0", "cache_dir=cache", *weight_overrides(BUNDLE))
"""
    assert subprocess.run([python, "-c", "import fathom"], capture_output=True).returncode != 0, "fathom is absent"
    run = subprocess.run([python, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert f"fathom from {tmp_path / 'venv'}" in run.stdout and "demo/resnet18: OOF MAP@20" in run.stdout
    assert (tmp_path / "runs" / "demo" / "resnet18" / "fold_0" / "done.json").is_file()


@pytest.mark.kaggle
def test_train_then_inference_notebooks_from_a_bundle(demo_dir, bundle, tmp_path):
    """Internet off, every input mounted read-only as newer Kaggle sessions do (competitions/<slug>,
    datasets/<owner>/<slug>, notebooks/<owner>/<slug>) and found by content. Two training sessions (the second
    continues the first's output, attached as an input), the cache in scratch space, then the inference
    notebook on the result."""
    import shutil

    from fathom.config import load_config
    from fathom.data.layout import load_dataset
    from fathom.kaggle import COMPETITION
    from fathom.submission import validate_submission_file

    labels = tmp_path / "labels"
    shutil.copytree(demo_dir, labels, ignore=shutil.ignore_patterns("images"))
    mounted_like_kaggle(labels, tmp_path, "competitions", COMPETITION)
    mounted_like_kaggle(demo_dir / "images", tmp_path, "datasets/me", "fathomnet-2023-frames")
    mounted = mounted_like_kaggle(bundle, tmp_path, "datasets/me")
    tiny = ["backbones=[resnet18]", "image_size=32", "epochs=1", "batch_size=16", "by_backbone={}", "workers=0",
            "tta_hflip=true"]
    session = dict(INPUT=str(tmp_path / "input"), INTERNET=False, SCRATCH=str(tmp_path / "scratch"), CONFIG="demo",
                   BACKBONE=None, TIME_BUDGET_H=0, DEVICE="auto", RESUME_FROM="auto")
    first = execute("02_train_kaggle", tmp_path, **session, WORK=str(tmp_path / "v1"), OVERRIDES=[*tiny, "folds=[0]"])
    text = text_of(first)
    assert "training in this process on the CPU" in text and "mode: internet off (INTERNET)" in text
    assert f"competition: {tmp_path / 'input' / 'competitions' / COMPETITION}" in text
    assert f"images: {tmp_path / 'input' / 'datasets' / 'me' / 'fathomnet-2023-frames'}" in text
    assert f"bundle: {mounted}" in text and "starting afresh" in text
    assert "estimated score (MAP@20 + sAUC) / 2: " in text and "kaggle competitions submit -c " + COMPETITION in text
    done_v1 = (tmp_path / "v1" / "runs" / "demo" / "resnet18" / "fold_0" / "done.json").read_bytes()
    mounted_like_kaggle(tmp_path / "v1", tmp_path, "notebooks/me", "fathom-train")
    train = execute("02_train_kaggle", tmp_path, **session, WORK=str(tmp_path / "v2"), OVERRIDES=[*tiny, "folds=[0,1]"])
    text = text_of(train)
    assert "resnet18/fold_0 (finished)" in text and "OOF MAP@20" in text
    run = tmp_path / "v2" / "runs" / "demo"
    assert (run / "resnet18" / "fold_0" / "done.json").read_bytes() == done_v1  # restored, reused, not retrained
    assert (run / "resnet18" / "fold_1" / "done.json").is_file() and not (run / "resnet18" / "fold_0").is_symlink()
    fold_cfg = load_config(str(run / "resnet18" / "fold_0" / "config.yaml"))
    assert fold_cfg.weights == {"resnet18": str((mounted / "weights" / "resnet18.safetensors").resolve())}
    assert (tmp_path / "v2" / "submission.csv").is_file() and "valid (" in text
    assert len(outputs(train, "text/markdown")) == 1  # the report, its plots inline
    assert "data:image/png;base64," in outputs(train, "text/markdown")[0]["data"]["text/markdown"]
    # WORK holds outputs only: the image cache is in SCRATCH
    assert {p.name for p in (tmp_path / "v2").iterdir()} <= {"runs", "folds", "submission.csv", "submissions",
                                                           "demo.csv", "demo.json"}, list((tmp_path / "v2").iterdir())
    assert not list((tmp_path / "v2").rglob("*.npy")) and list((tmp_path / "scratch").rglob("*.npy"))
    assert not list(run.rglob("last.pt")), "finished folds keep no resume state"

    ds = load_dataset(demo_dir, check_images=False)
    infer = execute("03_inference_kaggle", tmp_path, INPUT=str(tmp_path / "input"), INTERNET=False, RUN=str(run),
                    WORK=str(tmp_path / "infer"), SCRATCH=str(tmp_path / "scratch"), TTA=["tta_hflip=false"],
                    DEVICE="auto")
    submission = tmp_path / "infer" / "submission.csv"
    validate_submission_file(submission, ds.eval["id"], ds.categories.ids)
    assert "valid (" in text_of(infer) and len(outputs(infer, "text/markdown")) == 1
    assert (tmp_path / "infer" / "runs" / "demo" / "resnet18" / "fold_0" / "best.pt").is_symlink()
    views = (tmp_path / "infer" / "runs" / "demo" / "tta" / "views.json").read_text()
    assert "hflip" not in views  # the inference notebook's own TTA settings were used
    assert not (run / "tta" / "views.json").read_text() == views
    assert pd.read_csv(submission)["categories"].str.split().map(len).eq(20).all()


def test_a_failing_rank_fails_the_training_call_with_its_error(tmp_path, capsys):
    from fathom.errors import FathomError
    from fathom.launch import train_on_all_gpus

    with pytest.raises(FathomError, match="training on 2 GPUs failed"):
        train_on_all_gpus("--data", str(tmp_path / "nowhere"), "--folds", str(tmp_path / "f.csv"), "--config", "demo",
                          gpus=2)
    assert "data folder not found" in capsys.readouterr().out  # the ranks' output, streamed into the caller's
