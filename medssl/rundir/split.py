"""``split.csv``: which image is in which part of a dataset's split (or of each cross-validation fold).

Columns ``ref,label,class,<group kind>,split,policy,fold``: the group column is named by what the groups are
(``patient``, ``slide``..., so chest X-ray manifests keep their ``patient`` column); ``fold`` is 1..K under
cross-validation, where every image has one row per fold, and empty otherwise. Manifests written before
policies existed (``ref,label,class,patient,split``) still read, as one split with an empty policy.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medssl.errors import DataError
from medssl.rundir.atomic import atomic_write

if TYPE_CHECKING:  # at run time rundir imports nothing of the stages above it
    from medssl.data.types import ImageTable

SPLIT = "split.csv"
PARTS = ("train", "val", "test")
"""The parts of a split, the values of the ``split`` column."""
TRAILING = ("split", "policy", "fold")

Split = dict[str, np.ndarray]
"""Indices (into the table's records) of each of ``train``, ``val`` and ``test``."""


@dataclass(frozen=True)
class SplitRows:
    """The rows of a manifest as text, for readers that need no dataset table (the report)."""

    header: list[str]
    rows: list[dict[str, str]]

    @property
    def group_kind(self) -> str:
        """The name of the group column (``patient``, ``slide``...), ``""`` when the manifest has none."""
        header = self.header
        return header[3] if len(header) > 4 and header[3] not in TRAILING else ""


def write_split_rows(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Write a manifest atomically: ``header``, then ``rows`` in its column order."""

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)

    atomic_write(path, write)


def read_split_rows(path: Path) -> SplitRows:
    """The header and rows of a manifest, every value as its text."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        return SplitRows(list(reader.fieldnames or []), rows)


def save_split(
    path: Path, table: ImageTable, splits: Split | list[Split], policy: str = "", folds: bool = False
) -> None:
    """Write one split, or the K splits of cross-validation (``folds=True``), as a ``split.csv`` manifest."""
    parts = splits if isinstance(splits, list) else [splits]

    def rows() -> Iterable[list[object]]:
        for k, split in enumerate(parts, start=1):
            part_of = {int(i): part for part, indices in split.items() for i in indices}
            fold = str(k) if folds else ""
            for i, record in enumerate(table.records):
                if i in part_of:
                    name = table.classes[record.label]
                    yield [record.ref, record.label, name, record.group or "", part_of[i], policy, fold]

    write_split_rows(path, ["ref", "label", "class", table.group_kind, *TRAILING], rows())


def read_manifest(path: Path, table: ImageTable) -> tuple[list[Split], str, bool]:
    """A ``save_split`` manifest as (splits, policy, folds): K splits with a fold column, else one."""
    index_of = {record.ref: i for i, record in enumerate(table.records)}
    parts: dict[str, dict[str, list[int]]] = {}
    policies: set[str] = set()
    for row in read_split_rows(path).rows:
        if row["ref"] not in index_of:
            raise DataError(
                f"{path}: image '{row['ref']}' is not in the dataset; delete the manifest to re-split"
            )
        fold = row.get("fold") or ""
        parts.setdefault(fold, {name: [] for name in PARTS})[row["split"]].append(index_of[row["ref"]])
        policies.add(row.get("policy") or "")
    names = sorted(parts, key=lambda fold: int(fold) if fold else 0)
    splits = [{n: np.array(sorted(ids), dtype=np.int64) for n, ids in parts[f].items()} for f in names]
    return splits or [{n: np.zeros(0, np.int64) for n in PARTS}], min(policies, default=""), names != [""]


def load_split(path: Path, table: ImageTable) -> Split:
    """Read a single-split manifest written by ``save_split`` back as indices into ``table``."""
    splits, _, folds = read_manifest(path, table)
    if folds:
        raise DataError(f"{path}: holds {len(splits)} cross-validation folds; read it with read_manifest")
    return splits[0]
