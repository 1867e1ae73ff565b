"""A CSV manifest: a header row naming ``path,label`` and optionally ``group`` (or ``patient``) and ``split``.

The ``group`` column holds the patient, slide, study or site of each image (a ``patient`` column is read the
same way, as patients); every split keeps a group on one side. Paths are relative to the CSV's folder
(absolute paths work too); ``split`` is ``train``, ``val`` or
``test`` (or empty for "split it for me"). Errors name the CSV line.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import TextIO

from medssl.data.groups import examples
from medssl.data.sources import Source, register
from medssl.data.sources._files import SPLIT_NAMES, case_clash_text, case_clashes, is_lenient
from medssl.data.types import ImageRecord, ImageTable
from medssl.errors import DataError

REQUIRED = ("path", "label")
OPTIONAL = ("group", "split")
GROUP_COLUMNS = ("group", "patient")
HEADER = "path,label[,group|patient][,split]"


def detect(path: Path) -> bool:
    return path.suffix.lower() == ".csv" and path.is_file()


def _dialect(sample: str) -> type[csv.Dialect] | csv.Dialect:
    """Comma, semicolon or tab separated (spreadsheet exports vary); comma when unsure."""
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        return csv.excel


def _class_names(labels: set[str]) -> list[str]:
    """Sorted label names; numerically when every label is an integer (so ``10`` sorts after ``9``)."""
    if all(label.lstrip("-").isdigit() for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


def _header(reader: csv.DictReader, path: Path) -> dict[str, str]:
    """Lower-case column name → name as written, checked for the required columns."""
    names = {(name or "").strip().lower(): name for name in reader.fieldnames or []}
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        raise DataError(
            f"{path}: line 1 must be a header naming the columns {HEADER}; "
            f"found {reader.fieldnames or 'nothing'} (missing {', '.join(missing)})"
        )
    given = [name for name in GROUP_COLUMNS if name in names]
    if len(given) > 1:
        raise DataError(f"{path}: both a group and a patient column; keep one (they mean the same)")
    if given:
        names["group"] = names[given[0]]
    return names


def _record(
    row: dict[str, str], columns: dict[str, str], where: str, root: Path
) -> tuple[str, str, str, str]:
    def cell(name: str) -> str:
        return (row.get(columns[name]) or "").strip() if name in columns else ""

    ref, label, group, split = (cell(name) for name in (*REQUIRED, *OPTIONAL))
    if not ref:
        raise DataError(f"{where}: empty path; every row needs an image path")
    if not label:
        raise DataError(f"{where}: empty label for {ref}; give every image a label or remove the row")
    if split and split.lower() not in SPLIT_NAMES:
        raise DataError(f"{where}: unknown split '{split}'; use train, val, test or leave it empty")
    if not (root / ref).exists():
        raise DataError(f"{where}: {root / ref} does not exist; paths are relative to the CSV's folder")
    return ref, label, group, SPLIT_NAMES[split.lower()] if split else ""


Row = tuple[str, str, str, str]
"""(path, label, group, split) of one CSV line, as written."""


def _read(handle: TextIO, path: Path) -> tuple[list[Row], list[int], dict[str, str]]:
    """The rows of the CSV, the line numbers of those with an empty group cell, and the columns."""
    sample = handle.read(4096)
    handle.seek(0)
    reader = csv.DictReader(handle, dialect=_dialect(sample))
    columns = _header(reader, path)
    rows: list[Row] = []
    ungrouped: list[int] = []
    first_line: dict[Path, tuple[int, str]] = {}
    for row in reader:
        where = f"{path}, line {reader.line_num}"
        if not any((value or "").strip() for value in row.values() if isinstance(value, str)):
            continue
        record = _record(row, columns, where, path.parent)
        file = (path.parent / record[0]).resolve()  # ./a/x.png and a/x.png are one file
        if file in first_line:
            line, ref = first_line[file]
            again = "listed twice" if ref == record[0] else f"the file {ref} again"
            raise DataError(f"{where}: {record[0]} is {again} (also line {line}); list each image once")
        first_line[file] = (reader.line_num, record[0])
        rows.append(record)
        if "group" in columns and not record[2]:
            ungrouped.append(reader.line_num)
    return rows, ungrouped, columns


def load(path: Path) -> ImageTable:
    if not path.is_file():
        raise DataError(f"{path}: no such CSV file; check the --data path")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows, ungrouped, columns = _read(handle, path)
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not a UTF-8 text CSV ({error.reason}); save it as UTF-8 CSV") from None
    except csv.Error as error:
        raise DataError(f"{path}: malformed CSV ({error}); save it as comma-separated values") from None
    if not rows:
        raise DataError(f"{path}: the manifest lists no images; add rows path,label")
    classes = _class_names({label for _, label, _, _ in rows})
    if (clashes := case_clashes(classes)) and not is_lenient():
        raise DataError(f"{path}: {case_clash_text(clashes, 'labels')}; write each label one way")
    kind = "patient" if "patient" in columns else "group"  # what the ids are called in messages
    if ungrouped:
        warnings.warn(
            f"{path}: {len(ungrouped):,} of {len(rows):,} rows have an empty {columns['group']} cell (line "
            f"{examples([str(line) for line in ungrouped])}); each of those images is a {kind} of its own; "
            "fill them in, or leave the column out",
            stacklevel=2,
        )
    index = {name: i for i, name in enumerate(classes)}
    records = [
        ImageRecord(ref, index[label], group or None, split or None) for ref, label, group, split in rows
    ]
    return ImageTable("csv", path.parent, classes, records, ignored=[], group_kind=kind)


register(
    Source(
        name="csv",
        detect=detect,
        load=load,
        description=f"CSV manifest with columns {HEADER}",
    )
)
