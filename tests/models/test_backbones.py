"""Backbones: feature sizes, and ImageNet weights offline (EfficientNet-Lite0's ship with medssl, ResNet's do not)."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from skimage.data import chelsea

from medssl.errors import ConfigError, WeightsUnavailableError
from medssl.models.backbones import BACKBONES, build_backbone
from medssl.models.encoder import encoder_from_spec

IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_efficientnet_lite0_imagenet_weights_recognise_a_cat() -> None:
    encoder = encoder_from_spec("imagenet:efficientnet_lite0")
    x = torch.from_numpy(chelsea()).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True)
    with torch.inference_mode():
        logits = encoder.backbone.logits(encoder.normalise(x))
    assert int(logits.argmax()) in IMAGENET_CATS
    assert encoder.meta["method"] == "imagenet" and encoder.meta["init"] == "imagenet"


def test_resnet18_imagenet_weights_unavailable_offline(monkeypatch) -> None:
    cached = Path(torch.hub.get_dir()) / "checkpoints" / "resnet18-f37072fd.pth"
    if cached.exists():
        pytest.skip(f"ResNet-18 ImageNet weights are cached at {cached}")

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsUnavailableError) as error:
        encoder_from_spec("imagenet:resnet18")
    message = str(error.value)
    assert "resnet18" in message and "resnet18-f37072fd.pth" in message and "efficientnet_lite0" in message
    assert "\n" not in message


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_maps_a_small_batch_to_its_feature_size(name: str) -> None:
    backbone = build_backbone(name).eval()
    with torch.inference_mode():
        features = backbone(torch.rand(2, 3, 32, 32))
    assert features.shape == (2, BACKBONES[name].feature_dim) and torch.isfinite(features).all()


def test_unknown_backbone_and_init_are_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="backbone 'vit' is unknown; choose one of: resnet18"):
        build_backbone("vit")
    with pytest.raises(ConfigError, match="init 'simclr' is unknown"):
        build_backbone("resnet18", "simclr")  # type: ignore[arg-type]
