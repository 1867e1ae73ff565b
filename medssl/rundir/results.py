"""``results.csv``: one row per finished evaluation cell; the schema, its typed reader and its writer.

Rows are appended under the exclusive lock of ``results.csv.lock`` (``medssl.rundir.lock``, NFS-safe) in a
single fsynced write, and rewrites take the same lock, so writers in many processes on many hosts never
interleave or lose a row, and a finished cell survives a crash. Every row carries the ``settings_key`` of the settings that made it
(see ``medssl.rundir.settings``); files written before that column existed still load (key ``""``).
Under cross-validation a row also carries its ``fold`` (1..K); it is empty for a single split and in files
written before the column existed.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medssl.common.metric_names import METRICS
from medssl.rundir.atomic import atomic_write
from medssl.rundir.lock import locked

RESULTS = "results.csv"
CI_COLUMNS = ("accuracy_ci_low", "accuracy_ci_high", "auroc_ci_low", "auroc_ci_high")
IDENTITY = ("dataset", "encoder", "protocol", "label_fraction", "seed", "fold")
"""What names a cell: a second row with the same identity is the same cell evaluated again."""
RESULT_COLUMNS = (
    *("dataset", "encoder", "method", "backbone", "init", "protocol", "label_fraction", "seed", "fold"),
    *("n_train", "n_test"),
    *METRICS,
    *CI_COLUMNS,
    *("collapsed", "predictions", "wall_s", "settings_key"),
)
FLOAT_COLUMNS = (*METRICS, *CI_COLUMNS, "wall_s")
POOL_COLUMNS = ("pretrain_fraction", "pretrain_images")
"""Trailing columns of a study with ``pretrain_fractions``: the SSL encoder's pool (share, images). A file
has them only once a row has them, so a study without pools writes exactly ``RESULT_COLUMNS``."""
NOT_APPLICABLE = "not_applicable"
"""Trailing column: why a protocol cannot work on a cell (e.g. a kNN whose k is at least the labelled images),
empty where it can. Such a row has no metrics and no predictions file. Like the pool columns, a file has it
only once a row has it; readers of files without it see every cell as applicable."""
OPTIONAL_COLUMNS = (*POOL_COLUMNS, NOT_APPLICABLE)

CellId = tuple[str, str, str, float, int, int | None]


@dataclass(frozen=True)
class Result:
    """One finished cell of results.csv with typed values (missing numbers are NaN)."""

    dataset: str
    encoder: str
    method: str
    backbone: str
    init: str
    protocol: str
    label_fraction: float
    seed: int
    n_train: int
    n_test: int
    metrics: dict[str, float]
    collapsed: bool
    predictions: str
    settings_key: str = ""
    fold: int | None = None
    """The cross-validation fold (1..K); None for a single split."""
    not_applicable: str = ""
    """Why the protocol cannot work on this cell ('' when it can): its metrics are then missing."""

    def metric(self, name: str) -> float:
        return self.metrics.get(name, math.nan)

    @property
    def cell(self) -> CellId:
        return (self.dataset, self.encoder, self.protocol, self.label_fraction, self.seed, self.fold)


def cell_id(row: Mapping[str, Any]) -> CellId:
    """The identity of a row given as a mapping (e.g. a freshly evaluated row)."""
    return (
        str(row["dataset"]),
        str(row["encoder"]),
        str(row["protocol"]),
        float(row["label_fraction"]),
        int(row["seed"]),
        parse_fold(row.get("fold")),
    )


def parse_float(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def parse_int(text: str | None) -> int:
    value = parse_float(text)
    return int(value) if math.isfinite(value) else 0


def parse_fold(value: Any) -> int | None:
    """A fold number, or None for an empty cell (a single split, or a file from before folds)."""
    if value in (None, ""):
        return None
    number = parse_float(str(value))
    return int(number) if math.isfinite(number) else None


def _bool(text: str | None) -> bool:
    return (text or "").strip().lower() in ("1", "true", "yes", "y")


def _typed(row: Mapping[str, str]) -> Result:
    return Result(
        dataset=row["dataset"],
        encoder=row["encoder"],
        method=row.get("method") or row["encoder"].split("-")[0],
        backbone=row.get("backbone") or "",
        init=row.get("init") or "",
        protocol=row["protocol"],
        label_fraction=parse_float(row.get("label_fraction")),
        seed=parse_int(row.get("seed")),
        n_train=parse_int(row.get("n_train")),
        n_test=parse_int(row.get("n_test")),
        metrics={name: parse_float(row.get(name)) for name in FLOAT_COLUMNS},
        collapsed=_bool(row.get("collapsed")),
        predictions=row.get("predictions") or "",
        settings_key=row.get("settings_key") or "",
        fold=parse_fold(row.get("fold")),
        not_applicable=row.get(NOT_APPLICABLE) or "",
    )


def _raw_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return [row for row in csv.DictReader(handle) if row.get("dataset") and row.get("encoder")]


def read_result_rows(path: str | Path) -> list[dict[str, str]]:
    """The rows of ``results.csv`` as they are written (column → text), every column kept; empty when missing.

    For readers of columns that ``Result`` does not type (e.g. the pre-training pool of a scaling study)."""
    path = Path(path)
    if not path.is_file():
        return []
    with locked(path, shared=True):
        return _raw_rows(path)


def read_results(path: str | Path) -> list[Result]:
    """The rows of ``path`` (empty if it does not exist); a row without dataset/encoder/protocol (a
    half-written line) is ignored."""
    return [_typed(row) for row in read_result_rows(path) if row.get("protocol")]


def _cell(value: Any) -> Any:
    if isinstance(value, float):  # numpy's float64 too: written as a plain number, never ``np.float64(...)``
        return "nan" if math.isnan(value) else repr(round(float(value), 6))
    return value


def _columns(header: Iterable[str], rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """``RESULT_COLUMNS``, then the optional columns that the file already has or that a row brings."""
    present = set(header).union(*(row.keys() for row in rows))
    return [*RESULT_COLUMNS, *(column for column in OPTIONAL_COLUMNS if column in present)]


def _csv_text(rows: list[Mapping[str, Any]], columns: list[str], header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    if header:
        writer.writeheader()
    for row in rows:
        writer.writerow({key: _cell(value) for key, value in row.items()})
    return buffer.getvalue()


def _header(path: Path) -> list[str]:
    with path.open(newline="") as handle:
        return next(csv.reader(handle), [])


def rewrite_results(
    path: str | Path,
    keep: Callable[[Result], bool] = lambda _: True,
    add: Iterable[Mapping[str, Any]] = (),
) -> int:
    """Rewrite ``path`` atomically in the current schema: the rows ``keep`` accepts, then ``add``; returns
    how many rows were dropped. Replaces a cell in one step, and upgrades a file written before
    ``settings_key`` or ``fold`` existed."""
    path = Path(path)
    with locked(path):
        return _rewrite(path, keep, add)


def _rewrite(path: Path, keep: Callable[[Result], bool], add: Iterable[Mapping[str, Any]]) -> int:
    """``rewrite_results`` with the lock already held."""
    rows = _raw_rows(path) if path.is_file() else []
    kept: list[Mapping[str, Any]] = [row for row in rows if row.get("protocol") and keep(_typed(row))]
    dropped = len(rows) - len(kept)
    _write_rows(path, [*kept, *add])
    return dropped


def _write_rows(path: Path, rows: list[Mapping[str, Any]]) -> None:
    """Write ``rows`` over ``path`` atomically, in the current schema (lock held by the caller)."""
    columns = _columns(_header(path) if path.is_file() else [], rows)
    atomic_write(path, lambda tmp: tmp.write_text(_csv_text(rows, columns, header=True)))


def update_result_rows(path: str | Path, update: Callable[[dict[str, str]], Mapping[str, Any]]) -> None:
    """Rewrite ``path`` atomically with ``update(row)`` in place of each row, in the same order (for columns
    a row lacks, e.g. the pool of an encoder trained before its study had a ``pretrain_fractions`` axis)."""
    path = Path(path)
    with locked(path):
        _write_rows(path, [update(row) for row in _raw_rows(path) if row.get("protocol")])


def append_results(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Append ``rows`` (extra keys ignored, missing ones left empty), writing the header if the file is new."""
    rows = list(rows)
    path = Path(path)
    with locked(path):
        existing = _header(path) if path.is_file() and path.stat().st_size else []
        columns = _columns(existing, rows)
        if existing and existing != columns:
            _rewrite(
                path, lambda _: True, rows
            )  # an older schema or new pool columns: rewrite so they line up
            return
        with path.open("a", newline="") as handle:
            header = ",".join(columns) + "\n" if os.fstat(handle.fileno()).st_size == 0 else ""
            handle.write(header + _csv_text(rows, columns, header=False))
            handle.flush()
            os.fsync(handle.fileno())
