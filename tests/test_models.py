"""The model, loss, precision and config pieces at tiny sizes with random init."""

import numpy as np
import pytest
import timm
import torch

from fathom.config import load_config
from fathom.errors import DataError, FathomError
from fathom.models.net import FathomNet
from fathom.train.loss import FathomLoss, pos_weights
from fathom.train.precision import Precision

BACKBONES = ["resnet18", "densenet121", "efficientnet_b0", "convnext_tiny"]


@pytest.mark.parametrize("backbone", BACKBONES)
def test_each_backbone_trains_one_step(backbone):
    torch.manual_seed(0)
    model = FathomNet(backbone, pretrained=False, drop_rate=0.1).to(memory_format=torch.channels_last)
    images = torch.randn(2, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    fine = torch.zeros(2, 290)
    fine[0, 159] = 1
    sup = torch.zeros(2, 20)
    sup[0, 3] = 1
    loss_fn = FathomLoss(np.full(290, 2.0, np.float32), super_weight=0.5)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    logits = model(images)
    assert logits["fine"].shape == (2, 290) and logits["super"].shape == (2, 20)
    loss = loss_fn(logits, fine, sup)
    assert torch.isfinite(loss["loss"])
    loss["loss"].backward()
    optimizer.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert model.data_config()["mean"] and len(model.data_config()["std"]) == 3


def test_local_weights_load_strictly(tmp_path):
    torch.save(timm.create_model("resnet18").state_dict(), tmp_path / "resnet18.pth")
    reference = timm.create_model("resnet18").state_dict()
    model = FathomNet("resnet18", weights=str(tmp_path / "resnet18.pth"))
    assert torch.equal(model.backbone.state_dict()["conv1.weight"], torch.load(tmp_path / "resnet18.pth")["conv1.weight"])
    assert not torch.equal(model.backbone.state_dict()["conv1.weight"], reference["conv1.weight"])


def test_missing_weights_file_names_the_path():
    with pytest.raises(DataError, match="/nonexistent.pth: weights file for backbone 'resnet18' not found"):
        FathomNet("resnet18", weights="/nonexistent.pth")


def test_mismatched_weights_file_is_an_error(tmp_path):
    torch.save(timm.create_model("resnet34").state_dict(), tmp_path / "resnet34.pth")
    with pytest.raises(DataError, match="do not fit backbone 'resnet18'"):
        FathomNet("resnet18", weights=str(tmp_path / "resnet34.pth"))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="not a readable weights file"):
        FathomNet("resnet18", weights=str(tmp_path / "junk.pth"))


def test_pos_weight_formula():
    targets = np.zeros((100, 4), np.float32)
    targets[:1, 0] = 1  # 1 of 100: sqrt(99) ~ 9.95
    targets[:50, 1] = 1  # 50 of 100: 1
    targets[:99, 2] = 1  # 99 of 100: sqrt(1/99)
    weights = pos_weights(targets, power=0.5, cap=5.0)
    assert weights[0] == pytest.approx(5.0)  # capped
    assert weights[1] == pytest.approx(1.0)
    assert weights[2] == pytest.approx((1 / 99) ** 0.5)
    assert weights[3] == 1.0  # never seen: neutral


def test_loss_combines_fine_and_super_with_lambda():
    logits = {"fine": torch.zeros(1, 290), "super": torch.zeros(1, 20)}
    out = FathomLoss(np.ones(290, np.float32), super_weight=0.25)(logits, torch.zeros(1, 290), torch.zeros(1, 20))
    assert out["loss"].item() == pytest.approx(out["fine"].item() + 0.25 * out["super"].item())
    smoothed = FathomLoss(np.ones(290, np.float32), smoothing=0.2)(logits, torch.zeros(1, 290), torch.zeros(1, 20))
    assert smoothed["fine"].item() == pytest.approx(np.log(2), rel=1e-6)  # target 0.1 vs p=0.5: still log 2


