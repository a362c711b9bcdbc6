"""`python -m fathom bench demo`: the demo recipe's quality targets, read from a finished `bash run.sh`.

Quality is a benchmark row, not a test assertion: a 2-fold demo moves by about 0.02 with the random
stream alone, so a test that gates on a margin would fail without a defect. This reads the files the run
wrote (runs/<exp>/summary.json and ensemble.json, submissions/<exp>.json and prior.json), trains nothing,
and tabulates each target with its margin:

- every backbone's held-out OOF MAP@20 at least TARGET_BACKBONE over the frequency prior's (same frames);
- the ensemble's demo eval score at least TARGET_ENSEMBLE over the prior's submission;
- the osd chosen without labels: eval sAUC at least TARGET_OSD_SAUC, within TARGET_OSD_ESTIMATE of the
  estimate it was chosen by.
"""

from __future__ import annotations

from pathlib import Path

from fathom.errors import DataError
from fathom.runs import Experiment
from fathom.scoreboard import eval_score, submission_record

TARGET_BACKBONE = 0.05
TARGET_ENSEMBLE = 0.10
TARGET_OSD_SAUC = 0.6
TARGET_OSD_ESTIMATE = 0.1


def row(what: str, value: float, reference: float, target: str, margin: float) -> dict:
    return {"what": what, "value": value, "reference": reference, "target": target, "margin": margin,
            "met": bool(margin >= 0)}


def demo_targets(runs: Path, exp: str, submissions: Path, prior_name: str = "prior") -> dict:
    """{"rows": one per target, "osd_method": the chosen osd} of a finished demo run."""
    experiment = Experiment(runs, exp)
    summary, ensemble = experiment.summary(), experiment.ensemble()
    if summary is None or "prior" not in summary.oof_map20:
        raise DataError(experiment.summary_file, "no summary with the prior's OOF MAP@20", hint="run `bash run.sh`")
    ours, prior = (eval_score(submission_record(submissions, name)) for name in (exp, prior_name))
    if ours is None or prior is None:
        raise DataError(submissions, f"no scored {exp}.json and {prior_name}.json", hint="run `bash run.sh` (the demo)")
    floor = summary.oof_map20["prior"]
    rows = [row(f"{backbone} held-out OOF MAP@20", score, floor, f">= prior + {TARGET_BACKBONE}",
                score - floor - TARGET_BACKBONE)
            for backbone, score in summary.oof_map20.items() if backbone != "prior"]
    rows.append(row("ensemble demo eval score", ours["score"], prior["score"], f">= prior + {TARGET_ENSEMBLE}",
                    ours["score"] - prior["score"] - TARGET_ENSEMBLE))
    chosen = ensemble.osd.chosen
    rows.append(row("chosen osd: demo eval sAUC", chosen.demo_eval, TARGET_OSD_SAUC, f">= {TARGET_OSD_SAUC}",
                    chosen.demo_eval - TARGET_OSD_SAUC))
    off = abs(chosen.estimate - chosen.demo_eval)
    rows.append(row("chosen osd: estimate minus eval sAUC, absolute", off, chosen.estimate,
                    f"<= {TARGET_OSD_ESTIMATE}", TARGET_OSD_ESTIMATE - off))
    return {"exp": exp, "osd_method": ensemble.osd.method, "rows": rows}


def demo_table(result: dict) -> str:
    from fathom.bench.tables import markdown_table

    lines = [f"The demo run `{result['exp']}` (osd chosen: {result['osd_method']}):", "",
             markdown_table(["target", "value", "reference", "wanted", "margin", "met"],
                            [[r["what"], f"{r['value']:.4f}", f"{r['reference']:.4f}", r["target"],
                              f"{r['margin']:+.4f}", "yes" if r["met"] else "no"] for r in result["rows"]])]
    return "\n".join(lines) + "\n"
