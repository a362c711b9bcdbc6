"""fathom.eda: the numbers the README and the EDA notebook quote, checked on real and demo labels."""

import pytest

from fathom import eda
from fathom.data.layout import load_boxes, load_dataset


@pytest.mark.slow
@pytest.mark.real_labels
def test_real_label_facts(real_dir):
    ds = load_dataset(real_dir, check_images=False)
    facts = eda.facts(ds, load_boxes(real_dir, ds.categories))
    assert facts["train_images"] == 5950 and facts["eval_images"] == 10744 and facts["boxes"] == 23704
    assert facts["categories"] == 290 and facts["categories_in_train"] == 133
    assert facts["categories_under_5_images"] == 58 and facts["labels_per_image_max"] == 10
    assert facts["top_category_share"] == pytest.approx(0.444, abs=0.001)
    assert facts["labels_per_image_mean"] == pytest.approx(1.51, abs=0.01)
    assert facts["median_box_side_px"] == 48.0 and 15 < facts["median_box_side_at_model_px"] < 25
    frames = eda.frame_sizes(ds)
    assert frames.loc["1920x1080"].tolist() == [6926, 2929]  # eval, train
    assert frames["train"].sum() == 5950 and frames["eval"].sum() == 10744


def test_tables_are_consistent(demo_dir):
    ds = load_dataset(demo_dir, check_images=False)
    counts = eda.category_counts(ds)
    assert len(counts) == 290 and counts["images"].is_monotonic_decreasing
    assert counts["images"].sum() == sum(map(len, ds.train["categories"]))
    supers = eda.supercat_counts(ds)
    assert supers["categories"].sum() == 290 and (supers["in_train"] <= supers["categories"]).all()
    assert eda.labels_per_image(ds).sum() == len(ds.train)
    sizes = eda.box_sizes(ds, load_boxes(demo_dir, ds.categories))
    assert sizes["width"].notna().all() and (sizes["side_at_model"] > 0).all()


def test_samples_need_images(demo_dir, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    ds = load_dataset(demo_dir, check_images=False)
    boxes = load_boxes(demo_dir, ds.categories)
    assert len(eda.show_samples(ds, boxes, n=4).axes) == 6  # 2 rows x 3, the last two blank
    assert eda.show_samples(load_dataset(demo_dir, tmp_path, check_images=False), boxes) is None
