"""``medssl data inspect`` on generated datasets with known problems."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from datagen import bomb_png, make_flawed_chest, make_folder, make_npz, write_image
from PIL import Image

from medssl.data.inspect import LABEL_WIDTH, inspect_dataset


@pytest.fixture
def flawed_chest(tmp_path: Path) -> Path:
    return make_flawed_chest(tmp_path / "chest_xray")


def test_inspect_reports_counts_and_problems(flawed_chest: Path, tmp_path: Path) -> None:
    grid = tmp_path / "out" / "grid.png"
    report = inspect_dataset(flawed_chest, image_size=32, grid_path=grid)
    assert (report.layout, report.detected, report.modality) == ("chest_xray", True, "xray")
    assert report.counts == {
        "train": {"NORMAL": 21, "PNEUMONIA": 21},
        "test": {"NORMAL": 7, "PNEUMONIA": 7},
    }
    assert report.groups == {"train": 22, "test": 8}  # IM-0777 and person900 are new train patients
    assert report.with_group == report.n_images == 56
    assert report.sizes == {(32, 32): 54} and report.modes == {"RGB": 54}
    text = report.to_text()
    problems = "\n".join(report.problems)
    assert "2 unreadable images" in problems
    assert f"{flawed_chest}/train/NORMAL/IM-0777-0001.jpeg: unreadable or truncated image" in problems
    assert f"{flawed_chest}/train/PNEUMONIA/person900_bacteria_1.jpeg: empty file" in problems
    assert "3 non-image files ignored: .DS_Store, test/.DS_Store, train/.DS_Store" in problems
    assert (
        "1 test images are identical to train/val images: "
        "test/NORMAL/IM-0999-0001.jpeg = train/NORMAL/IM-0001-0001.jpeg" in problems
    )
    assert "1 patient has images in both the official train/val and test folders: person2" in problems
    assert "chest_xray (detected)" in text and "train 22, test 8 (every image has one)" in text
    assert str(grid) in text

    with Image.open(grid) as image:
        assert image.size == (LABEL_WIDTH + 8 * 34, 2 * 34)
        array = np.asarray(image.convert("RGB"))
    for row in range(2):  # the first tile of each class row shows that class's first image
        tile = array[row * 34 : row * 34 + 32, LABEL_WIDTH : LABEL_WIDTH + 32].astype(float)
        first = sorted((flawed_chest / "train" / ("NORMAL", "PNEUMONIA")[row]).glob("*.jpeg"))[0]
        expected = np.asarray(Image.open(first).convert("RGB"), dtype=float)
        assert np.abs(tile - expected).mean() < 3


def test_inspect_is_lenient_about_classes(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "ds", {"a": 2, "b": 2}, splits=("train", "test"))
    (root / "train" / "c").mkdir()
    shutil.rmtree(root / "test" / "b")
    report = inspect_dataset(root, grid_path=tmp_path / "g.png")
    assert report.counts == {"train": {"a": 2, "b": 2, "c": 0}, "test": {"a": 2, "b": 0, "c": 0}}
    assert "class 'c' has no images" in report.problems
    assert "class 'b' has no images in test" in report.problems
    one = inspect_dataset(make_folder(tmp_path / "one", {"only": 3}), grid_path=tmp_path / "h.png")
    assert one.problems == ["only one class (only); classification needs at least two"]


def test_inspect_medmnist_hashes_pixels(tmp_path: Path) -> None:
    path = tmp_path / "pneumoniamnist.npz"
    make_npz(path, n=(10, 4, 4))
    data = dict(np.load(path))
    data["test_images"][1] = data["train_images"][3]  # same label (both odd)
    data["val_images"][0] = data["train_images"][1]  # label 0 vs 1: a conflict inside train/val
    np.savez(path, **data)
    report = inspect_dataset(path, grid_path=tmp_path / "g.png")
    assert report.name == "pneumoniamnist" and report.layout == "medmnist"
    assert report.sizes == {(28, 28): 18} and report.modes == {"L": 18}
    assert "1 test images are identical to train/val images: #15 = #3" in report.problems
    assert "1 sets of identical images have different labels: #1 = #10" in report.problems
    assert report.with_group == 0 and "unknown (no patient, slide or other group ids" in report.to_text()


def test_inspect_synthetic(tmp_path: Path) -> None:
    report = inspect_dataset("synthetic", grid_path=tmp_path / "s.png")
    assert report.layout == "synthetic" and report.n_images == 600 and len(report.classes) == 4
    assert report.groups == {"all": 120} and not report.problems


def test_inspect_header_check_finds_bad_files_without_decoding(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "ds", {"a": 2, "b": 2})
    bomb_png(root / "a" / "huge.png")
    (root / "b" / "notes.png").write_text("text, not pixels")
    os.mkfifo(root / "b" / "pipe.png")
    broken = write_image(root / "c" / "broken.png", 5, (16, 16), channels=1)
    data = bytearray(broken.read_bytes())
    start = data.index(b"IDAT") + 10
    data[start : start + 30] = bytes(b ^ 0xFF for b in data[start : start + 30])  # header and IEND intact
    broken.write_bytes(bytes(data))
    report = inspect_dataset(root, grid_path=tmp_path / "g.png", per_class=1)
    unreadable = next(p for p in report.problems if "unreadable images" in p)
    assert unreadable.startswith("2 unreadable images")
    assert f"{root}/a/huge.png: refused as a possible decompression bomb" in unreadable
    assert f"{root}/b/notes.png: not an image file" in unreadable
    assert "1 non-image files ignored: b/pipe.png" in report.problems
    assert report.sizes == {(16, 16): 5}  # the broken PNG's header is fine: only the grid decodes it
    assert report.problems[0].startswith(
        f"1 sample images failed to decode: {broken}: unreadable or truncated"
    )
