"""Markdown tables of benchmark results (BENCHMARKS.md is assembled from them)."""

from __future__ import annotations


def markdown_table(header: list[str], rows: list[list]) -> str:
    def cell(v) -> str:
        return f"{v:.3g}" if isinstance(v, float) and abs(v) < 10 else (f"{v:.0f}" if isinstance(v, float) else str(v))

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def speed_tables(result: dict) -> str:
    """The speed benchmark as three tables: model step variants, pipelines, peak memory."""
    peaks = ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in result["matmul_peak_gflop_s"].items())
    out = [f"Machine: {result['machine']}; device {result['device']}; measured matmul peak: {peaks}.", "",
           "Model step alone (batch in memory; train = forward + loss + backward + AdamW):", "",
           markdown_table(["backbone", "px", "variant", "train img/s", "infer img/s", "train GFLOP/s", "of peak"],
                          [[r["backbone"], r["size"], s["variant"], s["train_img_s"], s["infer_img_s"],
                            s["train_gflop_s"], f"{s['train_peak_share']:.0%}"]
                           for r in result["rows"] for s in r["steps"]]), "",
           "Pipelines (a training epoch over the same images, loader workers as configured):", "",
           markdown_table(["backbone", "px", "loader ours img/s", "loader naive img/s", "epoch ours img/s (variant)",
                           "epoch naive img/s", "ours / naive", "loader / step", "cache build s"],
                          [[r["backbone"], r["size"], r["loader_ours_img_s"], r["loader_naive_img_s"],
                            f"{r['epoch_ours_img_s']:.0f} ({r['ours_variant']})", r["epoch_naive_img_s"],
                            f"{r['speedup']:.2f}x", f"{r['loader_over_step']:.2f}x", r["cache_build_s"]]
                           for r in result["rows"]])]
    if result.get("peak_rss_mib"):
        out += ["", "Peak memory of a one-fold training run (child process RSS):", "",
                markdown_table(["backbone", "peak RSS MiB"], [[b, v] for b, v in result["peak_rss_mib"].items()])]
    return "\n".join(out) + "\n"


def cache_table(result: dict) -> str:
    """The cache formats: size, build, reads and crop samples per second, the real data's projected size."""
    sizes = ", ".join(f"{w}x{h}" for w, h in result["frame_sizes"])
    return (f"Frames cached at long side {result['long_side']} ({sizes}); crop samples: a {result['crop_size']}-px "
            f"window read, cut and transformed to {result['image_size']} px, one core.\n\n" + markdown_table(
                ["format", "MB per frame", "bytes per pixel", "build frames/s", "read frames/s", "crop samples/s",
                 f"real data ({result['rows'][0]['real_frames']} frames) GB"],
                [[r["format"], r["mb_per_frame"], r["bytes_per_pixel"], r["build_frames_s"], r["read_frames_s"],
                  r["crop_samples_s"], "-" if r["real_gb"] is None else f"{r['real_gb']:.1f}"]
                 for r in result["rows"]]) + "\n")


def quality_table(result: dict) -> str:
    """One row per recipe: demo eval MAP@20, sAUC, score; held-out OOF MAP@20; cost."""
    def optional(v):
        return "-" if v is None else v

    return markdown_table(
        ["recipe", "models", "train s", "eval MAP@20", "eval sAUC", "eval score", "OOF MAP@20 (held out)",
         "strategy", "osd", "TTA"],
        [[r["row"], r["models"], optional(r["train_s"]), f"{r['map20']:.3f}", f"{r['sauc']:.3f}",
          f"{r['score']:.3f}", f"{r['oof_map20']:.3f}", r["strategy"], r["osd"], "yes" if r["tta"] else "no"]
         for r in result["rows"]]) + "\n"


def scale_table(result: dict) -> str:
    """One row per (images, size) point of the scale benchmark."""
    return markdown_table(["train images", "px", "wall s", "fold s", "train img/s", "peak RSS MiB", "cache MiB"],
                          [[r["images"], r["size"], r["wall_s"], r["fold_s"], r["train_img_s"], r["peak_rss_mib"],
                            r["cache_mib"]] for r in result["rows"]]) + "\n"


def small_animals_table(result: dict) -> str:
    """Whole frames against crops and tiles: cost, views, and each tile combiner's validation MAP@20."""
    rules = sorted({r for e in result["small_animals"] for r in e.get("combiner_val_map20", {})})
    return markdown_table(
        ["experiment", "sampling", "train img/s", "predict frames/s", "views / frame", "chosen combiner",
         *[f"val MAP@20 {r}" for r in rules]],
        [[e["exp"], e["sampling"], e["train_img_s"], e["predict_frames_s"], e.get("views_per_frame", 1.0),
          ", ".join(e.get("chosen", ["-"])), *[f"{e['combiner_val_map20'][r]:.3f}" if r in
                                               e.get("combiner_val_map20", {}) else "-" for r in rules]]
         for e in result["small_animals"]]) + "\n"
