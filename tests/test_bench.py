"""The speed benchmark runs end to end at a tiny size and reports every number its tables need
(the numbers themselves live in BENCHMARKS.md, never in assertions about speed)."""

import json

import pytest
import torch

from fathom.bench.speed import NaiveFrames, Variant, forward_flops, run_speed_bench, variants
from fathom.bench.tables import speed_tables
from fathom.cli import main
from fathom.config import load_config
from fathom.data.layout import load_dataset
from fathom.models.net import FathomNet

pytestmark = pytest.mark.slow  # trains, spawns processes or benchmarks: the full suite only


def test_speed_bench_tiny(demo_dir):
    cfg = load_config("demo", ["batch_size=8", "workers=0"])
    result = run_speed_bench(load_dataset(demo_dir), cfg, ["resnet18"], [32], n_images=16, repeats=1,
                             compile_too=False, device=torch.device("cpu"))
    [row] = result["rows"]
    assert [s["variant"] for s in row["steps"]] == ["fp32", "fp32 CL", "bf16 CL"]
    numbers = [row[k] for k in ("loader_ours_img_s", "loader_naive_img_s", "epoch_ours_img_s", "epoch_naive_img_s")]
    assert all(v > 0 for v in numbers) and row["ours_variant"] == "bf16 CL"  # the demo config's resnet18 setting
    assert row["speedup"] == row["epoch_ours_img_s"] / row["epoch_naive_img_s"]
    assert set(result["matmul_peak_gflop_s"]) == {"fp32", "bf16"}
    tables = speed_tables(result)
    assert tables.count("| resnet18 | 32 |") == 4 and "ours / naive" in tables


def test_flops_match_resnet18_reference():
    # timm's resnet18 at 224 px: 1.82 GMACs = 3.64 GFLOPs (the heads add ~0.3 MFLOP)
    assert abs(forward_flops(FathomNet("resnet18"), 224) / 1e9 - 3.64) < 0.05


def test_naive_loader_decodes_full_frames(demo_dir):
    ds = load_dataset(demo_dir)
    image, fine, sup = NaiveFrames(list(ds.train["path"][:2]), 48, (0.5,) * 3, (0.5,) * 3)[0]
    assert image.shape == (3, 48, 48) and fine.shape == (290,) and sup.shape == (20,)


def test_cuda_variants_add_fp16_and_bf16():
    names = [v.name for v in variants(torch.device("cuda"), compile_too=True)]
    assert names == ["fp32", "fp32 CL", "fp16 CL", "bf16 CL", "fp16 CL compiled"]
    assert Variant("bf16", True).name == "bf16 CL"


def test_quality_bench_tiny(demo_dir, tmp_path):
    """Every row of the ablation table comes out, scored on the demo solution, and each ablation really
    changes the one ingredient it names."""
    from fathom.bench.quality import METHODS, experiments, random_split, run_quality_bench
    from fathom.bench.tables import quality_table, small_animals_table
    from fathom.folds import make_folds

    dataset = load_dataset(demo_dir)
    folds = make_folds(dataset.train, dataset.categories, n_folds=3, seed=0)
    base = load_config("demo", ["backbones=[resnet18, resnet10t]", "image_size=32", "epochs=1", "workers=0",
                                "batch_size=16", f"cache_dir={tmp_path / 'cache'}", "by_backbone={}"])
    configs = experiments(base)
    assert configs["no_class_weights"].pos_weight_power == 0 and configs["no_super_head"].super_weight == 0
    seed = configs["seed"]
    assert (seed.backbones, seed.optimizer, seed.lr, seed.super_weight, seed.pos_weight_power, seed.folds) == \
        (["densenet121"], "adam", 1e-3, 0.0, 0.0, [0])
    split = random_split(dataset, 42)
    assert abs((split["fold"] == 0).mean() - 0.2) < 0.01
    for key, (_, changes) in METHODS.items():  # each method experiment is the base with its option on
        method = configs[key]
        assert method.name == f"{base.name}-{key}" and all(getattr(method, k) == v for k, v in changes.items())
        assert method.backbones == changes.get("backbones", ["resnet18"]) and method.epochs == base.epochs

    result = run_quality_bench(dataset, folds, base, tmp_path / "runs", methods=False)  # methods: test_methods
    rows = {r["row"]: r for r in result["rows"]}
    assert list(rows) == ["full recipe", "resnet18 alone", "resnet10t alone", "no class weighting", "no super head",
                          "no TTA", "equal weights", "no re-scoring", "untuned osd (1 - max prob)", "seed recipe",
                          "crops and tiles", "resnet18 alone, crops and tiles", "resnet10t alone, crops and tiles"]
    for r in rows.values():
        assert 0 <= r["map20"] <= 1 and -1 <= r["sauc"] <= 1 and abs(r["score"] - (r["map20"] + r["sauc"]) / 2) < 1e-9
        assert 0 <= r["oof_map20"] <= 1
    assert rows["seed recipe"]["sauc"] == 0 and rows["seed recipe"]["models"] == 1
    assert rows["equal weights"]["strategy"] == "equal weights"
    assert "re-scoring" not in rows["no re-scoring"]["strategy"]
    assert rows["untuned osd (1 - max prob)"]["osd"] == "max_prob"
    assert rows["full recipe"]["tta"] and not rows["no TTA"]["tta"]
    assert rows["full recipe"]["train_s"] > 0
    assert quality_table(result).count("\n") == len(rows) + 2
    frames, crops = result["small_animals"]  # equal training compute: same backbones, epochs, size
    assert configs["crops"].sampling == "crops" and configs["crops"].epochs == base.epochs
    assert (frames["sampling"], crops["sampling"]) == ("frames", "crops") and "views_per_frame" not in frames
    assert crops["views_per_frame"] > 1 and set(crops["combiner_val_map20"]) == {"max", "noisy_or", "topk_mean", "mean"}
    assert min(frames["train_img_s"], crops["train_img_s"], frames["predict_frames_s"], crops["predict_frames_s"]) > 0
    assert small_animals_table(result).count("\n") == 4


