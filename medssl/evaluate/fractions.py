"""Nested, stratified label subsets: the images whose labels a low-label experiment may use."""

from __future__ import annotations

import math

import numpy as np

from medssl.errors import ConfigError


def check_fraction(fraction: float) -> float:
    """``fraction`` if it is in (0, 1], else a ConfigError."""
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"label fraction {fraction} must be in (0, 1]; e.g. --label-fractions 0.01,0.1,1.0")
    return float(fraction)


def label_subset(labels: np.ndarray, train_indices: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The sorted subset of ``train_indices`` whose labels are kept at ``fraction``.

    Stratified: ``ceil(fraction × n_c)`` images of each class c present (so at least one per class).
    Nested: each class is shuffled once by ``seed`` and the first images are taken, so at one seed the 1%
    subset is inside the 10% subset, which is inside the full set. It depends only on the labels, the indices,
    the fraction and the seed, so every encoder sees the same labelled images.

    Args:
        labels: labels of the whole dataset, indexed by ``train_indices``.
        train_indices: indices (into the dataset) of the images a subset is drawn from.
        fraction: share of each class kept, in (0, 1].
        seed: subset seed.
    """
    check_fraction(fraction)
    train_indices = np.sort(np.asarray(train_indices, dtype=np.int64))
    if fraction == 1.0:
        return train_indices
    part_labels = np.asarray(labels)[train_indices]
    kept = []
    for label in np.unique(part_labels):
        members = train_indices[part_labels == label]
        rng = np.random.default_rng([seed, int(label)])
        order = rng.permutation(len(members))
        kept.append(members[order[: math.ceil(round(fraction * len(members), 9))]])
    return np.sort(np.concatenate(kept))
