"""Where an output came from: the git commit of the code that wrote it."""

from __future__ import annotations

import subprocess
from pathlib import Path

BUILD_COMMIT = Path(__file__).with_name("BUILD_COMMIT")  # written into a wheel by setup.py
UNKNOWN = "unknown"


def git_commit() -> str:
    """The commit of the code that runs: installed from a wheel, the commit the wheel was built from
    (BUILD_COMMIT); else HEAD of the repository holding this package, with `-dirty` when tracked files differ
    from it (the code that ran is then not exactly that commit); else "unknown"."""
    try:
        return BUILD_COMMIT.read_text().strip() or UNKNOWN
    except OSError:
        pass
    here = Path(__file__).parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=here)
        changed = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], capture_output=True, cwd=here)
    except (OSError, subprocess.CalledProcessError):
        return UNKNOWN
    return head.stdout.strip() + ("-dirty" if changed.returncode == 1 else "")
