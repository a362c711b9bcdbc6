"""`python -m fathom <command>`: one subcommand per pipeline stage; each only wires the package."""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import sys
from pathlib import Path
from typing import Callable

from fathom import paths
from fathom.errors import FathomError, one_line, os_error_line

log = logging.getLogger("fathom")


Command = tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
COMMANDS: list[Command] = []  # (name, help, its arguments, what it runs), in the order `--help` lists them
GROUPS = {"bench": "benchmarks: `bench speed` (throughput, FLOP/s, memory), `bench quality` (ablations), "
                   "`bench demo` (the demo's targets), `bench worlds` (the demo worlds side by side), `bench scale`"}


SMALLEST_IMAGE = 32  # px: the backbones' five stride-2 stages leave one cell


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, like every other failure (exit 2)."""

    def error(self, message: str):
        self.exit(2, f"error: command line: {message} -- see `{self.prog} --help`\n")


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse `type`: an integer no smaller than `minimum` (a usage error naming the option otherwise)."""
    def integer(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value
    return integer


def fraction(text: str) -> float:
    """An argparse `type`: a number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, not {text}")
    return value


def command(name: str, help_text: str, arguments: Callable[[argparse.ArgumentParser], None]):
    """Register `cmd_*` as `python -m fathom NAME`, with its arguments declared just above it."""
    def register(func: Callable[[argparse.Namespace], int]):
        COMMANDS.append((name, help_text, arguments, func))
        return func
    return register


def add_wait_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wait", action="store_true",
                   help="wait for another command writing the same run to finish (default: stop at once)")


def writer_lock(args, name: str, create: bool = False):
    """The run folder's writer lock for this command (fathom.runs.writing); under torchrun only rank 0 takes it."""
    from contextlib import nullcontext

    from fathom.runs import Experiment, writing

    if os.environ.get("RANK", "0") != "0":
        return nullcontext()
    return writing(Experiment(args.runs, name), "python -m fathom " + " ".join(sys.argv[1:]), args.wait, create)


def add_data_args(p: argparse.ArgumentParser, images: bool = True) -> None:
    p.add_argument("--data", type=Path, default=paths.data_dir(), help="competition folder (default: %(default)s)")
    if images:
        p.add_argument("--images", type=Path, default=None, help="image folder (default: DATA/images)")
        p.add_argument("--allow-missing-images", action="store_true",
                       help="skip missing or unreadable images with a warning instead of stopping")


def load(args, check_images: bool = True):
    from fathom.data.layout import load_dataset

    return load_dataset(args.data, getattr(args, "images", None), check_images=check_images,
                        allow_missing_images=getattr(args, "allow_missing_images", False))


def record_bench(result: dict, out: Path | None) -> None:
    """Add the command, commit and date to a benchmark's result and write it to `out` (JSON) if given."""
    from fathom.atomic import write_json
    from fathom.provenance import git_commit

    result.update(command="python -m fathom " + " ".join(sys.argv[1:]), git_commit=git_commit(),
                  date=datetime.date.today().isoformat())
    if out:
        write_json(result, out)


def demo_data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("data/demo"))
    p.add_argument("--n-train", type=at_least(10), default=800)
    p.add_argument("--n-eval", type=at_least(2), default=400)
    p.add_argument("--size", type=at_least(SMALLEST_IMAGE), default=640, help="long side of the large frames, px")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="rebuild even when up to date")
    from fathom.demo.worlds import DEFAULT_WORLD, WORLDS

    p.add_argument("--world", default=DEFAULT_WORLD, choices=tuple(WORLDS),
                   help="how eval is shifted from train (fathom.demo.worlds; default: %(default)s)")


@command("demo-data", "write the synthetic demo competition folder", demo_data_arguments)
def cmd_demo_data(args) -> int:
    from fathom.demo.make import make_demo

    built = make_demo(args.out, args.n_train, args.n_eval, args.size, args.seed, force=args.force, world=args.world)
    print(f"demo data {'written to' if built else 'up to date in'} {args.out}")
    return 0


