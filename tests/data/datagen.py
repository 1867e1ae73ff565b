"""Generators of small datasets in the real layouts and file formats (imported by the data tests)."""

from __future__ import annotations

import shutil
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
REAL_CHEST_XRAY = REPO.parent / "shared" / "data" / "chest_xray_pneumonia"
KATHER_FOLDER = "Kather_texture_2016_image_tiles_5000"
REAL_KATHER = next(
    (
        folder
        for folder in (
            REPO / ".data" / KATHER_FOLDER,  # the checkout's gitignored .data/
            REPO.parent / ".data" / KATHER_FOLDER,
            REPO.parent / "main" / ".data" / KATHER_FOLDER,  # a worktree beside the main checkout
        )
        if folder.is_dir()
    ),
    REPO / ".data" / KATHER_FOLDER,
)
"""The real Kather 2016 tiles (read-only, never committed); tests that need them skip when absent."""


def pixels(seed: int, size: tuple[int, int] = (32, 32), channels: int = 3) -> np.ndarray:
    """Distinct smooth-plus-noise uint8 content (compresses well, never identical for two seeds)."""
    rng = np.random.default_rng(seed)
    width, height = size
    ramp = np.linspace(0, 160, width)[None, :] + np.linspace(0, 60, height)[:, None]
    gray = ramp + rng.integers(0, 40, (height, width)) + (seed * 7) % 50
    array = np.clip(gray, 0, 255).astype(np.uint8)
    if channels == 1:
        return array
    tint = np.array([1.0, 0.8 + 0.1 * (seed % 3), 0.9])
    return np.clip(array[..., None] * tint, 0, 255).astype(np.uint8)


def write_image(
    path: Path, seed: int, size: tuple[int, int] = (32, 32), channels: int = 3, **save: object
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels(seed, size, channels)).save(path, **save)
    return path


def bomb_png(path: Path, width: int = 20_000, height: int = 20_000) -> Path:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (no pixel data)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    return path


