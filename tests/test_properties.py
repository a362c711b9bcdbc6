"""Property-based tests (hypothesis) of the readers, the validator and the metric: whatever the input,
a reader returns a table or raises a DataError naming the file, never anything else."""

from __future__ import annotations


import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fathom import constants as C
from fathom.config import TrainConfig, load_config
from fathom.data.categories import Categories
from fathom.data.layout import parse_categories_cell, read_coco_images, read_train_csv
from fathom.errors import DataError
from fathom.metric import average_precision_at_k, map_at_k_from_probs
from fathom.submission import make_submission, submission_problems

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CATEGORY_IDS = np.arange(1, C.N_FINE + 1)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                           max_leaves=12)


def categories() -> Categories:
    import pandas as pd

    table = pd.DataFrame({"id": CATEGORY_IDS, "index": CATEGORY_IDS - 1, "name": [f"c{i}" for i in CATEGORY_IDS],
                          "supercat": [f"s{i % C.N_SUPER}" for i in CATEGORY_IDS],
                          "super_index": CATEGORY_IDS % C.N_SUPER})
    return Categories(table)


SCRATCH = Path(tempfile.mkdtemp(prefix="fathom-properties-"))  # one file per name, overwritten per example


def in_file(data: bytes, name: str) -> Path:
    path = SCRATCH / name
    path.write_bytes(data)
    return path


@SETTINGS
@given(st.lists(st.integers(1, C.N_FINE), max_size=12))
def test_category_cells_round_trip(ids):
    cell = "[" + ", ".join(f"{float(i)}" for i in ids) + "]"
    assert parse_categories_cell(cell) == list(dict.fromkeys(ids))


@SETTINGS
@given(st.text(max_size=40))
def test_any_category_cell_parses_or_says_why(cell):
    try:
        ids = parse_categories_cell(cell)
    except ValueError:
        return
    assert all(isinstance(i, int) for i in ids) and len(set(ids)) == len(ids)


@SETTINGS
@given(st.binary(max_size=300) | st.text(max_size=300).map(lambda t: ("id,categories\n" + t).encode()))
def test_any_train_csv_loads_or_is_named(data):
    path = in_file(data, "train.csv")
    try:
        table = read_train_csv(path, categories())
    except DataError as err:
        assert str(err).startswith(str(path)) and "\n" not in str(err)
        return
    assert all(set(ids) <= set(CATEGORY_IDS.tolist()) for ids in table["categories"])
    assert table["id"].is_unique


@SETTINGS
@given(json_values | st.fixed_dictionaries({"images": st.lists(json_values | st.fixed_dictionaries(
    {"id": json_values, "file_name": json_values, "width": json_values, "height": json_values}), max_size=4)}))
def test_any_coco_json_loads_or_is_named(value):
    path = in_file(json.dumps(value).encode(), "train.json")
    try:
        table = read_coco_images(path)
    except DataError as err:
        assert str(err).startswith(str(path))
        return
    assert table["id"].is_unique and (table["width"] > 0).all() and (table["height"] > 0).all()


@SETTINGS
@given(st.text(max_size=400))
def test_the_validator_never_raises(text):
    problems = submission_problems(text, ["a", "b"], CATEGORY_IDS)
    assert all(isinstance(p, str) for p in problems)


@SETTINGS
@given(st.integers(1, 30), st.integers(0, 2**31 - 1))
def test_written_submissions_always_validate(n, seed):
    rng = np.random.default_rng(seed)
    ids = [f"img{i}" for i in range(n)]
    table = make_submission(ids, rng.random((n, C.N_FINE)), rng.normal(size=n), CATEGORY_IDS)
    text = table.to_csv(index=False, lineterminator="\n")
    assert submission_problems(text, ids, CATEGORY_IDS) == []


@SETTINGS
@given(st.dictionaries(st.sampled_from(sorted(TrainConfig.__dataclass_fields__)), json_values, max_size=3))
def test_any_config_mapping_loads_or_names_the_key(values):
    path = in_file(json.dumps(values).encode(), "exp.yaml")  # JSON is YAML
    try:
        cfg = load_config(str(path))
    except DataError as err:
        assert "exp.yaml" in str(err) or "by_backbone" in str(err)
        return
    assert isinstance(cfg, TrainConfig) and cfg.epochs >= 1


@SETTINGS
@given(st.lists(st.integers(1, 50), min_size=1, max_size=8, unique=True), st.permutations(list(range(1, 51))))
def test_average_precision_is_a_fraction_and_perfect_for_the_truth_first(true, ranking):
    truth = [str(t) for t in true]
    predicted = [str(r) for r in ranking][:20]
    assert 0.0 <= average_precision_at_k(truth, predicted) <= 1.0
    assert average_precision_at_k(truth, truth + [p for p in predicted if p not in truth]) == 1.0


@SETTINGS
@given(st.integers(1, 12), st.integers(0, 2**31 - 1))
def test_map_from_probabilities_matches_the_scorer_even_with_empty_rows_and_classes(n, seed):
    rng = np.random.default_rng(seed)
    targets = rng.random((n, 30)) < 0.1  # some rows and most classes have no positive
    targets[:, :5] = False
    probs = rng.random((n, 30))
    expected = np.mean([average_precision_at_k([str(c) for c in np.flatnonzero(t)],
                                               [str(c) for c in np.argsort(-p, kind="stable")[:20]])
                        for t, p in zip(targets, probs)])
    assert np.isclose(map_at_k_from_probs(probs, targets), expected)


def outside(rule, integer: bool):
    """Values a Range refuses: below its lower bound, above its upper bound, and (floats) NaN and infinity."""
    number = st.integers if integer else (lambda **kw: st.floats(allow_nan=False, **kw))
    parts = []
    if rule.gt is not None:
        parts.append(number(max_value=int(rule.gt)) if integer else number(max_value=rule.gt))
    if rule.ge is not None:
        parts.append(number(max_value=int(rule.ge) - 1) if integer else
                     number(max_value=rule.ge, exclude_max=True))
    if rule.lt is not None:
        parts.append(number(min_value=rule.lt))
    if rule.le is not None:
        parts.append(number(min_value=int(rule.le) + 1) if integer else number(min_value=rule.le, exclude_min=True))
    if not integer:
        parts.append(st.sampled_from([float("nan"), float("inf"), float("-inf")]))
    return st.one_of(parts).filter(lambda v: v != rule.off)


@SETTINGS
@given(data=st.data())
def test_every_numeric_key_refuses_values_out_of_its_range_in_one_line_naming_it(data):
    import typing

    from fathom.config import RANGES, apply

    key = data.draw(st.sampled_from(sorted(RANGES)))
    integer = typing.get_type_hints(TrainConfig)[key] is int
    value = data.draw(outside(RANGES[key], integer))
    try:
        apply(TrainConfig(), {key: value}, "test.yaml")
    except DataError as err:
        assert f"{key} must be {RANGES[key]}" in str(err) and "test.yaml" in str(err) and "\n" not in str(err)
    else:
        raise AssertionError(f"{key}={value!r} was accepted")
