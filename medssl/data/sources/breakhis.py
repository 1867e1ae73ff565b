"""BreaKHis breast tumour histology at 400X, benign vs malignant, in two layouts.

- Kaggle "BreaKHis 400X": ``{train,test}/{benign,malignant}/*.png`` (official split kept).
- The original archive: ``…/breast/{benign,malignant}/SOB/<subtype>/<patient>/400X/*.png``; only the 400X
  folders are used and there is no official split.

The patient (slide) id comes from the file name: ``SOB_B_A-14-22549AB-400-001.png`` → ``14-22549AB``.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePath

from medssl.data.groups import name_parser
from medssl.data.sources import Source, register
from medssl.data.sources._files import (
    child,
    class_folders,
    first_match,
    folder_table,
    has_split_layout,
    require_dir,
    split_folders,
)
from medssl.data.types import ImageTable
from medssl.errors import DataError

DESCRIPTION = (
    "BreaKHis 400X: {train,test}/{benign,malignant}/*.png (Kaggle) or "
    "breast/{benign,malignant}/SOB/<subtype>/<patient>/400X/*.png (original archive)"
)
CLASSES = ("benign", "malignant")
NAME = re.compile(r"^SOB_[BM]_[A-Z]+-(\d+-[0-9A-Za-z]+)-\d+-\d+", re.IGNORECASE)
MAGNIFICATION = "400X"


def patient_of(path: PurePath) -> str | None:
    """Slide/patient id from a BreaKHis file name, else from an original-layout patient folder."""
    match = NAME.match(path.name)
    if match:
        return match.group(1)
    if path.parent.name.upper() == MAGNIFICATION:
        folder = re.match(r"^SOB_[BM]_[A-Z]+_(.+)$", path.parent.parent.name, re.IGNORECASE)
        return folder.group(1) if folder else path.parent.parent.name
    return None


GROUPS = name_parser(patient_of, "patient")


def _kaggle_root(path: Path) -> Path | None:
    for candidate in (path, child(path, "BreaKHis 400X")):
        if candidate is not None and has_split_layout(candidate):
            train = split_folders(candidate)["train"]
            folders = [child(train, name) for name in CLASSES]
            if all(folders) and any(first_match(f, NAME) for f in folders if f):
                return candidate
    return None


def _archive_root(path: Path) -> Path | None:
    """The ``breast`` folder of the original archive, given it or one of its ancestors."""
    for parts in (
        (),
        ("breast",),
        ("histology_slides", "breast"),
        ("BreaKHis_v1", "histology_slides", "breast"),
    ):
        candidate: Path | None = path
        for part in parts:
            candidate = child(candidate, part) if candidate else None
        if candidate is not None and any(
            child(f, "SOB") for name in CLASSES if (f := child(candidate, name))
        ):
            return candidate
    return None


def detect(path: Path) -> bool:
    return path.is_dir() and (_kaggle_root(path) is not None or _archive_root(path) is not None)


def _at_400x(path: Path) -> bool:
    return path.parent.name.upper() == MAGNIFICATION


def load(path: Path) -> ImageTable:
    require_dir(path)
    if (root := _kaggle_root(path)) is None and has_split_layout(path):
        root = path  # forced --layout on Kaggle-like folders whose files were renamed
    if root is not None:
        return folder_table(root, "breakhis400x", class_folders(root), GROUPS, modality="histology")
    if (root := _archive_root(path)) is None:
        raise DataError(f"{path}: not a BreaKHis layout ({DESCRIPTION}); try --layout auto or folder")
    folders = {None: {name: f for name in CLASSES if (f := child(root, name)) is not None}}
    return folder_table(root, "breakhis400x", folders, GROUPS, modality="histology", keep=_at_400x)


register(Source(name="breakhis400x", detect=detect, load=load, description=DESCRIPTION))
