"""``prepare_data``: source → table → cached pixels → split, the one entry point every stage uses."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from medssl.config import StrictModel
from medssl.data.cache import Pixels, load_pixels
from medssl.data.groups import (
    apply_group_pattern,
    apply_header_groups,
    compile_group_pattern,
    header_groups,
    rename_kind,
)
from medssl.data.intensity import IntensityConfig
from medssl.data.sources import layout_names, load_table
from medssl.data.sources.synthetic import load_synthetic
from medssl.data.splits import cross_validation, make_split, resolve_policy, straddling
from medssl.data.types import ImageTable
from medssl.errors import ConfigError, DataError
from medssl.rundir.data_record import DataChanged, data_changes, read_data_record, save_data_record
from medssl.rundir.split import SPLIT, Split, read_manifest, read_split_rows, save_split

SKIPPED_LIST = "skipped_images.txt"
"""Written in the run folder when ``skip_bad_images`` dropped files: one ``path: reason`` line per file."""

GroupKind = Literal["patient", "slide", "study", "site", "group"]


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
    layout: str = Field("auto", description="auto (detected), synthetic or a layout of data/sources/")
    image_size: int = Field(64, ge=16, le=1024)
    val_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0.0, lt=0.5)
    split_seed: int = 0
    split: Literal["auto", "grouped", "random"] = Field(
        "auto", description="grouped: no group in two parts; random: image by image; auto: grouped if known"
    )
    folds: int | None = Field(
        None,
        ge=2,
        le=20,
        description="K-fold cross-validation (no official test split; test_fraction unused); see prepare_folds",
    )
    group_pattern: str | None = Field(
        None,
        description="Regex on each image's relative path; its first capture group (or match) is the group",
    )
    group_kind: GroupKind | None = Field(
        None, description="What groups are (patient, slide, study, site); default: from the source"
    )
    intensity: IntensityConfig = Field(
        IntensityConfig(), description="How DICOM and 16-bit images become 0-255 (see README 'DICOM')"
    )
    skip_bad_images: bool = False
    cache_dir: str | None = None
    synthetic: SyntheticConfig = SyntheticConfig()

    @field_validator("layout")
    @classmethod
    def _known_layout(cls, value: str) -> str:
        if value not in layout_names():
            raise ValueError(f"layout '{value}' is unknown; choose one of: {', '.join(layout_names())}")
        return value

    @field_validator("group_pattern")
    @classmethod
    def _valid_pattern(cls, value: str | None) -> str | None:
        if value is not None:
            compile_group_pattern(value)
        return value


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
    policy: str = "grouped"
    """How the split was made: ``grouped`` (no group in two parts) or ``random`` (image by image)."""
    fold: int | None = None
    """Under cross-validation, which fold this is (1..``folds``); None for a single split."""
    folds: int | None = None
    digests: dict[str, str] = dataclasses.field(default_factory=dict)
    """Each file's content digest by image ref (see ``medssl.data.cache.Pixels``)."""

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
    """The source table named by ``config.path`` and ``config.layout``, grouped by ``group_pattern`` or by
    the source. Patients from DICOM headers are added by ``prepare_data``, which reads the headers while
    decoding (``header_groups`` reads them for a table alone)."""
    if config.path == "synthetic" or config.layout == "synthetic":
        s = config.synthetic
        table = load_synthetic(s.n_images, s.n_classes, s.size, s.seed)
    else:
        table = load_table(config.path, config.layout)
    if config.group_pattern is not None:
        return apply_group_pattern(table, config.group_pattern, config.group_kind)
    return rename_kind(table, config.group_kind)


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


def _skip_reasons(skipped: list[str]) -> list[str]:
    return [message.split("; remove or replace")[0] for message in skipped]


def _report_skipped(skipped: list[str], run_dir: Path | None) -> None:
    """Warn about the images ``skip_bad_images`` dropped (``save_prepared`` lists them all in
    ``run_dir/skipped_images.txt``)."""
    reasons = _skip_reasons(skipped)
    where = f"; all listed in {run_dir / SKIPPED_LIST}" if run_dir is not None else ""
    warnings.warn(f"skipped {len(skipped)} unreadable image(s), e.g. {reasons[0]}{where}", stacklevel=3)


def _report_blank(table: ImageTable, blank: list[str]) -> None:
    """Warn about images with one value everywhere: they teach an encoder nothing and often mean a broken
    export (a 16-bit image of one value is placed by that value, not made black)."""
    warnings.warn(
        f"{table.root}: {len(blank)} image(s) hold one value everywhere (blank), e.g. "
        f"{', '.join(blank[:3])}; check them (a failed export or an empty scan) or remove them",
        stacklevel=3,
    )


def _with_header_groups(table: ImageTable, pixels: Pixels) -> ImageTable:
    """The DICOM patients read while decoding (kept in the cache), or read now for an older cache."""
    if pixels.header_groups is None:
        return header_groups(table)
    return apply_header_groups(table, pixels.header_groups)