def test_scale_bench_tiny(tmp_path):
    """Two image counts and two sizes: one child training run each, every number present, a plot."""
    from fathom.bench.scale import plot_scale, run_scale_bench
    from fathom.bench.tables import scale_table

    result = run_scale_bench("demo", "resnet10t", [40, 60], [32, 48], n_eval=10, work=tmp_path)
    assert [(r["images"], r["size"]) for r in result["rows"]] == [(40, 32), (60, 32), (40, 48)]
    for r in result["rows"]:
        assert r["wall_s"] > r["fold_s"] > 0 and r["peak_rss_mib"] > 100 and r["cache_mib"] > 0
    plot_scale(result, tmp_path / "scale.png")
    assert (tmp_path / "scale.png").stat().st_size > 10_000
    assert scale_table(result).count("\n") == 5


@pytest.mark.slow
def test_the_gpu_check_runs_on_the_cpu_at_tiny_sizes_and_fills_its_section(tmp_path, capsys):
    from fathom.bench.gpu import BEGIN, END

    benchmarks = tmp_path / "BENCHMARKS.md"
    benchmarks.write_text(f"# Benchmarks\n\n{BEGIN}\nnot measured yet\n{END}\n\n## Next\n")
    out = tmp_path / "gpu.json"
    assert main(["bench", "gpu", "--backbones", "resnet18", "--size", "32", "--batch", "2", "--repeats", "1",
                 "--frames", "6", "--workers", "0", "--out", str(out), "--benchmarks", str(benchmarks)]) == 0
    result = json.loads(out.read_text())
    assert result["device"] == "cpu" and result["steps"][0]["train_img_s"] > 0
    assert result["training"]["epoch_train_img_s"] > 0 and result["training"]["loader_crops_s"] > 0
    text = benchmarks.read_text()
    assert "not measured yet" not in text and "| resnet18 | 32 | 2 | bf16 CL |" in text and text.endswith("## Next\n")
    assert text.count(BEGIN) == 1 and "crop loader img/s" in text


@pytest.mark.slow
def test_the_cache_bench_compares_formats_and_projects_the_real_size(demo_dir, tmp_path, capsys):
    out = tmp_path / "cache.json"
    assert main(["bench", "cache", "--data", str(demo_dir), "--n-images", "6", "--long-side", "96", "--crop-size",
                 "48", "--image-size", "32", "--cache-dir", str(tmp_path), "--out", str(out)]) == 0
    rows = {r["format"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["npy"]["bytes_per_pixel"] > 3 and rows["jpeg"]["mb_per_frame"] < rows["npy"]["mb_per_frame"]
    assert rows["jpeg"]["read_frames_s"] > 0 and rows["jpeg"]["crop_samples_s"] > 0 and rows["jpeg"]["real_gb"] is None
    assert "| jpeg |" in capsys.readouterr().out
