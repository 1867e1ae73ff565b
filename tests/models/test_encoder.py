"""Encoders: input conventions (grayscale, per-backbone normalisation) and the encoder.pt/encoder.json pair."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from medssl.errors import MedsslError
from medssl.models.encoder import ENCODER_META, build_encoder, load_encoder, save_encoder


def test_normalisation_follows_the_backbone() -> None:
    x = torch.full((1, 3, 4, 4), 0.5)
    efficientnet = build_encoder("efficientnet_lite0").normalise(x)
    assert torch.allclose(efficientnet, torch.zeros_like(x))  # mean 0.5, std 0.5
    resnet = build_encoder("resnet18").normalise(x)
    expected = (0.5 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(resnet[0, :, 0, 0], expected)


def test_one_channel_input_is_repeated_to_three() -> None:
    encoder = build_encoder("resnet18")
    gray = torch.rand(2, 1, 8, 8)
    assert torch.equal(encoder.normalise(gray), encoder.normalise(gray.expand(-1, 3, -1, -1)))


def test_saved_encoder_loads_with_the_same_weights_and_metadata(tmp_path: Path) -> None:
    torch.manual_seed(0)
    encoder = build_encoder("resnet18", method="simclr").eval()
    save_encoder(encoder, tmp_path, image_size=32, seed=3)
    loaded = load_encoder(tmp_path)
    assert loaded.meta["method"] == "simclr" and loaded.meta["image_size"] == 32 and loaded.meta["seed"] == 3
    x = torch.rand(2, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(encoder(x), loaded(x))
    assert not loaded.training


def test_weights_that_do_not_fit_the_named_backbone_are_refused(tmp_path: Path) -> None:
    save_encoder(build_encoder("resnet18"), tmp_path)
    meta = json.loads((tmp_path / ENCODER_META).read_text())
    (tmp_path / ENCODER_META).write_text(json.dumps({**meta, "backbone": "efficientnet_lite0"}))
    with pytest.raises(MedsslError, match="does not fit the efficientnet_lite0"):
        load_encoder(tmp_path)
