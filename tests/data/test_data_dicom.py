"""DICOM in, per the standard: which files are read, pixels in the standard's order, refusals in one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom.examples
import pytest
from datagen import make_folder
from dicomgen import Window, dataset, make_dicom_folder, ramp, rgb_to_ybr, write, write_dicom
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut
from pydicom.uid import JPEG2000Lossless, RLELossless

from medssl.data import DataConfig, prepare_data, workers
from medssl.data.cache import table_fingerprint
from medssl.data.decode import BadImageError, decode_image
from medssl.data.inspect import inspect_dataset
from medssl.data.intensity import IntensityConfig
from medssl.data.sources import load_table
from medssl.errors import DataError

TEST_FILES = Path(pydicom.examples.ct.filename).parent
"""pydicom's bundled test files (installed with it, no download)."""


def expected_grey(stored: np.ndarray, high: int) -> np.ndarray:
    return np.rint(stored / high * 255).astype(np.uint8)


def test_dcm_suffixless_and_uid_named_dicom_files_are_read_and_other_files_ignored(tmp_path: Path) -> None:
    for name in ("a/one.dcm", "a/IM000002", "a/1.2.840.113619.2.55.3", "b/x.DCM", "b/IM000005", "b/y.dicom"):
        write_dicom(tmp_path / name, ramp(len(name)))
    (tmp_path / "a" / "notes").write_text("not an image, no suffix")
    (tmp_path / "b" / "README.txt").write_text("read me")
    table = load_table(tmp_path)
    assert sorted(r.ref for r in table.records) == [
        "a/1.2.840.113619.2.55.3", "a/IM000002", "a/one.dcm", "b/IM000005", "b/x.DCM", "b/y.dicom",
    ]  # fmt: skip
    assert {"a/notes", "b/README.txt"} <= set(table.ignored)


@pytest.mark.parametrize("bits", [8, 12, 16])
def test_windowed_monochrome2_and_monochrome1_decode_to_the_same_grey(tmp_path: Path, bits: int) -> None:
    high = 2**bits - 1
    grey = ramp(bits, high=high)
    window = Window(high / 2 + 0.5, high + 1)  # LINEAR window mapping 0..high exactly onto 0..255
    two = decode_image(write_dicom(tmp_path / "m2.dcm", grey, "MONOCHROME2", bits, window=window))
    one = decode_image(write_dicom(tmp_path / "m1.dcm", high - grey, "MONOCHROME1", bits, window=window))
    np.testing.assert_array_equal(two, expected_grey(grey, high))
    np.testing.assert_array_equal(one, two)  # inverted after windowing: air is dark in both


def test_modality_lut_runs_before_the_window_on_signed_12_bit_values(tmp_path: Path) -> None:
    """CT-like: signed stored values, rescale to HU, a soft-tissue window (40/400) in HU."""
    hu = np.array([[-1000, -160, -159.5, 40, 239.5, 240, 3000]], dtype=np.float64)
    stored = ((hu + 1024) / 2).astype(np.int16) - 512  # slope 2, intercept -1024 + 2 * 512... stored signed
    path = write_dicom(tmp_path / "ct.dcm", stored, "MONOCHROME2", 12, window=Window(40, 400), rescale=(2, 0))
    decoded = decode_image(path)[0].astype(int)
    values = stored[0] * 2.0  # what the modality LUT gives
    expected = np.clip(((values - 39.5) / 399 + 0.5) * 255, 0, 255)  # the standard's LINEAR window
    np.testing.assert_allclose(decoded, np.rint(expected), atol=1)
    assert decoded[0] == 0 and decoded[-1] == 255


def test_bits_above_bits_stored_are_ignored(tmp_path: Path) -> None:
    grey = ramp(3, high=4095)
    ds = dataset(grey, "MONOCHROME2", 12, window=Window(2048, 4096))
    raw = np.frombuffer(ds.PixelData, dtype="<u2") | np.uint16(0xF000)  # overlay bits in the high nibble
    ds.PixelData = raw.tobytes()
    np.testing.assert_array_equal(decode_image(write(tmp_path / "junk.dcm", ds)), expected_grey(grey, 4095))