def download_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--coco", type=Path, required=True, help="e.g. DIR/object_detection/train.json")
    p.add_argument("--out", type=Path, default=None, help="image folder (default: DIR/images)")
    p.add_argument("--workers", type=int, default=16, help="concurrent downloads")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    p.add_argument("--attempts", type=int, default=4, help="tries per image (exponential backoff)")
    p.add_argument("--backoff", type=float, default=1.0, help="seconds before the first retry")
    p.add_argument("--max-mb", type=int, default=64, help="largest response accepted, MiB")


@command("download", "fetch every image of a COCO file from its coco_url (resumable)", download_arguments)
def cmd_download(args) -> int:
    from fathom.data.download import FAILURES_CSV, Settings, check_settings, download

    out = args.out or args.coco.resolve().parent.parent / "images"
    settings = check_settings(Settings(workers=args.workers, timeout=args.timeout, attempts=args.attempts,
                                       backoff=args.backoff, max_bytes=args.max_mb * 2**20))
    listed, failures = download(args.coco, out, settings)
    print(f"{out}: {listed - len(failures)} of {listed} images complete; {len(failures)} failed" +
          (f" (listed in {out / FAILURES_CSV}; run the same command again to retry them)" if len(failures) else ""))
    return 1 if len(failures) else 0


def folds_arguments(p: argparse.ArgumentParser) -> None:
    add_data_args(p, images=False)
    p.add_argument("--n-folds", type=at_least(2), default=5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--group", choices=["dive"], default=None,
                   help="keep every dive (from coco_url) in one fold: validation on unseen dives, like the test")
    p.add_argument("--out", type=Path, required=True, help="e.g. folds/demo.csv")


@command("folds", "build multilabel stratified folds (labels only, no images needed)", folds_arguments)
def cmd_folds(args) -> int:
    from fathom.folds import make_folds, summarize, write_folds

    dataset = load(args, check_images=False)
    folds = make_folds(dataset.train, dataset.categories, args.n_folds, args.seed, args.group)
    write_folds(folds, args.out)
    print(summarize(folds, dataset.train).to_string(index=False))
    print(f"wrote {len(folds)} ids in {args.n_folds} folds to {args.out}")
    return 0


def prior_arguments(p: argparse.ArgumentParser) -> None:
    add_data_args(p)
    p.add_argument("--folds", type=Path, required=True)
    p.add_argument("--exp", default="prior")
    p.add_argument("--runs", type=Path, default=paths.runs_dir())


@command("prior", "fit the label-frequency prior: OOF and test predictions", prior_arguments)
def cmd_prior(args) -> int:
    from fathom.data.features import colour_stats_many
    from fathom.folds import read_folds
    from fathom.metric import map_at_k_from_probs
    from fathom.data.labels import fine_multi_hot
    from fathom.models.prior import fit_prior
    from fathom.runs import Experiment

    dataset = load(args)
    folds = read_folds(args.folds, dataset.train["id"])
    train_features = colour_stats_many(list(dataset.train["path"]))
    eval_features = colour_stats_many(list(dataset.eval["path"]))
    oof, test = fit_prior(dataset.train, folds, dataset.eval["id"].to_numpy(), train_features, eval_features,
                          dataset.categories)
    oof.save(Experiment(args.runs, args.exp).predictions("oof", "prior"))
    test.save(Experiment(args.runs, args.exp).predictions("test", "prior"))
    targets = fine_multi_hot(dataset.train["categories"], dataset.categories)
    print(f"prior: OOF MAP@20 {map_at_k_from_probs(oof.fine, targets):.4f} ({len(oof.ids)} train images)")
    return 0


def train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="a YAML file or a shipped config name (demo, full)")
    add_data_args(p)
    p.add_argument("--folds", type=Path, required=True)
    p.add_argument("--fold", type=int, default=None, help="train only this fold")
    p.add_argument("--backbone", default=None, help="train only this backbone")
    p.add_argument("--resume", action="store_true", help="continue interrupted folds from their last.pt")
    p.add_argument("--runs", type=Path, default=paths.runs_dir())
    add_wait_arg(p)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. epochs=3")


