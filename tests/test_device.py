"""The GPU guard: a GPU this torch build has no kernels for, or none at all when one is asked for, stops
with one line that names the GPU and what to pick, before any work (fathom.device)."""

from __future__ import annotations

import pytest
import torch

from fathom.cli import main
from fathom.config import load_config
from fathom.device import choose_device, oldest_supported_capability, require_gpu
from fathom.errors import FathomError

KAGGLE_ARCHS = ["sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "compute_90"]  # a build without Pascal kernels


def fake_gpus(monkeypatch, name: str, capability: tuple[int, int], count: int = 1) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: name)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: capability)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: KAGGLE_ARCHS)


def test_a_pascal_gpu_is_refused_in_one_line_naming_it(monkeypatch):
    fake_gpus(monkeypatch, "Tesla P100-PCIE-16GB", (6, 0))
    assert oldest_supported_capability() == (7, 0)
    for call in (require_gpu, lambda: choose_device("auto"), lambda: choose_device("cuda")):
        with pytest.raises(FathomError) as info:
            call()
        text = str(info.value)
        assert "\n" not in text
        for fragment in ("Tesla P100-PCIE-16GB", "compute capability 6.0", "7.0 and newer", "T4 x2 or L4"):
            assert fragment in text, text


def test_supported_gpus_pass_and_are_described(monkeypatch):
    fake_gpus(monkeypatch, "Tesla T4", (7, 5), count=2)
    assert require_gpu().startswith("2 x Tesla T4 (compute capability 7.5)")
    assert choose_device("cuda", local_rank=1) == torch.device("cuda:1")
    assert choose_device("cpu") == torch.device("cpu")


def test_no_gpu_is_an_error_only_when_one_is_asked_for(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_device("auto") == torch.device("cpu")
    with pytest.raises(FathomError, match="no usable CUDA GPU.*accelerator on.*T4 x2 or L4"):
        choose_device("cuda")


def test_train_with_device_cuda_stops_before_any_work(monkeypatch, demo_dir, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert load_config("demo", ["device=cuda"]).device == "cuda"
    folds = tmp_path / "folds.csv"
    assert main(["folds", "--data", str(demo_dir), "--n-folds", "2", "--out", str(folds)]) == 0
    code = main(["train", "--data", str(demo_dir), "--folds", str(folds), "--config", "demo", "--runs",
                 str(tmp_path / "runs"), "device=cuda", "backbones=[resnet10t]", "epochs=1", "folds=[0]"])
    assert code == 2 and "no usable CUDA GPU" in capsys.readouterr().err
    assert not list((tmp_path / "runs").rglob("*.pt")), "nothing trained"
