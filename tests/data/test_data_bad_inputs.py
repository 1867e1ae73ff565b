"""Bad input: wrong paths and layouts, odd folders, and broken or unusual image files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from datagen import bomb_png, make_folder, truncated_jpeg, write_image
from PIL import Image
from typer.testing import CliRunner

from medssl.cli import app
from medssl.data.dataset import prepare_data
from medssl.data.decode import BadImageError
from medssl.data.sources import load_table
from medssl.errors import DataError, MedsslError

MEDSSL = Path(sys.executable).with_name("medssl")


def cli_raises(*args: str) -> MedsslError:
    """Run ``medssl ARGS`` in-process; the error ``main()`` would print as one line with exit code 2."""
    with pytest.raises(MedsslError) as error:
        CliRunner().invoke(app, list(args), catch_exceptions=False)
    return error.value


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MEDSSL), *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_missing_path_cli_exits_2_without_traceback(tmp_path: Path) -> None:
    result = run_cli("data", "inspect", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr + result.stdout
    assert f"{tmp_path / 'nowhere'}: no such file or folder" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_csv_error_cli_exits_2_naming_the_row(tmp_path: Path) -> None:
    (tmp_path / "list.csv").write_text("path,label\ngone.png,a\n")
    result = run_cli("data", "inspect", str(tmp_path / "list.csv"), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{tmp_path / 'list.csv'}, line 2: {tmp_path / 'gone.png'} does not exist" in result.stderr


def test_unknown_layout(tmp_path: Path) -> None:
    write_image(tmp_path / "loose" / "a.png", 1)
    error = cli_raises("data", "inspect", str(tmp_path / "loose"))
    assert isinstance(error, DataError) and f"{tmp_path / 'loose'}: unknown layout" in str(error)
    error = cli_raises("data", "inspect", str(tmp_path / "loose"), "--layout", "dicomdir")
    assert "layout 'dicomdir' is unknown" in str(error)


def test_empty_class_folder(tmp_path: Path, cache_config) -> None:
    root = make_folder(tmp_path / "ds", {"a": 2, "b": 2})
    (root / "c").mkdir()
    (root / "c" / ".DS_Store").write_bytes(b"x")
    with pytest.raises(DataError, match=rf"{root / 'c'}: class folder has no images"):
        load_table(root)
    with pytest.raises(DataError, match=rf"{root / 'c'}: class folder has no images"):
        prepare_data(cache_config(root))
    split_root = make_folder(tmp_path / "split", {"a": 2, "b": 2}, splits=("train",))
    make_folder(split_root / "test", {"a": 1})
    with pytest.raises(DataError, match=rf"{split_root / 'test'}: no folder for class\(es\) \['b'\]"):
        load_table(split_root)


def test_single_class(tmp_path: Path, cache_config) -> None:
    root = make_folder(tmp_path / "one", {"only": 4})
    with pytest.raises(DataError, match=rf"{root}: only one class \(\['only'\]\)"):
        prepare_data(cache_config(root))


@pytest.mark.timeout(30)
def test_symlink_loop_does_not_hang(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "ds", {"a": 2, "b": 2})
    (root / "a" / "loop").symlink_to(root)
    (root / "b" / "self").symlink_to(root / "b")
    (root / "b" / "ring.png").symlink_to(root / "b" / "ring.png")  # a link to itself (ELOOP)
    (root / "knot").symlink_to(root / "knot")  # the same beside the class folders
    linked = tmp_path / "elsewhere"
    make_folder(linked, {"c": 1})
    (root / "b" / "more").symlink_to(linked / "c")  # a linked folder outside is followed
    table = load_table(root)
    assert table.counts() == {"all": {"a": 2, "b": 4}}
    assert {"a/loop/", "b/self/"} <= set(table.ignored)
    assert "b/more/img000.png" in [r.ref for r in table.records]


def test_non_image_files_are_ignored_and_listed(tmp_path: Path, cache_config) -> None:
    root = make_folder(tmp_path / "ds", {"a": 2, "b": 2}, splits=("train", "val", "test"))
    clutter = ["train/a/notes.txt", "train/a/Thumbs.db", "train/b/._img000.png", "val/.DS_Store", "README.md"]
    for name in clutter:
        (root / name).write_text("not an image")
    os.mkfifo(root / "train" / "a" / "pipe.png")  # reading a FIFO would block: it must never be opened
    table = load_table(root)
    assert sorted(table.ignored) == sorted([*clutter, "train/a/pipe.png"])
    data = prepare_data(cache_config(root, image_size=16))
    assert len(data.table.records) == 12 and not data.skipped


def corrupt_dataset(root: Path, bad: str) -> Path:
    """The small split dataset plus one bad file ``train/a/<name>``; returns the bad file."""
    make_folder(root, {"a": 3, "b": 3}, splits=("train", "val", "test"))
    folder = root / "train" / "a"
    if bad == "truncated_jpeg":
        return truncated_jpeg(folder / "cut.jpeg")
    if bad == "zero_bytes":
        (folder / "empty.png").write_bytes(b"")
        return folder / "empty.png"
    if bad == "text_as_png":
        (folder / "notes.png").write_text("this is a text file\n")
        return folder / "notes.png"
    if bad == "bomb":
        return bomb_png(folder / "huge.png")
    if bad == "dangling_link":
        (folder / "gone.png").symlink_to(root / "deleted.png")
        return folder / "gone.png"
    raise ValueError(bad)


BAD = {
    "truncated_jpeg": "unreadable or truncated image",
    "zero_bytes": "not an image file",
    "text_as_png": "not an image file",
    "bomb": "refused as a possible decompression bomb",
    "dangling_link": "unreadable or truncated image",
}


@pytest.mark.parametrize("bad", BAD)
def test_bad_image_named_then_skipped(tmp_path: Path, cache_config, bad: str) -> None:
    path = corrupt_dataset(tmp_path / "ds", bad)
    with pytest.raises(BadImageError) as error:
        prepare_data(cache_config(tmp_path / "ds", image_size=16))
    assert str(error.value).startswith(f"{path}: {BAD[bad]}")
    assert "--skip-bad-images" in str(error.value)
    data = prepare_data(cache_config(tmp_path / "ds", image_size=16, skip_bad_images=True))
    assert len(data.table.records) == 18 and data.images.shape[0] == 18
    assert len(data.skipped) == 1 and data.skipped[0].startswith(str(path))
    assert path.name not in {Path(r.ref).name for r in data.table.records}
    with pytest.raises(BadImageError, match=str(path)):  # the cached result still refuses without skipping
        prepare_data(cache_config(tmp_path / "ds", image_size=16))


def test_permission_denied_is_named(tmp_path: Path, cache_config, monkeypatch: pytest.MonkeyPatch) -> None:
    """We run as root, so chmod 000 would not stop reads: ``Image.open`` is patched to refuse one file."""
    root = make_folder(tmp_path / "ds", {"a": 3, "b": 3}, splits=("train", "val", "test"))
    locked = root / "train" / "b" / "img001.png"
    real_open = Image.open

    def guarded_open(fp, *args, **kwargs):
        if Path(fp) == locked:
            raise PermissionError(13, "Permission denied", str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", guarded_open)
    with pytest.raises(BadImageError, match=rf"^{locked}: permission denied; make the file readable"):
        prepare_data(cache_config(root, image_size=16))


def _prepared_pixels(root: Path, name: str, cache_config, size: int = 16) -> tuple[np.ndarray, int]:
    data = prepare_data(cache_config(root, image_size=size))
    index = next(i for i, r in enumerate(data.table.records) if Path(r.ref).name == name)
    return np.asarray(data.images[index]), data.channels


def test_16bit_grayscale_png(tmp_path: Path, cache_config) -> None:
    root = make_folder(tmp_path / "ds", {"a": 3, "b": 3}, splits=("train", "val", "test"))
    values = np.tile(np.array([0, 1000, 2000, 4095], np.uint16).repeat(4), (16, 1))
    Image.fromarray(values).save(root / "train" / "a" / "deep.png")
    assert Image.open(root / "train" / "a" / "deep.png").mode.startswith("I")
    pixels, channels = _prepared_pixels(root, "deep.png", cache_config)
    assert channels == 1
    np.testing.assert_array_equal(pixels[0, ::4, 0], [0, 62, 125, 255])  # full range, order kept


def test_rgba_and_palette_png(tmp_path: Path, cache_config) -> None:
    root = make_folder(tmp_path / "ds", {"a": 3, "b": 3}, splits=("train", "val", "test"), channels=3)
    Image.new("RGBA", (16, 16), (200, 100, 50, 128)).save(root / "train" / "a" / "alpha.png")
    palette = Image.new("P", (16, 16))
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.paste(1, (0, 8, 16, 16))
    palette.save(root / "train" / "b" / "palette.png")
    alpha, channels = _prepared_pixels(root, "alpha.png", cache_config)
    assert channels == 3
    np.testing.assert_allclose(alpha[5, 5], [100, 50, 25], atol=1)  # composited on black
    indexed, _ = _prepared_pixels(root, "palette.png", cache_config)
    np.testing.assert_array_equal(indexed[2, 2], [255, 0, 0])
    np.testing.assert_array_equal(indexed[12, 2], [0, 0, 255])


def test_cmyk_jpeg_colour(tmp_path: Path, cache_config) -> None:
    root = make_folder(tmp_path / "ds", {"a": 3, "b": 3}, splits=("train", "val", "test"), channels=3)
    Image.new("CMYK", (16, 16), (255, 0, 0, 0)).save(root / "train" / "a" / "cyan.jpg", quality=95)
    assert Image.open(root / "train" / "a" / "cyan.jpg").mode == "CMYK"
    pixels, _ = _prepared_pixels(root, "cyan.jpg", cache_config)
    np.testing.assert_allclose(pixels[8, 8], [0, 255, 255], atol=6)


def test_exif_orientation_applied(tmp_path: Path, cache_config) -> None:
    root = make_folder(tmp_path / "ds", {"a": 3, "b": 3}, splits=("train", "val", "test"))
    stored = np.zeros((16, 16), np.uint8)
    stored[:, :8] = 255  # left half white as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90° clockwise
    Image.fromarray(stored).save(root / "train" / "a" / "rotated.jpeg", exif=exif, quality=95)
    pixels, channels = _prepared_pixels(root, "rotated.jpeg", cache_config)
    assert channels == 1
    assert pixels[:6, :, 0].min() > 200 and pixels[10:, :, 0].max() < 50  # now the top half is white