@command("train", "train backbones x folds of a config; writes OOF and test predictions", train_arguments)
def cmd_train(args) -> int:
    from fathom.config import load_config
    from fathom.folds import read_folds
    from fathom.models.net import check_backbones
    from fathom.train.run import train

    cfg = load_config(args.config, args.overrides)
    check_backbones([args.backbone] if args.backbone else cfg.backbones)
    dataset = load(args)
    folds = read_folds(args.folds, dataset.train["id"])
    with writer_lock(args, cfg.name, create=True):
        scores = train(cfg, dataset, folds, args.runs, backbones=[args.backbone] if args.backbone else None,
                       fold_ids=[args.fold] if args.fold is not None else None, resume=args.resume)
    prior = scores.pop("prior", None)
    for backbone, score in scores.items():
        print(f"{cfg.name}/{backbone}: OOF MAP@20 {score:.4f} ({score - prior:+.4f} over the frequency prior's "
              f"{prior:.4f} on the same images)")
    return 0


def predict_arguments(p: argparse.ArgumentParser) -> None:
    add_data_args(p)
    p.add_argument("--exp", required=True)
    p.add_argument("--runs", type=Path, default=paths.runs_dir())
    add_wait_arg(p)
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="tta_hflip, tta_scales, tta_adapt_bn, batch_size, workers, e.g. tta_scales=[1.0,1.25]")


@command("predict", "re-predict OOF and eval images of every finished fold with TTA", predict_arguments)
def cmd_predict(args) -> int:
    from fathom.infer.tta import predict_experiment
    from fathom.runs import Experiment

    with writer_lock(args, args.exp):
        views = predict_experiment(load(args), args.runs, args.exp, args.overrides)
    folder = Experiment(args.runs, args.exp).views_file.parent
    for backbone, names in views.items():
        print(f"{args.exp}/{backbone}: TTA views {', '.join(names)} -> {folder}")
    return 0


def ensemble_arguments(p: argparse.ArgumentParser) -> None:
    add_data_args(p, images=False)
    p.add_argument("--exp", required=True)
    p.add_argument("--runs", type=Path, default=paths.runs_dir())
    p.add_argument("--osd", default=None, metavar="METHOD",
                   help="pin the out-of-sample method (e.g. domain, knn_aligned, entropy+colour) instead of the "
                        "label-free choice; report.md lists them")
    add_wait_arg(p)


@command("ensemble", "tune the ensemble and choose the osd on OOF predictions (reads no pixels)", ensemble_arguments)
def cmd_ensemble(args) -> int:
    from fathom.ensemble.fit import fit_ensemble

    with writer_lock(args, args.exp):
        ensemble, _ = fit_ensemble(load(args, check_images=False), args.runs, args.exp, osd=args.osd)
    weights = ", ".join(f"{n} {w:.2f}" for n, w in ensemble.weights.items() if w)
    strategies, osd = ensemble.strategies, ensemble.osd.chosen
    print(f"{args.exp}: ensemble '{ensemble.strategy}' ({weights}; b = {ensemble.exponents['b']}): OOF MAP@20 "
          f"{ensemble.chosen.held_out:.4f} held out (best single {strategies['best single'].held_out:.4f},"
          f" equal weights {strategies['equal weights'].held_out:.4f})")
    print(f"{args.exp}: osd = {ensemble.osd.method}{' (pinned by --osd)' if args.osd else ''} (estimated sAUC "
          f"{osd.estimate:.4f}; {osd.held_out_categories:.4f} on held-out categories, {osd.train_vs_test:.4f} "
          "train vs test)")
    return 0


def submit_arguments(p: argparse.ArgumentParser) -> None:
    add_data_args(p, images=False)
    p.add_argument("--exp", required=True)
    p.add_argument("--name", default=None, help="file name stem (default: the experiment)")
    p.add_argument("--runs", type=Path, default=paths.runs_dir())
    p.add_argument("--out", type=Path, default=paths.submissions_dir())
    add_wait_arg(p)


