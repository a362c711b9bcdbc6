"""Everything about the package is in pyproject.toml; this file only records the git commit a wheel is built
from (fathom/BUILD_COMMIT), which fathom.provenance reads where no git checkout is around (a wheel installed
on Kaggle from the bundle). FATHOM_BUILD_COMMIT overrides it (a build from a copy of the sources)."""

import os
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


def head_commit(folder: Path) -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=folder)
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], capture_output=True, cwd=folder).returncode
    except (OSError, subprocess.CalledProcessError):
        return ""
    return head.stdout.strip() + ("-dirty" if dirty == 1 else "")


class BuildWithCommit(build_py):
    def run(self):
        super().run()
        commit = os.environ.get("FATHOM_BUILD_COMMIT") or head_commit(Path(__file__).resolve().parent)
        if commit and not getattr(self, "editable_mode", False):  # a checkout: git knows
            (Path(self.build_lib) / "fathom" / "BUILD_COMMIT").write_text(commit + "\n")


setup(cmdclass={"build_py": BuildWithCommit})
