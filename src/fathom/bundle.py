"""`python -m fathom bundle`: the folder to upload as a Kaggle dataset, so notebooks run with internet off.

DIR/
  wheels/                  fathom's own wheel plus wheels of what Kaggle's image lacks;
  wheels/requirements.txt  the names to install:  pip install --no-index --no-deps --find-links DIR/wheels -r ...
  src/fathom/              the package source, to read on Kaggle (the wheel is what gets installed)
  weights/<backbone>.safetensors   ImageNet weights of a config's backbones (--weights)
  runs/<exp>/              trained folds: best checkpoints, configs, OOF and test predictions (--checkpoints)
  bundle.json              what is inside, and the git commit it was built from
  dataset-metadata.json    for `kaggle datasets create -p DIR --dir-mode tar`
  README.md                how to attach it

The folder is built beside DIR and renamed into place at the end: an interrupted build leaves the
previous bundle (or nothing), never a half-filled one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from fathom.errors import DataError, FathomError
from fathom.runs import Experiment, FoldDir
from fathom.provenance import git_commit

# Kaggle's Python image already has torch, torchvision, timm, albumentations, pandas, scikit-learn,
# scipy, matplotlib, pyyaml and wandb; `pip show NAME` in a Kaggle notebook tells what else is missing.
KAGGLE_LACKS = ("iterative-stratification",)
MANIFEST = "bundle.json"
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
# the CLI's --dir-mode defaults to skip, which drops every subfolder (wheels/, weights/, src/, runs/)
UPLOAD = ("kaggle datasets create -p THIS_FOLDER --dir-mode tar  "
          "(a new version: kaggle datasets version -p THIS_FOLDER --dir-mode tar -m MSG)")
# resume state (last.pt, runs begun), logs, the writer lock
RUN_FILES_LEFT_OUT = ("last.pt", "*.tmp", "staging", "*.staging", "*.replaced", "wandb", "__pycache__", ".writer.*")


def source_checkout() -> Path:
    """The repository this package runs from (the bundle builds fathom's wheel from it)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file():
        raise FathomError(f"{root}: no pyproject.toml; build the bundle from a clone of the repository "
                          "(pip install -e .), not from an installed wheel")
    return root


def pip(args: list[str], what: str) -> None:
    run = subprocess.run([sys.executable, "-m", "pip", *args, "--disable-pip-version-check", "--quiet"],
                         capture_output=True, text=True)
    if run.returncode:
        raise FathomError(f"bundle: {what} failed (pip exit {run.returncode}): {run.stderr.strip()[-600:]}")


def add_wheels(dest: Path, extra: list[str], pip_args: list[str]) -> list[str]:
    """fathom's wheel (no dependencies: Kaggle has them) and the `extra` packages' wheels (no deps)."""
    dest.mkdir(parents=True)
    root, staging = source_checkout(), dest.parent / "fathom-source"
    staging.mkdir()
    for name in ("pyproject.toml", "README.md"):  # built from a copy: setuptools leaves build/ where it builds
        shutil.copyfile(root / name, staging / name)
    shutil.copytree(root / "src", staging / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    pip(["wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(dest), str(staging)],
        "building fathom's wheel")
    shutil.rmtree(staging)
    if extra:
        pip(["download", "--no-deps", "--only-binary=:all:", "--dest", str(dest), *pip_args, *extra],
            f"downloading wheels of {', '.join(extra)}")
    names = ["fathom", *extra]
    (dest / "requirements.txt").write_text("\n".join(names) + "\n")
    return names


def find_weights(folder: Path, backbone: str) -> Path:
    for suffix in WEIGHT_SUFFIXES:
        if (folder / f"{backbone}{suffix}").is_file():
            return folder / f"{backbone}{suffix}"
    raise DataError(folder, f"no weights file for backbone {backbone!r}",
                    hint=f"name it {backbone}{WEIGHT_SUFFIXES[0]} (or {', '.join(WEIGHT_SUFFIXES[1:])})")


def add_weights(dest: Path, backbones: list[str], weights_from: Path | None) -> dict[str, str]:
    """ImageNet weights per backbone, checked to load strictly; from a folder, else from timm's hub."""
    from safetensors.torch import save_file

    from fathom.models.net import create_backbone

    dest.mkdir(parents=True)
    found = {}
    for backbone in backbones:
        if weights_from is not None:
            source = find_weights(weights_from, backbone)
            create_backbone(backbone, False, str(source))  # a file that does not fit is refused here, not on Kaggle
            target = dest / f"{backbone}{source.suffix}"
            shutil.copyfile(source, target)
        else:
            model = create_backbone(backbone, True, None)  # FathomError with a hint when offline
            target = dest / f"{backbone}.safetensors"
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(target))
        found[backbone] = f"weights/{target.name}"
    return found


def add_run(dest: Path, runs: Path, exp: str) -> dict[str, list[str]]:
    """The experiment's run folder without resume state; only folds that finished training."""
    experiment = Experiment(runs, exp)
    folds = experiment.require_finished_folds()
    finished = {d.path.resolve() for dirs in folds.values() for d in dirs}

    def left_out(folder: str, names: list[str]) -> set[str]:
        skip = set(shutil.ignore_patterns(*RUN_FILES_LEFT_OUT)(folder, names))
        return skip | {n for n in names if FoldDir.is_fold_name(n) and (Path(folder) / n).resolve() not in finished}

    shutil.copytree(experiment.root, dest, ignore=left_out)
    return {backbone: [d.path.name for d in dirs] for backbone, dirs in folds.items()}


def bundle_readme(manifest: dict) -> str:
    lines = [
        "# fathom bundle: FathomNet 2023 code, wheels and weights for Kaggle notebooks with internet off", "",
        f"Built from git commit `{manifest['git_commit']}`.", "",
        "1. Upload this folder as a private Kaggle dataset: `kaggle datasets create -p THIS_FOLDER --dir-mode tar`",
        "   (`kaggle datasets version -p THIS_FOLDER --dir-mode tar -m MSG` for a new version) after putting your",
        "   user name in `dataset-metadata.json`. Without `--dir-mode tar` the CLI skips every subfolder.",
        "2. In the notebook (`notebooks/02_train_kaggle.ipynb` or `03_inference_kaggle.ipynb`): *Add input* ->",
        "   this dataset, and set `BUNDLE` in the first cell to its folder under `/kaggle/input/`.",
        "3. The set-up cell installs the package with `pip install --no-index --no-deps --find-links",
        "   BUNDLE/wheels -r BUNDLE/wheels/requirements.txt`; nothing is downloaded (Kaggle has the dependencies).",
        "",
        "Contents:", "",
        f"- wheels: {', '.join(manifest['wheels'])}",
    ]
    if manifest["weights"]:
        lines.append(f"- ImageNet weights: {', '.join(manifest['weights'])} (the notebooks pass them as `weights:`)")
    if manifest["run"]:
        folds = "; ".join(f"{b}: {', '.join(f)}" for b, f in manifest["run"]["folds"].items())
        lines.append(f"- trained experiment `{manifest['run']['exp']}` in `runs/` ({folds})")
    return "\n".join(lines) + "\n"


def build_bundle(out: Path, backbones: list[str] = (), weights_from: Path | None = None, runs: Path | None = None,
                 exp: str | None = None, extra_wheels: list[str] = KAGGLE_LACKS, pip_args: list[str] = (),
                 dataset_id: str = "YOUR_KAGGLE_USERNAME/fathom-bundle") -> dict:
    """Write the bundle folder `out` (see the module docstring); returns its manifest."""
    out = Path(out)
    if out.exists() and not (out / MANIFEST).is_file():
        raise DataError(out, "exists and is not a bundle", hint="choose a new folder for --out")
    if exp:  # before the downloads: a run with nothing to ship stops here
        Experiment(runs or Path("runs"), exp).require_finished_folds()
    building = out.parent / f".{out.name}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    try:
        manifest = {"git_commit": git_commit(), "python": sys.version.split()[0],
                    "wheels": add_wheels(building / "wheels", list(extra_wheels), list(pip_args)),
                    "weights": add_weights(building / "weights", list(backbones), weights_from) if backbones else {},
                    "run": None, "upload": UPLOAD}
        shutil.copytree(Path(__file__).parent, building / "src" / "fathom",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        if exp:
            manifest["run"] = {"exp": exp, "folds": add_run(building / "runs" / exp, runs or Path("runs"), exp)}
        (building / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        (building / "dataset-metadata.json").write_text(json.dumps(
            {"title": dataset_id.split("/")[-1], "id": dataset_id, "licenses": [{"name": "other"}]}, indent=2) + "\n")
        (building / "README.md").write_text(bundle_readme(manifest))
        if out.exists():  # swap: the old bundle is removed only once the new one is complete
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
            building.rename(out)
            shutil.rmtree(old)
        else:
            building.rename(out)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return manifest


def read_manifest(bundle: Path) -> dict:
    path = Path(bundle) / MANIFEST
    if not path.is_file():
        raise DataError(path, "not found: this folder is not a fathom bundle",
                        hint="attach the dataset made by `python -m fathom bundle` and point BUNDLE at it")
    return json.loads(path.read_text())


def weight_overrides(bundle: Path) -> list[str]:
    """`key=value` config overrides that load the bundle's ImageNet weights (empty when it has none)."""
    weights = read_manifest(bundle)["weights"]
    if not weights:
        return []
    return ["weights=" + json.dumps({b: str((Path(bundle) / rel).resolve()) for b, rel in weights.items()})]


def restore_for_training(outputs: list[Path], runs: Path, exp: str) -> list[str]:
    """Before a training session continues earlier ones: copy `runs/<exp>` of each earlier notebook
    output (attached under /kaggle/input, read-only; oldest first) into `runs/<exp>`: its finished folds and
    probes, and its staging folders (runs begun, with their last.pt), so `train --resume` finishes what they
    began. Files are copied, not linked: this session's output must stand without its inputs. A later
    output's fold (or staging folder) replaces an earlier one's. Returns the restored folds as
    "backbone/fold_k (finished)" or "staging/backbone/fold_k (unfinished)"."""
    dest = Path(runs) / exp
    restored: dict[str, str] = {}
    for output in map(Path, outputs):
        source = output / "runs" / exp if (output / "runs" / exp).is_dir() else output  # or the run folder itself
        if source.name != exp or not source.is_dir():
            raise DataError(output, f"holds no runs/{exp}/ folder",
                            hint="attach the output of an earlier session of this notebook with the same CONFIG")
        run = Experiment(source.parent, exp)
        finished = [d.path for d in (*(d for ds in run.finished_folds().values() for d in ds), *run.finished_probes())]
        begun = [p for p in run.staging_root.rglob(f"{FoldDir.PREFIX}*") if p.is_dir() and p.suffix == ""]
        for fold_dir in sorted(finished + begun):
            key = fold_dir.relative_to(source).as_posix()
            target = dest / key
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(fold_dir, target, ignore=shutil.ignore_patterns("*.tmp", "*.staging", "*.replaced"))
            restored[key] = "unfinished" if fold_dir in begun else "finished"
        if (source / "summary.json").is_file():
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / "summary.json", dest / "summary.json")
    return [f"{key} ({state})" for key, state in sorted(restored.items())]


def restore_run(sources: Path | list[Path], runs: Path) -> Path:
    """Copy trained run folders (`.../runs/<exp>`, read-only under /kaggle/input) into `runs/<exp>`, where
    prediction can write. Several sources of one experiment merge, e.g. one training session per
    backbone; a fold found in two of them is refused. Checkpoints are linked, not copied: only read."""
    sources = [Path(s) for s in (sources if isinstance(sources, (list, tuple)) else [sources])]
    names = {s.name for s in sources}
    if len(names) != 1:
        raise DataError(sources[0], f"run folders of different experiments: {sorted(names)}",
                        hint="pass the runs/<exp> folders of one experiment")
    owner: dict[str, Path] = {}
    for source in sources:
        for backbone, dirs in Experiment(source.parent, source.name).require_finished_folds().items():
            for fold in dirs:
                key = f"{backbone}/{fold.path.name}"
                if key in owner:
                    raise DataError(fold.path, f"{key} is also in {owner[key]}", hint="keep one copy of each fold")
                owner[key] = source
    dest = Path(runs) / sources[0].name

    def copy(src: str, dst: str) -> None:
        if os.path.lexists(dst):
            os.remove(dst)
        if src.endswith(".pt"):
            os.symlink(os.path.abspath(src), dst)
        else:
            shutil.copy2(src, dst)  # keeps mtimes: the ensemble stays newer than the folds it was fit on

    for source in sources:
        shutil.copytree(source, dest, copy_function=copy, dirs_exist_ok=True)
    return dest
