"""``history.csv``: one row per pre-training epoch (``<dataset>/pretrain/<encoder>/history.csv``).

Columns ``HISTORY_COLUMNS``; numbers are written with six significant digits, and a figure not measured that
epoch (the kNN monitor runs every few epochs) is left empty.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from medssl.errors import TrainingError
from medssl.rundir.atomic import atomic_write, write_advice
from medssl.rundir.results import parse_float

HISTORY = "history.csv"
HISTORY_COLUMNS = [
    "epoch",
    "loss",
    "knn_accuracy",
    "knn_balanced_accuracy",
    "embedding_std",
    "effective_rank",
    "images_per_s",
    "lr",
    "wall_s",
]


def history_value(value: float | int | None) -> str | int:
    """How a figure is written: integers as they are, other numbers to six digits, NaN and None empty."""
    if isinstance(value, int):
        return value
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.6g}"


def history_row(values: Mapping[str, float | int | None]) -> dict[str, str | int]:
    """One epoch's figures as they are written (see ``history_value``)."""
    return {key: history_value(value) for key, value in values.items()}


def write_history(path: Path, rows: list[dict]) -> None:
    """Rewrite ``history.csv`` atomically with ``rows`` (as ``read_history`` or ``history_row`` give them)."""

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=HISTORY_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(
        path,
        write,
        on_error=lambda error: TrainingError(
            f"{path}: could not write the training history ({error}); the last checkpoint is intact — "
            f"{write_advice(error)}"
        ),
    )


def read_history(path: Path) -> list[dict]:
    """The rows of ``history.csv`` as text (empty when there is no file)."""
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def history_columns(path: Path) -> dict[str, np.ndarray]:
    """Column → float values per epoch (NaN where empty); empty when the file has no rows."""
    rows = read_history(path)
    if not rows:
        return {}
    return {column: np.array([parse_float(row.get(column)) for row in rows]) for column in rows[0]}
