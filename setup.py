"""Everything about the package is in pyproject.toml; this file only records the git commit a wheel is built
from (fathom/BUILD_COMMIT), which fathom.provenance reads where no git checkout is around (a wheel installed
on Kaggle from the bundle). FATHOM_BUILD_COMMIT overrides it (a build from a copy of the sources)."""

import importlib.util
import os
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SOURCE = Path(__file__).resolve().parent / "src" / "fathom" / "provenance.py"


def source_commit() -> str:
    """fathom.provenance.git_commit of the sources being built (loaded by path: the package is not importable
    while it is being built)."""
    spec = importlib.util.spec_from_file_location("fathom_provenance", SOURCE)
    provenance = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(provenance)
    commit = provenance.git_commit()
    return "" if commit == provenance.UNKNOWN else commit


class BuildWithCommit(build_py):
    def run(self):
        super().run()
        commit = os.environ.get("FATHOM_BUILD_COMMIT") or source_commit()
        if commit and not getattr(self, "editable_mode", False):  # a checkout: git knows
            (Path(self.build_lib) / "fathom" / "BUILD_COMMIT").write_text(commit + "\n")


setup(cmdclass={"build_py": BuildWithCommit})
