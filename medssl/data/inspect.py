"""``medssl data inspect``: what a dataset looks like and what is wrong with it, before any training.

Every file is read once (hashed, and its header parsed by PIL without decoding pixels); only files whose
end-of-image marker is missing, files whose pixels follow the intensity rule (DICOM, 16-bit PNG/TIFF: they
are checked for decoding and for one value everywhere) and the sample-grid images are decoded. DICOM files
add a block of technical values (patients and studies are counted, never shown). In-memory sources
(MedMNIST, synthetic) are hashed on their decoded pixels.
"""

from __future__ import annotations

import functools
import hashlib
import io
import re
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError

from medssl.data.decode import (
    HIGH_DEPTH_MODES,
    BadImageError,
    decode_image,
    is_dicom,
    pixel_limit,
    resize,
)
from medssl.data.groups import (
    apply_group_pattern,
    apply_header_groups,
    class_groups,
    group_warnings,
    plural,
    rename_kind,
)
from medssl.data.intensity import IntensityConfig
from medssl.data.sources import SOURCES, load_table
from medssl.data.sources._files import case_clash_text, case_clashes, lenient
from medssl.data.sources.synthetic import load_synthetic
from medssl.data.splits import MIN_CLASS_IMAGES
from medssl.data.types import SPLITS, ImageTable
from medssl.data.workers import file_map
from medssl.errors import DataError
from medssl.rundir.paths import picture_path

if TYPE_CHECKING:
    from medssl.data.dicom import DicomFacts

EXAMPLES = 3
"""How many example names a problem line shows."""
LABEL_WIDTH = 150


@dataclass
class FileCheck:
    """What one read of a file tells: content hash, header size and mode, or why it is unreadable."""

    digest: bytes | None = None
    size: tuple[int, int] | None = None
    mode: str | None = None
    error: str | None = None
    suspect: bool = False
    """The end-of-image marker is missing: the file may be truncated (confirmed by decoding)."""
    blank: bool = False
    """Decoded (DICOM, 16-bit), it holds one value everywhere."""
    dicom: DicomFacts | None = None


@dataclass
class InspectReport:
    """Everything ``medssl data inspect`` prints; ``to_text`` formats it."""

    name: str
    path: str
    layout: str
    detected: bool
    description: str
    modality: str
    classes: list[str]
    counts: dict[str, dict[str, int]]
    sizes: Counter[tuple[int, int]]
    modes: Counter[str]
    checked: int
    groups: dict[str, int]
    """Distinct groups per official split (``all`` when there is none)."""
    with_group: int
    group_kind: str = "group"
    groups_per_class: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    grid_path: Path | None = None
    seconds: float = 0.0
    intensity: str | None = None
    """How DICOM and 16-bit values become 0-255, shown where the data has such files."""
    dicom: list[str] = field(default_factory=list)
    """The DICOM block: patients, studies, modalities, photometric interpretations, bit depths, windows."""

    @property
    def n_images(self) -> int:
        return sum(sum(per_class.values()) for per_class in self.counts.values())

    def to_text(self) -> str:
        how = "detected" if self.detected else "given with --layout"
        lines = [
            f"dataset    {self.name}  ({self.path})",
            f"layout     {self.layout} ({how}): {self.description}",
            f"modality   {self.modality}",
            f"classes    {len(self.classes)}: {', '.join(self.classes)}",
            f"images     {self.n_images:,}",
            *_count_table(self.classes, self.counts, self._groups_row()),
            f"groups     {self._groups_text()}",
            f"sizes      {_sizes_text(self.sizes)}  ({self.checked:,} images checked)",
            f"modes      {', '.join(f'{mode} {n:,}' for mode, n in self.modes.most_common())}",
            *self.dicom,
            *([f"intensity  {self.intensity}"] if self.intensity else []),
            f"problems   {len(self.problems) or 'none found'}",
            *(f"  - {problem}" for problem in self.problems),
        ]
        if self.grid_path is not None:
            lines.append(f"samples    {self.grid_path}")
        lines.append(f"time       {self.seconds:.1f} s")
        return "\n".join(lines)

    def _groups_text(self) -> str:
        if not self.with_group:
            return (
                "unknown (no patient, slide or other group ids; every image is its own group when "
                "splitting; set group_pattern to find them in the paths)"
            )
        kind = self.group_kind
        if list(self.groups) == ["all"]:
            parts = plural(kind, self.groups["all"])
        else:
            parts = f"{plural(kind)}: " + ", ".join(f"{split} {n:,}" for split, n in self.groups.items())
        coverage = (
            "every image has one"
            if self.with_group == self.n_images
            else f"{self.with_group:,} images have one"
        )
        return f"{parts} ({coverage})"

    def _groups_row(self) -> tuple[str, dict[str, int], int] | None:
        if not self.with_group:
            return None
        return plural(self.group_kind), self.groups_per_class, sum(self.groups.values())


