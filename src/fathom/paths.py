"""Default locations: the one place that knows about the repo layout and Kaggle's.

On Kaggle (KAGGLE_KERNEL_RUN_TYPE is set) data is read from /kaggle/input and outputs go to
/kaggle/working; elsewhere the demo data and the repo's own folders are used. FATHOM_DATA overrides
the data folder everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

KAGGLE_DATA = Path("/kaggle/input/fathomnet-out-of-sample-detection")
KAGGLE_WORK = Path("/kaggle/working")


def on_kaggle() -> bool:
    return "KAGGLE_KERNEL_RUN_TYPE" in os.environ


def work_dir() -> Path:
    return KAGGLE_WORK if on_kaggle() else Path(".")


def data_dir() -> Path:
    if "FATHOM_DATA" in os.environ:
        return Path(os.environ["FATHOM_DATA"])
    return KAGGLE_DATA if on_kaggle() else Path("data/demo")


def runs_dir() -> Path:
    return work_dir() / "runs"


def submissions_dir() -> Path:
    return work_dir() / "submissions"
