"""The method options of the engine: pixel baselines, losses, long-tail tools, mixing, the MLP head."""

from __future__ import annotations


import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import tiny_config
from fathom.config import load_config
from fathom.constants import N_FINE, N_SUPER
from fathom.data.labels import prior_log_odds, repeat_factors
from fathom.data.layout import load_dataset
from fathom.errors import DataError
from fathom.folds import make_folds
from fathom.infer.tta import predict_experiment
from fathom.models.net import FathomNet
from fathom.predictions import Predictions
from fathom.data.loaders import EpochSampler
from fathom.train.loss import FathomLoss
from fathom.train.mixing import MultiLabelMix
from fathom.train.run import train

pytestmark = pytest.mark.slow  # trains, spawns processes or benchmarks: the full suite only

OPTIONS = {
    "pixels_linear": {"backbones": ["pixels_linear"]},
    "pixels_mlp": {"backbones": ["pixels_mlp"]},
    "asl": {"loss": "asl"},
    "focal": {"loss": "focal"},
    "balanced sampler": {"sampler": "balanced"},
    "logit adjustment": {"logit_adjustment": 1.0},
    "mixup": {"mixup_alpha": 0.4},
    "cutmix": {"cutmix_alpha": 1.0},
    "label smoothing": {"label_smoothing": 0.1},
    "mlp head": {"head": "mlp", "head_hidden": 64},
}


@pytest.fixture(scope="module")
def tiny(demo_dir):
    dataset = load_dataset(demo_dir)
    return dataset, make_folds(dataset.train, dataset.categories, n_folds=3, seed=0)


@pytest.mark.parametrize("option", list(OPTIONS))
def test_each_option_trains_end_to_end(tiny, tmp_path, option):
    dataset, folds = tiny
    cfg = tiny_config(tmp_path, name="opt", batch_size=8, limit=40, seed=1, **OPTIONS[option])
    scores = train(cfg, dataset, folds, tmp_path / "runs")
    backbone = cfg.backbones[0]
    assert 0 <= scores[backbone] <= 1
    oof = Predictions.load(tmp_path / "runs" / "opt" / "oof" / f"{backbone}.npz")
    assert len(oof.ids) == 40 and np.isfinite(oof.fine).all() and ((oof.fine >= 0) & (oof.fine <= 1)).all()
    assert predict_experiment(dataset, tmp_path / "runs", "opt") == {backbone: ["1x", "1x+hflip"]}  # TTA rebuilds it


