"""Groups: the patient, slide, study or site an image comes from; every split keeps a group on one side.

Ids come from a source's built-in parser (chest X-ray and BreaKHis patients, Kather 2016 slides), from a
CSV manifest's ``group`` (or ``patient``) column, or from a user's ``group_pattern``: a regular expression
searched in each image's path relative to the dataset root, whose first capture group (or whole match,
when it has none) is the id. Where none of these gives any, DICOM headers do (``header_groups``): the
PatientID, else the StudyInstanceUID, written as a pseudonym. Images without an id are each a group of
their own.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from medssl.data.decode import is_dicom
from medssl.data.types import ImageTable
from medssl.data.workers import file_map
from medssl.errors import DataError

GROUP_KINDS = ("patient", "slide", "study", "site", "group")
DOMINANT_SHARE = 0.8
"""``data inspect`` warns when one group holds at least this share of a class."""
EXAMPLES = 3


@dataclass(frozen=True)
class GroupParser:
    """How a source finds an image's group: ``parse`` maps a path relative to the root to an id (or None)."""

    kind: str
    parse: Callable[[str], str | None]


def regex_parser(pattern: re.Pattern[str], kind: str) -> GroupParser:
    """Group id = the pattern's first capture group, or its whole match, searched in the relative path."""

    def parse(ref: str) -> str | None:
        match = pattern.search(ref)
        if match is None:
            return None
        return (match.group(1) if pattern.groups else match.group(0)) or None

    return GroupParser(kind, parse)


def name_parser(patient_of: Callable[[PurePosixPath], str | None], kind: str) -> GroupParser:
    """A parser from a function of the image's relative path (file and folder names)."""
    return GroupParser(kind, lambda ref: patient_of(PurePosixPath(ref)))


def compile_group_pattern(text: str) -> re.Pattern[str]:
    """``text`` as a regular expression, or a ``ValueError`` saying what is wrong with it."""
    try:
        return re.compile(text)
    except re.error as error:
        raise ValueError(
            f"group_pattern '{text}' is not a valid regular expression ({error}); "
            r"e.g. '(CRC-Prim-HE-\d+)' or '^([^/]+)/' for the first folder"
        ) from None


def plural(kind: str, n: int | None = None) -> str:
    """``1 slide``, ``3 slides``, ``2 studies``; without ``n`` just the plural word."""
    word = kind if n == 1 else (kind[:-1] + "ies" if kind.endswith("y") else kind + "s")
    return word if n is None else f"{n:,} {word}"


def examples(items: list[str], n: int = EXAMPLES) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" … (+{len(items) - n} more)" if len(items) > n else "")


def apply_group_pattern(table: ImageTable, text: str, kind: str | None = None) -> ImageTable:
    """The table with every group replaced by ``text``'s match in the image's relative path.

    ``DataError`` when the source has no paths or the pattern matches none; a warning when it misses some
    (those images become groups of their own).
    """
    if table.reader is not None:
        raise DataError(
            f"{table.root}: group_pattern needs image files, but {table.layout} images have no paths; "
            "remove group_pattern (or use a CSV manifest with a group column)"
        )
    parser = regex_parser(compile_group_pattern(text), kind or "group")
    records = [dataclasses.replace(r, group=parser.parse(r.ref)) for r in table.records]
    missed = [r.ref for r in records if r.group is None]
    if len(missed) == len(records):
        raise DataError(
            f"{table.root}: group_pattern '{text}' matches none of the {len(records):,} image paths "
            f"(e.g. {records[0].ref}; paths are relative to {table.root}); fix the pattern"
        )
    if missed:
        warnings.warn(
            f"{table.root}: group_pattern '{text}' finds no group in {len(missed):,} of {len(records):,} "
            f"image paths (e.g. {examples(missed)}); each of those images is a group of its own",
            stacklevel=2,
        )
    return dataclasses.replace(table, records=records, group_kind=parser.kind)


HeaderGroups = dict[int, str | None]
"""Pseudonym (``patient-0007``) per DICOM record index of a table; None where the header has no id."""