def _decoded(config: DataConfig, run_dir: Path | None, progress) -> tuple[ImageTable, Pixels]:
    table = read_table(config)
    _check_classes(table)
    cache_dir = Path(config.cache_dir) if config.cache_dir else None
    pixels = load_pixels(
        table, config.image_size, cache_dir, config.skip_bad_images, progress, config.intensity
    )
    if config.group_pattern is None:
        table = rename_kind(_with_header_groups(table, pixels), config.group_kind)
    table = _keep(table, pixels)
    _check_classes(table)
    if pixels.skipped:
        _report_skipped(pixels.skipped, run_dir)
    if pixels.blank:
        _report_blank(table, pixels.blank)
    return table, pixels


def _new_splits(config: DataConfig, table: ImageTable, policy: str) -> list[Split]:
    if config.folds:
        return cross_validation(table, config.folds, config.val_fraction, config.split_seed, policy)
    return [make_split(table, config.val_fraction, config.test_fraction, config.split_seed, policy)]


def _splits(
    config: DataConfig, table: ImageTable, pixels: Pixels, run_dir: Path | None
) -> tuple[list[Split], str]:
    """The config's split(s): read from ``run_dir/split.csv`` when it exists, after checking that the data is
    the data it was made from (else made anew; ``save_prepared`` writes them)."""
    policy = resolve_policy(table, config.split)
    manifest = run_dir / SPLIT if run_dir else None
    if manifest is None or not manifest.exists():
        return _new_splits(config, table, policy), policy
    classes = {record.ref: table.classes[record.label] for record in table.records}
    record = read_data_record(run_dir)
    if changes := data_changes(
        read_split_rows(manifest), record, classes, pixels.fingerprint, pixels.digests
    ):
        raise DataChanged(run_dir, changes)
    splits, saved_policy, has_folds = read_manifest(manifest, table)
    if not saved_policy and any(straddling(table, split) for split in splits):
        saved_policy = "random"  # written before policies were recorded, and it splits groups
    saved = f"{len(splits)} folds" if has_folds else "one split"
    asked = f"{config.folds} folds" if config.folds else "one split"
    if saved != asked or saved_policy not in ("", policy):
        raise DataError(
            f"{manifest}: holds {saved} ({saved_policy or 'no policy recorded'}) but the config asks for "
            f"{asked} ({policy}); use a new output folder, or delete the manifest to re-split"
        )
    return splits, policy


def prepare_folds(
    config: DataConfig, run_dir: Path | None = None, progress=None, write: bool = True
) -> list[PreparedData]:
    """Every split the config asks for, decoded once: K folds under ``folds: K``, else the one split.

    All folds share one image array and one ``run_dir/split.csv`` (a row per image and fold, with a
    ``fold`` column 1..K). Fold ``k`` is ``result[k - 1]``; its ``fold`` field says so. A saved split is
    reused only while the data is the data it was made from (``DataChanged`` otherwise). ``write=False``
    writes nothing into ``run_dir`` (a study saves the splits once every check has passed).
    """
    table, pixels = _decoded(config, run_dir, progress)
    splits, policy = _splits(config, table, pixels, run_dir)
    folds = len(splits) if config.folds else None
    prepared = [
        PreparedData(
            table,
            pixels.images,
            split,
            pixels.fingerprint,
            pixels.skipped,
            config.name,
            policy=policy,
            fold=k if folds else None,
            folds=folds,
            digests=pixels.digests,
        )
        for k, split in enumerate(splits, start=1)
    ]
    if write and run_dir is not None:
        save_prepared(prepared, run_dir)
    return prepared


def save_prepared(prepared: list[PreparedData], run_dir: Path) -> None:
    """Write the split of ``prepared`` (the folds of one dataset) into ``run_dir``, with the record of the data
    it was made from, unless ``split.csv`` is already there; and the list of skipped images."""
    first = prepared[0]
    if first.skipped:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / SKIPPED_LIST).write_text("".join(f"{line}\n" for line in _skip_reasons(first.skipped)))
    if (run_dir / SPLIT).exists():
        return
    splits = [data.split for data in prepared]
    save_split(run_dir / SPLIT, first.table, splits, first.policy, folds=first.folds is not None)
    save_data_record(run_dir, first.fingerprint, first.digests)


def prepare_data(
    config: DataConfig, run_dir: Path | None = None, progress=None, fold: int | None = None
) -> PreparedData:
    """Load, decode (cached) and split a dataset; with ``run_dir`` the split manifest is saved/reused there.

    Under cross-validation (``config.folds``) ``fold`` (1..K) picks the fold; ``prepare_folds`` gives all.
    """
    if config.folds and fold is None:
        raise ConfigError(
            f"data.folds: {config.folds} asks for cross-validation, which runs fold by fold (the benchmark "
            "grid); for a single run remove data.folds"
        )
    if fold is not None and not 1 <= fold <= (config.folds or 0):
        raise ConfigError(f"fold {fold} does not exist; data.folds is {config.folds} (folds are 1..K)")
    prepared = prepare_folds(config, run_dir, progress)
    return prepared[fold - 1] if fold else prepared[0]