@command("submit", "write an experiment's ensemble (or the prior) as submission CSVs", submit_arguments)
def cmd_submit(args) -> int:
    from fathom.runs import SubmissionFiles
    from fathom.submit import submit

    files = SubmissionFiles(args.out, args.name or args.exp)  # a name that would escape stops here, first
    with writer_lock(args, args.exp):
        record = submit(load(args, check_images=False), args.runs, args.exp, args.out, files.name)
    print(f"wrote {files.csv} and {files.latest} ({record.rows} rows)")
    if record.eval_score is not None:
        print("demo eval score: " + json.dumps(record.eval_score))
    return 0


def validate_submission_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path)
    add_data_args(p, images=False)


@command("validate-submission", "check a submission file before uploading it", validate_submission_arguments)
def cmd_validate_submission(args) -> int:
    from fathom.submission import validate_submission_file

    dataset = load(args, check_images=False)
    validate_submission_file(args.file, dataset.eval["id"], dataset.categories.ids)
    print(f"{args.file}: valid ({len(dataset.eval)} rows)")
    return 0


def score_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--solution", type=Path, required=True)
    p.add_argument("--submission", type=Path, required=True)


@command("score", "score a submission as the official scorer does", score_arguments)
def cmd_score(args) -> int:
    from fathom.metric import as_json_numbers, read_scoring_csv, score_frames

    try:
        scores = score_frames(read_scoring_csv(args.solution), read_scoring_csv(args.submission))
    except ValueError as err:
        raise FathomError(f"{args.submission}: {err}") from None
    print(json.dumps(as_json_numbers(scores)))
    return 0


def report_arguments(p: argparse.ArgumentParser) -> None:
    add_data_args(p, images=False)
    p.add_argument("--exp", required=True)
    p.add_argument("--runs", type=Path, default=paths.runs_dir())
    p.add_argument("--out", type=Path, default=paths.submissions_dir(), help="submission records (the prior's)")
    p.add_argument("--prior", default="prior", help="the prior's submission name (default: %(default)s)")
    p.add_argument("--random-folds-exp", default=None, metavar="EXP",
                   help="the same recipe trained on random folds: its in-distribution OOF beside this one's")


@command("report", "write runs/<exp>/report.md with plots (after ensemble and submit)", report_arguments)
def cmd_report(args) -> int:
    from fathom.report import write_report
    from fathom.scoreboard import scoreboard_lines

    report = write_report(load(args, check_images=False), args.runs, args.exp, args.out, args.random_folds_exp,
                          args.prior)
    print(f"wrote {report}")
    print("\n".join(scoreboard_lines(args.runs, args.exp, args.out, prior=args.prior)))
    return 0


def explain_arguments(p: argparse.ArgumentParser) -> None:
    add_data_args(p)
    p.add_argument("--exp", required=True)
    p.add_argument("--ids", nargs="+", required=True, help="train or eval image ids")
    p.add_argument("--out", type=Path, required=True, help="folder for <id>.png")
    p.add_argument("--backbone", default=None, help="default: the ensemble's heaviest member, else the first")
    p.add_argument("--top", type=at_least(1), default=3, help="categories per image")
    p.add_argument("--runs", type=Path, default=paths.runs_dir())


@command("explain", "Grad-CAM overlays of an experiment's top-3 categories for some images", explain_arguments)
def cmd_explain(args) -> int:
    from fathom.explain import explain

    written = explain(load(args), args.runs, args.exp, args.ids, args.out, args.backbone, args.top)
    print(f"wrote {len(written)} Grad-CAM overlays to {args.out}")
    return 0


def distill_arguments(p: argparse.ArgumentParser) -> None:
    add_data_args(p)
    p.add_argument("--exp", required=True, help="the teacher experiment (after `ensemble`)")
    p.add_argument("--student", required=True, help="the student backbone, e.g. resnet18")
    p.add_argument("--folds", type=Path, required=True, help="the teacher's id,fold file")
    p.add_argument("--config", default="demo", help="the student's recipe (default: %(default)s)")
    p.add_argument("--weight", type=fraction, default=0.5, help="share of the soft labels in the targets")
    p.add_argument("--runs", type=Path, default=paths.runs_dir())
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides for the student")


