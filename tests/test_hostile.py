"""Hostile input to the CLI, table-driven: every case exits 2 with one line naming what is wrong, prints no
traceback and writes nothing new."""

import re

import pytest

from fathom.cli import main
from fathom.data.layout import load_dataset
from fathom.folds import make_folds, write_folds


@pytest.fixture(scope="module")
def folds_csv(demo_dir, tmp_path_factory):
    dataset = load_dataset(demo_dir, check_images=False)
    path = tmp_path_factory.mktemp("hostile") / "folds.csv"
    write_folds(make_folds(dataset.train, dataset.categories, 3, 0), path)
    return path


def train(*overrides):
    return lambda d, f, t: ["train", "--config", "demo", "--data", d, "--folds", f, "--runs", t / "runs", *overrides]


def runs(command, *rest):
    return lambda d, f, t: [*command.split(), "--runs", t / "runs", *rest]


CASES = {
    "one fold": (lambda d, f, t: ["folds", "--data", d, "--n-folds", "1", "--out", t / "f.csv"],
                 "--n-folds: must be at least 2"),
    "folds of no data folder": (lambda d, f, t: ["folds", "--data", t / "nothere", "--out", t / "f.csv"],
                                "nothere: data folder not found"),
    "no train frames": (lambda d, f, t: ["demo-data", "--out", t / "demo", "--n-train", "0"],
                        "--n-train: must be at least 10"),
    "demo into a file": (lambda d, f, t: ["demo-data", "--out", t / "a-file"], "a-file: Not a directory"),
    "download a coco that is not JSON": (lambda d, f, t: ["download", "--coco", t / "a-file", "--out", t / "img"],
                                         "a-file.*invalid JSON"),
    "download with no workers": (lambda d, f, t: ["download", "--coco", d / "object_detection" / "eval.json",
                                                  "--out", t / "img", "--workers", "0"], "--workers must be at least 1"),
    "runs is a file": (lambda d, f, t: ["prior", "--data", d, "--folds", f, "--runs", t / "a-file"],
                       "a-file.*[Nn]ot a directory.*not a folder"),
    "prior with a fold that is no number": (lambda d, f, t: ["prior", "--data", d, "--folds", t / "bad-folds.csv",
                                                             "--runs", t / "runs"], r"bad-folds.csv \(line 2\)"),
    "submission name escapes": (lambda d, f, t: ["submit", "--data", d, "--exp", "prior", "--name", "../../x",
                                                 "--runs", t / "runs", "--out", t / "subs"], "not a plain name"),
    "submit of a run never trained": (runs("submit", "--data", "DATA", "--exp", "nothere", "--out", "SUBS"),
                                      "no test predictions"),
    "experiment name escapes": (train("name=/abs/path"), "name '/abs/path' is not a plain name"),
    "unknown backbone": (train("backbones=[nosuchnet]"), "nosuchnet.*not a timm architecture"),
    "unknown config key": (train("nosuchkey=1"), "nosuchkey"),
    "exp escapes": (lambda d, f, t: ["ensemble", "--data", d, "--exp", "../x", "--runs", t / "runs"], "not a plain name"),
    "negative learning rate": (train("lr=-0.5"), "lr must be > 0"),
    "gradient clip below 0": (train("clip_grad=-1"), "clip_grad must be 0 .off. or > 0"),
    "ema decay above 1": (train("ema_decay=5.0"), "ema_decay must be > 0 and < 1"),
    "negative patience": (train("patience=-2"), "patience must be 0 .off. or >= 1"),
    "negative limit": (train("limit=-5"), "limit must be 0 .off. or >= 1"),
    "dropout of 1.5": (train("drop_rate=1.5"), "drop_rate must be >= 0 and < 1"),
    "NaN learning rate": (train("lr=.nan"), "lr must be > 0"),
    "no folds": (train("folds=[]"), "list at least one fold"),
    "override not YAML": (train("folds=[0, 1"), "not valid YAML"),
    "predict a run never trained": (runs("predict", "--data", "DATA", "--exp", "nothere"), "no finished folds"),
    "float category ids": (lambda d, f, t: ["validate-submission", t / "float-ids.csv", "--data", d],
                           "float-ids.csv.*line 2.*not an integer id"),
    "score a file without the header": (lambda d, f, t: ["score", "--solution", d / "solution.csv", "--submission",
                                                         t / "a-file"], "a-file \\(line 1\\): expected header"),
    "report of a run never ensembled": (runs("report", "--data", "DATA", "--exp", "nothere", "--out", "SUBS"),
                                        "ensemble.json: not found"),
    "explain no categories": (runs("explain", "--data", "DATA", "--exp", "e", "--ids", "x", "--out", "CAM", "--top",
                                   "0"), "--top: must be at least 1"),
    "distill weight above 1": (runs("distill", "--data", "DATA", "--exp", "e", "--student", "resnet18", "--folds",
                                    "FOLDS", "--weight", "2"), "--weight: must be from 0 to 1"),
    "bundle over a folder that is not one": (lambda d, f, t: ["bundle", "--out", t], "exists and is not a bundle"),
    "bundle a run with no finished fold": (runs("bundle", "--out", "BUNDLE", "--checkpoints", "nothere"),
                                           "no finished folds"),
    "bench speed at 0 px": (lambda d, f, t: ["bench", "speed", "--data", d, "--sizes", "0"], "--sizes: must be at least 32"),
    "bench quality without its folds file": (runs("bench quality", "--data", "DATA", "--folds", "NOPE"),
                                             "nope.csv: file not found"),
    "bench demo of a run never ensembled": (runs("bench demo", "--exp", "nothere", "--submissions", "SUBS"),
                                            "ensemble.json: not found"),
    "bench worlds of a missing world": (runs("bench worlds", "--case", "a", "NOPE", "e", "p", "--submissions", "SUBS"),
                                        "ensemble.json: not found"),
    "bench cache of no frames": (lambda d, f, t: ["bench", "cache", "--data", d, "--n-images", "0"],
                                 "--n-images: must be at least 1"),
    "bench gpu at 8 px": (lambda d, f, t: ["bench", "gpu", "--size", "8"], "--size: must be at least 32"),
    "bench scale of 0 images": (lambda d, f, t: ["bench", "scale", "--images", "0"], "--images: must be at least 10"),
    "a kernel dataset without its owner": (lambda d, f, t: ["kaggle-kernel", "--out", t / "kernel", "--user", "me",
                                                            "--dataset", "fathom-bundle"], "is not OWNER/SLUG"),
    "an unknown option": (lambda d, f, t: ["report", "--data", d, "--exp", "e", "--colour", "red"],
                          "unrecognized arguments: --colour red"),
}
PLACES = {"DATA": lambda d, f, t: d, "FOLDS": lambda d, f, t: f, "SUBS": lambda d, f, t: t / "subs",
          "CAM": lambda d, f, t: t / "cam", "BUNDLE": lambda d, f, t: t / "b", "NOPE": lambda d, f, t: t / "nope.csv"}


