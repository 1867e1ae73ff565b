"""Nested pre-training pools: seeded, stratified, group-respecting subsets of the training images.

A pool is what self-supervised pre-training may learn from when only a share of the unlabelled images is
available; the split (and so every probe, kNN bank and test set) stays as it is. For one seed the pools are
nested: each class's training images are put in one seeded order, group after group (a group's images
together, groups shuffled), and the pool at fraction f is a prefix of that order, so a larger pool always
contains a smaller one.

Each pool ends on a group boundary (whole patients, slides...) when one lies within ``GROUP_OVERSHOOT`` of
the class's target size; when the groups are too few or too large for that (e.g. 10% of a class held by
three patients), that class's share is cut image by image inside its last group, and the pool says so.
Groups holding several classes count in the stratum of their most frequent class.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medssl.data.groups import group_ids, plural
from medssl.data.types import ImageTable
from medssl.errors import ConfigError

GROUP_OVERSHOOT = 0.25
"""A class's pool takes whole groups while that adds at most this share to its target number of images."""


@dataclass(frozen=True)
class Pool:
    """The training images one pre-training run may use (sorted dataset indices)."""

    fraction: float
    indices: np.ndarray
    whole_groups: bool
    """False when some class's share had to be cut inside a group (see ``note``)."""
    n_groups: int
    note: str = ""

    @property
    def n_images(self) -> int:
        return len(self.indices)


@dataclass(frozen=True)
class _Stratum:
    """One class's training images in draw order, and the image counts at which a group ends."""

    name: str
    order: np.ndarray
    boundaries: np.ndarray
    n_groups: int


def check_pool_fraction(fraction: float) -> float:
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(
            f"pre-training pool fraction {fraction} must be in (0, 1]; e.g. pretrain_fractions: [0.1, 0.5, 1.0]"
        )
    return float(fraction)


def _strata(table: ImageTable, train: np.ndarray, seed: int, grouped: bool) -> list[_Stratum]:
    """Per class: its groups shuffled by ``seed``, each group's images shuffled, concatenated."""
    units = group_ids(table, train) if grouped else np.array([f"\0image{i}" for i in train])
    labels = table.labels[train]
    names, inverse = np.unique(units, return_inverse=True)
    majority = np.array([np.bincount(labels[inverse == g]).argmax() for g in range(len(names))])
    strata = []
    for label in np.unique(majority):
        rng = np.random.default_rng([seed, int(label)])
        members = rng.permutation(np.flatnonzero(majority == label))
        chunks = [rng.permutation(train[inverse == g]) for g in members]
        sizes = np.array([len(chunk) for chunk in chunks])
        strata.append(_Stratum(table.classes[label], np.concatenate(chunks), np.cumsum(sizes), len(chunks)))
    return strata


def _length(stratum: _Stratum, fraction: float) -> tuple[int, bool]:
    """(images taken from the stratum, whether they are whole groups): a prefix that grows with ``fraction``."""
    total = len(stratum.order)
    target = max(1, math.ceil(round(fraction * total, 9)))
    boundary = int(stratum.boundaries[np.searchsorted(stratum.boundaries, target)])
    if boundary - target <= GROUP_OVERSHOOT * target:
        return boundary, True
    return target, False


def _fallback_note(table: ImageTable, fraction: float, cut: list[tuple[_Stratum, int]]) -> str:
    kind = table.group_kind
    parts = [
        f"class '{s.name}' ({len(s.order):,} images in {plural(kind, s.n_groups)}; the smallest pool of whole "
        f"{plural(kind)} holds {int(s.boundaries[np.searchsorted(s.boundaries, n)]) / len(s.order):.0%})"
        for s, n in cut
    ]
    return (
        f"pre-training pool {fraction:g}: too few {plural(kind)} to take {fraction:.0%} of "
        f"{'; '.join(parts)} as whole {plural(kind)}, so that share is drawn image by image inside its last "
        f"{kind} (the pool stays nested and stratified; evaluation is unaffected)"
    )


def pretrain_pools(
    table: ImageTable, train: np.ndarray, fractions: Sequence[float], seed: int = 0, grouped: bool = True
) -> list[Pool]:
    """The pools of ``train`` (dataset indices) at each fraction, in the order given; nested for one seed.

    Args:
        table: the dataset (labels and groups).
        train: indices of the training images; the pool at 1.0 is exactly these, in this order.
        fractions: shares of each class's training images, each in (0, 1].
        seed: the draw; the pool at a fraction does not depend on which other fractions are asked for.
        grouped: take whole groups (patients, slides...) where the table has them; False: image by image.
    """
    fractions = [check_pool_fraction(f) for f in fractions]
    train = np.asarray(train, dtype=np.int64)
    grouped = grouped and table.has_groups
    strata = _strata(table, train, seed, grouped) if any(f < 1.0 for f in fractions) else []
    pools = []
    for fraction in fractions:
        if fraction == 1.0:
            n_groups = len(np.unique(group_ids(table, train))) if grouped else len(train)
            pools.append(Pool(1.0, train, True, n_groups))
            continue
        lengths = [(s, *_length(s, fraction)) for s in strata]
        indices = np.sort(np.concatenate([s.order[:n] for s, n, _ in lengths]))
        cut = [(s, n) for s, n, whole in lengths if not whole]
        note = _fallback_note(table, fraction, cut) if cut else ""
        n_groups = len(np.unique(group_ids(table, indices))) if grouped else len(indices)
        pools.append(Pool(fraction, indices, not cut, n_groups, note))
    return pools


def pretrain_pool(
    table: ImageTable, train: np.ndarray, fraction: float, seed: int = 0, grouped: bool = True
) -> Pool:
    """The pool of one fraction (the same as ``pretrain_pools`` gives it among others)."""
    return pretrain_pools(table, train, [fraction], seed, grouped)[0]