@command("distill", "train one student backbone on an ensemble's soft labels; compare them", distill_arguments)
def cmd_distill(args) -> int:
    from fathom.config import load_config
    from fathom.distill import distill, distill_table
    from fathom.folds import read_folds

    dataset = load(args)
    folds = read_folds(args.folds, dataset.train["id"])
    result = distill(dataset, folds, load_config(args.config, args.overrides), args.runs, args.exp, args.student,
                     args.weight)
    print(distill_table(result))
    return 0


def bundle_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--config", default="full", help="whose backbones' weights to include (default: %(default)s)")
    p.add_argument("--weights", action="store_true", help="include ImageNet weights (downloads them via timm)")
    p.add_argument("--weights-from", type=Path, default=None,
                   help="include ImageNet weights from this folder (<backbone>.safetensors/.pth) instead")
    p.add_argument("--checkpoints", metavar="EXP", default=None, help="include this experiment's trained folds")
    p.add_argument("--runs", type=Path, default=paths.runs_dir())
    p.add_argument("--wheel", action="append", default=None, metavar="PKG",
                   help="a package Kaggle lacks (repeatable; default: iterative-stratification)")
    p.add_argument("--pip-arg", action="append", default=[], metavar="ARG",
                   help="passed to pip download, e.g. --pip-arg=--index-url=URL (repeatable)")
    p.add_argument("--dataset-id", default="YOUR_KAGGLE_USERNAME/fathom-bundle", help="for dataset-metadata.json")


@command("bundle", "build the folder to upload as a Kaggle dataset (code, wheels, weights)", bundle_arguments)
def cmd_bundle(args) -> int:
    from fathom.bundle import KAGGLE_LACKS, build_bundle
    from fathom.config import load_config

    backbones = load_config(args.config).backbones if args.weights or args.weights_from else []
    manifest = build_bundle(args.out, backbones, args.weights_from, args.runs, args.checkpoints,
                            KAGGLE_LACKS if args.wheel is None else args.wheel, args.pip_arg, args.dataset_id)
    print(f"wrote {args.out}: wheels {', '.join(manifest['wheels'])}; weights {', '.join(manifest['weights']) or '-'}"
          f"; run {manifest['run']['exp'] if manifest['run'] else '-'} (upload it as a Kaggle dataset: see its README)")
    return 0


def kaggle_kernel_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="the folder to push: kaggle kernels push -p OUT")
    p.add_argument("--user", required=True, help="your Kaggle user name (the kernel is USER/SLUG)")
    p.add_argument("--notebook", default="train", help="train (02), inference (03) or a notebook's path")
    p.add_argument("--slug", default=None, help="the kernel's slug (default: fathom-train / fathom-inference)")
    p.add_argument("--dataset", action="append", default=[], metavar="OWNER/SLUG",
                   help="a dataset to attach: the bundle, your images (repeatable; none needed with internet on)")
    p.add_argument("--resume-from", action="append", default=[], metavar="OWNER/KERNEL",
                   help="a kernel whose latest output the training continues (its finished folds are kept)")
    p.add_argument("--package", default=None, metavar="PIP_SPEC",
                   help="internet on, no bundle: where pip gets fathom, e.g. git+https://github.com/YOU/REPO@COMMIT")
    p.add_argument("--no-internet", action="store_true", help="internet off: attach the bundle with --dataset")
    p.add_argument("--cpu", action="store_true", help="no GPU (only to try the notebook)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a notebook parameter (YAML value), e.g. --set 'OVERRIDES=[\"folds=[0,1]\"]'")


@command("kaggle-kernel", "write the folder `kaggle kernels push` takes: a notebook and its kernel-metadata.json",
         kaggle_kernel_arguments)
