from __future__ import annotations

from pathlib import Path

import pytest

from fathom.config import TrainConfig
from fathom.demo.make import make_demo

REPO = Path(__file__).resolve().parents[1]
REAL_LABELS = REPO.parent / "shared" / "fathomnet2023"


TINY = {"name": "tiny", "backbones": ["resnet18"], "pretrained": False, "image_size": 32, "folds": [0], "epochs": 2,
        "batch_size": 16, "lr": 1e-3, "warmup_epochs": 0.5, "workers": 0, "seed": 3, "probe_share": 0.0}


def tiny_config(root: Path, **changes) -> TrainConfig:
    """The one tiny experiment every training test starts from: a random-init resnet18 at 32 px, one fold, two
    epochs, no leave-categories-out probes, the loader in the test's process, its image cache under `root`;
    `changes` override any key."""
    return TrainConfig(**{**TINY, "cache_dir": str(Path(root) / "cache"), **changes})


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """A small demo competition folder, built once per test session (read-only for tests)."""
    out = tmp_path_factory.mktemp("demo") / "data"
    make_demo(out, n_train=150, n_eval=80, size=128, seed=1)
    return out


@pytest.fixture
def demo_copy(demo_dir, tmp_path) -> Path:
    """A private copy of the demo folder (labels and json only; images are linked) to corrupt."""
    import shutil

    out = tmp_path / "data"
    shutil.copytree(demo_dir, out, ignore=shutil.ignore_patterns("images"))
    (out / "images").symlink_to(demo_dir / "images")
    return out


@pytest.fixture(scope="session")
def real_dir() -> Path:
    if not (REAL_LABELS / "category_key.csv").is_file():
        pytest.skip("real label files (../shared/fathomnet2023) are absent")
    return REAL_LABELS


def write_experiment(root: Path, demo_dir: Path, config: dict) -> tuple[Path, Path]:
    """A 3-fold folds file of the demo folder and a YAML file of the tiny config on 2 folds (cache under
    `root`), updated with `config`; returns (folds file, config file)."""
    import yaml

    from fathom.config import to_dict
    from fathom.data.layout import load_dataset
    from fathom.folds import make_folds, write_folds

    dataset = load_dataset(demo_dir, check_images=False)
    write_folds(make_folds(dataset.train, dataset.categories, n_folds=3, seed=0), root / "folds.csv")
    values = to_dict(tiny_config(root, folds=[0, 1], **config))
    path = root / f"{values['name']}.yaml"
    path.write_text(yaml.safe_dump(values))
    return root / "folds.csv", path


@pytest.fixture
def server():
    """A local HTTP server whose paths inject faults (test_download.FaultyServer), for the downloader."""
    import threading

    from test_download import FaultyServer

    srv = FaultyServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
