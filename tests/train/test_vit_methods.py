"""The ViT methods from the command line: DINO and MAE pre-train ViT-Tiny (4 px patches) on 32 px images end to
end, and MAE with a CNN backbone is refused in one line before any image is decoded."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from medssl import load_encoder
from medssl.evaluate.features import extract_features

from ..reliability.cli import assert_one_error_line, run_main, tiny_pretrain


@pytest.mark.parametrize("method", ["dino", "mae"])
def test_a_vit_method_pretrains_end_to_end_from_the_command_line(
    tmp_path: Path, pixel_cache: Path, tiny_data, capsys, monkeypatch, method: str
) -> None:
    out = tmp_path / method
    args = tiny_pretrain(out, pixel_cache, "--method", method, "--backbone", "vit_tiny_p4", epochs=1)
    code, err = run_main(capsys, monkeypatch, *args, "--batch-size", "8", "--set", "max_steps_per_epoch=2")
    assert code == 0, err
    meta = json.loads((out / "encoder.json").read_text())
    assert meta["method"] == method and meta["backbone"] == "vit_tiny_p4" and meta["steps"] == 2
    with (out / "history.csv").open() as handle:
        (row,) = csv.DictReader(handle)
    assert math.isfinite(float(row["loss"])) and 0 < float(row["knn_accuracy"]) <= 1  # kNN of ViT features
    features = extract_features(load_encoder(out), tiny_data.images[:8])
    assert features.shape == (8, 192) and np.isfinite(features).all() and features.std(axis=0).mean() > 0


def test_mae_with_a_cnn_backbone_is_one_line_before_any_image_is_decoded(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    out, cache = tmp_path / "run", tmp_path / "cache"
    args = tiny_pretrain(out, cache, "--method", "mae", "--backbone", "resnet18")
    code, err = run_main(capsys, monkeypatch, *args)
    assert_one_error_line(
        code, err, "method mae", "needs a ViT backbone, not resnet18", "set backbone to vit_tiny"
    )
    assert not cache.exists() and not (out / "split.csv").exists()  # nothing decoded, no split written
