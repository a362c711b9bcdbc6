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
import shlex
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
#   saved N       right after the N-th checkpoint reached its final name
#   saved-npz N   right after the N-th prediction file reached its final name
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


def then_die(write):
    def wrapped(*args, **kwargs):
        result = write(*args, **kwargs)
        if tick():
            die()
        return result
    return wrapped


if point == "saved":  # after the N-th checkpoint is in place (renamed to its final name)
    import fathom.train.fold
    fathom.train.fold.save_checkpoint = then_die(fathom.train.fold.save_checkpoint)
elif point == "saved-npz":  # after the N-th prediction file is in place
    import fathom.predictions
    fathom.predictions.write_npz = then_die(fathom.predictions.write_npz)
elif point == "batch":
    forward = fathom.train.loss.FathomLoss.forward

    def forward_then_maybe_die(self, *args, **kwargs):
        if torch.is_grad_enabled() and tick():  # training batches only, not validation
            die()
        return forward(self, *args, **kwargs)

    fathom.train.loss.FathomLoss.forward = forward_then_maybe_die
elif point == "checkpoint":
    import contextlib

    import fathom.train.checkpoint as checkpoint
    opened = checkpoint.atomic_open  # save_checkpoint serialises in memory, then writes once into this file

    @contextlib.contextmanager
    def half_then_die(path, mode="w", **kwargs):
        with opened(path, mode, **kwargs) as fh:
            if not tick():
                yield fh
                return

            class Half:
                def write(self, data):
                    fh.write(bytes(data)[: len(data) // 2])
                    fh.flush()
                    die()
            yield Half()

    checkpoint.atomic_open = half_then_die
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
    """sha256 of the prediction files of every fold that has finished (done.json; not a run still in staging)."""
    return {str(p.relative_to(runs)): hashlib.sha256(p.read_bytes()).hexdigest()
            for done in runs.rglob("done.json") if "staging" not in done.relative_to(runs).parts
            for p in sorted(done.parent.glob("*.npz"))}


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


# ---- a fold is a transaction: retrains and predictions killed half-way ------------------------------------


def fold_digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder` (a fold folder, its TTA set), by relative path."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def command(root: Path, point: str, target: int, *argv) -> list[str]:
    return [sys.executable, str(root / "killer.py"), point, str(target), *map(str, argv)]


@pytest.fixture(scope="module")
def finished(setup):
    """One finished fold (fold 0, one epoch) of the killed config; tests copy it."""
    root, data = setup
    runs = root / "finished"
    assert run(train_command(root, data, runs) + ["folds=[0]", "epochs=1"]) == 0
    return runs


def output(command_: list[str]) -> str:
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    done = subprocess.run(command_, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


def test_a_retrain_killed_after_its_first_checkpoint_leaves_the_finished_fold_whole(setup, finished, tmp_path):
    """The issue's reproduction: retrain a finished fold with a changed config and SIGKILL it as soon as its
    last.pt is written. The fold folder keeps every file of the old run; the original command reuses it."""
    import shutil

    root, data = setup
    runs = tmp_path / "runs"
    shutil.copytree(finished, runs)
    fold = runs / "killed" / "resnet18" / "fold_0"
    before = fold_digest(fold)
    changed = ["folds=[0]", "epochs=3", "lr=0.01", "checkpoint_every=1"]
    killed = command(root, "saved", 2, *train_command(root, data, runs)[4:], *changed)  # best.pt, then last.pt
    assert run(killed) == -signal.SIGKILL
    staging = runs / "killed" / "staging" / "resnet18" / "fold_0"
    assert load_checkpoint(staging / "last.pt")["epoch"] == 0 and fold_digest(fold) == before
    assert yaml.safe_load((staging / "config.yaml").read_text())["lr"] == 0.01
    assert "fold 0: done, reusing its predictions" in output(train_command(root, data, runs) + ["folds=[0]", "epochs=1"])
    assert fold_digest(fold) == before
    assert "resumed after epoch 0" in output(train_command(root, data, runs) + changed)  # --resume: the new run
    assert yaml.safe_load((fold / "config.yaml").read_text())["lr"] == 0.01 and not staging.exists()
    assert list(pd.read_csv(fold / "metrics.csv")["epoch"]) == [0, 1, 2]


def test_predict_killed_between_its_files_keeps_the_previous_views_as_one_set(setup, finished, tmp_path):
    import shutil

    from fathom.runs import Experiment

    root, data = setup
    runs = tmp_path / "runs"
    shutil.copytree(finished, runs)
    predict = ["predict", "--data", data, "--exp", "killed", "--runs", runs]
    output(command(root, "none", 0, *predict))
    exp = Experiment(runs, "killed")
    fold = exp.fold("resnet18", 0)
    before, views = fold_digest(fold.tta_dir), exp.views_file.read_text()
    assert exp.same_tta_views([fold]) == ["1x", "1x+hflip"]
    assert run(command(root, "saved-npz", 1, *predict, "tta_scales=[1.0,1.25]")) == -signal.SIGKILL
    assert (fold.path / "tta.staging" / "oof.npz").is_file(), "the kill came after the new oof file"
    assert fold_digest(fold.tta_dir) == before and exp.views_file.read_text() == views
    assert exp.same_tta_views([fold]) == ["1x", "1x+hflip"]
    output(command(root, "none", 0, *predict, "tta_scales=[1.0,1.25]"))
    assert exp.same_tta_views([fold]) == ["1x", "1x+hflip", "1.25x", "1.25x+hflip"]
    assert not list(runs.rglob("*.staging")) and not list(runs.rglob("*.replaced")) and not list(runs.rglob("*.tmp"))


def test_a_full_disk_during_a_retrain_is_one_line_and_the_finished_fold_stays_whole(setup, finished, tmp_path):
    """ENOSPC for real: the run folder on a small tmpfs (a user and mount namespace, `unshare -r -m`), with room
    for the finished run and less than one checkpoint. Skipped where such a filesystem cannot be mounted."""
    import shutil

    root, data = setup
    mount = tmp_path / "small"
    mount.mkdir()
    if not shutil.which("unshare") or subprocess.run(
            ["unshare", "-r", "-m", "sh", "-c", f"mount -t tmpfs -o size=1m none {mount}"],
            capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (unshare -r -m and mount refused)")
    used = sum(p.stat().st_size for p in finished.rglob("*") if p.is_file())
    best = (finished / "killed" / "resnet18" / "fold_0" / "best.pt").stat().st_size
    train = shlex.join(command(root, "none", 0, *train_command(root, data, mount / "runs")[4:], "folds=[0]", "epochs=2",
                               "lr=0.01"))
    script = (f"mount -t tmpfs -o size={(used + best // 2) // 1024}k none {mount} && cp -a {finished} {mount}/runs && "
              f"{train}; echo exit=$?; cp -a {mount}/runs {tmp_path}/after")
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    done = subprocess.run(["unshare", "-r", "-m", "sh", "-c", script], env=env, capture_output=True, text=True,
                          timeout=600)
    assert "exit=2" in done.stdout, done.stdout + done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr and last.startswith("error: ") and "No space left on device" in last, last
    assert "free space on that disk" in last
    fold = "killed/resnet18/fold_0"
    assert fold_digest(tmp_path / "after" / fold) == fold_digest(finished / fold)
