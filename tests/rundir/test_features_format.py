"""features.npz: its keys, a round trip, files of older releases, damaged files and interrupted rewrites."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medssl.rundir.features import FEATURES, KEYS, Features, read_features


def features(seed: int, key: str = "k") -> Features:
    rng = np.random.default_rng(seed)
    arrays = {}
    for part, n in (("train", 6), ("val", 2), ("test", 3)):
        arrays[part] = rng.standard_normal((n, 4)).astype(np.float32)
        arrays[f"{part}_labels"] = rng.integers(0, 2, n)
        arrays[f"{part}_index"] = rng.permutation(20)[:n]
    return Features(**arrays, key=key)


def assert_same(a: Features, b: Features) -> None:
    assert a.key == b.key
    for name in KEYS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert getattr(a, name).dtype == getattr(b, name).dtype


def test_features_round_trip_under_the_same_npz_keys(tmp_path: Path) -> None:
    path = tmp_path / FEATURES
    written = features(0, key="weights+pixels+split")
    written.save(path)
    with np.load(path) as stored:
        assert stored.files == [
            "key",
            *(f"{p}{s}" for p in ("train", "val", "test") for s in ("", "_labels", "_index")),
        ]
    assert_same(Features.load(path), written)
    train, labels, index = Features.load(path).part("test")
    assert train.shape == (3, 4) and labels.shape == index.shape == (3,)


def test_a_file_from_before_the_cache_key_loads_with_an_empty_key(tmp_path: Path) -> None:
    path = tmp_path / FEATURES
    old = features(1)
    np.savez(path, **old.arrays())  # what evaluation wrote before features carried their key
    loaded = read_features(path)
    assert loaded is not None and loaded.key == ""
    assert_same(loaded, Features(**old.arrays()))


@pytest.mark.parametrize("damage", ["not an npz", "missing part"])
def test_a_damaged_or_incomplete_file_reads_as_none(tmp_path: Path, damage: str) -> None:
    path = tmp_path / FEATURES
    if damage == "not an npz":
        path.write_bytes(b"PK\x03\x04 cut short")
    else:
        np.savez(path, **{k: v for k, v in features(2).arrays().items() if k != "test_index"})
    assert read_features(path) is None
    assert read_features(tmp_path / "missing.npz") is None


def test_an_interrupted_rewrite_leaves_the_old_features(tmp_path: Path, killed_before_rename) -> None:
    path = tmp_path / FEATURES
    old = features(3, key="old")
    old.save(path)
    killed_before_rename()
    with pytest.raises(KeyboardInterrupt):
        features(4, key="new").save(path)
    assert_same(Features.load(path), old)
    assert sorted(p.name for p in tmp_path.iterdir()) == [FEATURES]


def test_features_stay_importable_from_evaluation() -> None:
    from medssl.evaluate import Features as from_package
    from medssl.evaluate.features import Features as from_module

    assert from_package is from_module is Features
