"""Grad-CAM explanations: where in the frame a fold model looks for its top categories.

For each image, one PNG: the frame, then one panel per top-k category (k = 3 by default) with the
class-activation map of that category's logit overlaid (pytorch-grad-cam's GradCAM on the backbone's
last feature stage, as timm's `feature_info` names it), titled with the category's name and probability.
The model is the fold whose validation part holds the image, so it never trained on it; eval images use
the backbone's first finished fold. Works for every timm backbone; the pixel baselines have no
feature maps and are refused.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from fathom.atomic import atomic_path
from fathom.data.images import open_rgb
from fathom.data.layout import Dataset
from fathom.errors import DataError, FathomError
from fathom.predictor import Predictor
from fathom.predictions import Predictions
from fathom.runs import Experiment, FoldDir
from fathom.data.transforms import eval_transform

log = logging.getLogger(__name__)
SHOWN_SHORT_SIDE = 360  # the frame is drawn at this short side, whatever size the model saw


class FineLogits(nn.Module):
    """The model's fine-category logits as a plain tensor (what Grad-CAM's targets index)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)["fine"]


def last_feature_layer(model) -> nn.Module:
    """The backbone's last feature stage (timm's feature_info), whose maps Grad-CAM weighs."""
    info = getattr(model.backbone, "feature_info", None)
    if not info:
        raise FathomError(f"backbone {model.backbone_name!r} has no feature maps to explain (the pixel baselines "
                          "have none): explain a convolutional backbone")
    last = info[-1] if isinstance(info, list) else info.get_dicts()[-1]
    return model.backbone.get_submodule(last["module"])


def choose_backbone(runs: Path, exp: str, found: dict[str, list[FoldDir]]) -> str:
    """The ensemble's heaviest member when the experiment has an ensemble.json, else its first backbone."""
    experiment = Experiment(runs, exp)
    if experiment.ensemble_file.is_file():
        weights = experiment.ensemble().weights
        ranked = [name for name, _ in sorted(weights.items(), key=lambda kv: -kv[1]) if name in found]
        if ranked:
            return ranked[0]
    return next(iter(found))


def held_out_by(fold_dirs: list[FoldDir]) -> dict[str, FoldDir]:
    """image id -> the fold whose validation rows hold it (the fold model never trained on it)."""
    return {str(i): fold_dir for fold_dir in fold_dirs for i in Predictions.load(fold_dir.predictions("oof")).ids}


def class_activation_maps(predictor: Predictor, frame: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray,
                                                                                         np.ndarray]:
    """(top category indices, their probabilities, their CAMs [top, S, S] in 0..1) of one RGB frame."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model, size = predictor.model.float().eval(), predictor.cfg.image_size
    model.to(memory_format=torch.contiguous_format)
    data = model.data_config()
    tensor = eval_transform(size, data["mean"], data["std"])(image=frame)["image"][None].to(predictor.device)
    with torch.no_grad():
        probs = torch.sigmoid(model(tensor)["fine"].float())[0].cpu().numpy()
    order = np.argsort(-probs, kind="stable")[:top]
    with GradCAM(model=FineLogits(model), target_layers=[last_feature_layer(model)]) as cam:
        maps = np.stack([cam(input_tensor=tensor, targets=[ClassifierOutputTarget(int(c))])[0] for c in order])
    return order, probs[order], maps


def plot_explanation(frame: np.ndarray, maps: np.ndarray, names: list[str], probs: np.ndarray, title: str,
                     path: Path) -> None:
    """The frame and one overlay per category, side by side, written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from pytorch_grad_cam.utils.image import show_cam_on_image

    height, width = frame.shape[:2]
    fig, axes = plt.subplots(1, len(maps) + 1, figsize=(4.2 * (len(maps) + 1), 4.2 * height / width + 0.8))
    axes[0].imshow(frame)
    axes[0].set_title("frame", fontsize=10)
    for ax, cam, name, p in zip(axes[1:], maps, names, probs):
        resized = np.asarray(Image.fromarray((cam * 255).astype(np.uint8)).resize((width, height), Image.BILINEAR))
        ax.imshow(show_cam_on_image(frame.astype(np.float32) / 255, resized.astype(np.float32) / 255, use_rgb=True))
        ax.set_title(f"{name}\np = {p:.3f}", fontsize=10)
    for ax in axes:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def explain(dataset: Dataset, runs: Path, exp: str, ids: list[str], out: Path, backbone: str | None = None,
            top: int = 3) -> list[Path]:
    """Write `<out>/<id>.png` for every id (train or eval images of `dataset`); returns the paths."""
    found = Experiment(runs, exp).require_finished_folds()
    backbone = backbone or choose_backbone(runs, exp, found)
    if backbone not in found:
        raise DataError(Experiment(runs, exp).root, f"no finished fold of backbone {backbone!r}",
                        hint=f"finished: {', '.join(found)}")
    path_of = {**dict(zip(dataset.train["id"], dataset.train["path"])),
               **dict(zip(dataset.eval["id"], dataset.eval["path"]))}
    unknown = [i for i in ids if i not in path_of]
    if unknown:
        raise DataError(dataset.root, f"{len(unknown)} ids are not images of this data folder, e.g. {unknown[0]}")
    names = dataset.categories.table["name"].tolist()
    labels_of = dataset.train.set_index("id")["categories"]
    fold_of = held_out_by(found[backbone])
    predictors: dict[FoldDir, Predictor] = {}
    written = []
    for image_id in ids:
        fold_dir = fold_of.get(image_id, found[backbone][0])  # eval images: the first fold
        predictor = predictors.setdefault(fold_dir, Predictor.from_fold(fold_dir))
        frame = np.asarray(open_rgb(path_of[image_id], SHOWN_SHORT_SIDE))
        scale = SHOWN_SHORT_SIDE / min(frame.shape[:2])
        if scale < 1:
            frame = np.asarray(Image.fromarray(frame).resize(
                (round(frame.shape[1] * scale), round(frame.shape[0] * scale)), Image.BILINEAR))
        order, probs, maps = class_activation_maps(predictor, frame, top)
        truth = labels_of.get(image_id)
        labels = "eval image" if truth is None else "labels: " + (", ".join(names[c - 1] for c in truth) or "none")
        title = f"{image_id} - {exp}/{backbone} fold {fold_dir.fold} - {labels}"
        path = out / f"{image_id}.png"
        plot_explanation(frame, maps, [names[c] for c in order], probs, title, path)
        log.info("wrote %s", path)
        written.append(path)
    return written