def _count_table(
    classes: list[str], counts: dict[str, dict[str, int]], extra: tuple[str, dict[str, int], int] | None
) -> list[str]:
    """Images per split and class; ``extra`` is one more row (groups per class) with its total."""
    width = max(8, *(len(name) + 2 for name in classes))
    header = " " * 13 + "".join(f"{name:>{width}}" for name in classes) + f"{'total':>{width}}"
    rows = [header]
    for split in sorted(counts, key=lambda s: SPLITS.index(s) if s in SPLITS else -1):
        per_class = counts[split]
        cells = "".join(f"{per_class[name]:>{width},}" for name in classes)
        rows.append(f"  {split:<11}{cells}{sum(per_class.values()):>{width},}")
    if extra is not None:
        label, per_class, total = extra
        cells = "".join(f"{per_class.get(name, 0):>{width},}" for name in classes)
        rows.append(f"  {label:<11}{cells}{total:>{width},}")
    return rows


def _sizes_text(sizes: Counter[tuple[int, int]]) -> str:
    if not sizes:
        return "unknown"
    common = ", ".join(f"{w}x{h} ({n:,})" for (w, h), n in sizes.most_common(3))
    if len(sizes) <= 3:
        return common
    widths = [w for w, _ in sizes]
    heights = [h for _, h in sizes]
    return (
        f"{len(sizes):,} different sizes, width {min(widths)}-{max(widths)}, "
        f"height {min(heights)}-{max(heights)}; most common {common}"
    )


def _examples(items: list[str], n: int = EXAMPLES) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" … (+{len(items) - n} more)" if len(items) > n else "")


def _ends_cleanly(data: bytes, image_format: str | None) -> bool:
    """False when a JPEG lacks its end-of-image marker or a PNG its IEND chunk (a truncated download)."""
    if image_format == "JPEG":
        return data.rstrip(b"\x00\r\n ")[-2:] == b"\xff\xd9"
    if image_format == "PNG":
        return b"IEND" in data[-16:]
    return True


def _decoded_check(check: FileCheck, decode: Callable[[], np.ndarray]) -> FileCheck:
    """``check`` with the outcome of decoding: its error, or whether it holds one value everywhere."""
    try:
        array = decode()
    except BadImageError as error:
        check.error = str(error).split("; remove")[0]
        return check
    check.blank = bool(array.min() == array.max())
    return check


def _check_dicom(path: Path, data: bytes, digest: bytes, intensity: IntensityConfig) -> FileCheck:
    """A DICOM file's technical values, decoded by the intensity rule (to find what would be refused)."""
    from medssl.data import dicom  # pydicom is imported only for DICOM data

    try:
        ds = dicom.parse(data, path)
    except BadImageError as error:
        return FileCheck(digest, error=str(error).split("; remove")[0])
    facts = dicom.DicomFacts.of(ds)
    size = (int(ds.get("Columns") or 0), int(ds.get("Rows") or 0))
    check = FileCheck(digest, size, f"DICOM {facts.photometric}", dicom=facts)
    return _decoded_check(check, lambda: dicom.dataset_pixels(ds, intensity, path))


