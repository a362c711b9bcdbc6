"""One model class for every backbone: a timm trunk with a fine (290) and a super-category (20) head."""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn

from fathom.config import CHOICES
from fathom.constants import N_FINE, N_SUPER
from fathom.data.labels import prior_log_odds
from fathom.errors import DataError, FathomError
from fathom.models.baselines import BASELINES


HEADS = CHOICES["head"]


class FathomNet(nn.Module):
    """`forward(images)` returns {"fine": [B, 290], "super": [B, 20]} logits and "embedding" [B, D], the
    trunk's pooled features (what the feature-based out-of-sample scores read).

    head `linear`: dropout, then one linear layer per label set. head `mlp` (the ConvNeXt seed recipe's):
    dropout -> linear(features, head_hidden) -> BatchNorm -> ReLU, shared, then the two linear layers.
    """

    def __init__(self, backbone: str, pretrained: bool = False, weights: str | None = None, drop_rate: float = 0.0,
                 model_kwargs: dict | None = None, head: str = "linear", head_hidden: int = 512):
        super().__init__()
        self.backbone_name = backbone
        self.backbone = create_backbone(backbone, pretrained, weights, model_kwargs)
        features = self.backbone.num_features
        self.dropout = nn.Dropout(drop_rate)
        if head == "mlp":
            self.neck = nn.Sequential(nn.Linear(features, head_hidden), nn.BatchNorm1d(head_hidden),
                                      nn.ReLU(inplace=True))
            features = head_hidden
        elif head == "linear":
            self.neck = nn.Identity()
        else:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, not {head!r}")
        self.fine = nn.Linear(features, N_FINE)
        self.super = nn.Linear(features, N_SUPER)

    @classmethod
    def for_config(cls, backbone: str, cfg, trained: bool = False) -> "FathomNet":
        """The architecture a (resolved, per-backbone) TrainConfig describes. `trained=True`: weights
        come from a checkpoint next, so no pretrained weights are fetched or read."""
        return cls(backbone, cfg.pretrained and not trained, None if trained else cfg.weights.get(backbone),
                   cfg.drop_rate, cfg.model_kwargs, cfg.head, cfg.head_hidden)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.backbone(images)
        pooled = self.neck(self.dropout(features))
        return {"fine": self.fine(pooled), "super": self.super(pooled), "embedding": features}

    @torch.no_grad()
    def start_at_prior(self, fine_frequency, super_frequency, fine_shift: float = 0.0) -> None:
        """Set each head's bias to the log-odds of its class frequency (RetinaNet's prior init): the
        untrained model already predicts the label prior, and training spends its steps on telling
        images apart instead of on learning the marginals (which matters most for short runs). Under
        logit adjustment (the loss adds `fine_shift` x log-odds) the fine bias is (1 - fine_shift) x
        log-odds, so the adjusted logits start at the prior too."""
        for head, frequency, scale in ((self.fine, fine_frequency, 1.0 - fine_shift),
                                       (self.super, super_frequency, 1.0)):
            head.bias.copy_(scale * torch.as_tensor(prior_log_odds(frequency)))

    @torch.no_grad()
    def check_input_size(self, size: int) -> None:
        """Fail early, naming the key, when `size` x `size` frames cannot pass through the backbone (too
        small for its strides, or a fixed-size ViT): one forward of a blank frame on the CPU."""
        was_training = self.training
        self.eval()
        try:
            self(torch.zeros(1, 3, size, size, device=next(self.parameters()).device))
        except (RuntimeError, AssertionError, ValueError) as err:
            raise DataError("config", f"image_size {size} does not fit backbone {self.backbone_name!r} "
                            f"({str(err).splitlines()[0][:160]})", where="image_size",
                            hint="use a larger image_size (convolutional backbones need about 32 px or more)") from None
        finally:
            self.train(was_training)

    def data_config(self) -> dict:
        """timm's preprocessing for this backbone: mean, std, interpolation, crop."""
        return timm.data.resolve_data_config(model=self.backbone)


def check_backbones(names: list[str]) -> None:
    """Stop before anything is built or written when a name is neither a timm architecture nor a pixel baseline."""
    unknown = [name for name in names if name not in BASELINES and not timm.is_model(name)]
    if unknown:
        raise DataError("config", f"backbones {unknown}: not a timm architecture", where="backbones",
                        hint="e.g. resnet18, densenet121, efficientnet_b0, convnext_tiny (timm.list_models() lists all)")


def create_backbone(name: str, pretrained: bool, weights: str | None, model_kwargs: dict | None = None) -> nn.Module:
    """A timm model without classifier. `weights` (a local .pth/.safetensors state dict, e.g. from a
    Kaggle dataset) wins over `pretrained`; it is loaded strictly (only the ImageNet classifier is
    dropped), so a missing or mismatched file is an error, never a silent random init.
    `model_kwargs` go to `timm.create_model` (e.g. drop_path_rate). `pixels_linear` and `pixels_mlp` are
    the pixel baselines (fathom.models.baselines: random init, their own keyword arguments)."""
    if name in BASELINES:
        if weights is not None:
            raise DataError(weights, f"{name} is a pixel baseline without pretrained weights", where="weights",
                            hint=f"remove weights.{name} from the config")
        try:
            return BASELINES[name](**(model_kwargs or {}))
        except TypeError as err:
            raise FathomError(f"backbone {name!r}: model_kwargs {model_kwargs}: {err}") from None
    kwargs = {**(model_kwargs or {}), "num_classes": 0}
    if weights is None:
        try:
            return timm.create_model(name, pretrained=pretrained, **kwargs)
        except RuntimeError as err:  # unknown model name
            raise FathomError(f"backbone {name!r}: {err}") from None
        except TypeError as err:  # a keyword this model does not take
            raise FathomError(f"backbone {name!r}: model_kwargs {model_kwargs}: {err}") from None
        except Exception as err:  # no network, no cache: timm/huggingface_hub raise various errors
            if not pretrained:
                raise
            raise FathomError(
                f"backbone {name!r}: pretrained weights could not be loaded ({err.__class__.__name__}: "
                f"{str(err)[:200]}); set `weights: {{{name}: PATH}}` to a local file or `pretrained: false`"
            ) from None
    path = Path(weights)
    if not path.is_file():
        raise DataError(path, f"weights file for backbone {name!r} not found",
                        hint="attach the Kaggle dataset holding it or fix `weights:` in the config")
    try:
        model = timm.create_model(name, pretrained=False, **kwargs)
    except TypeError as err:
        raise FathomError(f"backbone {name!r}: model_kwargs {model_kwargs}: {err}") from None
    try:
        state = timm.models.load_state_dict(str(path), weights_only=True)
    except Exception as err:
        raise DataError(path, f"not a readable weights file ({err.__class__.__name__}: {str(err)[:200]})") from None
    classifier = model.pretrained_cfg.get("classifier")
    if classifier:  # the file's ImageNet classifier is replaced by our heads
        state = {k: v for k, v in state.items() if not k.startswith(classifier + ".")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise DataError(path, f"weights do not fit backbone {name!r}: {str(err)[:300]}",
                        hint="the file must be a state dict of this timm model") from None
    return model
