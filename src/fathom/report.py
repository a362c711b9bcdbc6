"""`python -m fathom report --exp E`: runs/<exp>/report.md and its plots, from what the run wrote.

Reads the EnsembleRecord (written by `ensemble`), the Summary and ensemble/oof.npz (fathom.runs), the prior's
submission record when there is one, and optionally a second experiment trained on random folds (its
in-distribution OOF); trains and predicts nothing. Plots: per-category AP of the ensemble's held-out OOF scores against the category's
training frequency, and each backbone's OOF MAP@20 per fold next to the ensemble's.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import average_precision_score  # noqa: E402

from fathom.atomic import atomic_open, atomic_path  # noqa: E402
from fathom.data.layout import Dataset  # noqa: E402
from fathom.ensemble.members import train_labels  # noqa: E402
from fathom.folds import make_folds  # noqa: E402
from fathom.models.prior import frequency_prior_map20  # noqa: E402
from fathom.predictions import Predictions  # noqa: E402
from fathom.runs import EnsembleRecord, Experiment, Summary  # noqa: E402
from fathom.scoreboard import submission_record  # noqa: E402

IMAGE_LINK = re.compile(r"!\[([^\]]*)\]\(([^)\s]+\.png)\)")
OSD_PAIRS = 10  # the osd table lists every single method and the best pairs; ensemble.json holds every candidate


def per_category_ap(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """[290] average precision of ranking the images by each category's score; NaN without positives."""
    ap = np.full(targets.shape[1], np.nan)
    for c in np.flatnonzero(targets.sum(0) > 0):
        ap[c] = average_precision_score(targets[:, c], scores[:, c])
    return ap


def fmt(value) -> str:
    if value is None or (isinstance(value, float) and value != value):  # NaN: undefined (e.g. one class)
        return "–"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows])


