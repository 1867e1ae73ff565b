"""Kather et al. 2016 colorectal histology textures: eight class folders of 150x150 RGB TIFF tiles.

``Kather_texture_2016_image_tiles_5000/{01_TUMOR,…,08_EMPTY}/*.tif``; the path may be that folder or its
parent. There is no official split. Tiles were cut from 10 whole-slide images, and each file name names
its slide (``10009_CRC-Prim-HE-03_009.tif_Row_301_Col_151.tif`` → ``CRC-Prim-HE-03``): the group.
"""

from __future__ import annotations

import re
from pathlib import Path

from medssl.data.groups import regex_parser
from medssl.data.sources import Source, register
from medssl.data.sources._files import child, folder_table, require_dir, subfolders
from medssl.data.types import ImageTable
from medssl.errors import DataError

FOLDER = "Kather_texture_2016_image_tiles_5000"
CLASSES = (
    "01_TUMOR",
    "02_STROMA",
    "03_COMPLEX",
    "04_LYMPHO",
    "05_DEBRIS",
    "06_MUCOSA",
    "07_ADIPOSE",
    "08_EMPTY",
)
GROUPS = regex_parser(re.compile(r"CRC-Prim-HE-\d+", re.IGNORECASE), "slide")
DESCRIPTION = f"Kather 2016 colorectal textures: {FOLDER}/{{01_TUMOR,…,08_EMPTY}}/*.tif"


def _root(path: Path) -> Path | None:
    for candidate in (path, child(path, FOLDER)):
        if candidate is not None and {f.name.upper() for f in subfolders(candidate)} >= set(CLASSES):
            return candidate
    return None


def detect(path: Path) -> bool:
    return path.is_dir() and _root(path) is not None


def load(path: Path) -> ImageTable:
    require_dir(path)
    root = _root(path)
    if root is None:
        names = {f.name.upper() for f in subfolders(path)}
        if not names & set(CLASSES):
            raise DataError(
                f"{path}: not the Kather 2016 layout ({DESCRIPTION}); try --layout auto or folder"
            )
        root = path  # forced --layout with some class folders removed
    folders = {None: {f.name: f for f in subfolders(root) if f.name.upper() in CLASSES}}
    return folder_table(root, "kather2016", folders, GROUPS, modality="histology")


register(Source(name="kather2016", detect=detect, load=load, description=DESCRIPTION))
