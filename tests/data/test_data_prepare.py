"""Splits and the pixel cache through ``prepare_data`` on generated folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from datagen import make_chest_xray, make_folder, make_npz, write_image

import medssl.data.cache
from medssl.data.dataset import prepare_data
from medssl.data.splits import groups_overlap
from medssl.data.types import ImageTable


def _official(table: ImageTable, split: str) -> np.ndarray:
    return np.array([i for i, r in enumerate(table.records) if r.split == split])


def test_split_keeps_official_test_and_groups_patients(tmp_path: Path, cache_config) -> None:
    root = make_chest_xray(tmp_path / "chest", train_patients=12, test_patients=3)
    data = prepare_data(cache_config(root, image_size=16, val_fraction=0.25))
    np.testing.assert_array_equal(data.split["test"], _official(data.table, "test"))
    assert not groups_overlap(data.table, data.split)
    parts = np.concatenate([data.split[p] for p in ("train", "val", "test")])
    assert sorted(parts.tolist()) == list(range(len(data.table.records)))
    assert set(data.labels[data.split["val"]]) == {0, 1}
    assert data.images.shape == (len(data.table.records), 16, 16, 3)
    assert data.images.dtype == np.uint8 and data.name == "chest"


def test_split_is_stratified_and_seeded(tmp_path: Path, cache_config) -> None:
    root = make_folder(tmp_path / "plain", {"common": 40, "rare": 20}, size=16)
    first = prepare_data(
        cache_config(root, image_size=16, test_fraction=0.25, val_fraction=0.2, split_seed=3)
    )
    again = prepare_data(
        cache_config(root, image_size=16, test_fraction=0.25, val_fraction=0.2, split_seed=3)
    )
    other = prepare_data(
        cache_config(root, image_size=16, test_fraction=0.25, val_fraction=0.2, split_seed=4)
    )
    for part in ("train", "val", "test"):
        np.testing.assert_array_equal(first.split[part], again.split[part])
    assert any(not np.array_equal(first.split[p], other.split[p]) for p in ("train", "val", "test"))
    counts = {part: np.bincount(first.labels[first.split[part]], minlength=2) for part in first.split}
    assert np.abs(counts["test"] - [10, 5]).max() <= 1  # a quarter of each class
    assert np.abs(counts["val"] - [6, 3]).max() <= 1  # a fifth of what is left
    assert first.channels == 1


def test_official_val_kept_when_large_enough(tmp_path: Path, cache_config, small_split_dir: Path) -> None:
    data = prepare_data(cache_config(small_split_dir, image_size=16))
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(data.split[split], _official(data.table, split))


def test_medmnist_through_prepare_data(tmp_path: Path, cache_config) -> None:
    arrays = make_npz(tmp_path / "pneumoniamnist.npz", n=(40, 10, 8))
    data = prepare_data(cache_config(tmp_path / "pneumoniamnist.npz", image_size=28))
    assert data.channels == 1 and data.classes == ["normal", "pneumonia"]
    np.testing.assert_array_equal(data.split["test"], np.arange(50, 58))
    np.testing.assert_array_equal(data.images[50, ..., 0], arrays["test_images"][0])


def test_second_prepare_reads_the_cache(
    tmp_path: Path, cache_config, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_folder(tmp_path / "small", {"a": 3, "b": 3}, splits=("train", "val", "test"))
    config = cache_config(root, image_size=16)
    first = prepare_data(config)
    cached = sorted((tmp_path / "cache").glob("*.npy"))
    assert len(cached) == 1

    def no_decoding(path: Path) -> np.ndarray:
        raise AssertionError(f"decoded {path} although it is cached")

    monkeypatch.setattr(medssl.data.cache, "decode_image", no_decoding)
    second = prepare_data(config)
    assert second.fingerprint == first.fingerprint
    np.testing.assert_array_equal(np.asarray(second.images), np.asarray(first.images))
    monkeypatch.undo()

    write_image(root / "train" / "a" / "img000.png", seed=4242, size=(16, 16), channels=1)
    changed = prepare_data(config)
    assert changed.fingerprint != first.fingerprint
    assert not np.array_equal(np.asarray(changed.images), np.asarray(first.images))
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2
