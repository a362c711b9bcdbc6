"""`python -m fathom ensemble`: fit an experiment's ensemble on its out-of-fold predictions, predict the eval
images with it and choose their out-of-sample score. Reads only files the earlier stages wrote (the folds'
prediction files, runs/<exp>/appearance.npz, the label files): no pixels.

Strategies, each tuned on OOF rows only:
  best single                  the member with the best MAP@20
  equal weights                the plain mean of the members
  tuned weights                greedy MAP@20 weights (fathom.ensemble.blend)
  tuned weights + re-scoring   the same, then p(c) * p_super(parent(c))^b with b tuned

Over-fitting guard (cross-fitting): for each fold k the strategy is tuned on the other folds' rows
and applied to fold k's rows; the pooled result is its held-out MAP@20. The strategy with the best
held-out score (the simpler one on ties) is then tuned on every OOF row and used for the eval images.
The out-of-sample score is chosen with fathom.ensemble.osd_choice from the scorers of
fathom.ensemble.osd_scorers.

Writes runs/<exp>/ensemble.json (the choice and every number behind it) and runs/<exp>/ensemble/
{oof,test}.npz (held-out OOF scores of the chosen strategy; eval scores with the chosen osd) and
osd_scores.npz (every candidate's scores: the osd choice can be redone from it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fathom import constants as C
from fathom.data.labels import holds_unseen
from fathom.data.layout import Dataset
from fathom.errors import DataError
from fathom.ensemble.blend import blend, greedy_weights, rescore, tune_exponent
from fathom.ensemble.members import Members, dives_of, load_members, train_labels
from fathom.ensemble.osd_choice import FoldScores, OsdScores, choose_from, sauc_variance
from fathom.ensemble.osd_scorers import FOLD_MODEL, FrameSet, combined, eval_scores, score_all, with_dive_means
from fathom.ensemble.probes import probe_scores
from fathom.metric import map_at_k_from_probs, read_scoring_csv, scaled_auc, tokens
from fathom.predictions import FrameAppearance, Predictions
from fathom.provenance import git_commit
from fathom.runs import EnsembleRecord, Experiment, OofScores, OsdChoice, OsdScore, StrategyScore, write_record

log = logging.getLogger(__name__)
STRATEGIES = ("best single", "equal weights", "tuned weights", "tuned weights + re-scoring")


@dataclass
class Recipe:
    strategy: str
    weights: np.ndarray  # one per member, non-negative, sum 1
    b: float  # super-category exponent (a = 1)

    def apply(self, fine: np.ndarray, sup: np.ndarray, parent: np.ndarray) -> np.ndarray:
        """Category scores from member stacks [M, N, 290] and [M, N, 20]."""
        blended = blend(fine, self.weights)
        return rescore(blended, blend(sup, self.weights), parent, self.b) if self.b else blended


def tune_recipe(strategy: str, fine: np.ndarray, sup: np.ndarray, targets: np.ndarray, parent: np.ndarray) -> Recipe:
    """`strategy` tuned on the given rows (member stacks [M, N, *], targets [N, 290])."""
    n_members = len(fine)
    if strategy == "best single":
        weights = np.eye(n_members)[int(np.argmax([map_at_k_from_probs(f, targets) for f in fine]))]
    elif strategy == "equal weights":
        weights = np.full(n_members, 1.0 / n_members)
    elif strategy in ("tuned weights", "tuned weights + re-scoring"):
        weights = greedy_weights(fine, targets)
    else:
        raise ValueError(strategy)
    b = 0.0
    if strategy == "tuned weights + re-scoring":
        b = tune_exponent(blend(fine, weights), blend(sup, weights), parent, targets)
    return Recipe(strategy, weights, b)


def cross_fit(members: Members, targets: np.ndarray, parent: np.ndarray, strategy: str) -> np.ndarray:
    """Held-out scores [N, 290] of `strategy`: each fold's rows scored by a recipe tuned on the others."""
    out = np.zeros(members.oof_fine.shape[1:])
    for fold in members.folds:
        tune, hold = members.fold_of != fold, members.fold_of == fold
        recipe = tune_recipe(strategy, members.oof_fine[:, tune], members.oof_super[:, tune], targets[tune], parent)
        out[hold] = recipe.apply(members.oof_fine[:, hold], members.oof_super[:, hold], parent)
    return out


