"""Seeded, stratified train/val/test splits that never put one patient on both sides."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from medssl.data.types import SPLITS, ImageTable
from medssl.errors import DataError

Split = dict[str, np.ndarray]
"""Indices (into the table's records) of each of ``train``, ``val`` and ``test``."""

MIN_OFFICIAL_VAL_FRACTION = 0.05
MIN_CLASS_IMAGES = 3
"""Images per class below which no train/val/test split exists (two hold-outs of at least two folds)."""


def _groups(table: ImageTable, indices: np.ndarray) -> np.ndarray:
    """Patient id per record; records without one form a group of their own."""
    return np.array([table.records[i].patient or f"__image_{i}" for i in indices])


def hold_out(
    table: ImageTable, indices: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``indices`` into (kept, held out ≈ fraction), stratified by class and grouped by patient."""
    labels = table.labels[indices]
    groups = _groups(table, indices)
    smallest_class = np.bincount(labels, minlength=len(table.classes)).min() if len(labels) else 0
    # A small class gets fewer folds (a larger share held out) rather than no split: see MIN_CLASS_IMAGES.
    n_splits = min(max(2, round(1.0 / fraction)), int(smallest_class))
    if n_splits < 2 or len(np.unique(groups)) < n_splits:
        raise DataError(
            f"{table.root}: too few images or patients ({len(indices)} images, smallest class "
            f"{smallest_class}) to hold out {fraction:.0%}; every class needs at least {MIN_CLASS_IMAGES} "
            "images; add images"
        )
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    kept, held = next(folds.split(np.zeros(len(indices)), labels, groups))
    return np.sort(indices[kept]), np.sort(indices[held])


def _without_test_patients(table: ImageTable, pool: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Drop from ``pool`` the images of patients who also have images in the official test split."""
    test_patients = {table.records[i].patient for i in test} - {None}
    leaking = np.array([table.records[i].patient in test_patients for i in pool], dtype=bool)
    if leaking.any():
        patients = len({table.records[i].patient for i in pool[leaking]})
        warnings.warn(
            f"{table.root}: {leaking.sum()} training images of {patients} patients who also appear in the "
            "official test split were left out of train/val, so that no patient is on both sides",
            stacklevel=3,
        )
    return pool[~leaking]


def make_split(
    table: ImageTable, val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0
) -> Split:
    """Official test (and large enough official val) kept; the rest split by ``seed``.

    Patients are never on two sides: where the official test split shares patients with the official
    training images, those training images are left out (with a warning).
    """
    official = np.array([r.split or "" for r in table.records])
    everything = np.arange(len(table.records))
    test = everything[official == "test"]
    pool = _without_test_patients(table, everything[official != "test"], test)
    if len(test) == 0:
        pool, test = hold_out(table, pool, test_fraction, seed)
    val = pool[official[pool] == "val"]
    train_pool = pool[official[pool] != "val"]
    if len(val) < MIN_OFFICIAL_VAL_FRACTION * len(train_pool) or len(np.unique(table.labels[val])) < len(
        table.classes
    ):
        train, val = hold_out(table, pool, val_fraction, seed + 1)
    else:
        train = train_pool
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def patients_overlap(table: ImageTable, split: Split) -> set[str]:
    """Patients that appear in more than one part of the split (must be empty)."""
    seen: dict[str, set[str]] = {}
    for part, indices in split.items():
        for i in indices:
            patient = table.records[i].patient
            if patient:
                seen.setdefault(patient, set()).add(part)
    return {p for p, parts in seen.items() if len(parts) > 1}


def save_split(path: Path, table: ImageTable, split: Split) -> None:
    """Write the split as a CSV manifest: ``ref,label,class,patient,split``."""
    part_of = {int(i): part for part, indices in split.items() for i in indices}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ref", "label", "class", "patient", "split"])
        for i, record in enumerate(table.records):
            if i in part_of:
                name = table.classes[record.label]
                writer.writerow([record.ref, record.label, name, record.patient or "", part_of[i]])
    tmp.replace(path)


def load_split(path: Path, table: ImageTable) -> Split:
    """Read a manifest written by ``save_split`` back as indices into ``table``."""
    index_of = {record.ref: i for i, record in enumerate(table.records)}
    parts: dict[str, list[int]] = {name: [] for name in SPLITS}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["ref"] not in index_of:
                raise DataError(
                    f"{path}: image '{row['ref']}' is not in the dataset; delete the manifest to re-split"
                )
            parts[row["split"]].append(index_of[row["ref"]])
    return {name: np.array(sorted(ids), dtype=np.int64) for name, ids in parts.items()}
