from __future__ import annotations

from pathlib import Path

import pytest

from fathom.demo.make import make_demo

REPO = Path(__file__).resolve().parents[1]
REAL_LABELS = REPO.parent / "shared" / "fathomnet2023"


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
