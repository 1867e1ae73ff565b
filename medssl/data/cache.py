"""Decode a table once into a uint8 array at the working resolution, cached on disk and memory-mapped."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medssl.data.decode import BadImageError, decode_image, is_dicom, is_gray, needs_intensity, resize
from medssl.data.groups import HeaderGroups
from medssl.data.intensity import IntensityConfig
from medssl.data.types import ImageTable
from medssl.data.workers import file_map
from medssl.errors import DataError
from medssl.rundir.atomic import atomic_write, write_text

if TYPE_CHECKING:
    from medssl.data.dicom import GroupKey

CACHE_VERSION = "pixels-v1"


def default_cache_dir() -> Path:
    """``$MEDSSL_CACHE`` or ``~/.cache/medssl``."""
    return Path(os.environ.get("MEDSSL_CACHE", Path.home() / ".cache" / "medssl"))


@dataclass
class Pixels:
    """Decoded images (N, H, W, C) uint8, C = 1 for grayscale data and 3 for colour."""

    images: np.ndarray
    kept: np.ndarray
    """Indices of the table records that decoded (all of them unless bad images were skipped)."""
    fingerprint: str
    skipped: list[str] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)
    """Each file's content digest (hex) by image ref; empty for generated or array datasets."""
    blank: list[str] = field(default_factory=list)
    """Refs of images with one value everywhere (a broken export or an empty scan): flagged, still used."""
    header_groups: HeaderGroups | None = None
    """The DICOM records' patients as pseudonyms, read while decoding (kept in the cache, ids never); None
    for a cache written before medssl kept them."""

    @property
    def channels(self) -> int:
        return int(self.images.shape[-1])


def _file_digest(path: Path) -> tuple[bytes, bool]:
    """The file's content hash, and whether its pixels depend on the intensity settings."""
    try:
        data = path.read_bytes()
    except OSError:
        return b"unreadable", False
    return hashlib.blake2b(data, digest_size=16).digest(), needs_intensity(path, data)


FileDigest = tuple[bytes, bool]
"""A file's content hash, and whether its pixels depend on the intensity settings."""


def file_digests(table: ImageTable, workers: int = 8) -> list[FileDigest]:
    """Each record's file digest, in record order (none for generated or array tables)."""
    if table.reader is not None:
        return []
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(_file_digest, (table.path(r) for r in table.records)))


