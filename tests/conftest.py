"""Shared fixtures: a tiny deterministic synthetic dataset, decoded once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from medssl.data import DataConfig, PreparedData, prepare_data

REAL_CHEST_XRAY = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "chest_xray_pneumonia"


def tiny_config(cache_dir: Path, n_images: int = 160, size: int = 32) -> DataConfig:
    """A small synthetic dataset: 4 classes, 5 images per patient, ``size`` pixels."""
    return DataConfig(
        path="synthetic",
        image_size=size,
        cache_dir=str(cache_dir),
        synthetic={"n_images": n_images, "size": size},
    )


@pytest.fixture(scope="session")
def pixel_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pixel-cache")


@pytest.fixture(scope="session")
def tiny_data(pixel_cache: Path) -> PreparedData:
    return prepare_data(tiny_config(pixel_cache))


PRECISIONS = ["32-true", "bf16-mixed"]
"""Both CPU training paths: 32-bit (CPUs without AMX, e.g. AMD EPYC) and bf16 autocast (Intel AMX)."""
