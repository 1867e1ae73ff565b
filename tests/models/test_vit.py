"""Small ViTs as SSL backbones: they take the multiples of their patch, pre-train end to end with the existing
methods (SimCLR, VICReg) and the kNN monitor, and load back from encoder.pt/encoder.json."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from medssl import load_encoder
from medssl.errors import ConfigError
from medssl.evaluate.features import extract_features
from medssl.models.backbones import build_backbone
from medssl.models.specs import backbone_problems
from medssl.train.api import pretrain
from medssl.train.config import PretrainConfig

from ..conftest import tiny_config


@pytest.mark.parametrize(("name", "width"), [("vit_tiny", 192), ("vit_small_p4", 384)])
def test_a_small_vit_gives_class_token_features_at_any_multiple_of_its_patch(name: str, width: int) -> None:
    backbone = build_backbone(name).eval()
    with torch.inference_mode():
        for size in (16, 32):
            assert backbone(torch.rand(2, 3, size, size)).shape == (2, width)


def test_sizes_a_vit_cannot_take_are_refused_before_training() -> None:
    assert backbone_problems("vit_tiny", "random", [64, 32]) == []
    assert backbone_problems("vit_tiny", "random", [36]) == [
        "backbone vit_tiny cannot take 36 px images: its patch is 8 px and an image side must be a multiple of "
        "it; set image_size 32 or 40"
    ]
    with pytest.raises(ConfigError, match="has no ImageNet weights"):
        build_backbone("vit_tiny", "imagenet")


@pytest.mark.parametrize("method", ["simclr", "vicreg"])
def test_ssl_methods_pretrain_a_vit_end_to_end(
    tmp_path: Path, pixel_cache: Path, tiny_data, method: str
) -> None:
    settings = {"epochs": 1, "batch_size": 8, "knn_k": 10, "progress_bar": False, "max_steps_per_epoch": 2}
    config = PretrainConfig(method=method, backbone="vit_tiny_p4", **settings, data=tiny_config(pixel_cache))
    run = pretrain(config, tmp_path / method, data=tiny_data)
    with (run / "history.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 and all(math.isfinite(float(r["loss"])) for r in rows)
    assert all(0 < float(r["knn_accuracy"]) <= 1 for r in rows)  # the monitor ran on ViT features
    encoder = load_encoder(run)
    assert encoder.meta["backbone"] == "vit_tiny_p4" and encoder.meta["patch"] == 4
    features = extract_features(encoder, tiny_data.images[:8])
    assert features.shape == (8, 192) and np.isfinite(features).all() and features.std(axis=0).mean() > 0