def save_figure(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_ap_vs_frequency(ap: np.ndarray, train_count: np.ndarray, path: Path) -> None:
    seen = ~np.isnan(ap)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(np.maximum(train_count[seen], 0.8), ap[seen], s=14, alpha=0.7)
    ax.set_xscale("log")
    ax.set_xlabel("training images holding the category (0 plotted at 0.8)")
    ax.set_ylabel("average precision (held-out OOF)")
    ax.set_title("Per-category AP against training frequency")
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def plot_oof_scores(per_fold: dict[str, dict[str, float]], ensemble: dict[str, float], path: Path) -> None:
    names = list(per_fold) + ["ensemble"]
    folds = sorted({k for scores in per_fold.values() for k in scores}, key=int)
    width = 0.8 / max(len(folds), 1)
    fig, ax = plt.subplots(figsize=(7, 4))
    for j, fold in enumerate(folds):
        values = [per_fold[n].get(fold, np.nan) for n in per_fold] + [ensemble.get(fold, np.nan)]
        ax.bar(np.arange(len(names)) + j * width, values, width, label=f"fold {fold}")
    ax.set_xticks(np.arange(len(names)) + width * (len(folds) - 1) / 2, names, rotation=20)
    ax.set_ylabel("OOF MAP@20")
    ax.set_title("OOF MAP@20 per backbone and fold (ensemble: held-out)")
    ax.legend(loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    save_figure(fig, path)


@dataclass(frozen=True)
class Gap:
    """MAP@20 from in-distribution validation to the test, for the prior and the ensemble."""

    prior_random: float  # the frequency prior's OOF on random folds
    prior_folds: float | None  # on the experiment's own folds
    prior_eval: float | None  # on the demo eval solution (its submission record)
    random: EnsembleRecord | None  # an experiment trained on random folds, when given


def validation_gap(dataset: Dataset, summary: Summary | None, oof_ids, submissions: Path | None,
                   random_exp: EnsembleRecord | None, prior_name: str = "prior") -> Gap:
    random_folds = make_folds(dataset.train, dataset.categories, n_folds=5, seed=42)
    prior = submission_record(submissions, prior_name) if submissions is not None else None
    return Gap(frequency_prior_map20(dataset, random_folds, oof_ids),
               summary.oof_map20.get("prior") if summary is not None else None,
               prior.eval_score["map20"] if prior is not None and prior.eval_score else None, random_exp)


def write_report(dataset: Dataset, runs: Path, exp: str, submissions: Path | None = None,
                 random_exp: str | None = None, prior_name: str = "prior") -> Path:
    experiment = Experiment(runs, exp)
    record = experiment.ensemble()
    summary = experiment.summary()
    oof = Predictions.load(experiment.ensemble_predictions("oof"))
    targets = train_labels(dataset, oof.ids)
    ap = per_category_ap(oof.fine, targets)
    train_count = train_labels(dataset, dataset.train["id"].to_numpy()).sum(0)
    scores = record.oof_map20
    plot_ap_vs_frequency(ap, train_count, experiment.report_plot("ap_vs_frequency"))
    plot_oof_scores(scores.per_fold, scores.ensemble_held_out_per_fold, experiment.report_plot("oof_by_backbone"))
    gap = validation_gap(dataset, summary, oof.ids, submissions,
                         Experiment(runs, random_exp).ensemble() if random_exp else None, prior_name)
    path = experiment.report
    with atomic_open(path, "w") as fh:
        fh.write("\n".join(report_lines(record, summary, ap, len(oof.ids), gap)))
    return path


def inline_images(markdown: str, folder: Path) -> str:
    """`markdown` with each `![alt](file.png)` of `folder` embedded as a data URI: a notebook shows the
    plots with the text, without serving the files."""
    def embed(match: re.Match) -> str:
        path = folder / match.group(2)
        if not path.is_file():
            return match.group(0)
        return f"![{match.group(1)}](data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()})"

    return IMAGE_LINK.sub(embed, markdown)


@dataclass(frozen=True)
class Markdown:
    """Text a notebook renders as Markdown (Jupyter calls `_repr_markdown_`; no IPython import needed)."""

    text: str

    def _repr_markdown_(self) -> str:
        return self.text


def show_report(runs: Path, exp: str) -> Markdown:
    """runs/<exp>/report.md with its plots inline: the last expression of a notebook cell shows it."""
    path = Experiment(runs, exp).report
    return Markdown(inline_images(path.read_text(), path.parent))


def gap_lines(record: EnsembleRecord, gap: Gap) -> list[str]:
    random = gap.random
    rows = [["frequency prior", gap.prior_random, gap.prior_folds, gap.prior_eval],
            [f"ensemble `{record.exp}`", random.chosen.held_out if random else None, record.chosen.held_out,
             record.chosen.demo_eval_map20]]
    return [
        "## Validation against the test", "",
        "OOF MAP@20 on random folds (validation frames from the dives the model trained on), on this experiment's "
        "folds (dive-grouped in the pipeline: unseen dives, as 91% of the real test frames are) and on the demo "
        "eval solution. The fall from left to right is what random folds hide."
        + ("" if random else " The ensemble's random-fold column needs an experiment trained on random folds "
           "(`report --random-folds-exp EXP`)."), "",
        markdown_table(["", "random folds OOF", "this experiment's folds OOF", "demo eval"], rows), ""]


WHY_OFF = {
    "held_out_categories": "it sees animals of an unseen kind in unseen dives, not whatever else tells the "
                           "out-of-sample eval frames apart (deeper water, unknown creatures)",
    "train_vs_test": "the in-sample eval frames are unlike validation frames too (new dives, another camera, "
                     "other scenes), and what tells them apart is counted as out-of-sample",
}


def osd_verdict(osd) -> str:
    """On the demo: how far the chosen method's estimate, and each measurement behind it, lie from its eval sAUC."""
    chosen = osd.chosen
    if chosen.demo_eval is None:
        return ""
    verdict = (f"On the demo eval solution the estimate it was chosen by ({fmt(chosen.estimate)}) is "
               + ("within" if abs(chosen.estimate - chosen.demo_eval) <= 0.1 else "not within")
               + " 0.1 of its eval sAUC.")
    off = {key: getattr(chosen, key) - chosen.demo_eval for key in WHY_OFF}
    failed = [f"{key.replace('_', ' ')} by {err:+.2f} ({WHY_OFF[key]})" for key, err in off.items() if abs(err) > 0.1]
    return verdict + (" Off by more than 0.1: " + "; ".join(failed) + "." if failed else "")


def report_lines(record: EnsembleRecord, summary: Summary | None, ap: np.ndarray, n_oof: int,
                 gap: Gap | None = None) -> list[str]:
    folds = [str(k) for k in record.folds]
    scores, osd = record.oof_map20, record.osd
    no_tta = scores.no_tta or {}
    prior = summary.oof_map20.get("prior") if summary is not None else None
    backbone_rows = [[name, *(scores.per_fold[name][k] for k in folds), scores.pooled[name], no_tta.get(name),
                      scores.pooled[name] - no_tta[name] if name in no_tta else None] for name in record.members]
    strategy_rows = [[f"**{s}**" if s == record.strategy else s, row.held_out, row.in_sample, row.demo_eval_map20,
                      ", ".join(f"{n} {w:.2f}" for n, w in row.weights.items() if w), row.b]
                     for s, row in record.strategies.items()]
    by_estimate = sorted(osd.sauc, key=lambda m: -np.nan_to_num(osd.sauc[m].estimate, nan=-9))
    pairs = [m for m in by_estimate if "+" in m]
    shown = [m for m in by_estimate if "+" not in m or m in pairs[:OSD_PAIRS] or m == osd.method]
    osd_rows = [[f"**{m}**" if m == osd.method else m, osd.sauc[m].held_out_categories, osd.sauc[m].train_vs_test,
                 osd.sauc[m].estimate, osd.sauc[m].demo_eval] for m in shown]
    chosen, seen = osd.chosen, ~np.isnan(ap)
    demo = record.chosen.demo_eval_map20 is not None
    return [
        f"# Report: experiment `{record.exp}`", "",
        f"Code: `{record.git_commit}`. Members: {', '.join(record.members)}; folds {record.folds}; "
        f"TTA: {'yes' if record.tta else 'no'}; {n_oof} OOF images.", "",
        "## OOF MAP@20 per backbone and fold", "",
        markdown_table(["backbone", *(f"fold {k}" for k in folds), "pooled", "pooled without TTA", "TTA gain"],
                       backbone_rows), "",
        f"Frequency prior on the same images: {fmt(prior)}." if prior is not None else "", "",
        *(gap_lines(record, gap) if gap is not None else []),
        "## Ensemble", "",
        "Each strategy is tuned on OOF rows only. *held-out*: every fold scored by a recipe tuned on the other "
        "folds (the guard against over-fitting the OOF); *in-sample*: tuned and scored on all rows. The strategy "
        "with the best held-out score is used (bold)." + (" *demo eval*: the demo's eval solution, never used "
                                                          "to choose." if demo else ""), "",
        markdown_table(["strategy", "held-out MAP@20", "in-sample MAP@20", "demo eval MAP@20", "weights (tuned on all)",
                        "b"], strategy_rows), "",
        f"Chosen: **{record.strategy}**, weights "
        f"{', '.join(f'{n} {w:.2f}' for n, w in record.weights.items() if w)}, "
        f"exponents a = {record.exponents['a']}, "
        f"b = {record.exponents['b']} (p'(c) = p(c)^a · p_super(parent(c))^b).", "",
        "## Out-of-sample score (osd)", "",
        "sAUC without test labels: *held-out categories* = "
        + (f"the validation images of {osd.probes} leave-categories-out probes (fathom.train.probe) holding a "
           "category the probe never trained on" if osd.probes else "validation images holding a category their "
           "fold's training part never shows")
        + f" ({osd.unseen_category_images} images) against the rest; *train vs test* = eval images against "
        "validation images, each set scored on its own. *estimate*: train vs test for the shift-robust methods "
        "(*log_colour_aligned*, and its dive mean), held-out categories for every other (docs/ensemble-and-osd.md "
        "says why); the best estimate is chosen. *@dive*: the score averaged over the frames of the same dive; "
        "*a+b*: the rank average of two.", "",
        markdown_table(["method", "held-out categories", "train vs test", "estimate", "demo eval"], osd_rows), "",
        f"Every single method and the {min(OSD_PAIRS, len(pairs))} best of {len(pairs)} pairs, best estimate "
        "first; `ensemble.json` holds every candidate." if len(pairs) > OSD_PAIRS else "", "",
        (f"The held-out-categories estimates have a standard error of about ±{osd.held_out_se:.2f} "
         f"({osd.unseen_category_images} images): differences between methods smaller than that are noise. "
         if osd.held_out_se is not None and np.isfinite(osd.held_out_se) else "")
        + f"Chosen: **{osd.method}**, measured sAUC {fmt(chosen.held_out_categories)} (held-out categories), "
        f"{fmt(chosen.train_vs_test)} (train vs test)"
        + (f", {fmt(chosen.demo_eval)} on the demo eval solution." if chosen.demo_eval is not None else ".")
        + " " + osd_verdict(osd), "",
        "Feature-based methods (fathom.ensemble.novelty; each fold model against its own training frames): *knn* "
        "(cosine distance to the 10 nearest training embeddings), *mahalanobis* (class-conditional, Ledoit-Wolf), "
        "*domain* (a cross-fitted train-vs-test classifier on embeddings and appearance); on appearance: *colour* "
        "(the prior's colour novelty) and *log_colour* (the same on log colour, where a camera's gains are one "
        "shift); *_aligned*: reference and target each standardised by their own statistics, taking out a shift "
        "every target frame shares.",
        "",
        "## Plots", "",
        f"Per-category AP of the held-out ensemble scores ({int(seen.sum())} categories with OOF positives; "
        f"mean AP {np.nanmean(ap):.3f}):", "",
        "![per-category AP against training frequency](report_ap_vs_frequency.png)", "",
        "![OOF MAP@20 per backbone](report_oof_by_backbone.png)", "",
    ]
