"""A Kaggle session's inputs, found by what they hold wherever Kaggle mounts them, the frames fetched when the
internet is on, the notebook's closing lines, and the kernel folder that `kaggle kernels push -p DIR` takes.

Kaggle mounts what a notebook attaches under /kaggle/input, at /kaggle/input/<slug> in classic sessions and
at /kaggle/input/competitions/<slug>, /kaggle/input/datasets/<owner>/<slug> or
/kaggle/input/notebooks/<owner>/<slug> in newer ones. No slug is trusted here: the competition is the folder
holding category_key.csv and object_detection/eval.json, the images the folder holding the most of the
competition's frames by file name, the bundle the folder holding bundle.json, an earlier output of the
training notebook the folder holding runs/<exp>/.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from fathom import constants as C
from fathom.bundle import MANIFEST
from fathom.errors import DataError

COMPETITION = "fathomnet-out-of-sample-detection"
INPUT = Path("/kaggle/input")
DEPTH = 4  # /kaggle/input/datasets/<owner>/<slug>/<folder>: the deepest layout, one folder inside it
SAMPLE = 64  # frame names looked up per candidate image folder
ATTACH = {
    "competition": f"Add input > Competitions > {COMPETITION}",
    "images": "a dataset of the frames (`python -m fathom download`, uploaded with `kaggle datasets create -p DIR "
              "--dir-mode tar`), or turn the internet on: the notebook then downloads them",
    "bundle": "the dataset `python -m fathom bundle` writes (uploaded with `--dir-mode tar`), or turn the internet on",
    "outputs": "the output of 02_train_kaggle.ipynb (Add input > Notebooks), or a bundle made with --checkpoints EXP",
}


@dataclass(frozen=True)
class Inputs:
    """What is attached: each None (or empty) when not found."""

    root: Path
    competition: Path | None
    images: Path | None
    bundle: Path | None
    outputs: tuple[Path, ...] = ()  # earlier outputs holding runs/<exp>/, oldest path first

    def lines(self) -> list[str]:
        """What was found, a line each, for the notebook's first output."""
        return [f"{name}: {getattr(self, name) or 'not found'}" for name in ("competition", "images", "bundle")] + [
            f"earlier output: {path}" for path in self.outputs]

    def runs(self) -> list[Path]:
        """Every runs/<exp>/ folder of the earlier outputs."""
        return sorted(run for output in self.outputs for run in (output / "runs").iterdir() if run.is_dir())

    def require(self, *names: str) -> "Inputs":
        """Itself, or one DataError listing every input of `names` that is missing and how to attach it."""
        missing = [name for name in names if getattr(self, name) in (None, ())]
        if missing:
            raise DataError(self.root, "no " + "; no ".join(f"{name} found ({ATTACH[name]})" for name in missing))
        return self


def folders(root: Path, depth: int = DEPTH) -> Iterator[Path]:
    """`root` and every folder below it down to `depth` levels, in sorted order, symbolic links not followed."""
    level = [root]
    for _ in range(depth + 1):
        following = []
        for folder in level:
            yield folder
            try:
                following += sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink())
            except OSError:  # unreadable: nothing of ours is there
                continue
        level = following


