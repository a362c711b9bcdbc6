"""Default locations: the one place that knows about the repo layout and Kaggle's.

On Kaggle (KAGGLE_KERNEL_RUN_TYPE is set) data is read from /kaggle/input and outputs go to
/kaggle/working, the image cache to /kaggle/temp; elsewhere the demo data and the repo's own folders
are used. FATHOM_DATA overrides the data folder everywhere, FATHOM_SCRATCH the cache's folder.
"""

from __future__ import annotations

import os
from pathlib import Path

KAGGLE_DATA = Path("/kaggle/input/fathomnet-out-of-sample-detection")
KAGGLE_WORK = Path("/kaggle/working")
KAGGLE_SCRATCH = Path("/kaggle/temp")  # not saved with the notebook's output, not in its 20 GB cap


def on_kaggle() -> bool:
    return "KAGGLE_KERNEL_RUN_TYPE" in os.environ


def work_dir() -> Path:
    return KAGGLE_WORK if on_kaggle() else Path(".")


def data_dir() -> Path:
    if "FATHOM_DATA" in os.environ:
        return Path(os.environ["FATHOM_DATA"])
    return KAGGLE_DATA if on_kaggle() else Path("data/demo")


def scratch_dir() -> Path:
    """Where files that can be rebuilt go (the image cache): FATHOM_SCRATCH if set, on Kaggle
    /kaggle/temp, else the working directory. The one switch that keeps the cache out of the output."""
    if "FATHOM_SCRATCH" in os.environ:
        return Path(os.environ["FATHOM_SCRATCH"])
    return KAGGLE_SCRATCH if on_kaggle() else Path(".")


def cache_root(cache_dir: str | Path) -> Path:
    """A config's cache_dir: an absolute path as it is, a relative one under scratch_dir()."""
    path = Path(cache_dir)
    return path if path.is_absolute() else scratch_dir() / path


def runs_dir() -> Path:
    return work_dir() / "runs"


def submissions_dir() -> Path:
    return work_dir() / "submissions"