def apply_header_groups(table: ImageTable, groups: HeaderGroups) -> ImageTable:
    """A table of files with no groups gets its DICOM records' header pseudonyms (unchanged when it has
    groups, or no DICOM file has an id); a warning names DICOM files without an id."""
    if table.has_groups or not any(groups.values()):
        return table
    missing = [table.records[i].ref for i, group in sorted(groups.items()) if group is None]
    if missing:
        warnings.warn(
            f"{table.root}: {len(missing):,} of {len(groups):,} DICOM files have neither PatientID nor "
            f"StudyInstanceUID, or are unreadable (e.g. {examples(missing)}); each of those images is a group "
            "of its own",
            stacklevel=3,
        )
    records = [dataclasses.replace(r, group=groups.get(i)) for i, r in enumerate(table.records)]
    kind = "patient" if any(g and g.startswith("patient-") for g in groups.values()) else "study"
    return dataclasses.replace(table, records=records, group_kind=kind)


def header_groups(table: ImageTable) -> ImageTable:
    """A table of files with no groups gets each DICOM image's patient from its header: the PatientID, else
    the StudyInstanceUID, as a pseudonym (``patient-0007``, ``study-0003``) numbered by the first image of
    each in the table's order, so reruns on the same files split alike. The ids never leave this function.

    This reads every DICOM header; ``prepare_data`` takes the same pseudonyms from its decoding pass (or the
    pixel cache) instead, and ``data inspect`` from its check of every file."""
    if table.reader is not None or table.has_groups:
        return table
    paths = [table.path(record) for record in table.records]
    dicom = [i for i, path in enumerate(paths) if is_dicom(path)]
    if not dicom:
        return table
    from medssl.data.dicom import group_key, pseudonyms  # pydicom is imported only for DICOM data

    keys = file_map(group_key, [paths[i] for i in dicom], threads=4, holds_gil=True)
    return apply_header_groups(table, dict(zip(dicom, pseudonyms(keys), strict=True)))


def rename_kind(table: ImageTable, kind: str | None) -> ImageTable:
    """The table with its groups called ``kind`` (e.g. a CSV's patient column that holds slides)."""
    return table if kind is None else dataclasses.replace(table, group_kind=kind)


def group_ids(table: ImageTable, indices: np.ndarray | None = None) -> np.ndarray:
    """Group id per record (all records by default); an image without one is a group of its own."""
    chosen = range(len(table.records)) if indices is None else indices
    return np.array([table.records[i].group or f"\0image{i}" for i in chosen])


def class_groups(table: ImageTable) -> dict[str, Counter[str]]:
    """Images per group, per class name (only images that have a group)."""
    out: dict[str, Counter[str]] = {name: Counter() for name in table.classes}
    for record in table.records:
        if record.group:
            out[table.classes[record.label]][record.group] += 1
    return out


def group_warnings(table: ImageTable, folds: int | None = None) -> list[str]:
    """Classes that one group dominates (≥ 80 %), and classes in fewer groups than ``folds``, named."""
    kind, lines = table.group_kind, []
    for name, counts in class_groups(table).items():
        total = sum(counts.values())
        if not total:
            continue
        top, n = counts.most_common(1)[0]
        if n >= DOMINANT_SHARE * total:
            lines.append(
                f"class '{name}': {kind} {top} holds {n:,} of its {total:,} images ({n / total:.0%}); "
                f"a random split lets a model match the {kind} instead of the class, "
                f"and a grouped split puts most of the class on one side"
            )
        if folds and len(counts) < folds:
            lines.append(
                f"class '{name}' is in {plural(kind, len(counts))} ({examples(sorted(counts))}), "
                + (
                    f"fewer than {folds} folds: {folds - len(counts)} grouped test folds will have none of it; "
                    f"use folds: {len(counts)} or fewer, or judge it by the pooled out-of-fold results"
                    if len(counts) > 1
                    else f"so when it is tested no training image has it; add images from other {plural(kind)} or drop it"
                )
            )
    return lines