def check_file(path: Path, intensity: IntensityConfig | None = None) -> FileCheck:
    """Read ``path`` once: hash it and parse its header (8-bit pixels are not decoded; DICOM and 16-bit
    images are, by ``intensity``)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        return FileCheck(error=f"{path}: unreadable ({error.strerror or error})")
    digest = hashlib.blake2b(data, digest_size=16).digest()
    if not data:
        return FileCheck(digest, error=f"{path}: empty file (0 bytes)")
    intensity = intensity or IntensityConfig()
    if is_dicom(path, data):
        return _check_dicom(path, data, digest, intensity)
    try:
        with Image.open(io.BytesIO(data)) as image:
            size, mode, image_format = image.size, image.mode, image.format
    except Image.DecompressionBombError:
        return FileCheck(digest, error=f"{path}: refused as a possible decompression bomb")
    except UnidentifiedImageError:
        return FileCheck(digest, error=f"{path}: not an image file (or an unsupported format)")
    except (OSError, ValueError, SyntaxError) as error:
        return FileCheck(digest, error=f"{path}: corrupt image header ({error})")
    if size[0] * size[1] > pixel_limit():
        return FileCheck(
            digest, size, mode, f"{path}: {size[0]}x{size[1]} pixels, refused as a decompression bomb"
        )
    check = FileCheck(digest, size, mode, suspect=not _ends_cleanly(data, image_format))
    if mode in HIGH_DEPTH_MODES:
        return _decoded_check(check, lambda: decode_image(path, intensity))
    return check


def _check_files(table: ImageTable, intensity: IntensityConfig) -> list[FileCheck]:
    paths = [table.path(r) for r in table.records]
    check = functools.partial(check_file, intensity=intensity)
    with warnings.catch_warnings():  # once around the pool: the filter list is global, not per thread
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        checks = list(file_map(check, paths, threads=8, holds_gil=any(map(is_dicom, paths))))
    for record, check in zip(table.records, checks, strict=True):
        if check.suspect:
            try:
                decode_image(table.path(record), intensity)
            except BadImageError as error:
                check.error = str(error).split("; remove")[0]
    return checks


def _check_arrays(table: ImageTable) -> list[FileCheck]:
    assert table.reader is not None
    checks = []
    for record in table.records:
        array = np.ascontiguousarray(table.reader(record))
        digest = hashlib.blake2b(array.tobytes(), digest_size=16).digest()
        mode = "L" if array.ndim == 2 else "RGB"
        checks.append(FileCheck(digest, (array.shape[1], array.shape[0]), mode))
    return checks


def _kept_together(table: ImageTable, group: list[int]) -> bool:
    """Identical images that a grouped split keeps on one side: one group, or all in the official test set."""
    records = [table.records[i] for i in group]
    same_group = records[0].group is not None and len({r.group for r in records}) == 1
    return same_group or all(r.split == "test" for r in records)


def _duplicate_problems(table: ImageTable, checks: list[FileCheck]) -> list[str]:
    """Identical images across the official train/test sides, with different labels, or anywhere."""
    groups: dict[bytes, list[int]] = defaultdict(list)
    for i, check in enumerate(checks):
        if check.digest is not None and check.error is None:
            groups[check.digest].append(i)
    sets = [g for g in groups.values() if len(g) > 1]
    refs = [r.ref for r in table.records]
    problems = []
    across, rest = [], []
    for group in sets:
        train_side = [i for i in group if table.records[i].split != "test"]
        test_side = [i for i in group if table.records[i].split == "test"]
        if train_side and test_side:
            across += [f"{refs[t]} = {refs[train_side[0]]}" for t in test_side]
        else:
            rest.append(group)
    if across:
        problems.append(f"{len(across)} test images are identical to train/val images: {_examples(across)}")
    conflicting = [
        " = ".join(refs[i] for i in g[:2]) for g in sets if len({table.records[i].label for i in g}) > 1
    ]
    if conflicting:
        problems.append(
            f"{len(conflicting)} sets of identical images have different labels: {_examples(conflicting)}"
        )
    for kept, text in (
        (False, "a random split may put copies on both sides"),
        (
            True,
            f"each within one {table.group_kind} or the official test set, so splits keep copies together",
        ),
    ):
        chosen = [g for g in rest if _kept_together(table, g) == kept]
        if chosen:
            shown = [" = ".join(refs[i] for i in g[:2]) for g in chosen]
            extra = sum(len(g) - 1 for g in chosen)
            problems.append(f"{extra} duplicate images ({len(chosen)} sets; {text}): {_examples(shown)}")
    return problems


def _group_problems(table: ImageTable) -> list[str]:
    sides: dict[str, set[str]] = defaultdict(set)
    for record in table.records:
        if record.group and record.split:
            sides[record.group].add("test" if record.split == "test" else "train")
    both = sorted(p for p, s in sides.items() if len(s) > 1)
    if not both:
        return []
    return [
        f"{plural(table.group_kind, len(both))} {'has' if len(both) == 1 else 'have'} images in both the "
        f"official train/val and test folders: "
        f"{_examples(both)}"
    ]


def _class_problems(table: ImageTable) -> list[str]:
    problems = []
    if len(table.classes) < 2:
        problems.append(f"only one class ({', '.join(table.classes)}); classification needs at least two")
    if clashes := case_clashes(table.classes):
        problems.append(f"{case_clash_text(clashes, 'classes')}; use one spelling for each class")
    counts = table.counts()
    for name in table.classes:
        total = sum(per_class[name] for per_class in counts.values())
        to_split = total - counts.get("test", {}).get(name, 0)  # what the split holds out from
        needed = MIN_CLASS_IMAGES if "test" not in counts else 2  # one hold-out fewer with an official test
        if total == 0:
            problems.append(f"class '{name}' has no images")
        elif to_split < needed:
            problems.append(
                f"class '{name}' has {to_split} images outside the test split; a train/val/test split needs "
                f"at least {needed}"
            )
        else:
            problems += [
                f"class '{name}' has no images in {s}" for s, per in counts.items() if per[name] == 0
            ]
    return problems


def _groups(table: ImageTable) -> tuple[dict[str, int], int]:
    per_split: dict[str, set[str]] = defaultdict(set)
    for record in table.records:
        if record.group:
            per_split[record.split or "all"].add(record.group)
    ordered = {s: len(per_split[s]) for s in (*SPLITS, "all") if s in per_split}
    return ordered, sum(1 for r in table.records if r.group)


def _picks(table: ImageTable, per_class: int) -> dict[int, list[int]]:
    """Up to ``per_class`` record indices per class, evenly spread over the class (so over splits too)."""
    by_class: dict[int, list[int]] = defaultdict(list)
    for i, record in enumerate(table.records):
        by_class[record.label].append(i)
    return {
        label: [members[int(j)] for j in np.unique(np.linspace(0, len(members) - 1, per_class).round())]
        for label, members in by_class.items()
    }


def _tile(table: ImageTable, index: int, size: int, intensity: IntensityConfig) -> np.ndarray:
    record = table.records[index]
    array = table.reader(record) if table.reader is not None else decode_image(table.path(record), intensity)
    array = resize(np.ascontiguousarray(array), size)
    return np.repeat(array[..., None], 3, axis=2) if array.ndim == 2 else array


def write_grid(
    table: ImageTable,
    path: Path,
    size: int = 64,
    per_class: int = 8,
    intensity: IntensityConfig | None = None,
) -> dict[int, str]:
    """A PNG with one row of sample images per class; returns decode errors by record (tiles left dark red)."""
    intensity = intensity or IntensityConfig()
    picks = _picks(table, per_class)
    gap = 2
    canvas = Image.new(
        "RGB", (LABEL_WIDTH + per_class * (size + gap), len(table.classes) * (size + gap)), "white"
    )
    draw = ImageDraw.Draw(canvas)
    errors: dict[int, str] = {}
    counts = Counter(r.label for r in table.records)
    for row, name in enumerate(table.classes):
        top = row * (size + gap)
        draw.text((4, top + size // 2 - 12), name[:22], fill="black")
        draw.text((4, top + size // 2 + 2), f"{counts[row]:,} images", fill="gray")
        for column, index in enumerate(picks.get(row, [])):
            left = LABEL_WIDTH + column * (size + gap)
            try:
                canvas.paste(Image.fromarray(_tile(table, index, size, intensity)), (left, top))
            except BadImageError as error:
                errors[index] = str(error).split("; remove")[0]
                draw.rectangle((left, top, left + size - 1, top + size - 1), fill=(120, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return errors


def _load(
    path: str | Path, layout: str, group_pattern: str | None, group_kind: str | None
) -> tuple[ImageTable, list[str]]:
    """The table, grouped by ``group_pattern`` if given, and the warnings that loading and grouping gave
    (e.g. empty group cells of a CSV)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if str(path) == "synthetic" or layout == "synthetic":
            table = load_synthetic()
        else:
            with lenient():
                table = load_table(path, layout)
        if group_pattern is None:
            table = rename_kind(table, group_kind)
        else:
            table = apply_group_pattern(table, group_pattern, group_kind)
    where = (f"{table.root}: ", f"{Path(path).expanduser()}: ")
    return table, [str(w.message).removeprefix(where[0]).removeprefix(where[1]) for w in caught]


