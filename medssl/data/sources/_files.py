"""Shared helpers for folder-based adapters: a loop-safe walk and class-folder tables.

Adapters are strict by default: an empty class folder, or a class missing from an official split, is a
``DataError`` naming the folder. ``medssl data inspect`` loads inside ``lenient()`` so that it can list these
as problems instead of stopping at the first one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from medssl.data.decode import is_ignorable, is_image_file
from medssl.data.groups import GroupParser
from medssl.data.types import SPLITS, ImageRecord, ImageTable, class_index
from medssl.errors import DataError

SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
"""Official split folder names (lower case) and the split they stand for."""

_LENIENT: ContextVar[bool] = ContextVar("medssl_data_lenient", default=False)


@contextmanager
def lenient() -> Iterator[None]:
    """Within this block adapters keep empty classes in the table instead of raising (for ``inspect``)."""
    token = _LENIENT.set(True)
    try:
        yield
    finally:
        _LENIENT.reset(token)


def is_lenient() -> bool:
    return _LENIENT.get()


def require_dir(path: Path) -> None:
    """``DataError`` unless ``path`` is an existing folder."""
    if not path.exists():
        raise DataError(f"{path}: no such file or folder; check the --data path")
    if not path.is_dir():
        raise DataError(f"{path}: not a folder; pass the dataset folder (or a .csv/.npz file)")


def is_hidden(name: str) -> bool:
    """Folders to skip: hidden ones and archive clutter such as ``__MACOSX``."""
    return name.startswith((".", "__"))


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a link loop such as x -> x
        return False


def subfolders(path: Path) -> list[Path]:
    """Visible sub-folders of ``path`` (following links), sorted by name."""
    with os.scandir(path) as entries:
        return sorted(
            (Path(e.path) for e in entries if _is_dir(e) and not is_hidden(e.name)), key=lambda p: p.name
        )


def child(path: Path, name: str) -> Path | None:
    """The sub-folder of ``path`` called ``name`` ignoring case, if there is one."""
    if not path.is_dir():
        return None
    exact = path / name
    if exact.is_dir():
        return exact
    return next((p for p in subfolders(path) if p.name.lower() == name.lower()), None)


@dataclass
class Scan:
    """Files found under a folder: image candidates and everything skipped (both absolute, sorted)."""

    images: list[Path] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)


def _dir_key(entry: os.DirEntry) -> tuple[int, int] | None:
    try:
        stat = entry.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False


def walk(folder: Path, keep: Callable[[Path], bool] = lambda _: True) -> Scan:
    """Every file under ``folder``, following folder links but never a folder twice (no symlink loops).

    Image files (by suffix) become candidates, also when they are dangling links so that decoding names
    them; ``keep`` can drop candidates silently (e.g. other magnifications). Non-image files, OS clutter,
    FIFOs and other special files, and links back to folders already scanned are listed as ignored.
    """
    scan = Scan()
    root_stat = folder.stat()
    seen = {(root_stat.st_dev, root_stat.st_ino)}
    ancestors = {folder.resolve(), *folder.resolve().parents}
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            with os.scandir(current) as iterator:
                entries = sorted(iterator, key=lambda e: e.name)
        except OSError:
            scan.ignored.append(current)
            continue
        for entry in entries:
            path = Path(entry.path)
            if _is_dir(entry):
                key = _dir_key(entry)
                if is_hidden(entry.name) or key is None or key in seen or path.resolve() in ancestors:
                    scan.ignored.append(path)
                else:
                    seen.add(key)
                    pending.append(path)
            elif is_ignorable(path) or not is_image_file(path):
                scan.ignored.append(path)
            elif _is_file(entry) or not path.exists():
                if keep(path):
                    scan.images.append(path)
            else:
                scan.ignored.append(path)  # FIFO, socket or device named like an image: reading it could hang
    scan.images.sort()
    scan.ignored.sort()
    return scan


def stray_files(folder: Path) -> list[Path]:
    """Files (not folders) directly inside ``folder``, e.g. ``.DS_Store`` beside class folders."""
    with os.scandir(folder) as entries:
        return sorted(Path(e.path) for e in entries if not _is_dir(e))


def relative(paths: list[Path], root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() + ("/" if p.is_dir() else "") for p in paths]


def split_folders(path: Path) -> dict[str, Path]:
    """Official split folders (``train``, ``val``/``valid``/``validation``, ``test``) directly under ``path``."""
    found: dict[str, Path] = {}
    for folder in subfolders(path):
        split = SPLIT_NAMES.get(folder.name.lower())
        if split and split not in found:
            found[split] = folder
    return found


def has_split_layout(path: Path) -> bool:
    """``path`` holds ``train`` and ``test`` or ``val`` folders that themselves hold folders."""
    splits = split_folders(path)
    return "train" in splits and len(splits) > 1 and bool(subfolders(splits["train"]))


def class_folders(path: Path) -> dict[str | None, dict[str, Path]]:
    """``{split: {class: folder}}`` for ``<split>/<class>/`` layouts, else ``{None: {class: folder}}``."""
    if has_split_layout(path):
        return {
            split: {f.name: f for f in subfolders(folder)} for split, folder in split_folders(path).items()
        }
    return {None: {f.name: f for f in subfolders(path)}}


def case_clashes(names: Iterable[str]) -> list[list[str]]:
    """Class names that differ only in letter case (``NORMAL``, ``normal``): sets of two or more."""
    by_key: dict[str, list[str]] = {}
    for name in sorted(set(names)):
        by_key.setdefault(name.casefold(), []).append(name)
    return [same for same in by_key.values() if len(same) > 1]


def case_clash_text(clashes: list[list[str]], kind: str) -> str:
    """``labels 'NORMAL' and 'normal' differ only in letter case, so they would be two classes``."""
    shown = "; ".join(" and ".join(f"'{name}'" for name in same) for same in clashes)
    return f"{kind} {shown} differ only in letter case, so they would be {len(clashes[0])} classes"


def _check_classes(root: Path, folders: dict[str | None, dict[str, Path]], found: dict[Path, int]) -> None:
    """Strict mode: an empty class folder, a class absent from official train/test, two class folders that
    are the same folder (a link), or two whose names differ only in letter case is an error."""
    clashes = case_clashes(name for per_class in folders.values() for name in per_class)
    if clashes:
        raise DataError(f"{root}: {case_clash_text(clashes, 'class folders')}; merge them into one folder")
    for per_class in folders.values():
        seen: dict[Path, str] = {}
        for name, folder in sorted(per_class.items()):
            target = folder.resolve()
            if target in seen:
                raise DataError(
                    f"{folder}: class folder '{name}' is the same folder as '{seen[target]}' (a link), so its "
                    "images would be trained under two labels; remove the link or copy the right images"
                )
            seen[target] = name
        for folder in per_class.values():
            if found[folder] == 0:
                raise DataError(f"{folder}: class folder has no images; add images or remove the folder")
    classes = {name for per_class in folders.values() for name in per_class}
    for split in ("train", "test"):
        if split in folders and (missing := sorted(classes - set(folders[split]))):
            raise DataError(
                f"{root / split}: no folder for class(es) {missing} found in other splits; "
                "add them or remove the class everywhere"
            )


def _unused(root: Path, folders: dict[str | None, dict[str, Path]]) -> list[Path]:
    """Stray files beside class and split folders, and folders at ``root`` that no class uses."""
    used = {f for per_class in folders.values() for f in per_class.values()}
    parents = {f.parent for f in used} | {root}
    unused = [f for f in subfolders(root) if f not in used | parents]
    return unused + [file for parent in sorted(parents) for file in stray_files(parent)]


def folder_table(
    root: Path,
    layout: str,
    folders: dict[str | None, dict[str, Path]],
    groups: GroupParser | None = None,
    modality: str = "generic",
    keep: Callable[[Path], bool] = lambda _: True,
) -> ImageTable:
    """A table from class folders: ref = path relative to ``root``, label = class folder name.

    ``groups`` finds each image's group (patient, slide...) from its relative path.
    """
    names = sorted({name for per_class in folders.values() for name in per_class})
    if not names:
        raise DataError(
            f"{root}: no class folders found; expected <class>/<images> or train/<class>/<images>"
        )
    index = class_index(names)
    records: list[ImageRecord] = []
    ignored: list[Path] = []
    found: dict[Path, int] = {}
    for split in sorted(folders, key=lambda s: SPLITS.index(s) if s else -1):
        for name, folder in sorted(folders[split].items()):
            scan = walk(folder, keep)
            found[folder] = len(scan.images)
            ignored += scan.ignored
            for image in scan.images:
                ref = image.relative_to(root).as_posix()
                records.append(ImageRecord(ref, index[name], groups.parse(ref) if groups else None, split))
    ignored += _unused(root, folders)
    if not records:
        raise DataError(f"{root}: no image files found in the class folders; check the path and layout")
    if not is_lenient():
        _check_classes(root, folders, found)
    kind = groups.kind if groups else "group"
    return ImageTable(
        layout, root, names, records, ignored=relative(ignored, root), modality=modality, group_kind=kind
    )


def first_match(folder: Path, pattern: re.Pattern[str], limit: int = 64) -> bool:
    """Whether one of the first ``limit`` entries of ``folder`` has a name matching ``pattern``."""
    try:
        with os.scandir(folder) as entries:
            for i, entry in enumerate(entries):
                if i >= limit:
                    break
                if pattern.match(entry.name):
                    return True
    except OSError:
        return False
    return False