def logits_and_targets(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = {"fine": torch.randn(6, N_FINE, generator=g) * 3, "super": torch.randn(6, N_SUPER, generator=g)}
    fine = (torch.rand(6, N_FINE, generator=g) < 0.02).float()
    sup = (torch.rand(6, N_SUPER, generator=g) < 0.2).float()
    return logits, fine, sup


def test_asl_without_focusing_or_clipping_is_weighted_bce():
    logits, fine, sup = logits_and_targets()
    weight = np.linspace(1, 3, N_FINE).astype(np.float32)
    asl = FathomLoss(weight, 0.5, kind="asl", gamma_neg=0, gamma_pos=0, clip=0)(logits, fine, sup)
    bce = FathomLoss(weight, 0.5, kind="bce")(logits, fine, sup)
    torch.testing.assert_close(asl["loss"], bce["loss"], rtol=1e-4, atol=1e-6)


def test_focal_and_asl_weigh_easy_negatives_down_and_keep_hard_positives():
    ones = np.ones(N_FINE, np.float32)
    sup = {"super": torch.zeros(1, N_SUPER)}
    easy = {"fine": torch.full((1, N_FINE), -4.0), **sup}  # confident and right: every class absent
    hard = {"fine": torch.full((1, N_FINE), -3.0), **sup}  # confident and wrong: every class present
    absent, present, no_super = torch.zeros(1, N_FINE), torch.ones(1, N_FINE), torch.zeros(1, N_SUPER)
    bce = FathomLoss(ones, kind="bce")
    for kind in ("focal", "asl"):
        loss = FathomLoss(ones, kind=kind)
        assert loss(easy, absent, no_super)["fine"] < 0.01 * bce(easy, absent, no_super)["fine"]
        assert loss(hard, present, no_super)["fine"] > 0.5 * bce(hard, present, no_super)["fine"]


def test_logit_adjustment_shifts_the_fine_logits_by_the_prior_and_the_model_starts_at_the_prior():
    logits, fine, sup = logits_and_targets()
    frequency = np.clip(np.random.default_rng(0).random(N_FINE) * 0.1, 0, 1)
    shift = 0.7 * prior_log_odds(frequency)
    adjusted = FathomLoss(np.ones(N_FINE, np.float32), logit_shift=shift)(logits, fine, sup)["fine"]
    expected = F.binary_cross_entropy_with_logits(logits["fine"] + torch.as_tensor(shift), fine)
    torch.testing.assert_close(adjusted, expected)
    model = FathomNet("pixels_linear")
    model.start_at_prior(frequency, np.full(N_SUPER, 0.1), fine_shift=0.7)
    torch.testing.assert_close(model.fine.bias + torch.as_tensor(shift), torch.as_tensor(prior_log_odds(frequency)))


def test_repeat_factors_lift_images_of_rare_categories():
    targets = np.zeros((100, 3), np.float32)
    targets[:50, 0] = 1  # common: half the images
    targets[50:51, 1] = 1  # rare: one image in 100
    factors = repeat_factors(targets, threshold=0.1)
    assert factors[0] == 1.0 and factors[50] == pytest.approx(np.sqrt(0.1 / 0.01)) and factors[99] == 1.0
    both = targets.copy()
    both[0, 1] = 1  # an image holding the rare and the common category takes the larger factor
    assert repeat_factors(both, 0.1)[0] == pytest.approx(np.sqrt(0.1 / 0.02))


def test_weighted_epoch_sampler_draws_in_proportion_and_is_reproducible():
    weights = np.array([1.0, 1.0, 8.0, 0.0])
    sampler = EpochSampler(4, seed=3, weights=weights)
    counts = np.zeros(4)
    for epoch in range(200):
        sampler.set_epoch(epoch)
        counts += np.bincount([i for _, i in sampler], minlength=4)
    assert counts[3] == 0 and counts[2] / counts[:2].mean() == pytest.approx(8, rel=0.15)
    sampler.set_epoch(5)
    again = EpochSampler(4, seed=3, weights=weights)
    again.set_epoch(5)
    assert list(sampler) == list(again) and len(list(sampler)) == 4
    ranks = [EpochSampler(10, 3, world=2, rank=r, weights=np.ones(10)) for r in (0, 1)]
    for r in ranks:
        r.set_epoch(2)
    whole = EpochSampler(10, 3, weights=np.ones(10))
    whole.set_epoch(2)
    assert sorted(i for r in ranks for _, i in r) == sorted(i for _, i in whole)  # the ranks share one draw


def test_mix_gives_fine_and_super_targets_the_pixels_lambda():
    torch.manual_seed(0)
    np.random.seed(0)
    images = torch.stack([torch.zeros(3, 8, 8), torch.ones(3, 8, 8)])
    fine, sup = torch.zeros(2, N_FINE), torch.zeros(2, N_SUPER)
    fine[0, 0], fine[1, 1], sup[0, 0], sup[1, 1] = 1, 1, 1, 1
    mixed, mixed_fine, mixed_sup = MultiLabelMix(mixup_alpha=0.0, cutmix_alpha=1.0)(images.clone(), fine, sup)
    kept = 1 - mixed[0].mean().item()  # image 0 (zeros) keeps a share of its pixels; the rest are image 1's
    assert mixed_fine[0, 0].item() == pytest.approx(kept, abs=1e-6) and mixed_sup[0, 0] == mixed_fine[0, 0]
    assert mixed_fine[0, 1].item() == pytest.approx(1 - kept, abs=1e-6)
    odd = MultiLabelMix(0.4, 0.0)(images[:1].clone(), fine[:1], sup[:1])
    assert torch.equal(odd[1], fine[:1])  # an odd batch passes unmixed


def test_pixels_linear_is_logistic_regression_on_a_thumbnail_and_the_mlp_head_has_its_layers():
    model = FathomNet("pixels_linear").eval()
    a, b = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    zero = model(torch.zeros(1, 3, 32, 32))["fine"]
    torch.testing.assert_close(model(a + b)["fine"] - zero, (model(a)["fine"] - zero) + (model(b)["fine"] - zero),
                               rtol=1e-4, atol=1e-4)
    assert model.backbone.num_features == 3 * 16 * 16
    head = FathomNet("resnet18", head="mlp", head_hidden=32)
    assert [type(m).__name__ for m in head.neck] == ["Linear", "BatchNorm1d", "ReLU"] and head.fine.in_features == 32


@pytest.mark.parametrize("overrides,fragment", [
    (["mixup_alpha=0.4", "batch_size=7"], "batch_size must be even"),
    (["loss=ce"], "loss must be one of bce, asl, focal"),
    (["sampler=random"], "sampler must be one of uniform, balanced"),
    (["head=deep"], "head must be one of linear, mlp"),
    (["logit_adjustment=-1"], "logit_adjustment must be >= 0"),
])
def test_bad_method_settings_are_named(overrides, fragment):
    with pytest.raises(DataError, match=fragment):
        load_config("demo", overrides)
