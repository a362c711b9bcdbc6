"""The files between stages: every path under runs/<exp>/ and every JSON record in it, typed, in one place.

runs/<exp>/                                   Experiment
  summary.json                                Summary: OOF MAP@20 of each backbone and of the prior
  <backbone>/fold_<k>/                        FoldDir: only ever a finished fold, every file from one run
    config.yaml meta.json metrics.csv         the resolved config, provenance (and fingerprint), one row per epoch
    best.pt last.pt                           checkpoints (last.pt: resume; kept only with keep_last)
    oof.npz test.npz train.npz                the fold's validation, eval and reference predictions
    done.json                                 Done: written last
    tta/oof.npz tta/test.npz                  the same under test-time augmentation (`predict`), one set
  staging/<backbone>/fold_<k>/                a fold being trained (resumable); replaces fold_<k> once done
  staging/probe/<backbone>/fold_<h>/          the same for a probe
  oof/<model>.npz test/<model>.npz            every fold's validation rows; eval rows averaged over folds
  tta/oof/<model>.npz tta/test/<model>.npz    the same from the TTA files; tta/views.json
  appearance.npz                              FrameAppearance of every train and eval frame (train writes it)
  probe/<backbone>/fold_<h>/                  a leave-categories-out probe (fathom.train.probe): a FoldDir,
    unseen.npz                                plus which of its validation frames hold a held-out category
  ensemble.json ensemble/{oof,test}.npz       EnsembleRecord and the tuned blend's predictions (`ensemble`)
  ensemble/osd_scores.npz                     every osd candidate's scores (fathom.ensemble.osd_choice)
  report.md report_*.png distill.json
submissions/<name>.csv, <name>.json           the submission and its SubmissionRecord

A training run writes into the fold's staging folder and replaces the fold folder as a whole once done.json
is written (fathom.atomic.replace_folder); `predict` replaces a fold's tta/ and the experiment's tta/ the same
way. A kill leaves the previous complete folder (or none) and a staging folder: `settle` finishes a replacement
cut between its two renames, and every writer calls it under the writer lock.

Records are dataclasses written with `write_record` and read with `read_record`: an unknown or missing key is an
error naming the file (a record from another version is refused, never misread).
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, TypeVar

from fathom.atomic import settle_replacement, write_json
from fathom.config import TrainConfig, load_config
from fathom.errors import DataError, checked_name
from fathom.predictions import Predictions

R = TypeVar("R")
PREDICTION_KEYS = {"tta_hflip", "tta_scales", "tta_adapt_bn", "batch_size", "infer_batch_size", "workers", "cache_dir",
                   "device"}
STAGING = "staging"  # runs/<exp>/staging/: folds being trained (FoldDir.staging)
SPLITS = ("oof", "test")  # what TTA predicts again; a fold also writes "train" (its training frames' own)
FOLD_SPLITS = (*SPLITS, "train")


# ---- records --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Done:
    """A finished fold: what it was trained from (fingerprint) and what its validation chose."""

    fingerprint: str
    val_map20: float
    seconds: float  # this session's, when resumed
    tile_combine: Optional[str] = None  # tiled folds: the rule that combines a frame's views
    tile_val_map20: Optional[dict[str, float]] = None  # every rule's validation MAP@20
    views_per_frame: Optional[dict[str, float]] = None


@dataclass(frozen=True)
class Summary:
    oof_map20: dict[str, float]  # backbone (and "prior") -> pooled OOF MAP@20
    folds: list[int]
    processes: int


@dataclass(frozen=True)
class StrategyScore:
    held_out: float  # MAP@20 of the recipe cross-fitted over folds
    in_sample: float
    weights: dict[str, float]
    b: float
    demo_eval_map20: Optional[float] = None  # the demo's eval solution: reported, never used to choose


@dataclass(frozen=True)
class OofScores:
    per_fold: dict[str, dict[str, float]]  # backbone -> fold -> MAP@20
    pooled: dict[str, float]
    no_tta: Optional[dict[str, float]]
    ensemble_held_out_per_fold: dict[str, float]


@dataclass(frozen=True)
class OsdScore:
    held_out_categories: float
    train_vs_test: float
    estimate: float  # the measurement that can measure the method (fathom.ensemble.osd_choice)
    standard_error: float  # the estimate's, under no separation (the choice ranks estimate - standard_error)
    demo_eval: Optional[float] = None


@dataclass(frozen=True)
class OsdChoice:
    method: str
    sauc: dict[str, OsdScore]
    unseen_category_images: int  # known out-of-sample frames of the held-out-categories measurement
    held_out_se: Optional[float] = None  # standard error of a held-out-categories sAUC under no separation
    probes: int = 0  # leave-categories-out probes measured on (0: the folds' own unseen-category frames)

    @property
    def chosen(self) -> OsdScore:
        return self.sauc[self.method]


@dataclass(frozen=True)
class EnsembleRecord:
    """runs/<exp>/ensemble.json: the tuned ensemble and every number behind its choices."""

    exp: str
    git_commit: str
    members: list[str]
    folds: list[int]
    tta: bool
    strategy: str
    weights: dict[str, float]
    exponents: dict[str, float]
    oof_map20: OofScores
    strategies: dict[str, StrategyScore]
    osd: OsdChoice

    @property
    def chosen(self) -> StrategyScore:
        return self.strategies[self.strategy]


@dataclass(frozen=True)
class SubmissionRecord:
    """submissions/<name>.json: where a submission came from and, on data with a solution, its score."""

    name: str
    exp: str
    git_commit: str
    rows: int
    members: list[str]
    ensemble: Optional[EnsembleRecord]  # None: an equal blend of the models' own osd (the prior)
    eval_score: Optional[dict[str, Optional[float]]] = None  # None inside: undefined (e.g. one class)


def write_record(record, path: Path) -> None:
    """A record as JSON (atomically)."""
    write_json(dataclasses.asdict(record), path)


def read_record(cls: type[R], path: Path, hint: str = "") -> R:
    """The record of type `cls` in `path`; a missing file, an unknown or missing key is a DataError."""
    if not path.is_file():
        raise DataError(path, "not found", hint=hint)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(path, f"unreadable JSON ({err})", hint="delete it and run the step that writes it") from None
    return build(cls, data, path)


def build(cls, data: Any, path: Path, where: str = ""):
    """`data` (parsed JSON) as `cls`: a record dataclass, Optional, dict[str, X], list[X] or a plain type."""
    origin, args = typing.get_origin(cls), typing.get_args(cls)
    if origin is typing.Union:
        inner = [a for a in args if a is not type(None)][0]
        return None if data is None else build(inner, data, path, where)
    if dataclasses.is_dataclass(cls):
        if not isinstance(data, dict):
            raise DataError(path, f"{where or 'record'}: expected an object, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        missing = sorted(n for n, f in fields.items() if n not in data and f.default is dataclasses.MISSING)
        if unknown or missing:
            raise DataError(path, f"{where or cls.__name__}: " + "; ".join(
                part for part in (f"unknown keys {unknown}" if unknown else "",
                                  f"missing keys {missing}" if missing else "") if part),
                hint="written by another version of fathom: run the step that writes it again")
        return cls(**{k: build(hints[k], v, path, f"{where}.{k}".lstrip(".")) for k, v in data.items()})
    if origin in (dict, list) and not isinstance(data, origin):
        raise DataError(path, f"{where}: expected {'an object' if origin is dict else 'a list'}, got {data!r}"[:200])
    if origin is dict:
        return {str(k): build(args[1], v, path, f"{where}.{k}") for k, v in data.items()}
    if origin is list:
        return [build(args[0], v, path, f"{where}[{i}]") for i, v in enumerate(data)]
    if cls is float and (data is None or isinstance(data, (int, float))) and not isinstance(data, bool):
        return float("nan") if data is None else float(data)  # write_json writes NaN as null
    if not isinstance(data, cls) or (cls is int and isinstance(data, bool)):
        raise DataError(path, f"{where}: expected {cls.__name__}, got {data!r}")
    return data


# ---- folders --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FoldDir:
    """runs/<exp>/<backbone>/fold_<k>/ and every file in it."""

    path: Path
    PREFIX = "fold_"

    @classmethod
    def is_fold_name(cls, name: str) -> bool:
        return name.startswith(cls.PREFIX)

    @property
    def backbone(self) -> str:
        return self.path.parent.name

    @property
    def fold(self) -> int:
        return int(self.path.name.removeprefix(self.PREFIX))

    @property
    def is_probe(self) -> bool:
        return self.path.parent.parent.name == "probe"

    @property
    def label(self) -> str:
        """How logs name it: 'resnet18 fold 0', or 'resnet18 probe 0' for a leave-categories-out probe."""
        return f"{self.backbone} {'probe' if self.is_probe else 'fold'} {self.fold}"

    @property
    def staging(self) -> "FoldDir":
        """Where a run of this fold trains until it is done: runs/<exp>/staging/<the fold's path in the run>."""
        parts = 3 if self.is_probe else 2
        root = self.path.parents[parts - 1]
        return FoldDir(root / STAGING / self.path.relative_to(root))

    config = property(lambda self: self.path / "config.yaml")
    meta = property(lambda self: self.path / "meta.json")
    metrics = property(lambda self: self.path / "metrics.csv")
    best = property(lambda self: self.path / "best.pt")
    last = property(lambda self: self.path / "last.pt")
    done_file = property(lambda self: self.path / "done.json")
    unseen_file = property(lambda self: self.path / "unseen.npz")  # probes only
    tta_dir = property(lambda self: self.path / "tta")

    def predictions(self, split: str, tta: bool = False) -> Path:
        """oof.npz / test.npz / train.npz (the training frames, predicted by the fold's own model: the
        reference of the feature-based out-of-sample scores), or tta/oof.npz / tta/test.npz."""
        return (self.tta_dir if tta else self.path) / f"{check_split(split, FOLD_SPLITS if not tta else SPLITS)}.npz"

    def fingerprint_started(self) -> str | None:
        """The fingerprint of the run that wrote meta.json here (None: no readable meta.json)."""
        try:
            return json.loads(self.meta.read_text()).get("fingerprint")
        except (OSError, ValueError, AttributeError):
            return None

    def train_config(self, overrides: list[str] = ()) -> TrainConfig:
        """The resolved config the fold trained with (config.yaml), `key=value` overrides applied."""
        return load_config(str(self.config), list(overrides))

    def prediction_config(self, overrides: list[str] = ()) -> TrainConfig:
        """The config the fold trained with, with prediction-only `overrides` (PREDICTION_KEYS: the views,
        batch size, workers, cache, device); where it trained says nothing of where it predicts."""
        for item in overrides:
            if item.partition("=")[0] not in PREDICTION_KEYS:
                raise DataError("command line", f"{item!r}: prediction may only change "
                                f"{', '.join(sorted(PREDICTION_KEYS))}", hint="other settings are fixed by how the "
                                "fold was trained")
        return self.train_config(["device=auto", *overrides])

    def is_finished(self) -> bool:
        return self.done_file.is_file()

    def done(self) -> Done:
        return read_record(Done, self.done_file, hint=f"train {self.backbone} fold {self.fold} first")

    def write_done(self, done: Done) -> None:
        write_record(done, self.done_file)

    def has_tta(self) -> bool:
        """Whether `predict` wrote the fold's TTA files (a retrain replaces the whole fold folder, so they are
        always the current model's)."""
        return all(self.predictions(split, tta=True).is_file() for split in SPLITS)

    def tta_views(self) -> list[str]:
        """The views of the fold's TTA files; a DataError naming the fold when its oof and test files hold
        different ones (files copied in from another `predict`)."""
        views = {split: Predictions.views_of(self.predictions(split, tta=True)) for split in SPLITS}
        if views["oof"] != views["test"]:
            raise DataError(self.tta_dir, f"{self.label}: its oof and test TTA files hold different views "
                            f"({', '.join(views['oof']) or 'none'} vs {', '.join(views['test']) or 'none'})",
                            hint="run `python -m fathom predict` again: it replaces every fold's TTA files as one set")
        return list(views["oof"])