def _header_groups(
    table: ImageTable, checks: list[FileCheck], group_kind: str | None
) -> tuple[ImageTable, list[str]]:
    """The DICOM patients that the check of every file read (as pseudonyms), and the warnings they gave."""
    dicom = {i: check.dicom.group_key for i, check in enumerate(checks) if check.dicom is not None}
    if not dicom:
        return table, []
    from medssl.data.dicom import pseudonyms

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = apply_header_groups(table, dict(zip(dicom, pseudonyms(dicom.values()), strict=True)))
    return rename_kind(table, group_kind), [str(w.message).removeprefix(f"{table.root}: ") for w in caught]


def _name(path: str | Path, table: ImageTable) -> str:
    if table.layout == "synthetic":
        return "synthetic"
    given = Path(path)
    name = given.stem if given.is_file() else Path(table.root).stem if table.reader else Path(table.root).name
    return re.sub(r"[^\w.-]+", "_", name) or "dataset"


def inspect_dataset(
    path: str | Path,
    layout: str = "auto",
    image_size: int = 64,
    grid_path: Path | str | None = None,
    per_class: int = 8,
    group_pattern: str | None = None,
    group_kind: str | None = None,
    folds: int | None = 5,
    intensity: IntensityConfig | None = None,
) -> InspectReport:
    """Inspect a dataset (any ``--data`` value) and write a sample grid (default ``./<name>-samples.png``).

    ``group_pattern``/``group_kind`` group images as ``DataConfig`` does; ``folds`` is the cross-validation
    the warnings check (classes in fewer groups than folds); ``intensity`` decodes DICOM and 16-bit images.
    """
    intensity = intensity or IntensityConfig()
    start = time.perf_counter()
    table, grouping = _load(path, layout, group_pattern, group_kind)
    if not table.records:
        raise DataError(f"{path}: no images found; check the path and layout")
    checks = _check_files(table, intensity) if table.reader is None else _check_arrays(table)
    if group_pattern is None:
        table, header_warnings = _header_groups(table, checks, group_kind)
        grouping += header_warnings
    unreadable = [c.error for c in checks if c.error]
    readable = [c for c in checks if not c.error]
    problems = [f"{len(unreadable)} unreadable images: {_examples(unreadable)}"] if unreadable else []
    if table.ignored:
        problems.append(f"{len(table.ignored)} non-image files ignored: {_examples(table.ignored)}")
    problems += _class_problems(table) + _duplicate_problems(table, checks) + _group_problems(table)
    official_test = any(r.split == "test" for r in table.records)  # no cross-validation then
    problems += grouping + group_warnings(table, None if official_test else folds)
    problems += _pixel_problems(table, checks)
    name = _name(path, table)
    grid = picture_path(Path.cwd() if grid_path is None else grid_path, path, f"{name}-samples.png")
    grid_errors = write_grid(table, grid, image_size, per_class, intensity)
    new_errors = [error for i, error in grid_errors.items() if not checks[i].error]
    if new_errors:
        problems.insert(0, f"{len(new_errors)} sample images failed to decode: {_examples(new_errors)}")
    groups, with_group = _groups(table)
    source = SOURCES.get(table.layout)
    return InspectReport(
        name=name,
        path=str(path),
        layout=table.layout,
        detected=layout == "auto",
        description=source.description if source else "generated stained-tissue-like images",
        modality=table.modality,
        classes=table.classes,
        counts=table.counts(),
        sizes=Counter(c.size for c in readable if c.size),
        modes=Counter(c.mode for c in readable if c.mode),
        checked=len(checks),
        groups=groups,
        with_group=with_group,
        group_kind=table.group_kind,
        groups_per_class={name: len(c) for name, c in class_groups(table).items()},
        problems=problems,
        grid_path=grid,
        seconds=time.perf_counter() - start,
        intensity=_intensity_text(checks, intensity),
        dicom=_dicom_lines(checks),
    )


