"""Experiment configs: one dataclass of defaults, a small YAML file per experiment, CLI overrides last.

Unknown keys, wrong types and values out of range are errors that name the file (or override) and the key.
A numeric key's range is declared with its field (`Annotated[float, Range(...)]`, e.g. `Positive`) and read
by one checker (`TrainConfig.validate`); relations between keys are checked after it.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import yaml

from fathom.errors import DataError, checked_name

CONFIG_DIR = Path(__file__).parent / "configs"
AMP_MODES = ("auto", "fp16", "bf16", "fp32")
CHOICES = {  # keys with a fixed set of values; the modules that act on them read their names here
    "amp": AMP_MODES,
    "device": ("auto", "cuda", "cpu"),
    "infer_amp": ("train", *AMP_MODES),
    "optimizer": ("adamw", "adam"),
    "loss": ("bce", "asl", "focal"),
    "sampler": ("uniform", "balanced"),
    "head": ("linear", "mlp"),
    "sampling": ("frames", "crops"),
    "cache_format": ("npy", "jpeg"),
    "tile_combine": ("auto", "max", "noisy_or", "topk_mean", "mean"),
}


@dataclass(frozen=True)
class Range:
    """The values a numeric key allows: above `gt`, at least `ge`, below `lt`, at most `le` (finite), or
    exactly `off` (a value that switches the setting off, e.g. 0)."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    off: float | None = None

    def allows(self, value: float) -> bool:
        if self.off is not None and value == self.off:
            return True
        return (math.isfinite(value) and (self.gt is None or value > self.gt) and (self.ge is None or value >= self.ge)
                and (self.lt is None or value < self.lt) and (self.le is None or value <= self.le))

    def __str__(self) -> str:
        bounds = [f"{op} {bound:g}" for op, bound in ((">", self.gt), (">=", self.ge), ("<", self.lt),
                                                      ("<=", self.le)) if bound is not None]
        text = " and ".join(bounds)
        return f"{self.off:g} (off) or {text}" if self.off is not None else text


Count = Annotated[int, Range(ge=1)]
CountOrOff = Annotated[int, Range(ge=1, off=0)]  # 0 switches it off (or means "all", "the default")
NonNegativeInt = Annotated[int, Range(ge=0)]
Positive = Annotated[float, Range(gt=0)]
NonNegative = Annotated[float, Range(ge=0)]
Share = Annotated[float, Range(ge=0, le=1)]
Fraction = Annotated[float, Range(ge=0, lt=1)]  # a share that must leave something: dropout, smoothing

# not settable per backbone (the image cache is shared by the experiment's backbones)
EXPERIMENT_KEYS = {"name", "backbones", "folds", "cache_dir", "cache_format", "by_backbone", "sampling",
                   "crop_long_side", "probe_share", "probe_backbone", "probe_epochs"}  # not settable per backbone


