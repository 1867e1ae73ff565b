"""Patients from DICOM headers: pseudonyms in every output, grouped splits and CV on an export without
file-name patterns, and ``data inspect``'s DICOM block."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from dicomgen import PHI, dataset, make_dicom_folder, patient_id, ramp, study_uid, write

from medssl.data import DataConfig, prepare_data, prepare_folds, read_table
from medssl.data.groups import header_groups
from medssl.data.inspect import inspect_dataset
from medssl.data.sources import load_table

PSEUDONYM = re.compile(r"^patient-\d{4}$")


def planted(table_size: int = 200) -> list[str]:
    """Every identifier the generators plant: names, dates, institution, patient ids, study UIDs."""
    return [
        *PHI.values(),
        *(patient_id(n) for n in range(table_size)),
        *(study_uid(n) for n in range(table_size)),
    ]


def test_patients_come_from_the_headers_as_pseudonyms_numbered_by_first_image(
    tmp_path: Path, cache_config
) -> None:
    root = make_dicom_folder(tmp_path / "export", {"NORMAL": 9, "PNEUMONIA": 9}, per_patient=3)
    table = header_groups(read_table(DataConfig(path=str(root))))
    assert table.group_kind == "patient"
    assert table.groups == [f"patient-{1 + i // 3:04d}" for i in range(18)]
    decoded = prepare_data(cache_config(root, image_size=16)).table  # read while decoding, not apart
    cached = prepare_data(cache_config(root, image_size=16)).table  # from the pixel cache
    assert decoded.groups == cached.groups == table.groups and decoded.group_kind == "patient"
    meta = next((tmp_path / "cache").glob("*.json"))
    assert "MRN" not in meta.read_text()
    meta.write_text(re.sub(r', "header_groups": \{[^}]*\}', "", meta.read_text()))  # a cache from before
    assert "header_groups" not in meta.read_text()
    assert prepare_data(cache_config(root, image_size=16)).table.groups == table.groups


def test_pseudonyms_do_not_depend_on_the_id_values(tmp_path: Path) -> None:
    """Only which images share a patient matters: other ids, same pseudonyms (so no order of ids leaks)."""
    for name, offset in (("one", 0), ("two", 500)):
        for i, patient in enumerate([3, 1, 3, 2, 1, 2]):
            write(tmp_path / name / "c" / f"{i}.dcm", dataset(ramp(i), patient=patient + offset))
    one, two = (header_groups(load_table(tmp_path / name)) for name in ("one", "two"))
    assert (
        one.groups
        == two.groups
        == ["patient-0001", "patient-0002", "patient-0001", "patient-0003", "patient-0002", "patient-0003"]
    )


def test_study_uid_groups_files_without_a_patient_id(tmp_path: Path) -> None:
    for i, study in enumerate([7, 7, 8, 9, 9, 9]):
        write(tmp_path / "d" / "c" / f"{i}.dcm", dataset(ramp(i), patient=None, study=study))
    table = header_groups(load_table(tmp_path / "d"))
    assert table.group_kind == "study"
    assert table.groups == [
        "study-0001",
        "study-0001",
        "study-0002",
        "study-0003",
        "study-0003",
        "study-0003",
    ]


def test_a_group_pattern_wins_over_the_headers(tmp_path: Path) -> None:
    root = make_dicom_folder(tmp_path / "export", {"a": 4, "b": 4}, per_patient=2)
    table = read_table(DataConfig(path=str(root), group_pattern=r"IMG0000(\d)", group_kind="site"))
    assert table.group_kind == "site" and table.groups[0] == "1"


def test_grouped_split_and_cross_validation_keep_patients_whole_and_write_only_pseudonyms(
    tmp_path: Path, cache_config
) -> None:
    root = make_dicom_folder(tmp_path / "export", {"NORMAL": 30, "PNEUMONIA": 30}, per_patient=3)
    run = tmp_path / "run"
    data = prepare_data(cache_config(root, image_size=16), run_dir=run)
    assert data.policy == "grouped"
    groups = np.array(data.table.groups)
    parts = {name: set(groups[data.split[name]]) for name in ("train", "val", "test")}
    assert not parts["test"] & (parts["train"] | parts["val"])
    folds = prepare_folds(cache_config(root, image_size=16, folds=4), run_dir=tmp_path / "cv")
    for fold in folds:
        assert not set(groups[fold.split["test"]]) & set(groups[fold.split["train"]])
    for manifest in (run / "split.csv", tmp_path / "cv" / "split.csv"):
        text = manifest.read_text()
        assert text.splitlines()[0].split(",")[3] == "patient"
        assert all(PSEUDONYM.match(line.split(",")[3]) for line in text.splitlines()[1:])
        assert not [value for value in planted() if value in text]


def test_inspect_counts_patients_and_studies_and_warns_on_mixtures(tmp_path: Path) -> None:
    root = make_dicom_folder(
        tmp_path / "export", {"a": 6, "b": 6}, per_patient=2, photometrics=("MONOCHROME1", "MONOCHROME2")
    )
    write(root / "a" / "ct.dcm", dataset(ramp(99, high=4095), "MONOCHROME2", 12, patient=55, modality="OT"))
    report = inspect_dataset(root, grid_path=tmp_path / "grid.png")
    text = report.to_text()
    assert "dicom      13 files: 7 patients, 7 studies" in text
    assert "MONOCHROME1 (6)" in text and "MONOCHROME2 (7)" in text and "12-bit (13)" in text
    assert "intensity  each file's window" in text and "MONOCHROME1 inverted" in text
    assert any("mixes MONOCHROME1 (6) and MONOCHROME2 (7)" in p for p in report.problems)
    assert any("mixes modalities" in p for p in report.problems)
    assert any(
        "have no window" in p for p in report.problems
    )  # ct.dcm: scaled by percentiles, unlike the rest
    assert not [value for value in planted() if value in text]


@pytest.mark.parametrize("suffix", [".dcm", ""])
def test_an_export_with_suffixless_files_inspects_and_prepares(
    tmp_path: Path, cache_config, suffix: str
) -> None:
    root = make_dicom_folder(tmp_path / "export", {"a": 9, "b": 9}, per_patient=1, suffix=suffix)
    assert (
        "problems   none found" in inspect_dataset(root, grid_path=tmp_path / "g.png", folds=None).to_text()
    )
    assert prepare_data(cache_config(root, image_size=16)).images.shape == (18, 16, 16, 1)


def test_a_csv_manifest_of_dicom_files_gets_header_patients(tmp_path: Path) -> None:
    rows = ["path,label"]
    for i, patient in enumerate([4, 4, 5, 6, 6, 7]):
        name = f"scans/S{i:03d}" + (".dcm" if i % 2 else "")  # half without a suffix
        write(tmp_path / name, dataset(ramp(i), patient=patient))
        rows.append(f"{name},{'ab'[i % 2]}")
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    table = header_groups(read_table(DataConfig(path=str(tmp_path / "manifest.csv"))))
    assert table.layout == "csv" and table.group_kind == "patient"
    assert table.groups == [
        "patient-0001",
        "patient-0001",
        "patient-0002",
        "patient-0003",
        "patient-0003",
        "patient-0004",
    ]
