"""Fixtures for the data tests; the dataset generators live in ``datagen.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
from datagen import make_chest_xray, make_folder

from medssl.data.dataset import DataConfig


@pytest.fixture
def cache_config(tmp_path: Path):
    """``DataConfig`` factory with a private cache folder."""

    def config(path: Path | str, **overrides: object) -> DataConfig:
        return DataConfig(path=str(path), cache_dir=str(tmp_path / "cache"), **overrides)

    return config


@pytest.fixture
def chest_dir(tmp_path: Path) -> Path:
    return make_chest_xray(tmp_path / "chest_xray")


@pytest.fixture
def small_split_dir(tmp_path: Path) -> Path:
    """train/val/test folders of two classes, 16x16 grayscale PNG: enough for prepare_data without hold-out."""
    return make_folder(tmp_path / "small", {"a": 3, "b": 3}, splits=("train", "val", "test"))
