"""Bad input that tests/data/test_data_bad_inputs.py does not reach: decoding in threads, bad YAML configs,
too few images for a batch, a broken manifest and ``--skip-bad-images`` through ``medssl pretrain``.

Covered there (not repeated here): truncated JPEG, zero-byte file, text named .png, decompression bomb,
dangling link, unreadable file, symlink loops, empty class folder, single class, 16-bit / RGBA / palette PNG,
CMYK JPEG, EXIF orientation, OS clutter and FIFOs; CSV rows naming missing files or empty labels in
tests/data/test_data_sources.py.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medssl.data.dataset import SKIPPED_LIST
from medssl.data.decode import BadImageError, decode_image
from medssl.errors import DataError
from medssl.train.api import build_module, pretrain
from medssl.train.config import PretrainConfig

from ..conftest import tiny_config
from ..data.datagen import bomb_png, make_folder, truncated_jpeg, write_image
from .cli import WAIT, assert_one_error_line, history, run_main, start

# -- decompression bombs, checked without process-wide warning filters ---------------------------------------


def test_decode_leaves_warning_filters_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``warnings.catch_warnings()`` inside a thread pool is a race: the filter list is one per process."""
    good = write_image(tmp_path / "good.png", 1)
    outside = list(warnings.filters)
    seen: list[list] = []
    real_open = Image.open

    def spying_open(*args, **kwargs):
        seen.append(list(warnings.filters))
        return real_open(*args, **kwargs)

    monkeypatch.setattr(Image, "open", spying_open)
    decode_image(good)
    with pytest.raises(BadImageError):
        decode_image(bomb_png(tmp_path / "bomb.png"))
    assert len(seen) == 2 and all(filters == outside for filters in seen)


def test_bombs_refused_before_decoding_from_many_threads(tmp_path: Path) -> None:
    huge = bomb_png(tmp_path / "huge.png")  # 400M pixels: PIL itself raises
    large = bomb_png(tmp_path / "large.png", 10_000, 10_000)  # 100M: PIL only warns; we refuse
    good = write_image(tmp_path / "good.png", 2, channels=1)
    paths = [huge, large, good] * 40
    before = list(warnings.filters)

    def attempt(path: Path) -> str:
        try:
            return f"ok {decode_image(path).shape}"
        except BadImageError as error:
            return str(error)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, paths))
    assert list(warnings.filters) == before
    for path, result in zip(paths, results, strict=True):
        if path == good:
            assert result == "ok (32, 32)"
        else:
            assert result.startswith(f"{path}: refused as a possible decompression bomb"), result
    assert "(10000x10000 pixels" in results[1]  # our own size check, before any pixel is read


def test_pixel_limit_follows_pil_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image = write_image(tmp_path / "small.png", 3, (16, 16))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 255)
    with pytest.raises(BadImageError, match=r"refused as a possible decompression bomb \(16x16 pixels"):
        decode_image(image)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 256)
    assert decode_image(image).shape == (16, 16, 3)


# -- bad YAML configs through the CLI ------------------------------------------------------------------------

PRETRAIN_CONFIGS = {
    "unknown key": ("epochz: 3\n", "epochz: unknown key"),
    "wrong type": ("epochs: many\n", "epochs: Input should be a valid integer"),
    "nested wrong type": ("data:\n  image_size: big\n", "data.image_size: Input should be a valid integer"),
    "out of range": ("batch_size: 1\n", "batch_size: Input should be greater than or equal to 2"),
}
STUDY_CONFIGS = {
    "unknown key": (
        "datasets: {t: {path: synthetic}}\npretrain: {epoch: 3}\n",
        "pretrain.epoch: unknown key",
    ),
    "wrong type": (
        "datasets: {t: {path: synthetic}}\nevaluation: {k: lots}\n",
        "evaluation.k: Input should be a valid integer",
    ),
    "not a mapping": ("- simclr\n- vicreg\n", "expected a mapping"),
    "bad syntax": ("datasets: {t: [\n", "not valid YAML"),
}


@pytest.mark.parametrize("case", PRETRAIN_CONFIGS)
def test_bad_pretrain_config_in_process(tmp_path: Path, capsys, monkeypatch, case: str) -> None:
    text, problem = PRETRAIN_CONFIGS[case]
    (tmp_path / "pre.yaml").write_text(text)
    code, err = run_main(
        capsys, monkeypatch, "pretrain", "--config", str(tmp_path / "pre.yaml"), "--out", str(tmp_path / "r")
    )
    assert_one_error_line(code, err, f"{tmp_path / 'pre.yaml'}: {problem}")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("case", STUDY_CONFIGS)
def test_bad_study_config_in_process(tmp_path: Path, capsys, monkeypatch, case: str) -> None:
    text, problem = STUDY_CONFIGS[case]
    (tmp_path / "study.yaml").write_text(text)
    code, err = run_main(
        capsys, monkeypatch, "benchmark", str(tmp_path / "study.yaml"), "--out", str(tmp_path / "b")
    )
    assert_one_error_line(code, err, f"{tmp_path / 'study.yaml'}", problem)
    assert not (tmp_path / "b").exists()


