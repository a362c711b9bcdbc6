"""Progress bars, one rule for every long loop (caching, training, prediction, download): a widget in a
notebook, a bar on a terminal, nothing in a log or a pipe, and under torchrun (fathom.launch sets
FATHOM_PROGRESS=1 for its processes, whose output a notebook cell shows line by line) a line every 30 s of
the process that asks for it (rank 0)."""

from __future__ import annotations

import os

from tqdm.auto import tqdm

FORCED = "FATHOM_PROGRESS"  # "1": show bars even without a terminal (a piped torchrun under a notebook)


def progress(iterable=None, desc: str = "", total: int | None = None, unit: str = "it", enabled: bool = True):
    """`iterable` wrapped in a bar (see the module docstring); `enabled=False` (other ranks) shows none."""
    forced = os.environ.get(FORCED) == "1"
    return tqdm(iterable, desc=desc, total=total, unit=unit, leave=False, dynamic_ncols=True,
                mininterval=30.0 if forced else 2.0, disable=not enabled or (False if forced else None))
