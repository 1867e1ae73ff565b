"""The DICOM export of the real chest X-rays (``benchmarks/dicom_export.py``) decodes to the JPEG's pixels in
both photometric interpretations, and its header patients split like the file-name patients."""

from __future__ import annotations

import importlib.util
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from datagen import REAL_CHEST_XRAY, REPO

from medssl.data import DataConfig, read_table
from medssl.data.decode import decode_image
from medssl.data.groups import header_groups
from medssl.data.sources import load_table

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not REAL_CHEST_XRAY.is_dir(), reason=f"{REAL_CHEST_XRAY} not present"),
]


def exporter():
    spec = importlib.util.spec_from_file_location("dicom_export", REPO / "benchmarks" / "dicom_export.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def sample(per_part: int = 6) -> list[int]:
    """The first ``per_part`` images of every split and class (consecutive: both devices, shared patients)."""
    records = load_table(REAL_CHEST_XRAY).records
    firsts: dict[tuple, list[int]] = {}
    for i, record in enumerate(records):
        firsts.setdefault((record.split, record.label), []).append(i)
    return [i for indices in firsts.values() for i in indices[:per_part]]


def test_exported_dicom_decodes_to_the_jpeg_pixels_in_both_photometric_interpretations(
    tmp_path: Path,
) -> None:
    module = exporter()
    indices = sample()
    pairs = module.export(REAL_CHEST_XRAY, tmp_path / "dicom", indices)
    photometric = {str(module.DEVICES[i % 2].photometric) for i in indices}
    assert photometric == {"MONOCHROME1", "MONOCHROME2"}
    for jpeg, dicom in pairs:
        np.testing.assert_array_equal(decode_image(dicom), module.grey_of(jpeg), err_msg=str(dicom))


def test_exported_patients_split_like_the_file_name_patients(tmp_path: Path) -> None:
    module = exporter()
    indices = sample()
    module.export(REAL_CHEST_XRAY, tmp_path / "dicom", indices)
    jpeg = load_table(REAL_CHEST_XRAY)
    dicom = header_groups(read_table(DataConfig(path=str(tmp_path / "dicom"))))
    assert dicom.layout == "chest_xray" and dicom.group_kind == "patient"
    by_name = {f"IM{i:06d}.dcm": jpeg.records[i].group for i in indices}
    by_header = {Path(r.ref).name: r.group for r in dicom.records}
    assert all(group and group.startswith("patient-") for group in by_header.values())
    for a, b in combinations(by_name, 2):
        assert (by_name[a] == by_name[b]) == (by_header[a] == by_header[b]), (a, b)
