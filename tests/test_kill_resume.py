"""SIGKILL at any point of `python -m fathom train`, then `--resume`: nothing half-written, nothing lost.

Each kill is a real SIGKILL of a child process (no cleanup code runs). Some land at chosen points
(inside a training batch, half-way through writing a checkpoint or a prediction file), the rest at
seeded random times. After every kill each output at its final name must load; the folds that had
finished keep their prediction files byte for byte; and the run resumed to the end must match an
uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from fathom.predictions import FrameAppearance, Predictions
from fathom.train.checkpoint import load_checkpoint

from conftest import write_experiment

pytestmark = pytest.mark.slow  # trains, spawns processes or benchmarks: the full suite only

# Runs `python -m fathom ...` after arranging for the process to SIGKILL itself at one point:
#   batch N       inside the N-th training batch (after the forward pass, before the optimiser step)
#   checkpoint N  half-way through writing the N-th checkpoint (the temporary file holds half the bytes)
#   npz N         half-way through writing the N-th prediction file
KILLER = r'''
import os, signal, sys

import numpy as np
import torch

import fathom.train.loss
from fathom.cli import main

point, target = sys.argv[1], int(sys.argv[2])
count = 0


def tick():
    global count
    count += 1
    return count == target


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def half_written(write, file_arg):
    def wrapped(*args, **kwargs):
        write(*args, **kwargs)
        if tick():
            file = args[file_arg]
            if hasattr(file, "flush"):
                file.flush()
            name = file.name if hasattr(file, "flush") else file
            os.truncate(name, os.path.getsize(name) // 2)
            die()
    return wrapped


if point == "batch":
    forward = fathom.train.loss.FathomLoss.forward

    def forward_then_maybe_die(self, *args, **kwargs):
        if torch.is_grad_enabled() and tick():  # training batches only, not validation
            die()
        return forward(self, *args, **kwargs)

    fathom.train.loss.FathomLoss.forward = forward_then_maybe_die
elif point == "checkpoint":
    torch.save = half_written(torch.save, 1)  # torch.save(state, path)
elif point == "npz":
    np.savez_compressed = half_written(np.savez_compressed, 0)  # np.savez_compressed(file, **arrays)
sys.exit(main(sys.argv[3:]))
'''

SCHEDULE = [("batch", 4), ("checkpoint", 2), ("npz", 1), ("checkpoint", 3), ("random", 0), ("random", 0)]


@pytest.fixture(scope="module")
def setup(demo_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    write_experiment(root, demo_dir, {"name": "killed", "epochs": 3, "batch_size": 8, "lr": 1e-3,
                                      "warmup_epochs": 0.5, "limit": 40, "seed": 5})
    (root / "killer.py").write_text(KILLER)
    return root, demo_dir


def train_command(root: Path, data: Path, runs: Path, point: str = "none", target: int = 0) -> list[str]:
    return [sys.executable, str(root / "killer.py"), point, str(target), "train", "--config",
            str(root / "killed.yaml"), "--folds", str(root / "folds.csv"), "--data", str(data), "--runs", str(runs),
            "--resume"]


def run(command: list[str], kill_after: float | None = None) -> int:
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = child.communicate(timeout=kill_after)
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate()
    if child.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"exit {child.returncode}:\n{out.decode()[-3000:]}")
    return child.returncode


def check_every_output_loads(runs: Path) -> None:
    """Every file at its final name is whole; temporaries of killed writes are the only partial files."""
    for path in runs.rglob("*"):
        if path.is_dir() or path.name.startswith("."):
            continue
        if path.suffix == ".pt":
            load_checkpoint(path)
        elif path.name == "appearance.npz":
            FrameAppearance.load(path)
        elif path.suffix == ".npz":
            Predictions.load(path)
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".csv":
            pd.read_csv(path)
        elif path.suffix == ".yaml":
            yaml.safe_load(path.read_text())


def finished_fold_files(runs: Path) -> dict[str, str]:
    """sha256 of the prediction files of every fold that has finished (done.json)."""
    return {str(p.relative_to(runs)): hashlib.sha256(p.read_bytes()).hexdigest()
            for done in runs.rglob("done.json") for p in sorted(done.parent.glob("*.npz"))}


def test_sigkill_anywhere_then_resume_matches_an_uninterrupted_run(setup):
    root, data = setup
    started = time.perf_counter()
    assert run(train_command(root, data, root / "straight")) == 0
    uninterrupted_s = time.perf_counter() - started

    runs, rng, kills, finished = root / "resumed", random.Random(7), 0, {}
    for point, target in SCHEDULE:
        delay = rng.uniform(0.3, 1.0) * uninterrupted_s if point == "random" else None
        code = run(train_command(root, data, runs, point, target), kill_after=delay)
        kills += code == -signal.SIGKILL
        if point in ("checkpoint", "npz"):  # the kill hit a write: its half-written temporary is there
            leftover = f".*.{'pt' if point == 'checkpoint' else 'npz'}.*.tmp"
            assert code == -signal.SIGKILL and list(runs.rglob(leftover)), (point, target, code)
        check_every_output_loads(runs)
        now = finished_fold_files(runs)
        assert {k: now[k] for k in finished} == finished, "a finished fold's predictions changed"
        finished = now
        if code == 0:
            break
    assert kills >= 4, f"only {kills} kills landed"
    assert run(train_command(root, data, runs)) == 0
    check_every_output_loads(runs)
    assert not list(runs.rglob(".*.tmp")), "temporaries of killed writes were left behind"

    a = Predictions.load(root / "straight" / "killed" / "oof" / "resnet18.npz")
    b = Predictions.load(runs / "killed" / "oof" / "resnet18.npz")
    assert list(a.ids) == list(b.ids)
    np.testing.assert_allclose(a.fine, b.fine, atol=1e-5)
    np.testing.assert_allclose(b.super, a.super, atol=1e-5)
    for fold in (0, 1):
        history = [pd.read_csv(r / "killed" / "resnet18" / f"fold_{fold}" / "metrics.csv") for r in
                   (root / "straight", runs)]
        assert list(history[0]["epoch"]) == list(history[1]["epoch"]) == [0, 1, 2]
        np.testing.assert_allclose(history[0]["train_loss"], history[1]["train_loss"], rtol=1e-4)
