"""`python -m fathom bench worlds`: finished demo runs side by side, one per demo world (or variant).

Reads what `bash run.sh` and `bash run.sh --world content` wrote (ensemble.json with every osd candidate's
estimate and demo eval sAUC, the submissions and their records, the demo's solution.csv) and tabulates, per
run: the osd chosen without labels against the best candidate on the eval solution (the issue's targets:
within TARGET_ESTIMATE of its estimate, at least TARGET_SHARE of the best), how well the estimates track the
eval sAUC over every candidate (Pearson and Spearman), the held-out measurement's size and standard error,
and the eval score, MAP@20 and in-sample frames' MAP@20 against the prior's. Trains nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fathom import constants as C
from fathom.errors import DataError
from fathom.metric import read_scoring_csv, score_frames
from fathom.runs import Experiment, SubmissionFiles
from fathom.scoreboard import eval_score, submission_record

TARGET_ESTIMATE = 0.1
TARGET_SHARE = 0.8


@dataclass(frozen=True)
class Case:
    label: str  # e.g. the world's name
    data: Path  # its demo folder (solution.csv)
    exp: str  # its experiment and submission name
    prior: str  # the prior's submission name


def in_sample_map20(data: Path, submission: Path) -> float:
    """MAP@20 of a submission on the eval frames the solution marks in-sample (osd 0)."""
    solution = read_scoring_csv(data / C.SOLUTION_CSV)
    inside = solution[solution["osd"] == 0]
    ours = read_scoring_csv(submission)
    return score_frames(inside, ours[ours["id"].isin(inside["id"])])["map20"]


def world_row(case: Case, runs: Path, submissions: Path) -> dict:
    record = Experiment(runs, case.exp).ensemble()
    osd = record.osd
    table = pd.DataFrame([(name, s.estimate, s.demo_eval) for name, s in osd.sauc.items()],
                         columns=["name", "estimate", "eval"]).set_index("name").astype(float)
    if table["eval"].isna().all():
        raise DataError(Experiment(runs, case.exp).ensemble_file, "no demo eval sAUC (not a demo run)",
                        hint="run `bash run.sh` or `bash run.sh --world content`")
    both = table.dropna()
    best = table["eval"].idxmax()
    chosen = table.loc[osd.method]
    ours, prior = (eval_score(submission_record(submissions, name)) for name in (case.exp, case.prior))
    return {
        "world": case.label, "exp": case.exp, "osd": osd.method, "estimate": chosen["estimate"],
        "eval_sauc": chosen["eval"], "off_by": abs(chosen["estimate"] - chosen["eval"]),
        "best": best, "best_eval_sauc": table.loc[best, "eval"],
        "share_of_best": chosen["eval"] / table.loc[best, "eval"],
        "candidates": len(table), "pearson": float(both["estimate"].corr(both["eval"])),
        "spearman": float(both["estimate"].corr(both["eval"], method="spearman")),
        "probes": osd.probes, "unseen_frames": osd.unseen_category_images, "held_out_se": osd.held_out_se,
        "score": ours and ours["score"], "map20": ours and ours["map20"], "sauc": ours and ours["sauc"],
        "prior_score": prior and prior["score"], "prior_map20": prior and prior["map20"],
        "in_sample_map20": in_sample_map20(case.data, SubmissionFiles(submissions, case.exp).csv),
        "prior_in_sample_map20": in_sample_map20(case.data, SubmissionFiles(submissions, case.prior).csv),
        "within_estimate": bool(abs(chosen["estimate"] - chosen["eval"]) <= TARGET_ESTIMATE),
        "at_least_share": bool(chosen["eval"] >= TARGET_SHARE * table.loc[best, "eval"]),
    }


def worlds(cases: list[Case], runs: Path, submissions: Path) -> dict:
    return {"rows": [world_row(case, runs, submissions) for case in cases]}


ROWS = [("osd chosen without labels", "osd"), ("its estimate", "estimate"), ("its eval sAUC", "eval_sauc"),
        (f"within {TARGET_ESTIMATE} of the estimate", "within_estimate"), ("best candidate on eval", "best"),
        ("its eval sAUC", "best_eval_sauc"), ("chosen / best", "share_of_best"),
        (f"at least {TARGET_SHARE:.0%} of the best", "at_least_share"),
        ("estimate vs eval sAUC, Pearson (all candidates)", "pearson"), ("... Spearman", "spearman"),
        ("held-out measurement: probes", "probes"), ("... known out-of-sample frames", "unseen_frames"),
        ("... standard error", "held_out_se"), ("eval score", "score"), ("eval MAP@20", "map20"),
        ("eval sAUC", "sauc"), ("eval MAP@20, in-sample frames", "in_sample_map20"),
        ("prior: eval score", "prior_score"), ("prior: eval MAP@20", "prior_map20"),
        ("prior: eval MAP@20, in-sample frames", "prior_in_sample_map20")]


def worlds_table(result: dict) -> str:
    from fathom.bench.tables import markdown_table

    def cell(value):
        if isinstance(value, bool):
            return "yes" if value else "no"
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    rows = result["rows"]
    return markdown_table(["", *(f"{r['world']} (`{r['exp']}`)" for r in rows)],
                          [[what, *(cell(r[key]) for r in rows)] for what, key in ROWS]) + "\n"
