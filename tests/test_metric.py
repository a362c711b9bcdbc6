import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from fathom.metric import (IdMismatchError, average_precision_at_k, map_at_k, map_at_k_from_probs, score_frames,
                           scaled_auc)


def official_apk(actual, predicted, k=20):
    """The official scorer's AP@k, transcribed: lists of string tokens, hits counted once."""
    if len(predicted) > k:
        predicted = predicted[:k]
    score, num_hits = 0.0, 0.0
    for i, p in enumerate(predicted):
        if p in actual and p not in predicted[:i]:
            num_hits += 1.0
            score += num_hits / (i + 1.0)
    if not actual:
        return 0.0
    return score / min(len(actual), k)


def official_score(solution: pd.DataFrame, submission: pd.DataFrame) -> float:
    solution = solution.sort_values("id").reset_index(drop=True)
    submission = submission.sort_values("id").reset_index(drop=True)
    assert (solution["id"].values == submission["id"].values).all()
    auc = roc_auc_score(solution["osd"].astype(float), submission["osd"].astype(float))
    cat = np.mean([official_apk(a.split(" "), p.split(" ")) for a, p in zip(solution["categories"],
                                                                             submission["categories"])])
    return 0.5 * (2 * (auc - 0.5) + cat)


@pytest.mark.parametrize("predicted", ["1 2 3 4 5", "1 1 1 1 1", "1 2 1 3 1"])
def test_official_examples_score_one(predicted):
    assert map_at_k(["1"], [predicted]) == 1.0


@pytest.mark.parametrize("true, predicted, expected", [
    ("1 2", "1 3 2", (1 / 1 + 2 / 3) / 2),
    ("1 2", "3 4 1", (1 / 3) / 2),
    ("5", "1 2 3", 0.0),
    ("1 2 3", "1 1 2", (1 + 2 / 3) / 3),  # the repeat takes rank 2 and scores nothing
    ("7", " ".join(str(i) for i in range(1, 30)), 1 / 7),
    ("21", " ".join(str(i) for i in range(1, 30)), 0.0),  # rank 21 is past the cut-off
    (" ".join(str(i) for i in range(1, 26)), " ".join(str(i) for i in range(1, 26)), 1.0),  # min(25, 20)
    ("", "1 2 3", 0.0),  # an image with no true labels scores 0
    ("160", "160.0 1", 0.0),  # tokens are compared as strings
])
def test_hand_computed(true, predicted, expected):
    assert map_at_k([true], [predicted]) == pytest.approx(expected, abs=1e-12)


def random_cells(rng, n, max_len, vocab):
    return [" ".join(str(x) for x in rng.integers(1, vocab, rng.integers(1, max_len + 1))) for _ in range(n)]


@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_official_scorer(seed):
    rng = np.random.default_rng(seed)
    n = 200
    truth = [" ".join(map(str, sorted(set(rng.integers(1, 40, rng.integers(1, 25)))))) for _ in range(n)]
    predicted = random_cells(rng, n, 30, 40)  # includes repeated ids and > 20 tokens
    ids = [f"img{i}" for i in range(n)]
    solution = pd.DataFrame({"id": ids, "categories": truth, "osd": rng.integers(0, 2, n)})
    submission = pd.DataFrame({"id": ids, "categories": predicted, "osd": rng.random(n)}).sample(frac=1, random_state=seed)
    ours = score_frames(solution, submission)
    assert ours["score"] == pytest.approx(official_score(solution, submission), abs=1e-9)
    assert ours["map20"] == pytest.approx(np.mean([official_apk(t.split(" "), p.split(" "))
                                                   for t, p in zip(truth, predicted)]), abs=1e-12)


def test_ap_of_one_image_matches_official_on_repeats():
    for predicted in (["1", "1", "2"], ["2", "1", "2", "1"], ["3"] * 25 + ["1"]):
        assert average_precision_at_k(["1", "2"], predicted) == official_apk(["1", "2"], predicted)


def test_sauc_is_scaled_auc():
    assert scaled_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert scaled_auc([0, 0, 1, 1], [0.9, 0.8, 0.1, 0.2]) == -1.0
    assert np.isnan(scaled_auc([0, 0], [0.1, 0.2]))


def test_rows_matched_by_id_and_mismatch_raises():
    solution = pd.DataFrame({"id": ["a", "b"], "categories": ["1", "2"], "osd": [0, 1]})
    submission = pd.DataFrame({"id": ["b", "a"], "categories": ["2", "1"], "osd": [0.9, 0.1]})
    assert score_frames(solution, submission)["score"] == 1.0
    with pytest.raises(IdMismatchError, match="1 missing"):
        score_frames(solution, submission.iloc[:1])


def test_map_from_probs_equals_string_metric():
    rng = np.random.default_rng(0)
    probs = rng.random((50, 290))
    targets = (rng.random((50, 290)) < 0.02).astype(float)
    targets[0] = 0  # no positives scores 0
    ids = np.arange(1, 291)
    truth = [" ".join(map(str, ids[t > 0])) for t in targets]
    predicted = [" ".join(map(str, ids[np.argsort(-p, kind="stable")[:20]])) for p in probs]
    assert map_at_k_from_probs(probs, targets) == pytest.approx(map_at_k(truth, predicted), abs=1e-12)


@pytest.mark.slow
def test_score_cli(tmp_path):
    solution = pd.DataFrame({"id": ["a", "b"], "categories": ["1 5", "2"], "osd": [0, 1]})
    submission = pd.DataFrame({"id": ["a", "b"], "categories": ["5 1", "3 2"], "osd": [0.2, 0.7]})
    solution.to_csv(tmp_path / "sol.csv", index=False)
    submission.to_csv(tmp_path / "sub.csv", index=False)
    run = subprocess.run([sys.executable, "-m", "fathom", "score", "--solution", tmp_path / "sol.csv",
                          "--submission", tmp_path / "sub.csv"], capture_output=True, text=True, check=True)
    result = json.loads(run.stdout)
    assert result == pytest.approx({"map20": (1 + 0.5) / 2, "sauc": 1.0, "score": (0.75 + 1) / 2})

    submission.iloc[:1].to_csv(tmp_path / "short.csv", index=False)
    run = subprocess.run([sys.executable, "-m", "fathom", "score", "--solution", tmp_path / "sol.csv",
                          "--submission", tmp_path / "short.csv"], capture_output=True, text=True)
    assert run.returncode != 0
    assert "short.csv" in run.stderr and "missing" in run.stderr