@dataclass(frozen=True)
class Experiment:
    """runs/<exp>/: its fold folders, prediction files and records."""

    runs: Path
    name: str

    def __post_init__(self):
        checked_name(self.name, "experiment name")

    @property
    def root(self) -> Path:
        return Path(self.runs) / self.name

    summary_file = property(lambda self: self.root / "summary.json")
    ensemble_file = property(lambda self: self.root / "ensemble.json")
    osd_scores_file = property(lambda self: self.root / "ensemble" / "osd_scores.npz")
    appearance_file = property(lambda self: self.root / "appearance.npz")
    lock_file = property(lambda self: self.root / ".writer.lock")  # `writing`: one writer at a time
    writer_file = property(lambda self: self.root / ".writer.json")  # who holds it: pid and command
    views_file = property(lambda self: self.root / "tta" / "views.json")
    report = property(lambda self: self.root / "report.md")
    distill_file = property(lambda self: self.root / "distill.json")

    def report_plot(self, name: str) -> Path:
        return self.root / f"report_{name}.png"

    def fold(self, backbone: str, fold: int) -> FoldDir:
        return FoldDir(self.root / checked_name(backbone, "backbone") / f"{FoldDir.PREFIX}{fold}")

    def prediction_dir(self, split: str, tta: bool = False) -> Path:
        """oof/ or test/ (under tta/ for the TTA files)."""
        return self.root / ("tta" if tta else "") / check_split(split)

    def predictions(self, split: str, model: str, tta: bool = False) -> Path:
        return self.prediction_dir(split, tta) / f"{model}.npz"

    def prediction_files(self, split: str) -> list[Path]:
        return sorted(self.prediction_dir(split).glob("*.npz"))

    def ensemble_predictions(self, split: str) -> Path:
        return self.root / "ensemble" / f"{check_split(split)}.npz"

    probe_root = property(lambda self: self.root / "probe")
    staging_root = property(lambda self: self.root / STAGING)

    def settle(self) -> list[Path]:
        """Finish every folder replacement a kill cut between its two renames (a fold, a fold's tta/, the
        experiment's tta/); returns the folders settled. Writers call it under the writer lock."""
        settled = []
        for aside in sorted(self.root.rglob("*.replaced")):
            staging = aside.with_name(aside.name.removesuffix(".replaced"))  # atomic.aside_of, inverted
            if staging.name.endswith(".staging"):  # staged_folder: <target>.staging beside the target
                target = staging.with_name(staging.name.removesuffix(".staging"))
            elif staging.is_relative_to(self.staging_root):  # a fold: staging/<its path in the run>
                target = self.root / staging.relative_to(self.staging_root)
            else:
                continue
            if settle_replacement(staging, target):
                settled.append(target)
        return settled

    def probe(self, backbone: str, half: int) -> FoldDir:
        return FoldDir(self.probe_root / checked_name(backbone, "backbone") / f"{FoldDir.PREFIX}{half}")

    def finished_probes(self) -> list[FoldDir]:
        """The probes that finished training, by backbone and half."""
        dirs = (FoldDir(done.parent) for done in self.root.glob(f"probe/*/{FoldDir.PREFIX}*/done.json"))
        return sorted(dirs, key=lambda d: (d.backbone, d.fold))

    def finished_folds(self) -> dict[str, list[FoldDir]]:
        """backbone -> its fold folders that finished training, in fold order."""
        found: dict[str, list[FoldDir]] = {}
        dirs = (FoldDir(done.parent) for done in self.root.glob(f"*/{FoldDir.PREFIX}*/done.json"))
        for fold_dir in sorted(dirs, key=lambda d: (d.backbone, d.fold)):
            found.setdefault(fold_dir.backbone, []).append(fold_dir)
        return found

    def require_finished_folds(self) -> dict[str, list[FoldDir]]:
        """finished_folds, or an error saying to train first."""
        found = self.finished_folds()
        if not found:
            raise DataError(self.root, "no finished folds (done.json)", hint=f"train experiment {self.name!r} first")
        return found

    def ensemble(self) -> EnsembleRecord:
        """ensemble.json, refused when it names a member with no finished fold here (a record of other runs)."""
        record = read_record(EnsembleRecord, self.ensemble_file,
                             hint=f"run `python -m fathom ensemble --exp {self.name}` first")
        unknown = sorted(set(record.members) - set(self.finished_folds()))
        if unknown:
            raise DataError(self.ensemble_file, f"names members with no finished fold in {self.root}: {unknown}",
                            hint=f"run `python -m fathom ensemble --exp {self.name}` again")
        return record

    def same_tta_views(self, dirs: list[FoldDir]) -> list[str]:
        """The TTA views every fold in `dirs` was predicted with; a DataError naming a fold whose oof and test
        files differ (FoldDir.tta_views), or the folds when they hold different views."""
        views = {d.label: d.tta_views() for d in dirs}
        if len({tuple(v) for v in views.values()}) > 1:
            raise DataError(self.root, "folds predicted with different TTA views: " + "; ".join(
                f"{label}: {', '.join(v) or 'none'}" for label, v in views.items()),
                hint=f"run `python -m fathom predict --exp {self.name}` again")
        return next(iter(views.values()), [])

    def summary(self) -> Summary | None:
        return read_record(Summary, self.summary_file) if self.summary_file.is_file() else None