def argv_of(case: str, demo_dir, folds_csv, tmp_path) -> list[str]:
    make, _ = CASES[case]
    return [str(PLACES[a](demo_dir, folds_csv, tmp_path) if isinstance(a, str) and a in PLACES else a)
            for a in make(demo_dir, folds_csv, tmp_path)]


def test_every_subcommand_has_a_hostile_case(tmp_path):
    from fathom.cli import COMMANDS

    covered = set()
    for case in CASES:
        argv = argv_of(case, tmp_path, tmp_path, tmp_path)
        covered.add(" ".join(argv[:2]) if argv[0] == "bench" else argv[0])
    assert covered == {name for name, *_ in COMMANDS}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_input_is_one_line_exit_2_and_writes_nothing(demo_dir, folds_csv, tmp_path, capsys, case):
    _, message = CASES[case]
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "bad-folds.csv").write_text("id,fold\nabc,zero\n")
    (tmp_path / "float-ids.csv").write_text("id,categories,osd\nfoo,1.5 2,0.3\n")
    before = sorted(tmp_path.rglob("*"))
    code = main(argv_of(case, demo_dir, folds_csv, tmp_path))
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    assert re.search(message, err), err
    assert sorted(tmp_path.rglob("*")) == before


def test_one_writer_per_run_folder_a_second_stops_naming_the_holder_or_waits(demo_dir, tmp_path, capsys):
    """The writer lock is an OS file lock: the second writer here runs on another thread, as another process
    would (filelock refuses a second lock of one file on the same thread as a deadlock)."""
    import json
    import os
    import threading
    import time

    from fathom.runs import Experiment, writing

    exp = Experiment(tmp_path / "runs", "e")
    exp.root.mkdir(parents=True)
    submit = ["submit", "--data", str(demo_dir), "--exp", "e", "--runs", str(tmp_path / "runs"),
              "--out", str(tmp_path / "subs")]

    def second(argv: list[str]) -> int:
        codes = []
        thread = threading.Thread(target=lambda: codes.append(main(argv)))
        thread.start()
        thread.join(60)
        return codes[0]

    with writing(exp, "python -m fathom train --config demo"):
        assert json.loads(exp.writer_file.read_text()) == {"pid": os.getpid(),
                                                            "command": "python -m fathom train --config demo"}
        assert second(submit) == 2
        err = capsys.readouterr().err.strip()
        assert f"pid {os.getpid()} (python -m fathom train --config demo) is writing this run" in err
        assert "--wait" in err and "\n" not in err
    assert not exp.writer_file.exists()

    held = threading.Event()

    def hold() -> None:
        with writing(exp, "python -m fathom predict --exp e"):
            held.set()
            time.sleep(0.5)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    started = time.monotonic()
    assert main([*submit, "--wait"]) == 2  # it waited for the holder, then found no ensemble to write
    holder.join()
    assert time.monotonic() - started >= 0.3 and "is writing" not in capsys.readouterr().err


def test_a_solution_missing_a_row_is_one_line_naming_it(demo_copy, tmp_path, capsys):
    dataset = load_dataset(demo_copy, check_images=False)
    folds = tmp_path / "folds.csv"
    write_folds(make_folds(dataset.train, dataset.categories, 3, 0), folds)
    runs, subs = tmp_path / "runs", tmp_path / "subs"
    assert main(["prior", "--data", str(demo_copy), "--folds", str(folds), "--runs", str(runs)]) == 0
    solution = demo_copy / "solution.csv"
    solution.write_text("".join(solution.read_text().splitlines(keepends=True)[:-1]))
    capsys.readouterr()
    assert main(["submit", "--data", str(demo_copy), "--exp", "prior", "--runs", str(runs), "--out", str(subs)]) == 2
    err = capsys.readouterr().err.strip()
    assert "solution.csv: does not match the eval images" in err and "\n" not in err and "Traceback" not in err
