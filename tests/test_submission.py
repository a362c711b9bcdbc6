import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from fathom.errors import DataError
from fathom.submission import make_submission, submission_problems, write_submission

CATEGORY_IDS = np.arange(1, 291)


def probs_for(rng, n):
    return rng.random((n, 290))


def test_writer_ranks_top20_as_integer_tokens():
    probs = np.zeros((2, 290))
    probs[0, [159, 0, 9]] = [0.9, 0.5, 0.7]  # ids 160, 1, 10
    df = make_submission(["x", "y"], probs, np.array([0.1, 0.123456789012345678]), CATEGORY_IDS)
    tokens = df["categories"][0].split(" ")
    assert tokens[:3] == ["160", "10", "1"]
    assert len(tokens) == 20 and len(set(tokens)) == 20
    assert df["osd"][1] == 0.123456789012345678


def test_writer_aligns_rows_to_expected_order():
    rng = np.random.default_rng(0)
    probs = probs_for(rng, 3)
    df = make_submission(["a", "b", "c"], probs, np.array([1.0, 2.0, 3.0]), CATEGORY_IDS, order=["c", "a", "b"])
    assert list(df["id"]) == ["c", "a", "b"] and list(df["osd"]) == [3.0, 1.0, 2.0]
    with pytest.raises(ValueError, match="not the same set"):
        make_submission(["a", "b", "c"], probs, np.zeros(3), CATEGORY_IDS, order=["a", "b", "d"])


def test_writer_writes_full_precision_and_file_validates(tmp_path):
    rng = np.random.default_rng(1)
    ids = [f"id{i}" for i in range(5)]
    osd = rng.random(5)
    df = make_submission(ids, probs_for(rng, 5), osd, CATEGORY_IDS)
    write_submission(df, tmp_path / "s.csv", ids, CATEGORY_IDS)
    # the file holds every float exactly: read back with the round-trip parser (pandas 2's default parser, as on
    # Kaggle's image, may differ in the last bit; pandas 3's default round-trips)
    back = pd.read_csv(tmp_path / "s.csv", dtype={"categories": str}, float_precision="round_trip")
    assert np.array_equal(back["osd"].to_numpy(), osd)  # never rounded
    assert submission_problems((tmp_path / "s.csv").read_text(), ids, CATEGORY_IDS) == []


def test_invalid_table_never_replaces_previous_file(tmp_path):
    ids = ["a", "b"]
    good = make_submission(ids, np.eye(2, 290), np.array([0.0, 1.0]), CATEGORY_IDS)
    path = tmp_path / "submission.csv"
    write_submission(good, path, ids, CATEGORY_IDS)
    before = path.read_text()
    bad = good.copy()
    bad.loc[0, "categories"] = "160.0 3"
    with pytest.raises(DataError, match="160.0"):
        write_submission(bad, path, ids, CATEGORY_IDS)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["submission.csv"]  # no temp file left


VALID = "id,categories,osd\na,1 2 3,0.5\nb,160,0.25\n"
MALFORMED = {
    "wrong header": ("id,cats,osd\na,1,0.5\nb,2,0.1\n", "header"),
    "missing id": ("id,categories,osd\na,1,0.5\n", "missing"),
    "extra id": (VALID + "c,1,0.1\n", "not eval images"),
    "duplicate id": (VALID + "a,1,0.1\n", "duplicate id a"),
    "float token": ("id,categories,osd\na,160.0 2,0.5\nb,1,0.1\n", "not an integer"),
    "brackets": ("id,categories,osd\na,[160],0.5\nb,1,0.1\n", "brackets"),
    "out of range": ("id,categories,osd\na,291,0.5\nb,1,0.1\n", "out of range"),
    "zero id": ("id,categories,osd\na,0,0.5\nb,1,0.1\n", "not an integer"),
    "non-integer": ("id,categories,osd\na,x,0.5\nb,1,0.1\n", "not an integer"),
    "too many": ("id,categories,osd\na," + " ".join(map(str, range(1, 22))) + ",0.5\nb,1,0.1\n", "at most 20"),
    "double space": ("id,categories,osd\na,1  2,0.5\nb,1,0.1\n", "single spaces"),
    "repeated id": ("id,categories,osd\na,1 1,0.5\nb,1,0.1\n", "repeated"),
    "empty categories": ("id,categories,osd\na,,0.5\nb,1,0.1\n", "empty"),
    "empty osd": ("id,categories,osd\na,1,\nb,1,0.1\n", "not a number"),
    "nan osd": ("id,categories,osd\na,1,nan\nb,1,0.1\n", "finite"),
    "text osd": ("id,categories,osd\na,1,high\nb,1,0.1\n", "not a number"),
    "missing field": ("id,categories,osd\na,1\nb,1,0.1\n", "3 fields"),
    "empty file": ("", "header"),
}


def test_valid_text_has_no_problems():
    assert submission_problems(VALID, ["a", "b"], CATEGORY_IDS) == []
    assert submission_problems("\ufeff" + VALID.replace("\n", "\r\n"), ["a", "b"], CATEGORY_IDS) == []


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_validator_rejects(case):
    text, expected = MALFORMED[case]
    problems = submission_problems(text, ["a", "b"], CATEGORY_IDS)
    assert problems and any(expected in p for p in problems), problems


@pytest.mark.parametrize("case", ["float token", "missing id", "nan osd"])
def test_validate_cli_exits_nonzero_with_message(demo_dir, tmp_path, case):
    solution = pd.read_csv(demo_dir / "solution.csv", dtype=str)
    ids = list(solution["id"])
    text = "id,categories,osd\n" + "".join(f"{i},1 2,0.5\n" for i in ids)
    first = ids[0]
    text = {"float token": text.replace(f"{first},1 2", f"{first},1.0 2"),
            "missing id": text.replace(f"{first},1 2,0.5\n", ""),
            "nan osd": text.replace(f"{first},1 2,0.5", f"{first},1 2,NaN")}[case]
    (tmp_path / "sub.csv").write_text(text)
    run = subprocess.run([sys.executable, "-m", "fathom", "validate-submission", tmp_path / "sub.csv", "--data",
                          demo_dir], capture_output=True, text=True)
    assert run.returncode != 0
    assert "sub.csv" in run.stderr and "invalid submission" in run.stderr
    assert "Traceback" not in run.stderr


def test_written_files_get_the_usual_permissions(tmp_path):
    import os
    import stat

    from fathom.atomic import UMASK, write_json

    write_json({"a": 1}, tmp_path / "x.json")
    assert stat.S_IMODE(os.stat(tmp_path / "x.json").st_mode) == 0o666 & ~UMASK