def test_precision_is_decided_once():
    cpu = torch.device("cpu")
    assert Precision.decide("auto", cpu).name == "fp32"
    bf16 = Precision.decide("bf16", cpu)
    with bf16.autocast():
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16
    assert not bf16.scaler.is_enabled()
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        Precision.decide("fp16", cpu)


def test_shipped_configs_load_and_overrides_apply():
    demo = load_config("demo", ["epochs=2", "backbones=[resnet18]", "lr=1"])
    assert demo.name == "demo" and demo.epochs == 2 and demo.backbones == ["resnet18"] and demo.lr == 1.0
    for backbone in ("resnet18", "efficientnet_b0", "convnext_atto"):  # the file sets their epochs or lr
        assert (demo.for_backbone(backbone).epochs, demo.for_backbone(backbone).lr) == (2, 1.0), backbone
    assert load_config("demo").for_backbone("efficientnet_b0").epochs == 12  # without overrides, the file's
    assert demo.for_backbone("convnext_atto").model_kwargs["norm_layer"] == "batchnorm2d"  # other keys stay
    assert load_config("full").image_size >= 384


@pytest.mark.parametrize("text, message", [
    ("epoch: 3\n", "unknown key 'epoch'"),
    ("epochs: three\n", "'three' is not of type int"),
    ("backbones: resnet18\n", "is not of type list"),
    ("amp: fp8\n", "amp must be"),
    ("image_size: 0\n", "image_size must be >= 1, not 0"),
    ("by_backbone: {convnext_tiny: {lr: fast}}\n", "by_backbone.convnext_tiny.*'fast' is not of type float"),
    ("by_backbone: {convnext_tiny: {epoch: 3}}\n", "unknown key 'epoch'"),
    ("by_backbone: {convnext_tiny: {folds: [0]}}\n", "folds belong to the whole experiment"),
    ("- a\n- b\n", "expected a mapping"),
])
def test_bad_config_names_file_and_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as err:
        load_config(str(path))
    assert "bad.yaml" in str(err.value)


def test_bad_override_is_an_error():
    with pytest.raises(DataError, match="command line"):
        load_config("demo", ["epochs"])


def test_one_backbone_can_have_its_own_settings(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("lr: 0.003\namp: off\nby_backbone:\n  convnext_tiny: {lr: 0.001, amp: bf16}\n")
    cfg = load_config(str(path))
    assert cfg.amp == "fp32"  # YAML reads `off` as false: it means full precision
    assert (cfg.for_backbone("resnet18").lr, cfg.for_backbone("resnet18").amp) == (0.003, "fp32")
    tiny = cfg.for_backbone("convnext_tiny")
    assert (tiny.lr, tiny.amp, tiny.by_backbone) == (0.001, "bf16", {})


def test_model_kwargs_reach_timm_and_a_wrong_one_is_named():
    net = FathomNet("convnext_tiny", model_kwargs={"ls_init_value": 1.0})
    assert torch.all(net.backbone.stages[0].blocks[0].gamma == 1.0)  # timm's default starts at 1e-6
    with pytest.raises(FathomError, match="model_kwargs.*bogus"):
        FathomNet("resnet18", model_kwargs={"bogus": 1})


def test_heads_can_start_at_the_label_prior():
    net = FathomNet("resnet18")
    fine = np.zeros(290)
    fine[:3] = [0.5, 0.1, 1.0]
    net.start_at_prior(fine, np.full(20, 0.25))
    p = torch.sigmoid(net.fine.bias).detach().numpy()
    np.testing.assert_allclose(p[:3], [0.5, 0.1, 1 - 1e-4], rtol=1e-4)
    assert p[3] == pytest.approx(1e-4, rel=1e-3)  # unseen classes start near zero, not at -inf
    np.testing.assert_allclose(torch.sigmoid(net.super.bias).detach().numpy(), 0.25, rtol=1e-5)
