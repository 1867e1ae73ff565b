"""Result-row identity of the baselines: the random encoder fine-tuned is the supervised baseline."""

from __future__ import annotations

from medssl.evaluate.api import encoder_identity
from medssl.models.encoder import encoder_from_spec


def test_imagenet_baseline_identity() -> None:
    assert encoder_identity(encoder_from_spec("imagenet:efficientnet_lite0")) == {
        "encoder": "imagenet-efficientnet_lite0",
        "method": "imagenet",
        "backbone": "efficientnet_lite0",
        "init": "imagenet",
    }


def test_random_baseline_identity_and_supervised_finetune() -> None:
    encoder = encoder_from_spec("random:resnet18")
    assert encoder_identity(encoder)["encoder"] == "random-resnet18"
    assert encoder_identity(encoder, "linear")["method"] == "random"
    assert encoder_identity(encoder, "finetune")["method"] == "supervised"