def frame_names(competition: Path, sample: int = SAMPLE) -> list[str]:
    """File names of frames the competition lists (evenly spread over train.json and eval.json)."""
    names = []
    for split in (C.TRAIN_JSON, C.EVAL_JSON):
        try:
            images = json.loads((competition / split).read_text())["images"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        step = max(1, len(images) // (sample // 2))
        names += [str(image["file_name"]) for image in images[::step][: sample // 2] if "file_name" in image]
    return names


def find_inputs(root: str | Path = INPUT, exp: str | None = None) -> Inputs:
    """The competition folder, the images folder, the bundle and the earlier outputs holding runs/<exp>/ (any
    runs/ folder without `exp`), wherever they are mounted under `root`."""
    root = Path(root)
    candidates = list(folders(root))
    competition = next((d for d in candidates if (d / C.CATEGORY_KEY).is_file() and (d / C.EVAL_JSON).is_file()),
                       None)
    images = None
    if competition is not None:
        names = frame_names(competition)
        hits = {d: sum((d / name).is_file() for name in names) for d in candidates}
        best = max(hits, key=lambda d: hits[d], default=None)
        images = best if best is not None and hits[best] else None
    bundle = next((d for d in candidates if (d / MANIFEST).is_file()), None)
    outputs = tuple(d for d in candidates if (d / "runs" / exp).is_dir()) if exp else tuple(
        d for d in candidates if (d / "runs").is_dir())
    return Inputs(root, competition, images, bundle, outputs)


def fetch_frames(competition: str | Path, out: str | Path, work: str | Path, allow_missing: bool = False,
                 settings=None) -> Path:
    """With internet on and no images attached: download every train and eval frame from its coco_url into
    `out` (scratch space; resumable: a rerun fetches only what is missing), with a progress bar. Failures are
    listed in `work` (the saved output); a missing eval frame stops the notebook (a submission needs every
    one), missing train frames too unless `allow_missing`. Returns `out`."""
    from fathom.data.download import FAILURES_CSV, Settings, download

    out, work = Path(out), Path(work)
    for split in (C.TRAIN_JSON, C.EVAL_JSON):
        listed, failures = download(Path(competition) / split, out, settings or Settings())
        print(f"{split}: {listed - len(failures)} of {listed} frames in {out}", flush=True)
        if len(failures):
            kept = work / f"{Path(split).stem}_{FAILURES_CSV}"
            failures.to_csv(kept, index=False)
            if split == C.EVAL_JSON or not allow_missing:
                raise DataError(kept, f"{len(failures)} frames of {split} could not be downloaded",
                                hint="run the cell again (the download resumes)" + (
                                    "" if split == C.EVAL_JSON else ", or set ALLOW_MISSING_IMAGES = True"))
    return out


def closing_lines(runs: str | Path, exp: str, submission: str | Path) -> list[str]:
    """The notebook's last lines: what the submission was chosen by (held-out OOF MAP@20 of the ensemble, the
    osd's estimated sAUC, their mean as the estimated score), where it is and the command that submits it."""
    from fathom.provenance import git_commit
    from fathom.runs import Experiment

    record = Experiment(Path(runs), exp).ensemble()
    held_out, sauc = record.chosen.held_out, record.osd.chosen.estimate
    return [f"OOF MAP@20 (held out, the ensemble): {held_out:.4f}",
            f"estimated sAUC ({record.osd.method}): {sauc:.4f}",
            f"estimated score (MAP@20 + sAUC) / 2: {(held_out + sauc) / 2:.4f} (chosen on train frames; the test is "
            "shifted: see docs/ensemble-and-osd.md)",
            f"submission (validated): {Path(submission).resolve()}",
            f"submit it: kaggle competitions submit -c {COMPETITION} -f {Path(submission).name} "
            f"-m \"fathom {exp} {git_commit()[:12]}\""]


KERNEL_FIELDS = ("id", "title", "code_file", "language", "kernel_type", "is_private", "enable_gpu", "enable_tpu",
                 "enable_internet", "dataset_sources", "competition_sources", "kernel_sources", "model_sources",
                 "machine_shape")


def write_kernel(out: str | Path, notebook: str | Path, kernel_id: str, datasets: list[str] = (),
                 resume_from: list[str] = (), internet: bool = True, gpu: bool = True,
                 parameters: dict | None = None, accelerator: str = "NvidiaTeslaT4") -> Path:
    """The folder `kaggle kernels push -p OUT` takes: the notebook, its parameters set after the cell tagged
    `parameters` (as papermill does), and kernel-metadata.json (the competition, the datasets, earlier
    versions' outputs as kernel sources for resume, GPU and internet). Returns the metadata file."""
    from fathom.errors import checked_name

    owner, _, slug = kernel_id.partition("/")
    checked_name(owner, "Kaggle user name")
    checked_name(slug, "kernel slug")
    for source in (*datasets, *resume_from):
        if source.count("/") != 1:
            raise DataError("command line", f"{source!r} is not OWNER/SLUG", hint="as in kaggle.com/OWNER/SLUG")
    notebook, out = Path(notebook), Path(out)
    book = json.loads(notebook.read_text())
    cells = book["cells"]
    at = next((n for n, cell in enumerate(cells) if "parameters" in cell.get("metadata", {}).get("tags", [])), None)
    if at is None:
        raise DataError(notebook, "no cell tagged `parameters`")
    if parameters:
        source = [f"{key} = {value!r}\n" for key, value in parameters.items()]
        cells.insert(at + 1, {"id": "injected-parameters", "cell_type": "code", "execution_count": None,
                              "metadata": {"tags": ["injected-parameters"]}, "outputs": [], "source": source})
    out.mkdir(parents=True, exist_ok=True)
    (out / notebook.name).write_text(json.dumps(book, indent=1) + "\n")
    metadata = {"id": kernel_id, "title": slug, "code_file": notebook.name, "language": "python",
                "kernel_type": "notebook", "is_private": True, "enable_gpu": gpu, "enable_tpu": False,
                "enable_internet": internet, "dataset_sources": list(datasets), "competition_sources": [COMPETITION],
                "kernel_sources": list(resume_from), "model_sources": [],
                "machine_shape": accelerator if gpu else "None"}
    path = out / "kernel-metadata.json"
    path.write_text(json.dumps(metadata, indent=2) + "\n")
    return path
