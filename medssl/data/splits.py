"""Seeded, stratified train/val/test splits and grouped K-fold cross-validation (saved as ``split.csv``:
``medssl.rundir.split``).

Policies (``DataConfig.split``):

- ``grouped``: a group (patient, slide, study, site) is never in two parts of a split;
- ``random``: image by image, as the study's original split; groups are ignored and a warning says how many
  straddle train and test (their images on both sides inflate test scores);
- ``auto`` (the default): ``grouped`` when the table has group ids, else ``random``.

Under ``grouped`` the test part is always whole groups. Validation only monitors and tunes (the SSL kNN
monitor, the linear probe's regularisation, fine-tuning's early stopping), so when the training groups are
too few to hold out validation by whole groups, it is held out image by image within them (with a warning)
and the test part stays whole groups.

Cross-validation (``DataConfig.folds: K``) pools every image; each fold's test part is one of K
``StratifiedGroupKFold`` parts (whole groups under ``grouped``), so every image is tested exactly once.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from medssl.data.groups import examples, group_ids, plural
from medssl.data.types import ImageTable
from medssl.errors import DataError
from medssl.rundir.split import Split

POLICIES = ("auto", "grouped", "random")
MIN_OFFICIAL_VAL_FRACTION = 0.05
MIN_CLASS_IMAGES = 3
"""Images per class below which no train/val/test split exists (two hold-outs of at least two folds)."""


def resolve_policy(table: ImageTable, policy: str = "auto") -> str:
    """``grouped`` or ``random``: what ``policy`` means for this table (``DataError`` if impossible)."""
    if policy not in POLICIES:
        raise DataError(f"split policy '{policy}' is unknown; use one of {', '.join(POLICIES)}")
    if policy == "auto":
        return "grouped" if table.has_groups else "random"
    if policy == "grouped" and not table.has_groups:
        raise DataError(
            f"{table.root}: split: grouped needs group ids (patient, slide...), and this {table.layout} "
            "dataset has none; set data.group_pattern (a regex on the image paths), add a group column "
            "to a CSV manifest, or use split: random"
        )
    return policy


def _units(table: ImageTable, indices: np.ndarray, policy: str) -> np.ndarray:
    """What a split must keep together: groups under ``grouped``, single images under ``random``."""
    if policy == "grouped":
        return group_ids(table, indices)
    return np.array([f"__image_{i}" for i in indices])


def _hold_out(
    labels: np.ndarray, units: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Positions (kept, held out ≈ fraction), stratified by label, never splitting a unit; None if too few."""
    n_splits = max(2, round(1.0 / fraction))
    counts = np.bincount(labels)
    if len(np.unique(units)) == len(labels) and len(labels):  # image by image: a small class gets fewer
        n_splits = min(n_splits, int(counts[counts > 0].min()))  # folds, not no split (MIN_CLASS_IMAGES)
    if n_splits < 2 or len(np.unique(units)) < n_splits or counts.max() < n_splits:
        return None  # too few units, or every class smaller than the number of parts (sklearn refuses)
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    kept, held = next(folds.split(np.zeros(len(labels)), labels, units))
    return kept, held


def _missing_classes(table: ImageTable, indices: np.ndarray) -> list[str]:
    present = set(table.labels[indices].tolist())
    return [name for i, name in enumerate(table.classes) if i not in present]


def _too_few(table: ImageTable, indices: np.ndarray, fraction: float, part: str, policy: str) -> DataError:
    """The error when ``part`` cannot be held out: naming the groups when they are the limit."""
    n_splits = max(2, round(1.0 / fraction))
    n_groups = len(np.unique(_units(table, indices, policy)))
    key = "test_fraction" if part == "test" else "val_fraction"
    if policy == "grouped" and len(indices) >= n_splits:
        kind = table.group_kind
        fix = f"use folds: {n_groups} cross-validation, or split: random" if n_groups >= 2 else "add images"
        return DataError(
            f"{table.root}: the {plural(kind, n_groups)} are the limit: holding out {fraction:.0%} as whole "
            f"{plural(kind)} for the {part} split needs at least {n_splits} of them ({len(indices):,} images "
            f"in {plural(kind, n_groups)}); {fix}"
        )
    return DataError(
        f"{table.root}: too few images ({len(indices):,}) to hold out {fraction:.0%} for the {part} split "
        f"(every class needs at least {MIN_CLASS_IMAGES} images); add images or raise {key}"
    )