def cmd_kaggle_kernel(args) -> int:
    from fathom.bundle import source_checkout
    from fathom.config import assignment
    from fathom.kaggle import write_kernel

    names = {"train": "02_train_kaggle.ipynb", "inference": "03_inference_kaggle.ipynb"}
    notebook = source_checkout() / "notebooks" / names[args.notebook] if args.notebook in names else Path(args.notebook)
    if not notebook.is_file():
        raise FathomError(f"{notebook}: notebook not found -- pass train, inference or a notebook's path")
    parameters = dict(assignment(item, "--set") for item in args.set)
    for key in parameters:
        if not key.isidentifier():
            raise FathomError(f"command line: --set {key!r}: a notebook parameter is a Python name")
    parameters = {"INTERNET": not args.no_internet, **({"PACKAGE": args.package} if args.package else {}),
                  **({"DEVICE": "auto"} if args.cpu else {}), **parameters}
    slug = args.slug or ("fathom-inference" if args.notebook == "inference" else "fathom-train")
    metadata = write_kernel(args.out, notebook, f"{args.user}/{slug}", args.dataset, args.resume_from,
                            internet=not args.no_internet, gpu=not args.cpu, parameters=parameters)
    print(f"wrote {metadata.parent / notebook.name} and {metadata}")
    print(f"push it: kaggle kernels push -p {args.out}{'' if args.cpu else ' --accelerator NvidiaTeslaT4'}; then "
          f"kaggle kernels status {args.user}/{slug} and kaggle kernels output {args.user}/{slug} -p OUTPUT_DIR")
    return 0


def bench_speed_arguments(p: argparse.ArgumentParser) -> None:
    add_data_args(p)
    p.add_argument("--config", default="demo", help="whose backbones and per-backbone settings (default: %(default)s)")
    p.add_argument("--backbones", nargs="+", default=None)
    p.add_argument("--sizes", nargs="+", type=at_least(SMALLEST_IMAGE), default=[64, 224])
    p.add_argument("--n-images", type=at_least(1), default=128, help="images per loader / epoch measurement")
    p.add_argument("--repeats", type=at_least(1), default=3, help="timed batches per model-step measurement")
    p.add_argument("--compile", action="store_true", help="add a torch.compile variant")
    p.add_argument("--rss-folds", type=Path, default=None, help="also measure peak RSS of one-fold training runs")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON")


@command("bench speed", "model step, loader and epoch throughput, ours vs naive, GFLOP/s, peak RSS",
         bench_speed_arguments)
def cmd_bench_speed(args) -> int:
    from fathom.bench.speed import run_speed_bench, training_peak_rss
    from fathom.bench.tables import speed_tables
    from fathom.config import load_config

    cfg = load_config(args.config)
    backbones = args.backbones or cfg.backbones
    result = run_speed_bench(load(args), cfg, backbones, args.sizes, args.n_images, args.repeats, args.compile)
    if args.rss_folds:
        result["peak_rss_mib"] = {b: training_peak_rss(args.data, args.rss_folds, args.config, b, ["epochs=1"])
                                  for b in backbones}
    record_bench(result, args.out)
    print(speed_tables(result))
    return 0


def bench_quality_arguments(p: argparse.ArgumentParser) -> None:
    add_data_args(p)
    p.add_argument("--folds", type=Path, required=True, help="id,fold file of the data")
    p.add_argument("--config", default="demo", help="the full recipe's config (default: %(default)s)")
    p.add_argument("--runs", type=Path, default=paths.runs_dir(), help="its experiments (finished folds are reused)")
    p.add_argument("--no-methods", action="store_true", help="leave out the method rows (one option each)")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. epochs=2")


@command("bench quality", "the full recipe against the seed recipe, single backbones and ablations",
         bench_quality_arguments)
def cmd_bench_quality(args) -> int:
    from fathom.bench.quality import run_quality_bench
    from fathom.bench.tables import quality_table, small_animals_table
    from fathom.distill import distill_table
    from fathom.config import load_config
    from fathom.folds import read_folds

    dataset = load(args)
    folds = read_folds(args.folds, dataset.train["id"])
    result = run_quality_bench(dataset, folds, load_config(args.config, args.overrides), args.runs,
                               methods=not args.no_methods)
    record_bench(result, args.out)
    print(quality_table(result))
    print(small_animals_table(result))
    if "distill" in result:
        print(distill_table(result["distill"]))
    return 0


