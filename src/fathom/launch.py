"""`train` on every GPU the session has: under torchrun with one process per GPU when there are two or
more (a Kaggle T4 x2 session), else in this process. The training notebook's one call to train.

torchrun runs as a subprocess whose output is streamed into the caller's (the notebook cell's) output;
a failing rank fails the call with the command and its exit code.
"""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from fathom.errors import FathomError
from fathom.progress import FORCED


def torchrun_command(n_gpus: int, args: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n_gpus}",
            "-m", "fathom", "train", *map(str, args)]


def train_on_all_gpus(*args, gpus: int | None = None) -> int:
    """Run `python -m fathom train ARGS` on `gpus` processes (None: every visible GPU); returns how many."""
    from fathom.cli import run_command

    n = torch.cuda.device_count() if gpus is None else gpus
    if n < 2:
        print(f"training in this process on {'1 GPU' if n == 1 else 'the CPU'}", flush=True)
        run_command("train", *args)
        return max(1, n)
    command = torchrun_command(n, list(args))
    print(f"training on {n} GPUs: torchrun --nproc_per_node={n} -m fathom train ...", flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "4"), "PYTHONUNBUFFERED": "1",
           FORCED: "1"}  # rank 0's progress bars, a line every 30 s: the output is a pipe, not a terminal
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as child:
        for line in child.stdout:  # into the cell's output, as it comes
            print(line, end="", flush=True)
    if child.returncode:
        raise FathomError(f"training on {n} GPUs failed (torchrun exit {child.returncode}); the failing rank's "
                          "error is above")
    return n
