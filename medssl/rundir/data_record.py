"""``data.json``: the dataset a run's split was made from (its fingerprint and each file's digest), written beside
``split.csv`` when the split is made, so that a rerun on changed data is refused naming what changed instead of
silently mixing results of two datasets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from medssl.errors import DataError
from medssl.rundir.atomic import write_text
from medssl.rundir.split import SplitRows

DATA_RECORD = "data.json"
SHOWN = 3
"""Examples named per kind of change."""


class DataChanged(DataError):
    """The dataset differs from the one a run's split was made from; ``changes`` says how."""

    def __init__(
        self, where: Path, changes: list[str], start_over: str = "start over in another --out"
    ) -> None:
        self.where, self.changes = where, changes
        super().__init__(
            f"{where}: the dataset changed since this run split it ({'; '.join(changes)}); nothing was changed. "
            f"Restore the data, or {start_over}"
        )

    def advise(self, start_over: str) -> DataChanged:
        """The same refusal with the way to start over of the command at hand."""
        return DataChanged(self.where, self.changes, start_over)


def save_data_record(run_dir: Path, fingerprint: str, digests: Mapping[str, str]) -> None:
    """Record the dataset of a new split: its fingerprint and each file's digest (none for generated or
    array datasets, whose fingerprint covers them)."""
    record = {"fingerprint": fingerprint, "digests": dict(digests)}
    write_text(run_dir / DATA_RECORD, json.dumps(record, indent=0, sort_keys=True))


def read_data_record(run_dir: Path) -> dict:
    """``data.json`` of ``run_dir`` (empty when absent or unreadable: a run made before it existed)."""
    try:
        record = json.loads((run_dir / DATA_RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _listed(count_of: str, refs: list[str]) -> str:
    shown = ", ".join(refs[:SHOWN]) + (", ..." if len(refs) > SHOWN else "")
    return f"{len(refs)} image{'s' if len(refs) != 1 else ''} {count_of}: {shown}"


def data_changes(
    manifest: SplitRows,
    record: Mapping,
    classes: Mapping[str, str],
    fingerprint: str,
    digests: Mapping[str, str],
) -> list[str]:
    """How the dataset now (``classes``: image ref → class name, its ``fingerprint`` and file ``digests``)
    differs from the one the run's ``manifest`` (split.csv) and ``record`` (data.json) were made from."""
    if record.get("fingerprint") == fingerprint:
        return []
    split: dict[str, str] = {}
    for row in manifest.rows:
        split.setdefault(row["ref"], row["class"])
    recorded = record.get("digests") or {}
    kinds = {
        "added": [ref for ref in classes if ref not in split],
        "removed": [ref for ref in split if ref not in classes],
        "relabelled": [ref for ref in classes if ref in split and split[ref] != classes[ref]],
        "changed": [ref for ref in classes if ref in recorded and recorded[ref] != digests.get(ref)],
    }
    changes = [_listed(kind, sorted(refs)) for kind, refs in kinds.items() if refs]
    if not changes and record.get("fingerprint") and not recorded:
        # a generated or array dataset (no files to compare): its source itself changed. With files, the same
        # files and labels are the same data: the fingerprint also covers the working size and decoding
        # settings, which the settings keys of the run's rows compare.
        changes = [f"its fingerprint changed ({record['fingerprint']} -> {fingerprint})"]
    return changes
