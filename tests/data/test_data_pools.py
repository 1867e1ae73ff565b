"""Pre-training pools: nested across fractions, stratified by class, whole groups (or a named fallback)."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from medssl.data.dataset import DataConfig, read_table
from medssl.data.pools import GROUP_OVERSHOOT, pretrain_pool, pretrain_pools
from medssl.data.splits import make_split
from medssl.data.types import ImageRecord, ImageTable
from medssl.errors import ConfigError

FRACTIONS = [0.1, 0.25, 0.5, 1.0]


def uneven_table(n_groups: int = 800, seed: int = 0, classes: int = 3) -> ImageTable:
    """Patients of 1 to 12 images, one class each, classes of unequal size."""
    rng = np.random.default_rng(seed)
    records = []
    for g in range(n_groups):
        label = int(rng.choice(classes, p=[0.5, 0.3, 0.2][:classes]))
        records += [ImageRecord(f"#{len(records)}", label, f"p{g:03d}") for _ in range(rng.integers(1, 13))]
    names = [f"class{c}" for c in range(classes)]
    return ImageTable("synthetic", Path("x"), names, records, group_kind="patient")


def group_sizes(table: ImageTable, indices: np.ndarray) -> Counter[str]:
    return Counter(table.records[i].group for i in indices)


def per_class(table: ImageTable, indices: np.ndarray) -> np.ndarray:
    return np.bincount(table.labels[indices], minlength=len(table.classes))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pools_are_nested_stratified_and_whole_patients(seed: int) -> None:
    table = uneven_table()
    train = make_split(table, seed=0)["train"]
    pools = pretrain_pools(table, train, FRACTIONS, seed=seed)
    for small, large in pairwise(pools):
        assert set(small.indices) <= set(large.indices)
        assert small.n_images < large.n_images
    assert np.array_equal(pools[-1].indices, train)
    in_train = group_sizes(table, train)
    n_train = per_class(table, train)
    for pool in pools:
        assert pool.whole_groups and not pool.note
        assert set(pool.indices) <= set(train)
        # Whole patients: every patient in the pool brings all of its training images.
        assert all(n == in_train[g] for g, n in group_sizes(table, pool.indices).items())
        # Stratified: each class gets at least its share and at most GROUP_OVERSHOOT more.
        target = np.ceil(pool.fraction * n_train)
        got = per_class(table, pool.indices)
        assert np.all(got >= target) and np.all(got <= target * (1 + GROUP_OVERSHOOT))
        assert pool.n_groups == len(group_sizes(table, pool.indices))


def test_a_pool_does_not_depend_on_the_other_fractions_but_on_the_seed() -> None:
    table = uneven_table()
    train = make_split(table, seed=0)["train"]
    alone = pretrain_pool(table, train, 0.25, seed=3)
    among = pretrain_pools(table, train, [0.5, 0.25, 0.1], seed=3)[1]
    assert np.array_equal(alone.indices, among.indices)
    assert not np.array_equal(alone.indices, pretrain_pool(table, train, 0.25, seed=4).indices)


def test_synthetic_patients_and_ungrouped_images() -> None:
    table = read_table(DataConfig(synthetic={"n_images": 2000}))
    train = make_split(table, seed=0)["train"]
    in_train = group_sizes(table, train)  # 5 images a patient, fewer where validation took some
    for pool in pretrain_pools(table, train, FRACTIONS, seed=0):
        assert pool.whole_groups
        assert all(n == in_train[g] for g, n in group_sizes(table, pool.indices).items())
    # Image by image (no groups): exactly ceil(fraction × class size) of every class.
    for pool in pretrain_pools(table, train, FRACTIONS, seed=0, grouped=False):
        assert np.array_equal(
            per_class(table, pool.indices), np.ceil(pool.fraction * per_class(table, train))
        )


def test_too_few_patients_falls_back_image_by_image_and_says_so() -> None:
    # Class 'rare' is 3 patients of 20 images: 10% of it (6 images) is not a whole patient.
    records = [ImageRecord(f"#{i}", 0, f"c{i}") for i in range(200)]
    records += [ImageRecord(f"#{200 + i}", 1, f"r{i // 20}") for i in range(60)]
    table = ImageTable("synthetic", Path("x"), ["common", "rare"], records, group_kind="patient")
    train = np.arange(len(records))
    pools = pretrain_pools(table, train, FRACTIONS, seed=0)
    small = pools[0]
    assert not small.whole_groups
    assert (
        "class 'rare' (60 images in 3 patients; the smallest pool of whole patients holds 33%)" in small.note
    )
    assert "class 'common'" not in small.note
    assert per_class(table, small.indices).tolist() == [20, 6]
    assert len(group_sizes(table, small.indices[table.labels[small.indices] == 1])) == 1
    for a, b in pairwise(pools):
        assert set(a.indices) <= set(b.indices)
    assert [per_class(table, p.indices).tolist() for p in pools] == [[20, 6], [50, 15], [100, 30], [200, 60]]
    assert [p.whole_groups for p in pools] == [False, False, False, True]  # 30 of 60 is not 20 or 40 images


def test_bad_fraction_is_a_config_error() -> None:
    table = uneven_table(10)
    with pytest.raises(ConfigError, match=r"pool fraction 0 must be in \(0, 1\]"):
        pretrain_pools(table, np.arange(len(table.records)), [0])