def test_unwindowed_files_are_scaled_by_percentiles(tmp_path: Path) -> None:
    values = np.arange(100 * 100, dtype=np.uint16).reshape(100, 100) % 1000  # 0..999, evenly
    path = write_dicom(tmp_path / "u.dcm", values, "MONOCHROME2", 16)
    default = decode_image(path).astype(int)
    low, high = np.percentile(values, [0.5, 99.5])
    np.testing.assert_allclose(default, np.rint(np.clip((values - low) / (high - low), 0, 1) * 255), atol=0)
    minmax = decode_image(path, IntensityConfig(percentiles=(0, 100)))
    np.testing.assert_array_equal(minmax, expected_grey(values, 999))


def test_fixed_and_percentile_settings_override_the_file_window(tmp_path: Path) -> None:
    values = np.arange(0, 4096, 16, dtype=np.uint16).reshape(16, 16)
    path = write_dicom(
        tmp_path / "w.dcm", values, "MONOCHROME2", 12, window=Window(100, 50), rescale=(1, -1024)
    )
    file_window = decode_image(path)
    fixed = decode_image(path, IntensityConfig(window="fixed", center=0, width=2000))
    percentile = decode_image(path, IntensityConfig(window="percentile", percentiles=(0, 100)))
    hu = values.astype(float) - 1024
    assert (file_window[hu <= 75] == 0).all() and (file_window[hu > 125] == 255).all()
    assert (fixed[hu <= -1000] == 0).all() and (fixed[hu > 1000] == 255).all()
    assert 0 < fixed[hu == 0].item() < 255
    np.testing.assert_array_equal(percentile, expected_grey(values, 4080))


def test_a_voi_lut_sequence_is_applied(tmp_path: Path) -> None:
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    ds = dataset(values, "MONOCHROME2", 8)
    item = Dataset()
    item.LUTDescriptor = [256, 0, 8]
    item.add_new("LUTData", "US", [255 - i for i in range(256)])  # an inverting LUT
    ds.VOILUTSequence = [item]
    np.testing.assert_array_equal(decode_image(write(tmp_path / "lut.dcm", ds)), 255 - values)


def test_rgb_and_ybr_colour_decode_to_rgb(tmp_path: Path) -> None:
    rgb = np.stack([ramp(1), ramp(2)[::-1], ramp(3).T], axis=-1).astype(np.uint8)
    np.testing.assert_array_equal(decode_image(write_dicom(tmp_path / "rgb.dcm", rgb, "RGB")), rgb)
    ybr = decode_image(write_dicom(tmp_path / "ybr.dcm", rgb_to_ybr(rgb), "YBR_FULL"))
    assert np.abs(ybr.astype(int) - rgb).max() <= 2  # YCbCr round trip rounding


def test_palette_colour_goes_through_the_palette(tmp_path: Path) -> None:
    ds = pydicom.examples.palette_color
    decoded = decode_image(Path(ds.filename))
    expected = apply_color_lut(ds.pixel_array, ds)
    scale = 255 / (2 ** int(ds.RedPaletteColorLookupTableDescriptor[2]) - 1)
    np.testing.assert_array_equal(decoded, np.rint(expected[..., :3] * scale).astype(np.uint8))
    assert decoded.ndim == 3 and len(np.unique(decoded.reshape(-1, 3), axis=0)) > 10


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless])
def test_compressed_transfer_syntaxes_decode_like_uncompressed(tmp_path: Path, syntax) -> None:
    grey = ramp(5, size=64, high=4095)
    ds = dataset(grey, "MONOCHROME2", 12, window=Window(2048, 4096))
    plain = decode_image(write(tmp_path / "plain.dcm", ds))
    ds.compress(syntax)
    np.testing.assert_array_equal(decode_image(write(tmp_path / "packed.dcm", ds)), plain)


def test_bundled_examples_decode_alike_in_every_encoding() -> None:
    names = ("MR_small.dcm", "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_bigendian.dcm")
    first, *others = (decode_image(TEST_FILES / name) for name in names)
    for other in others:
        np.testing.assert_array_equal(other, first)
    ct = decode_image(
        Path(pydicom.examples.ct.filename), IntensityConfig(window="fixed", center=40, width=400)
    )
    hu = pydicom.examples.ct.pixel_array * float(pydicom.examples.ct.RescaleSlope) - 1024
    assert (ct[hu <= -160] == 0).all() and (ct[hu > 240] == 255).all()