@dataclass
class TrainConfig:
    name: str = "exp"  # experiment name: runs/<name>/
    backbones: list[str] = field(default_factory=lambda: ["resnet18"])
    pretrained: bool = True  # timm's loader (internet or a filled Hugging Face cache)
    weights: dict[str, str] = field(default_factory=dict)  # backbone -> local weights file (Kaggle dataset)
    image_size: Count = 384
    folds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])  # which folds of the folds file to train
    epochs: Count = 10
    batch_size: Count = 32
    optimizer: str = "adamw"  # adamw | adam (the seed projects': Adam, with weight_decay as L2)
    lr: Positive = 3e-4
    weight_decay: NonNegative = 0.05
    warmup_epochs: NonNegative = 1.0
    super_weight: NonNegative = 0.5  # lambda: loss = fine + lambda * super
    loss: str = "bce"  # bce | asl | focal (timm's AsymmetricLossMultiLabel; focal = its symmetric case)
    asl_gamma_neg: NonNegative = 4.0
    asl_gamma_pos: NonNegative = 1.0
    asl_clip: Fraction = 0.05
    focal_gamma: NonNegative = 2.0
    pos_weight_power: NonNegative = 0.5  # pos_weight_c = min(cap, ((N - n_c) / n_c) ** power); 0 = unweighted
    pos_weight_cap: Positive = 10.0
    label_smoothing: Fraction = 0.0
    logit_adjustment: NonNegative = 0.0  # tau: the loss adds tau * log-odds(class frequency) to the fine logits
    sampler: str = "uniform"  # uniform | balanced (repeat-factor weights: rare-category images drawn more)
    repeat_threshold: Share = 0.1  # balanced: a category in a share f < t of the images repeats sqrt(t / f) x
    # Small animals (docs/small-animals.md; fathom.data.sampling, fathom.data.crops, fathom.data.tiles)
    sampling: str = "frames"  # frames | crops: box-aware crops for training and tiles for prediction
    crop_long_side: Count = 960  # crops: frames are cached with their long side at most this (px, never enlarged)
    crop_size: Count = 384  # crops: side of a crop or tile in those pixels, resized to image_size
    crop_frame_ratio: Share = 0.2  # crops: share of training samples that are whole frames with the image's labels
    crop_background_ratio: Share = 0.1  # crops: share of the crops placed anywhere instead of around a box
    crop_jitter: Share = 0.5  # crops: the box's centre lies within +-jitter x crop_size / 2 of the crop's centre
    # crops: a box labels a crop when at least this share of its area is inside
    crop_min_visible: Annotated[float, Range(gt=0, le=1)] = 0.5
    # prediction: neighbouring tiles overlap by at least this share of crop_size
    tile_overlap: Annotated[float, Range(ge=0, le=0.9)] = 0.25
    tile_combine: str = "auto"  # auto (best on each fold's validation) | max | noisy_or | topk_mean | mean
    tile_topk: Count = 2  # topk_mean: how many of a frame's views are averaged
    mixup_alpha: NonNegative = 0.0  # > 0: mixup of images and their multi-hot targets (timm's Mixup)
    cutmix_alpha: NonNegative = 0.0  # > 0: cutmix (with both on, each batch takes one of the two)
    mix_prob: Share = 1.0  # share of batches mixed
    head: str = "linear"  # linear | mlp (dropout -> linear -> BN -> ReLU -> linear, the ConvNeXt seed's)
    distill_from: str = ""  # an experiment whose ensemble's held-out OOF probabilities are soft targets
    distill_weight: Share = 0.5  # target = weight * soft + (1 - weight) * true labels (images with soft ones)
    head_hidden: Count = 512
    drop_rate: Fraction = 0.2  # dropout before the heads
    model_kwargs: dict = field(default_factory=dict)  # to timm.create_model, e.g. drop_path_rate
    device: str = "auto"  # auto (a visible GPU, checked by fathom.device, else the CPU) | cuda (a GPU or stop) | cpu
    amp: str = "auto"  # auto | fp16 | bf16 | fp32  (auto: fp16 on CUDA, fp32 on CPU; YAML's `off` means fp32)
    infer_amp: str = "train"  # precision of validation and prediction: train (the amp above) | auto | fp16 | bf16 | fp32
    infer_batch_size: CountOrOff = 0  # images a validation or prediction batch holds; 0: batch_size
    channels_last: bool = True
    grad_accum: Count = 1
    clip_grad: Annotated[float, Range(gt=0, off=0)] = 5.0  # max gradient norm; 0 disables
    ema: bool = False
    ema_decay: Annotated[float, Range(gt=0, lt=1)] = 0.998
    patience: CountOrOff = 0  # early stopping: validations without a better validation MAP@20; 0 disables
    val_every: Count = 1  # validate (and maybe keep best.pt) every this many epochs, and always after the last
    seed: NonNegativeInt = 42
    deterministic: bool = False  # CUDA: deterministic kernels only (bit-exact GPU runs, slower); CPU runs always are
    wandb: bool = False  # track with Weights & Biases (also on when WANDB_API_KEY is set); never required
    wandb_project: str = "fathomnet2023"
    workers: NonNegativeInt = 2
    cache_dir: str = "cache"  # relative: under fathom.paths.scratch_dir() (Kaggle: /kaggle/temp, not the output)
    cache_format: str = "npy"  # npy (fastest reads, 1.5 MB per 960x540 frame) | jpeg (far smaller; a decode per read)
    time_budget_h: NonNegative = 0.0  # stop training at the first epoch boundary after this many hours (0: no limit)
    keep_last: bool = False  # keep a finished fold's last.pt (resume state; only best.pt is needed to predict)
    checkpoint_every: Count = 1  # write last.pt every this many epochs, after the last, and when the budget stops
    # training frames a fold predicts as the feature-based osd reference (a seeded sample; 0: all)
    reference_frames: CountOrOff = 0
    tta_hflip: bool = True  # `python -m fathom predict`: add the mirrored view
    tta_scales: list[float] = field(default_factory=lambda: [1.0])  # and/or these multiples of image_size
    tta_adapt_bn: bool = False  # `predict`: BatchNorm statistics re-estimated on each predicted set (AdaBN)
    limit: CountOrOff = 0  # smoke runs: use at most this many images per split; 0 = all
    # Leave-categories-out probes (fathom.train.probe): the osd choice's out-of-sample validation frames
    # share of training frames holding a held-out category; 0: no probes
    probe_share: Annotated[float, Range(ge=0, le=0.8)] = 0.35
    probe_backbone: str = ""  # the probes' backbone, trained with its own settings ("": the first backbone)
    probe_epochs: CountOrOff = 0  # 0: the probe backbone's epochs

    # backbone -> {key: value} where one backbone needs its own settings, e.g. {efficientnet_b0: {amp: fp32}}
    by_backbone: dict[str, dict] = field(default_factory=dict)

    @property
    def prediction_batch_size(self) -> int:
        """Images per validation or prediction batch: `infer_batch_size`, else `batch_size`. Without gradients a
        larger batch is cheap and faster (BENCHMARKS.md, "The demo recipe")."""
        return self.infer_batch_size or self.batch_size

    def for_backbone(self, backbone: str) -> "TrainConfig":
        """This config with `by_backbone[backbone]` applied (the settings one backbone trains with)."""
        return apply(self, {"by_backbone": {}, **self.by_backbone.get(backbone, {})}, f"by_backbone.{backbone}")

    def validate(self, source: str) -> None:
        checked_name(self.name, "name", source)  # names become folders: runs/<name>/<backbone>/
        for backbone in [*self.backbones, *self.by_backbone, *([self.probe_backbone] if self.probe_backbone else [])]:
            checked_name(backbone, "backbone", source)
        if self.distill_from:
            checked_name(self.distill_from, "distill_from", source)
        for key, allowed in CHOICES.items():
            if getattr(self, key) not in allowed:
                raise DataError(source, f"{key} must be one of {', '.join(allowed)}, not {getattr(self, key)!r}",
                                where=key)
        if (self.mixup_alpha or self.cutmix_alpha) and self.batch_size % 2:
            raise DataError(source, "mixup and cutmix pair each image with another: batch_size must be even",
                            where="batch_size")
        for key, rule in RANGES.items():
            value = getattr(self, key)
            if not rule.allows(value):
                raise DataError(source, f"{key} must be {rule}, not {value!r}", where=key)
        for backbone, values in self.by_backbone.items():
            shared = sorted(set(values) & EXPERIMENT_KEYS)
            if shared:
                raise DataError(source, f"{', '.join(shared)} belong to the whole experiment, not one backbone",
                                where=f"by_backbone.{backbone}")
            apply(dataclasses.replace(self, by_backbone={}), values, f"{source} (by_backbone.{backbone})")
        if not self.tta_scales or min(self.tta_scales) <= 0:
            raise DataError(source, "tta_scales must list positive multiples of image_size, e.g. [1.0, 1.25]",
                            where="tta_scales")
        if not self.backbones:
            raise DataError(source, "list at least one backbone", where="backbones")
        if not self.folds:
            raise DataError(source, "list at least one fold to train", where="folds")
        if self.probe_backbone and self.probe_backbone not in self.backbones:
            raise DataError(source, f"probe_backbone {self.probe_backbone!r} is not one of the backbones",
                            where="probe_backbone", hint="leave it empty for the first backbone")


