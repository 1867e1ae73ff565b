"""``prepare_data``: source → table → cached pixels → split, the one entry point every stage uses."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from medssl.config import StrictModel
from medssl.data.cache import Pixels, load_pixels
from medssl.data.sources import load_table
from medssl.data.sources.synthetic import load_synthetic
from medssl.data.splits import Split, load_split, make_split, save_split
from medssl.data.types import ImageTable
from medssl.errors import DataError

SKIPPED_LIST = "skipped_images.txt"
"""Written in the run folder when ``skip_bad_images`` dropped files: one ``path: reason`` line per file."""

Layout = Literal["auto", "chest_xray", "breakhis400x", "kather2016", "folder", "medmnist", "csv", "synthetic"]


class SyntheticConfig(StrictModel):
    n_images: int = Field(600, ge=20)
    n_classes: int = Field(4, ge=2, le=6)
    size: int = Field(64, ge=16, le=512)
    seed: int = 0


class DataConfig(StrictModel):
    """Where the images are and how to split and decode them."""

    name: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.-]+$", description="Name for run folders and tables"
    )
    path: str = "synthetic"
    layout: Layout = "auto"
    image_size: int = Field(64, ge=16, le=1024)
    val_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0.0, lt=0.5)
    split_seed: int = 0
    skip_bad_images: bool = False
    cache_dir: str | None = None
    synthetic: SyntheticConfig = SyntheticConfig()


@dataclass
class PreparedData:
    """Decoded images with labels and a split; images are (N, H, W, C) uint8 (C=1 grayscale, 3 colour)."""

    table: ImageTable
    images: np.ndarray
    split: Split
    fingerprint: str
    skipped: list[str]
    label: str | None = None
    """The dataset's name in a study config (used for run folders); defaults to the source's name."""

    @property
    def labels(self) -> np.ndarray:
        return self.table.labels

    @property
    def classes(self) -> list[str]:
        return self.table.classes

    @property
    def channels(self) -> int:
        return int(self.images.shape[-1])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1])

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        if self.table.layout == "synthetic":
            return self.table.layout
        return (
            Path(self.table.root).resolve().stem or "data"
        )  # resolved: a path ending in '..' names its folder

    def part(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(images, labels) of one split part."""
        indices = self.split[name]
        return self.images[indices], self.labels[indices]


def read_table(config: DataConfig) -> ImageTable:
    """The source table named by ``config.path`` (``synthetic`` or a path) and ``config.layout``."""
    if config.path == "synthetic" or config.layout == "synthetic":
        s = config.synthetic
        return load_synthetic(s.n_images, s.n_classes, s.size, s.seed)
    return load_table(config.path, config.layout)


def _keep(table: ImageTable, pixels: Pixels) -> ImageTable:
    if len(pixels.kept) == len(table.records):
        return table
    return dataclasses.replace(table, records=[table.records[i] for i in pixels.kept])


def _check_classes(table: ImageTable) -> None:
    counts = np.bincount(table.labels, minlength=len(table.classes))
    if len(table.classes) < 2:
        raise DataError(f"{table.root}: only one class ({table.classes}); classification needs at least two")
    empty = [name for name, count in zip(table.classes, counts, strict=True) if count == 0]
    if empty:
        raise DataError(
            f"{table.root}: class folder(s) {empty} contain no usable images; add images or remove them"
        )


def _report_skipped(skipped: list[str], run_dir: Path | None) -> None:
    """Warn about the images ``skip_bad_images`` dropped and list them all in ``run_dir/skipped_images.txt``."""
    reasons = [message.split("; remove or replace")[0] for message in skipped]
    where = ""
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / SKIPPED_LIST).write_text("".join(f"{line}\n" for line in reasons))
        where = f"; all listed in {run_dir / SKIPPED_LIST}"
    warnings.warn(f"skipped {len(skipped)} unreadable image(s), e.g. {reasons[0]}{where}", stacklevel=3)


def prepare_data(config: DataConfig, run_dir: Path | None = None, progress=None) -> PreparedData:
    """Load, decode (cached) and split a dataset; with ``run_dir`` the split manifest is saved/reused there."""
    table = read_table(config)
    _check_classes(table)
    cache_dir = Path(config.cache_dir) if config.cache_dir else None
    pixels = load_pixels(table, config.image_size, cache_dir, config.skip_bad_images, progress)
    table = _keep(table, pixels)
    _check_classes(table)
    if pixels.skipped:
        _report_skipped(pixels.skipped, run_dir)
    manifest = run_dir / "split.csv" if run_dir else None
    if manifest is not None and manifest.exists():
        split = load_split(manifest, table)
    else:
        split = make_split(table, config.val_fraction, config.test_fraction, config.split_seed)
        if manifest is not None:
            save_split(manifest, table, split)
    return PreparedData(table, pixels.images, split, pixels.fingerprint, pixels.skipped, config.name)