@pytest.mark.parametrize(
    ("source", "fragments"),
    [
        ("MR_small_jpeg_ls_lossless.dcm", ["JPEG-LS Lossless", "1.2.840.10008.1.2.4.80", "pyjpegls"]),
        ("JPGExtended.dcm", ["JPEG Extended", "1.2.840.10008.1.2.4.51", "python-gdcm"]),
        ("MR_truncated.dcm", ["truncated"]),
        ("test-SR.dcm", ["without pixel data", "SR Storage"]),
        ("examples_ybr_color.dcm", ["multi-frame", "30 frames"]),
        ("dicomdirtests/DICOMDIR", ["without pixel data", "Directory"]),
        ("no_meta.dcm", ["not a DICOM file"]),
    ],
)
def test_what_cannot_be_read_is_refused_in_one_line(
    tmp_path: Path, cache_config, source: str, fragments: list[str]
) -> None:
    root = make_dicom_folder(tmp_path / "data", {"a": 6, "b": 6}, per_patient=1)
    bad = root / "a" / Path(source).name
    shutil.copy(TEST_FILES / source, bad)
    with pytest.raises(DataError) as caught:
        prepare_data(cache_config(root, image_size=16))
    message = str(caught.value)
    assert "\n" not in message and str(bad) in message and "--skip-bad-images" in message
    for fragment in fragments:
        assert fragment in message, message
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        kept = prepare_data(cache_config(root, image_size=16, skip_bad_images=True), run_dir=tmp_path / "run")
    assert len(kept.table.records) == 12


def test_a_non_dicom_file_named_dcm_and_a_cut_header_are_refused(tmp_path: Path) -> None:
    fake = tmp_path / "fake.dcm"
    fake.write_bytes(b"\x89PNG not really" * 20)
    with pytest.raises(BadImageError, match="not a DICOM file"):
        decode_image(fake)
    whole = write_dicom(tmp_path / "cut.dcm", ramp(1)).read_bytes()
    (tmp_path / "cut.dcm").write_bytes(whole[:200])
    with pytest.raises(BadImageError, match="truncated"):
        decode_image(tmp_path / "cut.dcm")


def test_intensity_settings_key_the_cache_of_dicom_data_only(tmp_path: Path, cache_config) -> None:
    dicom = load_table(make_dicom_folder(tmp_path / "dicom", {"a": 6, "b": 6}, per_patient=1))
    png = load_table(make_folder(tmp_path / "png", {"a": 3, "b": 3}))
    other = IntensityConfig(window="percentile")
    assert table_fingerprint(dicom, 16) != table_fingerprint(dicom, 16, other)
    assert table_fingerprint(png, 16) == table_fingerprint(png, 16, other)  # 8-bit data keeps its key
    first = prepare_data(cache_config(tmp_path / "dicom", image_size=16))
    again = prepare_data(cache_config(tmp_path / "dicom", image_size=16, intensity=other))
    assert first.fingerprint != again.fingerprint


def test_fixed_window_needs_centre_and_width() -> None:
    with pytest.raises(ValueError, match="center and width"):
        IntensityConfig(window="fixed", center=40)
    with pytest.raises(ValueError, match="window: fixed only"):
        IntensityConfig(center=40, width=400)
    with pytest.raises(ValueError, match="percentiles"):
        IntensityConfig(percentiles=(99, 1))


@pytest.mark.skipif(not workers._use_processes(10**6), reason="worker processes are forked on Linux only")
def test_worker_processes_decode_and_group_like_threads(tmp_path: Path, cache_config, monkeypatch) -> None:
    """Many DICOM files are parsed in forked processes (pydicom holds the GIL); the results are the same."""
    root = make_dicom_folder(
        tmp_path / "d", {"a": 8, "b": 8}, per_patient=2, photometrics=("MONOCHROME1", "MONOCHROME2")
    )
    threads = prepare_data(cache_config(root, image_size=16))
    inspected = inspect_dataset(root, grid_path=tmp_path / "grid.png")
    monkeypatch.setattr(workers, "PROCESS_MIN_FILES", 2)
    assert workers._use_processes(16)
    processes = prepare_data(
        DataConfig(path=str(root), image_size=16, cache_dir=str(tmp_path / "other-cache"))
    )
    np.testing.assert_array_equal(processes.images, threads.images)
    assert processes.table.groups == threads.table.groups
    again = inspect_dataset(root, grid_path=tmp_path / "grid.png")
    assert (again.dicom, again.problems, again.modes) == (
        inspected.dicom,
        inspected.problems,
        inspected.modes,
    )
