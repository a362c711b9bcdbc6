"""Checkpoints written atomically and loaded with `weights_only=True` (no pickled code runs)."""

from __future__ import annotations

import io
import pickle
import random
import re
from pathlib import Path

import numpy as np
import torch

from fathom.atomic import atomic_open
from fathom.errors import DataError, one_line


def save_checkpoint(state: dict, path: str | Path) -> None:
    """Serialised in memory, then written: a full disk is then an OSError (ENOSPC) naming the file, which the
    CLI reports as one line (torch's own file writer turns it into a RuntimeError about stream positions)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_open(path, "wb") as fh:
        fh.write(buffer.getbuffer())


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict:
    path = Path(path)
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise DataError(path, "checkpoint not found") from None
    except pickle.UnpicklingError as err:  # weights_only refused an object that is not a tensor or plain value
        found = re.search(r"Unsupported global: (?:GLOBAL )?(\S+)", one_line(str(err)))
        raise DataError(path, "unreadable checkpoint: weights_only=True refused an object that is not a tensor ("
                        + (f"global {found.group(1)}" if found else "unpickling error") + ")",
                        hint="delete it to retrain this fold; never load a file you do not trust with "
                        "weights_only=False") from None
    except Exception as err:
        raise DataError(path, f"unreadable checkpoint ({err.__class__.__name__}: {str(err)[:200]})",
                        hint="delete it to retrain this fold") from None


def rng_state() -> dict:
    """Python, numpy and torch RNG states as tensors and plain values (loadable with weights_only)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": random.getstate(), "torch": torch.get_rng_state(),
            "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached": float(cached)}}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