def solution_labels(dataset: Dataset, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The demo's eval labels (multi-hot [E, 290], osd [E]) in `ids` order, or None without solution.csv."""
    path = dataset.root / C.SOLUTION_CSV
    if not path.is_file():
        return None
    solution = read_scoring_csv(path).set_index("id").loc[ids]
    fine = np.zeros((len(ids), C.N_FINE), np.float32)
    for row, cell in enumerate(solution["categories"]):
        fine[row, dataset.categories.index_of(tokens(cell))] = 1
    return fine, solution["osd"].to_numpy(float)


def read_appearance(experiment: Experiment) -> FrameAppearance:
    return FrameAppearance.load(experiment.appearance_file,
                                hint=f"run `python -m fathom train` for experiment {experiment.name!r} again "
                                     "(finished folds are reused; it writes the file)")


def osd_scores(dataset: Dataset, experiment: Experiment, members: Members, weights: np.ndarray,
               appearance: FrameAppearance) -> OsdScores:
    """Every scorer's scores of the sets the osd choice measures on (fathom.ensemble.osd_choice): fold by fold,
    each probe's (fathom.ensemble.probes), and of the eval frames for the submission
    (fathom.ensemble.osd_scorers.eval_scores)."""
    labels = members.targets(dataset)
    eval_appearance = appearance.of(members.eval_ids)
    train_dives, eval_dives = dives_of(dataset.train, members.oof_ids), dives_of(dataset.eval, members.eval_ids)
    all_train = dataset.train["id"].to_numpy().astype(str)
    folds = []
    for position, fold in enumerate(members.folds):
        rows = members.fold_of == fold
        embedded = None if members.embeddings is None else [m[position] for m in members.embeddings]
        train_part = embedded[0].train_ids if embedded else np.setdiff1d(all_train, members.oof_ids[rows])
        train_part_labels = train_labels(dataset, train_part)
        reference = FrameSet(appearance.of(train_part), labels=train_part_labels,
                             embeddings=tuple(e.train for e in embedded) if embedded else None)
        sides = {
            "valid": FrameSet(appearance.of(members.oof_ids[rows]), **members.oof_blend(rows, weights),
                              embeddings=tuple(e.valid for e in embedded) if embedded else None),
            "test": FrameSet(eval_appearance, **members.eval_blend(weights, position),
                             embeddings=tuple(e.test for e in embedded) if embedded else None)}
        scored = {split: with_dive_means(score_all(reference, side), dives)
                  for (split, side), dives in zip(sides.items(), (train_dives[rows], eval_dives))}
        unseen = holds_unseen(labels[rows], train_part_labels)
        folds.append(FoldScores(int(fold), scored["valid"], scored["test"], unseen))
    final = eval_scores(FrameSet(appearance.of(all_train)),
                        FrameSet(eval_appearance, **members.eval_blend(weights)),
                        [{n: f.test[n] for n in FOLD_MODEL if n in f.test} for f in folds], eval_dives)
    return OsdScores(folds, final, probe_scores(dataset, experiment, appearance))


def compare_strategies(members: Members, targets: np.ndarray, parent: np.ndarray, exp: str,
                       allowed: tuple[str, ...] = STRATEGIES):
    """Every strategy tuned on all OOF rows and cross-fitted; returns (table, held-out scores, chosen).
    `allowed`: the strategies that may be chosen (the others are not computed)."""
    checked = len(members.folds) >= 2
    if not checked:
        log.warning("%s: one finished fold, so nothing can be checked on held-out folds; using equal weights", exp)
    strategies, held_out_scores = {}, {}
    for strategy in allowed:
        recipe = tune_recipe(strategy, members.oof_fine, members.oof_super, targets, parent)
        in_sample = recipe.apply(members.oof_fine, members.oof_super, parent)
        held_out_scores[strategy] = cross_fit(members, targets, parent, strategy) if checked else in_sample
        strategies[strategy] = {"held_out": map_at_k_from_probs(held_out_scores[strategy], targets) if checked
                                else float("nan"),
                                "in_sample": map_at_k_from_probs(in_sample, targets), "recipe": recipe}
    chosen = (max(allowed, key=lambda s: (strategies[s]["held_out"], -STRATEGIES.index(s))) if checked
              else "equal weights" if "equal weights" in allowed else allowed[0])
    return strategies, held_out_scores, chosen


def fit_ensemble(dataset: Dataset, runs: Path, exp: str, backbones: list[str] | None = None, tta: bool = True,
                 strategies: tuple[str, ...] = STRATEGIES, osd: str | None = None,
                 write: bool = True) -> tuple[EnsembleRecord, Predictions]:
    """Tune on OOF, write ensemble.json, ensemble/{oof,test}.npz and ensemble/osd_scores.npz; returns (record,
    eval predictions).

    The defaults are the full recipe. The quality benchmark's ablations narrow it: `backbones` (a subset
    of members), `tta=False` (training's own predictions), `strategies` (those that may be chosen),
    `osd` (a fixed osd method instead of the label-free choice), `write=False` (no files).
    """
    members = load_members(dataset, runs, exp, tta=tta, backbones=backbones)
    targets, parent = members.targets(dataset), dataset.categories.parent
    per_fold = {name: {str(k): map_at_k_from_probs(members.oof_fine[m][members.fold_of == k],
                                                   targets[members.fold_of == k]) for k in members.folds}
                for m, name in enumerate(members.names)}
    pooled = {name: map_at_k_from_probs(members.oof_fine[m], targets) for m, name in enumerate(members.names)}
    table, held_out_scores, chosen = compare_strategies(members, targets, parent, exp, strategies)
    recipe = table[chosen]["recipe"]
    experiment = Experiment(runs, exp)
    scores = osd_scores(dataset, experiment, members, recipe.weights, read_appearance(experiment))
    osd_method, osd_table = choose_from(scores)
    if osd is not None and osd not in osd_table:
        raise DataError(experiment.root, f"unknown osd method {osd!r}",
                        hint=f"one of {', '.join(sorted(osd_table, key=lambda n: ('+' in n, n)))}")
    osd_method = osd or osd_method
    test_fine, test_super = members.test_mean()
    prediction = Predictions(members.eval_ids, recipe.apply(test_fine, test_super, parent),
                             blend(test_super, recipe.weights), {"osd": combined(scores.eval, osd_method)})
    solution = solution_labels(dataset, members.eval_ids)  # the demo: reported, never used to choose
    strategy_eval = {s: map_at_k_from_probs(row["recipe"].apply(test_fine, test_super, parent), solution[0])
                     for s, row in table.items()} if solution is not None else {}
    osd_eval = {name: scaled_auc(solution[1], combined(scores.eval, name)) for name in osd_table} \
        if solution is not None else {}
    record = EnsembleRecord(
        exp=exp, git_commit=git_commit(), members=members.names, folds=members.folds, tta=members.tta,
        strategy=chosen, weights=dict(zip(members.names, map(float, recipe.weights))),
        exponents={"a": 1.0, "b": recipe.b},
        oof_map20=OofScores(
            per_fold=per_fold, pooled=pooled, no_tta=tta_baseline(dataset, runs, exp, members) if write else None,
            ensemble_held_out_per_fold={str(k): map_at_k_from_probs(held_out_scores[chosen][members.fold_of == k],
                                                                    targets[members.fold_of == k])
                                        for k in members.folds}),
        strategies={s: StrategyScore(row["held_out"], row["in_sample"],
                                     dict(zip(members.names, map(float, row["recipe"].weights))), row["recipe"].b,
                                     strategy_eval.get(s)) for s, row in table.items()},
        osd=OsdChoice(osd_method, {name: OsdScore(**row, demo_eval=osd_eval.get(name))
                                   for name, row in osd_table.items()}, scores.unseen_images,
                      float(np.sqrt(sauc_variance(scores.held_out))), probes=scores.probes_measured))
    if write:
        Predictions(members.oof_ids, held_out_scores[chosen], blend(members.oof_super, recipe.weights)).save(
            experiment.ensemble_predictions("oof"))
        prediction.save(experiment.ensemble_predictions("test"))
        scores.save(experiment.osd_scores_file)
        write_record(record, experiment.ensemble_file)
    return record, prediction


def tta_baseline(dataset: Dataset, runs: Path, exp: str, members: Members) -> dict[str, float] | None:
    """Each member's pooled OOF MAP@20 without TTA (None when the members already are without TTA)."""
    if not members.tta:
        return None
    plain = load_members(dataset, runs, exp, tta=False)
    targets = plain.targets(dataset)
    return {name: map_at_k_from_probs(plain.oof_fine[m], targets) for m, name in enumerate(plain.names)}
