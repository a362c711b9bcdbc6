"""The package installs as a package: declared dependencies with floors, a wheel that works outside the repo."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from fathom.provenance import git_commit

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirements(group: list[str]) -> dict[str, Requirement]:
    return {metadata_name(r.name): r for r in map(Requirement, group)}


def metadata_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def third_party_imports() -> set[str]:
    """Top-level modules the package imports that are neither its own nor the standard library's."""
    found = set()
    for path in (ROOT / "src" / "fathom").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m != "fathom" and m not in sys.stdlib_module_names and m != "__future__"}


def test_every_imported_library_is_a_declared_dependency_with_a_floor_the_suite_satisfies():
    declared = requirements(PYPROJECT["dependencies"])
    providers = metadata.packages_distributions()
    for module in sorted(third_party_imports()):
        names = {metadata_name(d) for d in providers.get(module, [])}
        assert names & set(declared), f"fathom imports {module} (from {names or 'nothing installed'}) undeclared"
    for name, requirement in {**declared, **requirements(PYPROJECT["optional-dependencies"]["dev"])}.items():
        assert any(str(s.operator) == ">=" for s in requirement.specifier), f"{name} has no version floor"
        assert requirement.specifier.contains(metadata.version(name)), f"{name} {metadata.version(name)} below floor"


def test_requirements_txt_lists_the_declared_dependencies_and_the_dev_extra():
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    listed = {metadata_name(Requirement(line).name) for line in lines if line}
    declared = requirements(PYPROJECT["dependencies"]) | requirements(PYPROJECT["optional-dependencies"]["dev"])
    assert listed == set(declared)


@pytest.mark.slow
@pytest.mark.kaggle
def test_the_wheel_installs_into_a_bare_venv_and_its_cli_runs(tmp_path):
    """Build the wheel, install it into a new venv with no index (offline): pip must find every declared
    dependency at its floor among what is already installed here (the test's own site-packages, seen
    through a .pth file, pip and setuptools included: no download, no second copy of torch), then
    `python -m fathom --help` runs from the installed copy, away from the source tree; there the whole pipeline
    runs on a small demo (folds, train, predict, ensemble, submit, validate, report) and every record carries
    the commit the wheel was built from."""
    staging, wheels = tmp_path / "source", tmp_path / "wheels"  # a copy: building leaves build/ beside the source
    shutil.copytree(ROOT / "src", staging / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, staging / name)
    commit = git_commit()  # the copy is no checkout: the build is told the commit, as a CI build from a tarball
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                            "--wheel-dir", str(wheels), str(staging)], capture_output=True, text=True,
                           env={**os.environ, "FATHOM_BUILD_COMMIT": commit})
    assert build.returncode == 0, build.stderr[-2000:]
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "installed_here.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([python, "-m", "pip", "install", "--no-index", "--quiet", "--disable-pip-version-check",
                              *map(str, wheels.glob("fathom-*.whl"))], capture_output=True, text=True, cwd=tmp_path)
    assert install.returncode == 0, install.stderr[-3000:]
    where = subprocess.run([python, "-c", "import fathom; print(fathom.__file__)"], capture_output=True, text=True,
                           cwd=tmp_path, check=True).stdout
    assert where.startswith(site), where  # the installed copy, not the editable source tree
    cli = subprocess.run([python, "-m", "fathom", "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert cli.returncode == 0 and "train" in cli.stdout and "submit" in cli.stdout, cli.stderr[-2000:]
    configs = subprocess.run([python, "-c", "from fathom.config import load_config; print(load_config('demo').name)"],
                             capture_output=True, text=True, cwd=tmp_path)
    assert configs.stdout.strip() == "demo", configs.stderr[-2000:]  # package data travels in the wheel
    built_from = subprocess.run([python, "-c", "from fathom.provenance import git_commit; print(git_commit())"],
                                capture_output=True, text=True, cwd=tmp_path, check=True).stdout.strip()
    assert built_from == commit != "unknown"

    # every record written and read back from the installed copy, away from any checkout: train, ensemble,
    # submit (ensemble.json and the submission record carry the commit) and report (which reads them)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}

    def fathom(*args):
        done = subprocess.run([python, "-m", "fathom", *map(str, args)], capture_output=True, text=True, cwd=tmp_path,
                              env=env, timeout=600)
        assert done.returncode == 0, f"{args[0]}: " + done.stderr[-3000:]

    fathom("demo-data", "--out", "data", "--n-train", 60, "--n-eval", 20, "--size", 64)
    fathom("folds", "--data", "data", "--n-folds", 3, "--out", "folds.csv")
    fathom("train", "--data", "data", "--folds", "folds.csv", "--config", "demo", "backbones=[resnet18]",
           "image_size=32", "epochs=1", "folds=[0,1]", "by_backbone={}", "probe_share=0", "workers=0",
           "cache_dir=cache")
    fathom("predict", "--data", "data", "--exp", "demo", "workers=0")
    fathom("ensemble", "--data", "data", "--exp", "demo")
    fathom("submit", "--data", "data", "--exp", "demo")
    fathom("validate-submission", "submissions/submission.csv", "--data", "data")
    fathom("report", "--data", "data", "--exp", "demo")
    record = json.loads((tmp_path / "runs" / "demo" / "ensemble.json").read_text())
    assert record["git_commit"] == commit and (tmp_path / "runs" / "demo" / "report.md").is_file()
