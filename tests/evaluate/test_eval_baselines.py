"""The ImageNet baselines offline: EfficientNet-Lite0 weights ship with medssl, ResNet weights do not."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from skimage.data import chelsea

from medssl.errors import WeightsUnavailableError
from medssl.evaluate.api import encoder_identity
from medssl.models.encoder import encoder_from_spec

IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_efficientnet_lite0_imagenet_weights_recognise_a_cat() -> None:
    encoder = encoder_from_spec("imagenet:efficientnet_lite0")
    x = torch.from_numpy(chelsea()).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True)
    with torch.inference_mode():
        logits = encoder.backbone.logits(encoder.normalise(x))
    assert int(logits.argmax()) in IMAGENET_CATS
    assert encoder_identity(encoder) == {
        "encoder": "imagenet-efficientnet_lite0",
        "method": "imagenet",
        "backbone": "efficientnet_lite0",
        "init": "imagenet",
    }


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


def test_random_baseline_identity_and_supervised_finetune() -> None:
    encoder = encoder_from_spec("random:resnet18")
    assert encoder_identity(encoder)["encoder"] == "random-resnet18"
    assert encoder_identity(encoder, "linear")["method"] == "random"
    assert encoder_identity(encoder, "finetune")["method"] == "supervised"