def test_bad_configs_as_a_user_sees_them(tmp_path: Path) -> None:
    """The real executable (both at once): exit status 2 and one line on stderr, no traceback."""
    (tmp_path / "pre.yaml").write_text("method: simclr\nepochz: 3\n")
    (tmp_path / "study.yaml").write_text("datasets: {t: {path: synthetic}}\npretrain: {epochs: many}\n")
    runs = [
        (start("pretrain", "--config", "pre.yaml", cwd=tmp_path, stderr=tmp_path / "pre.err"), "pre"),
        (
            start("benchmark", "study.yaml", "--out", "b", cwd=tmp_path, stderr=tmp_path / "study.err"),
            "study",
        ),
    ]
    codes = {name: process.wait(timeout=WAIT) for process, name in runs}
    err = (tmp_path / "pre.err").read_text()
    assert_one_error_line(codes["pre"], err, "pre.yaml: epochz: unknown key")
    err = (tmp_path / "study.err").read_text()
    assert_one_error_line(codes["study"], err, "study.yaml: pretrain.epochs: Input should be a valid integer")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "b").exists()


# -- too few images ------------------------------------------------------------------------------------------


def test_fewer_images_than_one_batch_trains_with_a_smaller_batch(
    tmp_path: Path, pixel_cache: Path, tiny_data
) -> None:
    few = dataclasses.replace(tiny_data, split={**tiny_data.split, "train": tiny_data.split["train"][:20]})
    config = PretrainConfig(
        epochs=1,
        batch_size=64,
        knn_k=200,
        progress_bar=False,
        accelerator="cpu",
        data=tiny_config(pixel_cache),
    )
    with pytest.warns(UserWarning, match=r"batch size 64 > 20 training images; using 20"):
        run = pretrain(config, tmp_path / "run", data=few)
    assert json.loads((run / "encoder.json").read_text())["recipe"]["batch_size"] == 20
    assert len(history(run)) == 1 and float(history(run)[0]["knn_accuracy"]) >= 0  # k=200 > 20 in the bank


def test_one_training_image_is_refused(tiny_data, pixel_cache: Path) -> None:
    one = dataclasses.replace(tiny_data, split={**tiny_data.split, "train": tiny_data.split["train"][:1]})
    config = PretrainConfig(progress_bar=False, data=tiny_config(pixel_cache))
    with pytest.raises(DataError, match="only 1 training images; self-supervised training needs at least 2"):
        build_module(config, one)


def _manifest(root: Path, rows: list[tuple[str, str, str]]) -> Path:
    for k, (name, _, _) in enumerate(rows):
        write_image(root / name, 10 + k, (32, 32), channels=1)
    lines = ["path,label,split", *(",".join(row) for row in rows)]
    (root / "list.csv").write_text("\n".join(lines) + "\n")
    return root / "list.csv"


def test_manifest_with_one_training_image_cli(tmp_path: Path, capsys, monkeypatch) -> None:
    rows = [("t.png", "a", "train"), ("v1.png", "a", "val"), ("v2.png", "b", "val")]
    rows += [("s1.png", "a", "test"), ("s2.png", "b", "test")]
    manifest = _manifest(tmp_path / "ds", rows)
    args = ["pretrain", "--data", str(manifest), "--image-size", "32", "--out", str(tmp_path / "r")]
    code, err = run_main(capsys, monkeypatch, *args, "--set", f"data.cache_dir={tmp_path / 'cache'}")
    assert_one_error_line(code, err, "only 1 training images", "needs at least 2")
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_manifest_with_empty_label_or_missing_file_cli(tmp_path: Path, capsys, monkeypatch) -> None:
    manifest = _manifest(tmp_path / "ds", [("a.png", "x", "train"), ("b.png", "y", "train")])
    manifest.write_text("path,label\na.png,x\nb.png,\n")
    code, err = run_main(
        capsys, monkeypatch, "pretrain", "--data", str(manifest), "--out", str(tmp_path / "r")
    )
    assert_one_error_line(code, err, f"{manifest}, line 3: empty label for b.png")
    manifest.write_text("path,label\na.png,x\ngone.png,y\n")
    code, err = run_main(
        capsys, monkeypatch, "pretrain", "--data", str(manifest), "--out", str(tmp_path / "r")
    )
    assert_one_error_line(code, err, f"{manifest}, line 3: {manifest.parent / 'gone.png'} does not exist")


# -- --skip-bad-images end to end ----------------------------------------------------------------------------


def test_skip_bad_images_through_pretrain(tmp_path: Path, capsys, monkeypatch) -> None:
    root = make_folder(tmp_path / "ds", {"benign": 12, "malignant": 12}, size=32, channels=3)
    bad = truncated_jpeg(root / "benign" / "broken.jpeg")
    args = [
        "pretrain", "--data", str(root), "--image-size", "32", "--epochs", "1", "--batch-size", "8",
        "--knn-k", "5", "--accelerator", "cpu", "--set", "max_steps_per_epoch=2",
        "--set", "progress_bar=false",
        "--set", f"data.cache_dir={tmp_path / 'cache'}",
    ]  # fmt: skip
    code, err = run_main(capsys, monkeypatch, *args, "--out", str(tmp_path / "refused"))
    assert_one_error_line(code, err, f"{bad}: unreadable or truncated image", "--skip-bad-images")
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match=rf"skipped 1 unreadable image\(s\), e.g. {bad}: .*{SKIPPED_LIST}"):
        code, err = run_main(capsys, monkeypatch, *args, "--skip-bad-images", "--out", str(out))
    assert code == 0, err
    assert (out / "encoder.pt").exists() and (out / "encoder.json").exists()
    listed = (out / SKIPPED_LIST).read_text().splitlines()
    assert len(listed) == 1 and listed[0].startswith(f"{bad}: unreadable or truncated image")
    split = (out / "split.csv").read_text()
    assert "broken.jpeg" not in split and split.count("benign/img") == 12
    assert np.isfinite(
        [float(r.split(",")[1]) for r in (out / "history.csv").read_text().splitlines()[1:]]
    ).all()