@contextmanager
def writing(experiment: Experiment, command: str, wait: bool = False, create: bool = False):
    """Hold the experiment's writer lock (an OS file lock, `filelock`) for the block: `train`, `predict`,
    `ensemble` and `submit` of one run folder never write at once. A second writer stops at once with one line
    naming the holder's pid and command, or waits for it with `wait`. `create`: make the folder (train); a
    folder that does not exist yet is not locked (the command then fails on its own, writing nothing)."""
    from filelock import FileLock, Timeout

    if not experiment.root.is_dir() and not create:
        yield
        return
    experiment.root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(experiment.lock_file)
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except Timeout:
        try:
            holder = json.loads(experiment.writer_file.read_text())
            who = f"pid {holder['pid']} ({holder['command']})"
        except (OSError, ValueError, KeyError, TypeError):
            who = "another process"
        raise DataError(experiment.root, f"{who} is writing this run", hint="let it finish, or pass --wait to "
                        "wait for it") from None
    try:
        write_json({"pid": os.getpid(), "command": command}, experiment.writer_file)
        experiment.settle()
        yield
    finally:
        experiment.writer_file.unlink(missing_ok=True)
        lock.release()


@dataclass(frozen=True)
class SubmissionFiles:
    """submissions/: <name>.csv, the copy every run refreshes (submission.csv) and <name>.json."""

    out_dir: Path
    name: str

    def __post_init__(self):
        checked_name(self.name, "submission name")

    csv = property(lambda self: Path(self.out_dir) / f"{self.name}.csv")
    latest = property(lambda self: Path(self.out_dir) / "submission.csv")
    record = property(lambda self: Path(self.out_dir) / f"{self.name}.json")


def check_split(split: str, known: tuple[str, ...] = SPLITS) -> str:
    if split not in known:
        raise ValueError(f"split must be one of {known}, not {split!r}")
    return split
