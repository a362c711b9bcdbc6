"""`python -m fathom report --exp E`: runs/<exp>/report.md and its plots, from what the run wrote.

Reads the EnsembleRecord (written by `submit`), the Summary and ensemble/oof.npz (fathom.runs); trains and
predicts nothing. Plots: per-category AP of the ensemble's held-out OOF scores against the category's
training frequency, and each backbone's OOF MAP@20 per fold next to the ensemble's.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import average_precision_score  # noqa: E402

from fathom.atomic import atomic_open, atomic_path  # noqa: E402
from fathom.data.layout import Dataset  # noqa: E402
from fathom.ensemble.members import train_labels  # noqa: E402
from fathom.predictions import Predictions  # noqa: E402
from fathom.runs import EnsembleRecord, Experiment, Summary  # noqa: E402


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


def write_report(dataset: Dataset, runs: Path, exp: str) -> Path:
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
    path = experiment.report
    with atomic_open(path, "w") as fh:
        fh.write("\n".join(report_lines(record, summary, ap, len(oof.ids))))
    return path


def report_lines(record: EnsembleRecord, summary: Summary | None, ap: np.ndarray, n_oof: int) -> list[str]:
    folds = [str(k) for k in record.folds]
    scores, osd = record.oof_map20, record.osd
    no_tta = scores.no_tta or {}
    prior = summary.oof_map20.get("prior") if summary is not None else None
    backbone_rows = [[name, *(scores.per_fold[name][k] for k in folds), scores.pooled[name], no_tta.get(name),
                      scores.pooled[name] - no_tta[name] if name in no_tta else None] for name in record.members]
    strategy_rows = [[f"**{s}**" if s == record.strategy else s, row.held_out, row.in_sample, row.demo_eval_map20,
                      ", ".join(f"{n} {w:.2f}" for n, w in row.weights.items() if w), row.b]
                     for s, row in record.strategies.items()]
    osd_rows = sorted(([f"**{m}**" if m == osd.method else m, v.held_out_categories, v.train_vs_test, v.pooled,
                        v.demo_eval] for m, v in osd.sauc.items()),
                      key=lambda r: -(r[3] if r[3] == r[3] else -9))
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
        "sAUC without test labels: *held-out categories* = validation images holding a category their fold's "
        f"training part never shows ({osd.unseen_category_images} images) against the rest; *train vs test* = "
        "eval images against validation images (diluted by the in-sample share of the test set). Chosen by their "
        "mean weighted by the inverse of each one's sampling variance (weights: "
        + ", ".join(f"{k.replace('_', ' ')} {w:.2f}" for k, w in osd.weights.items()) + ").", "",
        markdown_table(["method", "held-out categories", "train vs test", "pooled", "demo eval"], osd_rows), "",
        f"Chosen: **{osd.method}**, measured sAUC {fmt(chosen.held_out_categories)} (held-out categories), "
        f"{fmt(chosen.train_vs_test)} (train vs test)"
        + (f", {fmt(chosen.demo_eval)} on the demo eval solution." if chosen.demo_eval is not None else "."),
        "",
        "## Plots", "",
        f"Per-category AP of the held-out ensemble scores ({int(seen.sum())} categories with OOF positives; "
        f"mean AP {np.nanmean(ap):.3f}):", "",
        "![per-category AP against training frequency](report_ap_vs_frequency.png)", "",
        "![OOF MAP@20 per backbone](report_oof_by_backbone.png)", "",
    ]