def hold_out(
    table: ImageTable, indices: np.ndarray, fraction: float, seed: int, policy: str = "grouped"
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``indices`` into (kept, held out ≈ fraction), stratified by class, grouped under ``grouped``."""
    if missing := _missing_classes(table, indices):
        raise DataError(f"{table.root}: class(es) {missing} have no images left to split; add images")
    held = _hold_out(table.labels[indices], _units(table, indices, policy), fraction, seed)
    if held is None:
        raise _too_few(table, indices, fraction, "test", policy)
    return np.sort(indices[held[0]]), np.sort(indices[held[1]])


def _validation(
    table: ImageTable, pool: np.ndarray, fraction: float, seed: int, policy: str
) -> tuple[np.ndarray, np.ndarray, str]:
    """(train, val, note): val held out from ``pool``, by whole groups where there are enough of them."""
    if missing := _missing_classes(table, pool):
        raise DataError(f"{table.root}: class(es) {missing} have no training images; add images")
    labels = table.labels[pool]
    held = _hold_out(labels, _units(table, pool, policy), fraction, seed)
    note = ""
    if held is None and policy == "grouped":
        held = _hold_out(labels, _units(table, pool, "random"), fraction, seed)
        n_groups = len(np.unique(_units(table, pool, policy)))
        kind = table.group_kind
        note = (
            f"the training part holds {plural(kind, n_groups)}, too few to hold out "
            f"{fraction:.0%} of them whole for validation; validation images are drawn image by image from "
            f"those {plural(kind)} (validation only monitors training and tunes probes; the test split "
            f"stays whole {plural(kind)})"
        )
    if held is None:
        raise _too_few(table, pool, fraction, "val", "random")
    return np.sort(pool[held[0]]), np.sort(pool[held[1]]), note


def _without_test_groups(table: ImageTable, pool: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Drop from ``pool`` the images of groups that also have images in the official test split."""
    test_groups = {table.records[i].group for i in test} - {None}
    leaking = np.array([table.records[i].group in test_groups for i in pool], dtype=bool)
    if leaking.any():
        kind = table.group_kind
        n = len({table.records[i].group for i in pool[leaking]})
        warnings.warn(
            f"{table.root}: {leaking.sum()} training images of {plural(kind, n)} who also appear in the "
            f"official test split were left out of train/val, so that no {kind} is on both sides",
            stacklevel=3,
        )
    return pool[~leaking]


def straddling(table: ImageTable, split: Split) -> list[str]:
    """Groups with images both in test and in train/val (a random split's leakage), sorted."""
    test = {table.records[i].group for i in split["test"]}
    rest = {table.records[i].group for part in ("train", "val") for i in split[part]}
    return sorted((test & rest) - {None})


def _warn_leakage(table: ImageTable, splits: list[Split]) -> None:
    """The ``random`` policy's warning: how many groups have images on both sides of train/test."""
    if not table.has_groups:
        return
    leaking = sorted({g for split in splits for g in straddling(table, split)})
    if leaking:
        kind, total = table.group_kind, len(set(table.groups) - {None})
        warnings.warn(
            f"{table.root}: split: random puts {plural(kind, len(leaking))} of {total} on both sides of "
            f"train/test ({examples(leaking)}), so a model can match the {kind} instead of the class and "
            "test scores are inflated; use split: grouped for an honest estimate",
            stacklevel=3,
        )


def make_split(
    table: ImageTable,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    policy: str = "auto",
) -> Split:
    """Official test (and large enough official val) kept; the rest split by ``seed`` under ``policy``.

    Under ``grouped``, where the official test split shares groups with the official training images, those
    training images are left out (with a warning).
    """
    policy = resolve_policy(table, policy)
    official = np.array([r.split or "" for r in table.records])
    everything = np.arange(len(table.records))
    test = everything[official == "test"]
    pool = everything[official != "test"]
    if policy == "grouped":
        pool = _without_test_groups(table, pool, test)
    if len(test) == 0:
        pool, test = hold_out(table, pool, test_fraction, seed, policy)
    val = pool[official[pool] == "val"]
    train = pool[official[pool] != "val"]
    if len(val) < MIN_OFFICIAL_VAL_FRACTION * len(train) or _missing_classes(table, val):
        train, val, note = _validation(table, pool, val_fraction, seed + 1, policy)
        if note:
            warnings.warn(f"{table.root}: {note}", stacklevel=2)
    split = {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}
    if policy == "random":
        _warn_leakage(table, [split])
    return split


def _check_folds(table: ImageTable, units: np.ndarray, folds: int, policy: str) -> None:
    """``DataError`` when K folds are impossible; a warning for classes some test folds will lack."""
    word = table.group_kind if policy == "grouped" else "image"
    if (n := len(np.unique(units))) < folds:
        fix = f"use folds: {n} or fewer" if n >= 2 else "add images"
        raise DataError(
            f"{table.root}: folds: {folds} needs at least {folds} {plural(word)}, found {n}; {fix}"
        )
    labels = table.labels
    for c, name in enumerate(table.classes):
        members = sorted(set(units[labels == c].tolist()))
        if len(members) == 1:
            raise DataError(
                f"{table.root}: class '{name}' is in one {word} only ({members[0]}), so the fold that tests "
                f"it has no training image of it; add images from other {plural(word)} or drop the class"
            )
        if len(members) < folds:
            warnings.warn(
                f"{table.root}: class '{name}' is in only {plural(word, len(members))} "
                f"({examples(members)}), fewer than the {folds} folds: {folds - len(members)} test folds "
                f"have none of it; use folds: {len(members)} for every class in every fold, or judge it "
                "by the pooled out-of-fold results",
                stacklevel=3,
            )


def cross_validation(
    table: ImageTable, folds: int, val_fraction: float = 0.1, seed: int = 0, policy: str = "auto"
) -> list[Split]:
    """The K (train, val, test) splits of grouped (or, under ``random``, image-level) K-fold CV.

    Fold ``k``'s test part is the k-th of K stratified parts (whole groups under ``grouped``), so every image
    is tested exactly once; val is held out from the other K-1 parts as in ``make_split``. Only datasets
    without an official test split can be cross-validated (official val folders are pooled too).
    """
    policy = resolve_policy(table, policy)
    official_test = sum(r.split == "test" for r in table.records)
    if official_test:
        raise DataError(
            f"{table.root}: folds: {folds} is for datasets without an official test split, and this one has "
            f"{official_test:,} official test images; remove folds to use the official split"
        )
    if folds < 2:
        raise DataError(f"folds: {folds}: cross-validation needs at least 2 folds")
    everything = np.arange(len(table.records))
    units = _units(table, everything, policy)
    _check_folds(table, units, folds, policy)
    kfold = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    splits, notes = [], []
    for k, (pool, test) in enumerate(kfold.split(np.zeros(len(everything)), table.labels, units)):
        train, val, note = _validation(table, everything[pool], val_fraction, seed + 1 + k, policy)
        notes += [note] if note else []
        splits.append({"train": train, "val": val, "test": np.sort(everything[test])})
    if notes:
        warnings.warn(f"{table.root}: in {len(notes)} of {folds} folds {notes[0]}", stacklevel=2)
    if policy == "random":
        _warn_leakage(table, splits)
    return splits


def groups_overlap(table: ImageTable, split: Split) -> set[str]:
    """Groups that appear in more than one part of the split (empty under ``grouped``)."""
    seen: dict[str, set[str]] = {}
    for part, indices in split.items():
        for i in indices:
            group = table.records[i].group
            if group:
                seen.setdefault(group, set()).add(part)
    return {g for g, parts in seen.items() if len(parts) > 1}