def truncated_jpeg(path: Path, seed: int = 99) -> Path:
    write_image(path, seed, (64, 64), quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def make_chest_xray(
    root: Path, train_patients: int = 10, test_patients: int = 3, per_patient: int = 2, val: bool = False
) -> Path:
    """Kermany layout with real file-name patterns (patients disjoint between train and test) and .DS_Store."""
    seed = 0
    for split, n_patients, first in (("train", train_patients, 1), ("test", test_patients, 500)):
        for p in range(first, first + n_patients):
            for k in range(per_patient):
                seed += 1
                kind = "bacteria" if k % 2 == 0 else "virus"
                write_image(root / split / "PNEUMONIA" / f"person{p}_{kind}_{seed}.jpeg", seed, quality=90)
                seed += 1
                normal = f"IM-{p:04d}-{k + 1:04d}.jpeg" if p % 2 else f"NORMAL2-IM-{p:04d}-{k + 1:04d}.jpeg"
                write_image(root / split / "NORMAL" / normal, seed, quality=90)
        (root / split / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    if val:
        write_image(root / "val" / "NORMAL" / "NORMAL2-IM-1427-0001.jpeg", 9001, quality=90)
        write_image(root / "val" / "PNEUMONIA" / "person1946_bacteria_4874.jpeg", 9002, quality=90)
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    return root


BREAKHIS_SLIDES = {
    "benign": [("A", "adenosis", "14-22549AB"), ("F", "fibroadenoma", "14-9133")],
    "malignant": [("DC", "ductal_carcinoma", "14-11031"), ("LC", "lobular_carcinoma", "15-190EF")],
}


def breakhis_name(label: str, subtype: str, slide: str, k: int) -> str:
    return f"SOB_{label[0].upper()}_{subtype}-{slide}-400-{k:03d}.png"


def make_breakhis_kaggle(root: Path, per_slide: int = 1) -> Path:
    """Kaggle "BreaKHis 400X": {train,test}/{benign,malignant}/*.png, 700x460 RGB (few files)."""
    seed = 100
    for label, slides in BREAKHIS_SLIDES.items():
        for split, (code, _, slide) in zip(("train", "test"), slides, strict=True):
            for k in range(1, per_slide + 1):
                seed += 1
                write_image(root / split / label / breakhis_name(label, code, slide, k), seed, (700, 460))
    return root


def make_breakhis_archive(root: Path) -> Path:
    """Original archive: breast/{benign,malignant}/SOB/<subtype>/<patient>/{40X,400X}/*.png."""
    seed = 200
    breast = root / "BreaKHis_v1" / "histology_slides" / "breast"
    for label, slides in BREAKHIS_SLIDES.items():
        for code, subtype, slide in slides:
            patient = breast / label / "SOB" / subtype / f"SOB_{label[0].upper()}_{code}_{slide}"
            for k in (1, 2):
                seed += 1
                write_image(patient / "400X" / breakhis_name(label, code, slide, k), seed, (70, 46))
                write_image(
                    patient / "40X" / breakhis_name(label, code, slide, k).replace("-400-", "-40-"), seed
                )
            (patient / "400X" / "Thumbs.db").write_bytes(b"x")
    return root


KATHER_CLASSES = (
    "01_TUMOR",
    "02_STROMA",
    "03_COMPLEX",
    "04_LYMPHO",
    "05_DEBRIS",
    "06_MUCOSA",
    "07_ADIPOSE",
    "08_EMPTY",
)


KATHER_SLIDES = {
    **{name: list(range(1, 11)) for name in KATHER_CLASSES[:5]},
    "06_MUCOSA": [1, 2, 3, 5, 6, 7, 8, 9],  # as in the real set: no mucosa from slides 04 and 10
    "07_ADIPOSE": [3, 4, 5, 6, 7, 10],  # six slides only
    "08_EMPTY": [6] * 9 + [10],  # 90 % from slide 06 (the real set: 590 of 625)
}
"""Slides (``CRC-Prim-HE-NN``) that a class's tiles come from in turn, confounded as in the real set."""


def kather_name(seed: int, slide: int, k: int) -> str:
    """A real Kather 2016 tile name: ``10009_CRC-Prim-HE-03_009.tif_Row_301_Col_151.tif``."""
    row, column = 1 + 150 * (k % 7), 1 + 150 * (k % 5)
    return f"{0x10000 + seed:05X}_CRC-Prim-HE-{slide:02d}_{k % 12 + 1:03d}.tif_Row_{row}_Col_{column}.tif"


def make_kather(parent: Path, per_class: int = 2, size: int = 150) -> Path:
    """Kather_texture_2016_image_tiles_5000/<8 classes>/*.tif, RGB TIFF tiles named by their slide as in the
    real set (tile ``k`` of a class from ``KATHER_SLIDES[class][k % n]``); returns the parent."""
    folder = parent / KATHER_FOLDER
    for c, name in enumerate(KATHER_CLASSES):
        slides = KATHER_SLIDES[name]
        for k in range(per_class):
            seed = 300 + c * 1000 + k
            write_image(folder / name / kather_name(seed, slides[k % len(slides)], k), seed, (size, size))
    return parent


def make_folder(
    root: Path, counts: dict[str, int], splits: Iterable[str] = (), size: int = 16, channels: int = 1
) -> Path:
    """``<class>/`` (no splits) or ``<split>/<class>/`` folders of PNGs, ``counts[class]`` per folder."""
    seed = 1000
    for split in list(splits) or [""]:
        for name, n in counts.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(n):
                seed += 1
                write_image(folder / f"img{k:03d}.png", seed, (size, size), channels)
    return root


def make_npz(
    path: Path, n: tuple[int, int, int] = (20, 6, 8), size: int = 28, rgb: bool = False, classes: int = 2
):
    """A MedMNIST-style npz: {train,val,test}_images (N,H,W[,3]) uint8 and *_labels (N,1)."""
    rng = np.random.default_rng(7)
    arrays = {}
    for split, count in zip(("train", "val", "test"), n, strict=True):
        shape = (count, size, size, 3) if rgb else (count, size, size)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(count) % classes).reshape(-1, 1).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return arrays


def make_flawed_chest(root: Path) -> Path:
    """Kermany layout with a truncated and an empty JPEG, a train image copied into test, a shared patient."""
    root = make_chest_xray(root)
    truncated_jpeg(root / "train" / "NORMAL" / "IM-0777-0001.jpeg")
    (root / "train" / "PNEUMONIA" / "person900_bacteria_1.jpeg").write_bytes(b"")
    shutil.copy(
        root / "train" / "NORMAL" / "IM-0001-0001.jpeg", root / "test" / "NORMAL" / "IM-0999-0001.jpeg"
    )
    write_image(root / "test" / "PNEUMONIA" / "person2_bacteria_77.jpeg", 777, quality=90)
    return root


def make_site_folder(root: Path) -> Path:
    """``<class>/site<S>_p<P>_<k>.png`` plus one file that names no site."""
    for label in ("a", "b"):
        for site in (1, 2, 3):
            for k in range(2):
                write_image(root / label / f"site{site}_p{site}{label}_{k}.png", site * 10 + k)
    write_image(root / "a" / "scan.png", 99)
    return root
