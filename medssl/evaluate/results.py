"""``results.csv``: one row per finished evaluation cell, appended safely by any stage of a run."""

from __future__ import annotations

import csv
import fcntl
import io
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from medssl.evaluate.metrics import METRICS

RESULT_COLUMNS = (
    *(
        "dataset",
        "encoder",
        "method",
        "backbone",
        "init",
        "protocol",
        "label_fraction",
        "seed",
        "n_train",
        "n_test",
    ),
    *METRICS,
    *(
        "accuracy_ci_low",
        "accuracy_ci_high",
        "auroc_ci_low",
        "auroc_ci_high",
        "collapsed",
        "predictions",
        "wall_s",
    ),
)


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(round(value, 6))
    return value


def append_results(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Append rows (extra keys ignored, missing ones left empty) to ``path``, writing the header if new.

    The rows are written in one ``write`` under an exclusive lock, then flushed and fsynced, so concurrent
    writers never interleave and a finished cell survives a crash.
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RESULT_COLUMNS, extrasaction="ignore", lineterminator="\n")
    for row in rows:
        writer.writerow({key: _cell(value) for key, value in row.items()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            header = ",".join(RESULT_COLUMNS) + "\n" if os.fstat(handle.fileno()).st_size == 0 else ""
            handle.write(header + buffer.getvalue())
            handle.flush()
            os.fsync(handle.fileno())
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_results(path: str | Path) -> list[dict[str, str]]:
    """The rows of a ``results.csv`` as dictionaries of strings (empty list if the file does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))
