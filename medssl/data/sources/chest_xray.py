"""Kermany et al. pediatric chest X-rays: ``{train,test[,val]}/{NORMAL,PNEUMONIA}/*.jpeg``.

The official split comes from the folders; the patient id from the file name (``person12_virus_3.jpeg``
→ ``person12``, ``IM-0115-0001.jpeg`` → ``IM-0115``, ``NORMAL2-IM-0283-0001.jpeg`` → ``NORMAL2-IM-0283``).
Kaggle's download nests the folders in ``chest_xray/``; either folder may be given.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePath

from medssl.data.groups import name_parser
from medssl.data.sources import Source, register
from medssl.data.sources._files import (
    child,
    class_folders,
    folder_table,
    has_split_layout,
    require_dir,
    split_folders,
)
from medssl.data.types import ImageTable
from medssl.errors import DataError

DESCRIPTION = "Kermany pediatric chest X-rays: {train,test[,val]}/{NORMAL,PNEUMONIA}/*.jpeg"
CLASSES = ("NORMAL", "PNEUMONIA")
PATIENT = re.compile(r"^(person\d+)_|^((?:NORMAL\d*-)?IM-\d+)-", re.IGNORECASE)


def patient_of(path: PurePath) -> str | None:
    """Patient id encoded in a Kermany file name, or ``None`` for names that do not follow the scheme."""
    match = PATIENT.match(path.name)
    return (match.group(1) or match.group(2)) if match else None


GROUPS = name_parser(patient_of, "patient")


def _root(path: Path) -> Path | None:
    """``path`` or its ``chest_xray`` sub-folder when it has the split/class layout."""
    for candidate in (path, child(path, "chest_xray")):
        if candidate is not None and has_split_layout(candidate):
            train = split_folders(candidate)["train"]
            if all(child(train, name) for name in CLASSES):
                return candidate
    return None


def detect(path: Path) -> bool:
    return path.is_dir() and _root(path) is not None


def load(path: Path) -> ImageTable:
    require_dir(path)
    root = _root(path)
    if root is None:
        raise DataError(f"{path}: not the chest_xray layout ({DESCRIPTION}); try --layout auto or folder")
    return folder_table(root, "chest_xray", class_folders(root), GROUPS, modality="xray")


register(Source(name="chest_xray", detect=detect, load=load, description=DESCRIPTION))