def table_fingerprint(
    table: ImageTable,
    image_size: int,
    intensity: IntensityConfig | None = None,
    digests: list[FileDigest] | None = None,
) -> str:
    """A key over the source, the working size, every file's contents (``file_digests``, computed when not
    given) or the generator's identity and, where a file is DICOM or wider than 8 bits, the intensity
    settings (8-bit data keeps its key)."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(f"{CACHE_VERSION}|{table.layout}|{image_size}|{table.identity}|{table.classes}".encode())
    for record in table.records:
        digest.update(f"|{record.ref}:{record.label}".encode())
    digests = file_digests(table) if digests is None else digests
    for file_digest, _ in digests:
        digest.update(file_digest)
    if any(needs for _, needs in digests):
        digest.update(f"|intensity:{(intensity or IntensityConfig()).key()}".encode())
    return digest.hexdigest()


Decoded = tuple["np.ndarray | BadImageError", "GroupKey | None", bool]
"""A file at the working size (or the error naming it), its DICOM group key, and whether it is DICOM."""


def _decode_file(path: Path, size: int, intensity: IntensityConfig) -> Decoded:
    """Returned, never raised: this runs in worker processes too. A DICOM file is read once for its pixels
    and its patient."""
    if is_dicom(path):
        from medssl.data.dicom import decode_with_key  # pydicom is imported only for DICOM data

        result, key = decode_with_key(path, intensity)
        return (resize(result, size) if isinstance(result, np.ndarray) else result), key, True
    try:
        return resize(decode_image(path, intensity), size), None, False
    except BadImageError as error:
        return error, None, False


def _decoded(table: ImageTable, size: int, intensity: IntensityConfig) -> Iterator[Decoded]:
    """Every record decoded at ``size``, in order: DICOM in processes (pydicom holds the GIL), else threads."""
    threads = max(2, os.cpu_count() or 2)
    if table.reader is not None:
        reader = table.reader
        return file_map(lambda record: (resize(reader(record), size), None, False), table.records, threads)
    paths = [table.path(r) for r in table.records]
    decode = functools.partial(_decode_file, size=size, intensity=intensity)
    return file_map(decode, paths, threads, holds_gil=any(map(is_dicom, paths)))


def _pseudonyms(keys: dict[int, GroupKey | None]) -> HeaderGroups:
    if not keys:
        return {}
    from medssl.data.dicom import pseudonyms

    return dict(zip(keys, pseudonyms(keys.values()), strict=True))


def _decode_all(
    table: ImageTable,
    size: int,
    skip_bad: bool,
    progress: Callable[[int, int], None] | None,
    intensity: IntensityConfig,
) -> tuple[list[np.ndarray | None], list[str], HeaderGroups]:
    """The arrays (None where bad), the bad files' messages, and the DICOM records' header pseudonyms."""
    arrays: list[np.ndarray | None] = []
    bad: list[str] = []
    keys: dict[int, GroupKey | None] = {}
    for index, (result, key, dicom) in enumerate(_decoded(table, size, intensity)):
        if dicom:
            keys[index] = key
        if isinstance(result, BadImageError):
            bad.append(str(result))
            arrays.append(None)
        else:
            arrays.append(result)
        done = index + 1
        if progress and (done % 256 == 0 or done == len(table.records)):
            progress(done, len(table.records))
    if bad and not skip_bad:
        more = f" (and {len(bad) - 1} more bad images)" if len(bad) > 1 else ""
        raise BadImageError(bad[0] + more)
    return arrays, bad, _pseudonyms(keys)


def _stack(arrays: list[np.ndarray | None], size: int) -> tuple[np.ndarray, np.ndarray]:
    kept = np.array([i for i, a in enumerate(arrays) if a is not None], dtype=np.int64)
    gray = all(is_gray(arrays[i]) for i in kept)
    channels = 1 if gray else 3
    out = np.empty((len(kept), size, size, channels), dtype=np.uint8)
    for row, index in enumerate(kept):
        array = arrays[index]
        if gray:
            out[row, ..., 0] = array if array.ndim == 2 else array[..., 0]
        else:
            out[row] = array if array.ndim == 3 else array[..., None]
    return out, kept


def _write_atomic(path: Path, images: np.ndarray, meta: dict) -> None:
    atomic_write(path, lambda tmp: np.save(tmp, images))
    write_text(path.with_suffix(".json"), json.dumps(meta))


def _read_cache(path: Path, meta_path: Path, fingerprint: str) -> Pixels | None:
    """The cached pixels, or None when absent; a truncated or inconsistent cache is deleted (rebuilt by the
    caller), never trusted."""
    if not (path.exists() and meta_path.exists()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        images = np.load(path, mmap_mode="r")
        kept, skipped = np.array(meta["kept"], dtype=np.int64), list(meta["skipped"])
        blank = list(meta.get("blank", []))
        stored = meta.get("header_groups")
        header_groups = {int(i): group for i, group in stored.items()} if stored is not None else None
        if images.ndim != 4 or images.dtype != np.uint8 or len(images) != len(kept):
            raise ValueError("shape does not match its metadata")
    except (OSError, ValueError, KeyError, TypeError):
        path.unlink(missing_ok=True)
        meta_path.unlink(missing_ok=True)
        return None
    return Pixels(images, kept, fingerprint, skipped, blank=blank, header_groups=header_groups)


def blank_refs(table: ImageTable, arrays: list[np.ndarray | None]) -> list[str]:
    """Refs of the decoded images that hold one value everywhere."""
    return [
        record.ref
        for record, array in zip(table.records, arrays, strict=True)
        if array is not None and array.min() == array.max()
    ]


def load_pixels(
    table: ImageTable,
    image_size: int,
    cache_dir: Path | None = None,
    skip_bad: bool = False,
    progress: Callable[[int, int], None] | None = None,
    intensity: IntensityConfig | None = None,
) -> Pixels:
    """Pixels of ``table`` at ``image_size``: from the cache when present, else decoded and cached.

    ``intensity`` says how DICOM and 16-bit images become 0-255 (default ``IntensityConfig()``).
    """
    if not table.records:
        raise DataError(f"{table.root}: no images found; check the path and layout")
    intensity = intensity or IntensityConfig()
    digests = file_digests(table)
    fingerprint = table_fingerprint(table, image_size, intensity, digests)
    by_ref = {record.ref: digest.hex() for record, (digest, _) in zip(table.records, digests, strict=False)}
    path = (cache_dir or default_cache_dir()) / f"{table.layout}-{image_size}px-{fingerprint}.npy"
    meta_path = path.with_suffix(".json")
    cached = _read_cache(path, meta_path, fingerprint)
    if cached is not None:
        if cached.skipped and not skip_bad:
            raise BadImageError(cached.skipped[0])
        cached.digests = by_ref
        return cached
    arrays, bad, groups = _decode_all(table, image_size, skip_bad, progress, intensity)
    images, kept = _stack(arrays, image_size)
    blank = blank_refs(table, arrays)
    meta = {"kept": kept.tolist(), "skipped": bad, "blank": blank, "layout": table.layout}
    meta["header_groups"] = {str(i): group for i, group in groups.items()}
    try:
        _write_atomic(path, images, meta)
    except OSError as error:
        raise DataError(
            f"{path.parent}: cannot write the pixel cache ({error}); set MEDSSL_CACHE to a writable folder"
        ) from None
    return Pixels(np.load(path, mmap_mode="r"), kept, fingerprint, bad, by_ref, blank, groups)