def _pixel_problems(table: ImageTable, checks: list[FileCheck]) -> list[str]:
    """Blank images (one value everywhere) and mixtures of DICOM technical values."""
    problems = []
    blank = [r.ref for r, c in zip(table.records, checks, strict=True) if c.blank and not c.error]
    if blank:
        problems.append(
            f"{len(blank)} images hold one value everywhere (blank: a failed export or an empty scan): "
            f"{_examples(blank)}"
        )
    facts = [c.dicom for c in checks if c.dicom is not None]
    if facts:
        from medssl.data.dicom import mixtures

        problems += mixtures(facts)
    return problems


def _dicom_lines(checks: list[FileCheck]) -> list[str]:
    facts = [c.dicom for c in checks if c.dicom is not None]
    if not facts:
        return []
    from medssl.data.dicom import summary_lines

    return summary_lines(facts)


def _intensity_text(checks: list[FileCheck], intensity: IntensityConfig) -> str | None:
    """The intensity rule, where some files follow it (DICOM, 16-bit); None for 8-bit data."""
    if not any(c.dicom is not None or c.mode in HIGH_DEPTH_MODES for c in checks):
        return None
    inverted = any(c.dicom is not None and c.dicom.photometric == "MONOCHROME1" for c in checks)
    return intensity.describe() + ("; MONOCHROME1 inverted after it" if inverted else "")
