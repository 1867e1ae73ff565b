"""DICOM files written with pydicom for the tests, each carrying planted (fake) patient identifiers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import convert_color_space
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)

PHI = {
    "PatientName": "Qwertzberg^Hildegunde^Xaverine",
    "PatientBirthDate": "19230417",
    "AccessionNumber": "ACC88776655",
    "InstitutionName": "Sankt Zebulon Klinikum",
    "ReferringPhysicianName": "Vondrasek^Ottokar",
    "OtherPatientIDs": "OPID-5511-ZQ",
    "StudyDescription": "Quokkafield Zyxbone PA",
}
"""Header values that must never appear in any output (the PatientID and study UIDs are per file)."""


@dataclass(frozen=True)
class Window:
    center: float
    width: float


def patient_id(n: int) -> str:
    """A fake but realistic medical record number; every one is planted and scanned for."""
    return f"MRN{7_300_000 + 37 * n}"


def study_uid(n: int) -> str:
    return f"1.2.826.0.1.3680043.8.498.{90_000_000 + n}"


def dataset(
    array: np.ndarray,
    photometric: str = "MONOCHROME2",
    bits_stored: int = 8,
    *,
    patient: int | None = 1,
    study: int | None = None,
    window: Window | None = None,
    rescale: tuple[float, float] | None = None,
    modality: str = "CR",
) -> Dataset:
    """A complete DICOM dataset of ``array`` with fake patient identifiers and the given technical values."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    sop_class = ComputedRadiographyImageStorage if modality == "CR" else SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    for keyword, value in PHI.items():
        setattr(ds, keyword, value)
    if patient is not None:
        ds.PatientID = patient_id(patient)
    ds.StudyInstanceUID = study_uid(study if study is not None else patient or 0)
    ds.SeriesInstanceUID = generate_uid()
    ds.set_pixel_data(array, photometric, bits_stored)
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window.center, window.width
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    return ds


def write(path: Path, ds: Dataset) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_dicom(path: Path, array: np.ndarray, photometric: str = "MONOCHROME2", bits: int = 8, **kw) -> Path:
    return write(path, dataset(array, photometric, bits, **kw))


def ramp(seed: int, size: int = 24, high: int = 255) -> np.ndarray:
    """Distinct grey content from 0 to ``high`` (never two seeds alike)."""
    rng = np.random.default_rng(seed)
    values = np.linspace(0, high, size * size).reshape(size, size) + rng.integers(
        0, max(2, high // 16), (size, size)
    )
    return np.clip(values, 0, high).astype(np.uint16 if high > 255 else np.uint8)


def rgb_to_ybr(rgb: np.ndarray) -> np.ndarray:
    return convert_color_space(rgb, "RGB", "YBR_FULL")


def make_dicom_folder(
    root: Path,
    classes: dict[str, int],
    per_patient: int = 3,
    photometrics: tuple[str, ...] = ("MONOCHROME2",),
    bits: int = 12,
    suffix: str = ".dcm",
) -> Path:
    """``root/<class>/<name>``: 12-bit windowed DICOM, ``per_patient`` images per fake patient, file names
    that carry no patient, photometric interpretations taking turns."""
    n = 0
    for label, (name, count) in enumerate(sorted(classes.items())):
        for i in range(count):
            n += 1
            patient = 100 * label + i // per_patient
            photometric = photometrics[n % len(photometrics)]
            high = 2**bits - 1
            grey = ramp(n, high=high).astype(np.uint16)
            stored = high - grey if photometric == "MONOCHROME1" else grey
            ds = dataset(stored, photometric, bits, patient=patient, window=Window(high / 2 + 0.5, high + 1))
            write(root / name / f"IMG{n:05d}{suffix}", ds)
    return root