def bench_demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--exp", default="demo", help="(default: %(default)s)")
    p.add_argument("--prior", default="prior", help="the prior's submission name (default: %(default)s)")
    p.add_argument("--runs", type=Path, default=paths.runs_dir())
    p.add_argument("--submissions", type=Path, default=paths.submissions_dir())
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON")


@command("bench demo", "the demo recipe's quality targets and margins, from a finished `bash run.sh`",
         bench_demo_arguments)
def cmd_bench_demo(args) -> int:
    from fathom.bench.demo import demo_table, demo_targets

    result = demo_targets(args.runs, args.exp, args.submissions, args.prior)
    record_bench(result, args.out)
    print(demo_table(result))
    return 0


def bench_worlds_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--case", nargs=4, action="append", metavar=("LABEL", "DATA", "EXP", "PRIOR"),
                   help="a finished demo run: its label, data folder, experiment (= submission name) and the prior's "
                        "submission name (default: the two worlds as `bash run.sh [--world content]` runs them)")
    p.add_argument("--runs", type=Path, default=paths.runs_dir())
    p.add_argument("--submissions", type=Path, default=paths.submissions_dir())
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON")


@command("bench worlds", "finished demo runs side by side (the two demo worlds): the osd choice against the best "
         "candidate, estimates against eval sAUC, eval scores", bench_worlds_arguments)
def cmd_bench_worlds(args) -> int:
    from fathom.bench.worlds import Case, worlds, worlds_table

    cases = [Case(label, Path(data), exp, prior) for label, data, exp, prior in args.case or
             (("gain", "data/demo", "demo", "prior"),
              ("content", "data/demo-content", "demo-content", "prior-content"))]
    result = worlds(cases, args.runs, args.submissions)
    record_bench(result, args.out)
    print(worlds_table(result))
    return 0


def bench_cache_arguments(p: argparse.ArgumentParser) -> None:
    add_data_args(p)
    p.add_argument("--n-images", type=at_least(1), default=48, help="train frames to cache (default: %(default)s)")
    p.add_argument("--long-side", type=at_least(SMALLEST_IMAGE), default=960,
                   help="(default: %(default)s, the full config's)")
    p.add_argument("--crop-size", type=at_least(SMALLEST_IMAGE), default=384, help="(default: %(default)s)")
    p.add_argument("--image-size", type=at_least(SMALLEST_IMAGE), default=384, help="(default: %(default)s)")
    p.add_argument("--real", type=Path, default=None, help="a folder with the real label files: project their size")
    p.add_argument("--cache-dir", type=Path, default=None, help="where the temporary caches go (default: the system's)")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON")


@command("bench cache", "image cache formats: bytes per frame, reads, crops, the real data's size",
         bench_cache_arguments)
def cmd_bench_cache(args) -> int:
    import tempfile

    import pandas as pd

    from fathom.bench.cache import run_cache_bench
    from fathom.bench.tables import cache_table
    from fathom.data.layout import read_coco_images, SPLIT_JSON

    dataset = load(args)
    paths = list(dataset.train["path"][: args.n_images])
    real = pd.concat([read_coco_images(args.real / SPLIT_JSON[s]) for s in SPLIT_JSON]) if args.real else None
    sizes = list(zip(real["width"], real["height"])) if real is not None else []
    with tempfile.TemporaryDirectory(dir=args.cache_dir) as cache:
        result = run_cache_bench(paths, Path(cache), args.long_side, args.crop_size, args.image_size, sizes)
    record_bench(result, args.out)
    print(cache_table(result))
    return 0