RANGES = {key: rule for key, hint in typing.get_type_hints(TrainConfig, include_extras=True).items()
          for rule in getattr(hint, "__metadata__", ()) if isinstance(rule, Range)}


def check_type(value, annotation, source: str, key: str):
    """Return `value` converted to `annotation` (int -> float allowed) or raise naming the key."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    ok = False
    if annotation is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        value, ok = float(value), True
    elif annotation in (int, str, bool):
        ok = isinstance(value, annotation) and (annotation is bool or not isinstance(value, bool))
    elif annotation is dict:  # by_backbone's inner mapping: its keys are checked against TrainConfig later
        ok = isinstance(value, dict)
    elif origin is list and isinstance(value, list):
        value, ok = [check_type(v, args[0], source, key) for v in value], True
    elif origin is dict and isinstance(value, dict):
        value, ok = {check_type(k, args[0], source, key): check_type(v, args[1], source, key)
                     for k, v in value.items()}, True
    if not ok:
        raise DataError(source, f"{value!r} is not of type {getattr(annotation, '__name__', annotation)}", where=key)
    return value


def apply(cfg: TrainConfig, values: dict, source: str) -> TrainConfig:
    hints = typing.get_type_hints(TrainConfig)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    updates = {}
    for key, value in values.items():
        if key not in known:
            raise DataError(source, f"unknown key {key!r}", where=key, hint=f"known keys: {', '.join(sorted(known))}")
        if key == "amp" and value is False:
            value = "fp32"  # YAML 1.1 reads `off` as false
        updates[key] = check_type(value, hints[key], source, key)
    cfg = dataclasses.replace(cfg, **updates)
    cfg.validate(source)
    return cfg


def resolve_path(config: str) -> Path:
    """A config file path, or the name of a config shipped with the package (e.g. `demo`)."""
    path = Path(config)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    return CONFIG_DIR / f"{config}.yaml"


def load_config(config: str, overrides: list[str] = ()) -> TrainConfig:
    """Defaults <- YAML file <- `key=value` overrides (values parsed as YAML). An override of a key also
    replaces the file's `by_backbone` values of that key: `epochs=2` means 2 epochs for every backbone."""
    path = resolve_path(config)
    if not path.is_file():
        shipped = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
        raise DataError(path, "config not found", hint=f"pass a YAML path or one of: {shipped}")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise DataError(path, f"invalid YAML: {getattr(err, 'problem', None) or ' '.join(str(err).split())}",
                        where=f"line {mark.line + 1} column {mark.column + 1}" if mark else None) from None
    if not isinstance(values, dict):
        raise DataError(path, "expected a mapping of key: value")
    cfg = apply(TrainConfig(name=path.stem), values, str(path))
    for item in overrides:
        key, value = assignment(item)
        cfg = apply(cfg, {key: value}, "command line")
        cfg.by_backbone = {backbone: {k: v for k, v in values.items() if k != key}
                           for backbone, values in cfg.by_backbone.items()}
    return cfg


def assignment(item: str, what: str = "override") -> tuple[str, object]:
    """`key=value` from the command line as (key, the value parsed as YAML); a DataError naming the `what`
    (an override, a notebook parameter) when it is not key=value or the value is not valid YAML."""
    key, sep, raw = item.partition("=")
    if not sep:
        raise DataError("command line", f"{what} {item!r} is not key=value")
    try:
        return key, yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise DataError("command line", f"{what} {item!r}: the value is not valid YAML "
                        f"({' '.join(str(getattr(err, 'problem', None) or err).split())})", where=key,
                        hint="quote lists and mappings, e.g. 'folds=[0, 1]'") from None


def to_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)
