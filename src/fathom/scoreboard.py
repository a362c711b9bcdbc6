"""The pipeline's closing lines: what each backbone and the ensemble gained over the frequency prior,
on the held-out OOF frames and, on data with a solution (the demo), on the eval frames. Read from the
files the stages wrote (summary.json, ensemble.json, the submission records); nothing is recomputed."""

from __future__ import annotations

from pathlib import Path

from fathom.runs import Experiment, SubmissionFiles, SubmissionRecord, read_record


def submission_record(submissions: Path, name: str) -> SubmissionRecord | None:
    path = SubmissionFiles(submissions, name).record
    return read_record(SubmissionRecord, path) if path.is_file() else None


def eval_score(record: SubmissionRecord | None) -> dict | None:
    """The record's eval score, or None when it has none (no solution, or an undefined score)."""
    score = record.eval_score if record is not None else None
    return score if score and score.get("score") is not None else None


def eval_text(score: dict) -> str:
    return f"{score['score']:.4f} (MAP@20 {score['map20']:.4f}, sAUC {score['sauc']:.4f})"


def scoreboard_lines(runs: Path, exp: str, submissions: Path, name: str | None = None, prior: str = "prior"
                     ) -> list[str]:
    """One line per backbone and one for the ensemble (held-out OOF MAP@20 against the prior's on the
    same frames), and the eval score of submission `name` (default: `exp`) against the prior's (submission
    `prior`)."""
    experiment = Experiment(runs, exp)
    summary = experiment.summary()
    lines = []
    prior_name, prior = prior, summary.oof_map20.get("prior") if summary is not None else None
    if summary is not None and prior is not None:
        for backbone, score in summary.oof_map20.items():
            if backbone != "prior":
                lines.append(f"{exp}/{backbone}: held-out OOF MAP@20 {score:.4f} against the frequency prior's "
                             f"{prior:.4f} ({score - prior:+.4f})")
    if experiment.ensemble_file.is_file():
        held_out = experiment.ensemble().chosen.held_out
        against = f" against the frequency prior's {prior:.4f} ({held_out - prior:+.4f})" if prior is not None else ""
        lines.append(f"{exp} ensemble: held-out OOF MAP@20 {held_out:.4f}{against}")
    ours = eval_score(submission_record(submissions, name or exp))
    floor = eval_score(submission_record(submissions, prior_name))
    if ours is not None:
        line = f"{exp} ensemble: demo eval score {eval_text(ours)}"
        if floor is not None:
            line += f" against the frequency prior's {eval_text(floor)} ({ours['score'] - floor['score']:+.4f})"
        lines.append(line)
    return lines