def bench_gpu_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backbones", nargs="+", default=["resnet18", "densenet121", "efficientnet_b0", "convnext_tiny"])
    p.add_argument("--size", type=at_least(SMALLEST_IMAGE), default=384, help="(default: %(default)s, the full config's)")
    p.add_argument("--batch", type=at_least(1), default=32, help="(default: %(default)s)")
    p.add_argument("--repeats", type=at_least(1), default=10, help="timed batches per step measurement")
    p.add_argument("--compile", action="store_true", help="add a torch.compile (fp16) variant")
    p.add_argument("--crop-size", type=at_least(SMALLEST_IMAGE), default=384,
                   help="crops and tiles, in pixels at long side 960")
    p.add_argument("--frames", type=at_least(1), default=96,
                   help="rendered 1920x1080 training frames (default: %(default)s)")
    p.add_argument("--workers", type=at_least(0), default=4, help="loader workers of the training (default: %(default)s)")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    p.add_argument("--benchmarks", type=Path, default=None, help="write the tables into this file's GPU-check section")


@command("bench gpu", "the CUDA check: backbone steps under fp16/bf16, a short real-size crops training",
         bench_gpu_arguments)
def cmd_bench_gpu(args) -> int:
    from fathom.bench.gpu import gpu_tables, run_gpu_check, write_into

    result = run_gpu_check(args.backbones, args.size, args.batch, args.repeats, args.compile, args.frames,
                           args.workers, args.crop_size)
    record_bench(result, args.out)
    tables = gpu_tables(result) + f"\n(`{result['command']}`, commit `{result['git_commit']}`, {result['date']})\n"
    if args.benchmarks:
        write_into(args.benchmarks, tables)
    print(tables)
    return 0


def bench_scale_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="demo", help="(default: %(default)s)")
    p.add_argument("--backbone", default="resnet18", help="(default: %(default)s)")
    p.add_argument("--images", nargs="+", type=at_least(10), default=[500, 2000, 8000], help="training image counts")
    p.add_argument("--sizes", nargs="+", type=at_least(SMALLEST_IMAGE), default=[64, 128, 256],
                   help="image sizes (at the first count)")
    p.add_argument("--n-eval", type=at_least(2), default=100, help="eval images of every point")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON and a log-log plot (.png)")


@command("bench scale", "one backbone's time and memory against training images and image size", bench_scale_arguments)
def cmd_bench_scale(args) -> int:
    from fathom.bench.scale import plot_scale, run_scale_bench
    from fathom.bench.tables import scale_table

    result = run_scale_bench(args.config, args.backbone, args.images, args.sizes, args.n_eval)
    record_bench(result, args.out)
    if args.out:
        plot_scale(result, args.out.with_suffix(".png"))
    print(scale_table(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """One subparser per registered command (`bench X` nests under `bench`), in registration order."""
    parser = Parser(prog="python -m fathom", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for name, help_text, arguments, func in COMMANDS:
        group, _, leaf = name.rpartition(" ")
        if group and group not in groups:
            groups[group] = sub.add_parser(group, help=GROUPS[group]).add_subparsers(
                dest=group, required=True, metavar=group.upper())
        p = (groups[group] if group else sub).add_parser(leaf, help=help_text)
        arguments(p)
        p.set_defaults(func=func)
    return parser


def run_command(*args) -> None:
    """Run one `python -m fathom` command in this process (notebooks); raises when it fails."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as err:  # argparse: a usage error, already printed
        code = err.code
    if code:
        raise FathomError(f"`python -m fathom {' '.join(map(str, args))}` failed (exit {code}); see the error above")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)  # key=value overrides may stand before or after the options
        if extra:
            if not hasattr(args, "overrides") or any(t.startswith("-") or "=" not in t for t in extra):
                parser.error(f"unrecognized arguments: {' '.join(extra)}")
            args.overrides += extra
    except SystemExit as stop:  # --help (0) or a usage error, already printed as one line (2)
        return stop.code
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    try:
        return args.func(args)
    except FathomError as err:
        print(f"error: {one_line(str(err))}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, a path that is a file, no permission: the path and what to do
        print(f"error: {os_error_line(err)}", file=sys.stderr)
        return 2
