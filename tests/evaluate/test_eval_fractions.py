"""Label subsets: stratified, at least one per class, nested across fractions, reproducible."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medssl.errors import ConfigError
from medssl.evaluate.fractions import label_subset

LABELS = np.array([0] * 300 + [1] * 90 + [2] * 7)
TRAIN = np.random.default_rng(0).permutation(len(LABELS))[:350]


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.5])
def test_stratified_with_at_least_one_per_class(fraction: float) -> None:
    subset = label_subset(LABELS, TRAIN, fraction, seed=0)
    assert set(subset) <= set(TRAIN) and len(np.unique(subset)) == len(subset)
    for label in range(3):
        available = int(np.sum(LABELS[TRAIN] == label))
        assert np.sum(LABELS[subset] == label) == max(1, math.ceil(fraction * available))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nested_across_fractions(seed: int) -> None:
    small, medium, full = (set(label_subset(LABELS, TRAIN, f, seed)) for f in (0.01, 0.1, 1.0))
    assert small < medium < full
    assert full == set(TRAIN)


def test_identical_across_calls_and_depends_on_seed() -> None:
    first = label_subset(LABELS, TRAIN, 0.1, seed=3)
    np.testing.assert_array_equal(first, label_subset(LABELS.copy(), TRAIN[::-1].copy(), 0.1, seed=3))
    assert not np.array_equal(first, label_subset(LABELS, TRAIN, 0.1, seed=4))


def test_fraction_outside_unit_interval_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="label fraction"):
        label_subset(LABELS, TRAIN, 0.0, seed=0)
    with pytest.raises(ConfigError, match="label fraction"):
        label_subset(LABELS, TRAIN, 1.5, seed=0)
