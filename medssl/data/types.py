"""What a data source adapter returns: a table of images with labels, groups and official splits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medssl.rundir.split import PARTS

SPLITS = PARTS


@dataclass(frozen=True)
class ImageRecord:
    """One image: where it is, its class index, its group (if known) and its official split (if any).

    ``ref`` is a path relative to the table's root for file sources, or ``"#<index>"`` for in-memory
    sources (synthetic, MedMNIST) whose pixels come from ``ImageTable.reader``. ``group`` is the patient,
    slide, study or site the image comes from (``ImageTable.group_kind`` says which): every split keeps a
    group on one side.
    """

    ref: str
    label: int
    group: str | None = None
    split: str | None = None


Reader = Callable[[ImageRecord], np.ndarray]
"""Returns an image as a uint8 array, HxW (grayscale) or HxWx3 (RGB), at its native size."""


@dataclass
class ImageTable:
    """A dataset as found on disk, before splitting and decoding."""

    layout: str
    root: Path
    classes: list[str]
    records: list[ImageRecord]
    reader: Reader | None = None
    """Pixels for in-memory sources; ``None`` means records are files under ``root``."""
    ignored: list[str] = field(default_factory=list)
    """Files that were skipped as non-images (``.DS_Store``, ``Thumbs.db``...), relative to root."""
    modality: str = "generic"
    """Augmentation preset that suits the data: ``xray``, ``histology`` or ``generic``."""
    identity: str = ""
    """Stable text identifying the source when records are not files (e.g. synthetic parameters)."""
    group_kind: str = "group"
    """What a record's ``group`` is: ``patient``, ``slide``, ``study``, ``site`` or ``group``."""

    @property
    def labels(self) -> np.ndarray:
        return np.array([r.label for r in self.records], dtype=np.int64)

    @property
    def groups(self) -> list[str | None]:
        return [r.group for r in self.records]

    @property
    def has_groups(self) -> bool:
        return any(r.group for r in self.records)

    def path(self, record: ImageRecord) -> Path:
        return self.root / record.ref

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per official split (``all`` when there is none) and class name."""
        out: dict[str, dict[str, int]] = {}
        for record in self.records:
            split = record.split or "all"
            per_class = out.setdefault(split, dict.fromkeys(self.classes, 0))
            per_class[self.classes[record.label]] += 1
        return out


def class_index(names: Sequence[str]) -> dict[str, int]:
    """Sorted class names to indices, the convention of torchvision's ImageFolder."""
    return {name: i for i, name in enumerate(sorted(names))}
