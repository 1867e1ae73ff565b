"""Any folder of class folders: ``<class>/<images>`` or ``{train,test[,val]}/<class>/<images>``.

The catch-all layout, tried last. Sub-folders of a class folder are searched too. There are no groups
(patients, slides...) unless ``group_pattern`` finds them in the paths.
"""

from __future__ import annotations

from pathlib import Path

from medssl.data.sources import Source, register
from medssl.data.sources._files import class_folders, folder_table, require_dir, subfolders
from medssl.data.types import ImageTable

DESCRIPTION = "generic <class>/<images> or {train,test[,val]}/<class>/<images>"


def detect(path: Path) -> bool:
    return path.is_dir() and bool(subfolders(path))


def load(path: Path) -> ImageTable:
    require_dir(path)
    return folder_table(path, "folder", class_folders(path))


register(Source(name="folder", detect=detect, load=load, description=DESCRIPTION))
