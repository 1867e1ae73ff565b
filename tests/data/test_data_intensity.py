"""16-bit PNG and TIFF follow the same intensity rule as DICOM (``DataConfig.intensity``), not a per-image
min-max; an image of one value keeps its level and is flagged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from datagen import make_folder
from PIL import Image

from medssl.data import prepare_data
from medssl.data.decode import decode_image
from medssl.data.inspect import inspect_dataset
from medssl.data.intensity import IntensityConfig


def save16(path: Path, values: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint16)).save(path)
    return path


def scan(seed: int) -> np.ndarray:
    """A 16-bit 'scan' in 1000..3000 with a few saturated pixels (a burned-in marker)."""
    values = np.linspace(1000, 3000, 64 * 64).reshape(64, 64) + np.random.default_rng(seed).integers(
        0, 50, (64, 64)
    )
    values[:2, :2] = 65535
    return values.astype(np.uint16)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_images_are_scaled_by_percentiles_so_a_marker_does_not_darken_them(
    tmp_path: Path, suffix
) -> None:
    values = scan(1)
    decoded = decode_image(save16(tmp_path / f"scan{suffix}", values)).astype(int)
    low, high = np.percentile(values, [0.5, 99.5])
    np.testing.assert_array_equal(decoded, np.rint(np.clip((values - low) / (high - low), 0, 1) * 255))
    assert decoded[2:].mean() > 100  # per-image min-max squeezed the whole scan below 12 of 255
    minmax = decode_image(tmp_path / f"scan{suffix}", IntensityConfig(percentiles=(0, 100)))
    assert minmax[2:].max() <= 12


def test_a_fixed_window_applies_to_16_bit_images(tmp_path: Path) -> None:
    path = save16(tmp_path / "scan.png", scan(2))
    decoded = decode_image(path, IntensityConfig(window="fixed", center=2000, width=1000))
    values = scan(2)
    assert (decoded[values <= 1500] == 0).all() and (decoded[values > 2500] == 255).all()


def test_a_constant_16_bit_image_keeps_its_level_and_is_flagged(tmp_path: Path, cache_config) -> None:
    """Issue 25: a 16-bit image of one value decoded to all zeros, with nothing flagged."""
    root = tmp_path / "data"
    for label in ("a", "b"):
        for i in range(6):
            save16(root / label / f"{i}.png", scan(i + (10 if label == "b" else 0)))
    constant = save16(root / "a" / "flat.png", np.full((64, 64), 40000))
    assert (decode_image(constant) == round(40000 / 65535 * 255)).all()
    with pytest.warns(
        UserWarning, match=r"1 image\(s\) hold one value everywhere \(blank\), e.g. a/flat.png"
    ):
        data = prepare_data(cache_config(root, image_size=16))
    flat = [record.ref for record in data.table.records].index("a/flat.png")
    assert (data.images[flat] == 156).all()
    with pytest.warns(UserWarning, match="a/flat.png"):  # the cached pixels keep the flag
        prepare_data(cache_config(root, image_size=16))
    report = inspect_dataset(root, grid_path=tmp_path / "grid.png")
    assert any("1 images hold one value everywhere" in p and "a/flat.png" in p for p in report.problems)
    assert "intensity  each file's window or VOI LUT; percentiles 0.5-99.5" in report.to_text()


def test_8_bit_data_shows_no_intensity_rule_and_keeps_its_pixels(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "png", {"a": 3, "b": 3})
    assert "intensity" not in inspect_dataset(root, grid_path=tmp_path / "g.png").to_text()
