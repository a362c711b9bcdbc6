"""Atomic file output: write to a temporary file in the same folder, then rename over the target.

A crash or kill mid-write leaves the previous file (or no file), never a half-written one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Iterator

import numpy as np
import pandas as pd


UMASK = os.umask(0o022)
os.umask(UMASK)  # read once at import: os.umask can only be read by setting it


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:  # data reaches the disk before the rename makes it visible
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~UMASK)  # mkstemp makes 0600 files; outputs get the usual mode
        os.replace(tmp_path, path)
    except OSError as err:
        if err.filename is None and err.errno is not None:  # a write's error (a full disk) names no file: ours
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise
    finally:
        tmp_path.unlink(missing_ok=True)


def remove_temporaries(folder: str | Path) -> list[Path]:
    """Delete what writes killed mid-way (SIGKILL, power loss) left in `folder`: the temporary files of
    `atomic_path`, never a finished output. Call it only where no other process is writing."""
    leftovers = sorted(Path(folder).glob(".*.tmp"))
    for path in leftovers:
        path.unlink(missing_ok=True)
    return leftovers


def replace_folder(staging: str | Path, target: str | Path) -> None:
    """Make the complete folder `staging` the folder `target`, replacing what is there as a whole: the old
    folder moves aside (`aside_of(staging)`), `staging` takes its name, then the old one is deleted. Both must
    be on one filesystem. A kill between the two renames leaves `target` absent, the old folder aside and
    `staging` whole: `settle_replacement` finishes the move. Readers see the old folder or the new one."""
    staging, target = Path(staging), Path(target)
    aside = aside_of(staging)
    shutil.rmtree(aside, ignore_errors=True)
    if target.exists():
        os.rename(target, aside)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(staging, target)
    shutil.rmtree(aside, ignore_errors=True)


def settle_replacement(staging: str | Path, target: str | Path) -> bool:
    """Finish a `replace_folder` that a kill interrupted; True when there was one. Call it only where no other
    process is writing (under the run's writer lock)."""
    staging, target = Path(staging), Path(target)
    aside = aside_of(staging)
    if not aside.exists():
        return False
    if not target.exists():  # killed between the renames: the staging folder was complete
        os.rename(staging if staging.exists() else aside, target)
    shutil.rmtree(aside, ignore_errors=True)
    return True


def aside_of(staging: Path) -> Path:
    """Where `replace_folder(staging, target)` keeps the old target until the new one is in place."""
    return staging.with_name(f"{staging.name}.replaced")


@contextlib.contextmanager
def staged_folder(target: str | Path) -> Iterator[Path]:
    """Yield an empty folder beside `target` (`<target>.staging`, a leftover of a killed run removed); once the
    block finishes it replaces `target` whole (`replace_folder`); on an error it is removed, `target` untouched."""
    target = Path(target)
    staging = target.with_name(f"{target.name}.staging")
    settle_replacement(staging, target)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replace_folder(staging, target)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs) -> Iterator[IO]:
    """`open()` whose result appears at `path` only once the block finishes without error."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def write_csv(df: pd.DataFrame, path: str | Path, **kwargs) -> None:
    with atomic_open(path, "w", newline="") as fh:
        df.to_csv(fh, index=False, **kwargs)


def write_json(obj, path: str | Path) -> None:
    """Strict JSON: NaN (e.g. an undefined sAUC) is written as null."""
    with atomic_open(path, "w") as fh:
        json.dump(without_nan(obj), fh, indent=2, sort_keys=False, allow_nan=False)
        fh.write("\n")


def without_nan(obj):
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: without_nan(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [without_nan(v) for v in obj]
    return obj


def write_npz(path: str | Path, **arrays: np.ndarray) -> None:
    with atomic_open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)
