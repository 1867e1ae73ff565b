"""Re-save the chest X-rays as a PACS export would hand them over: DICOM, to try medssl's DICOM path on real
images and to time it (``dicom_decode.py``).

Like a hospital export:

- 12 bits stored (16 allocated), as DX/CR detectors store them;
- two "devices" taking turns: MONOCHROME2 with rescale slope 0.5, intercept -1024, and MONOCHROME1 (air is
  bright) with slope 1, intercept 0; each file carries the window centre/width that shows it as the JPEG did;
- a fake PatientID and PatientName (and birth date, accession number, institution) in every file: the
  real patient of each image (from the original file names) becomes one fake MRN, so grouped splits
  work, while the file names (``IM000123.dcm``) carry no patient;
- one folder per class, inside the official ``train``/``test`` folders (so results compare with the JPEGs).

The export never goes into the repository: write it to /tmp or the gitignored ``.data/``.

    .venv/bin/python benchmarks/dicom_export.py ../shared/data/chest_xray_pneumonia /tmp/chest_xray_dicom --verify

``--verify`` decodes every exported file with medssl and compares it with the JPEG it came from, pixel for
pixel. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian, generate_uid

from medssl.data.decode import decode_image
from medssl.data.sources import load_table
from medssl.data.types import ImageRecord, ImageTable

CHEST_XRAY = Path(__file__).resolve().parents[2] / "shared" / "data" / "chest_xray_pneumonia"
SURNAMES = ("Lindqvist", "Okonkwo", "Ferreira", "Nakamura", "Kowalczyk", "Haddad", "Brennan", "Castellanos")
GIVEN = ("Amara", "Bjorn", "Chiara", "Dmitri", "Esme", "Farid", "Greta", "Hiroshi", "Ines", "Jonas")


@dataclass(frozen=True)
class Device:
    """How one detector stores an 8-bit grey value ``g`` in 12 bits: stored = 16·g + 8 (MONOCHROME2) or
    16·(255 − g) + 8 (MONOCHROME1); its rescale and the window that shows the stored values as ``g`` again
    (pydicom's LINEAR window: (v − (C − ½)) / (W − 1) + ½ = g / 255)."""

    photometric: str
    slope: float
    intercept: float
    center: float
    width: float

    def stored(self, grey: np.ndarray) -> np.ndarray:
        level = 255 - grey.astype(np.uint16) if self.photometric == "MONOCHROME1" else grey.astype(np.uint16)
        return level * 16 + 8


DEVICES = (
    Device("MONOCHROME2", slope=0.5, intercept=-1024.0, center=0.5, width=2041.0),
    Device("MONOCHROME1", slope=1.0, intercept=0.0, center=2048.5, width=4081.0),
)


def grey_of(path: Path) -> np.ndarray:
    """The JPEG's pixels as medssl decodes them, one channel (the chest X-rays are grey, some saved as RGB)."""
    array = decode_image(path)
    return array if array.ndim == 2 else array[..., 0]


def patient_numbers(table: ImageTable) -> list[int]:
    """A number per record: its real patient's, by first appearance (an image without one gets its own)."""
    numbers: dict[str, int] = {}
    out = []
    for i, record in enumerate(table.records):
        key = record.group or f"image-{i}"
        out.append(numbers.setdefault(key, len(numbers)))
    return out


def fake_dataset(grey: np.ndarray, device: Device, patient: int, index: int) -> Dataset:
    """One DX image as a PACS exports it, with fake identifiers for ``patient``."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["sop", str(index)])
    ds.SOPClassUID, ds.SOPInstanceUID = (
        ds.file_meta.MediaStorageSOPClassUID,
        ds.file_meta.MediaStorageSOPInstanceUID,
    )
    ds.Modality, ds.PresentationIntentType = "DX", "FOR PRESENTATION"
    ds.PatientID = f"MRN{4_000_000 + 7_919 * patient % 1_000_000:07d}"
    ds.PatientName = f"{SURNAMES[patient % len(SURNAMES)]}^{GIVEN[patient // len(SURNAMES) % len(GIVEN)]}"
    ds.PatientBirthDate = f"{2010 + patient % 8}{1 + patient % 12:02d}{1 + patient % 28:02d}"
    ds.PatientSex = "MF"[patient % 2]
    ds.AccessionNumber = f"A{9_000_000 + index}"
    ds.InstitutionName = "Example Children's Hospital"
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["study", str(index)])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["series", str(index)])
    ds.StudyDate, ds.BodyPartExamined = "20170101", "CHEST"
    ds.set_pixel_data(device.stored(grey), device.photometric, 12)
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = device.slope, device.intercept, "US"
    ds.WindowCenter, ds.WindowWidth = device.center, device.width
    ds.PresentationLUTShape = "INVERSE" if device.photometric == "MONOCHROME1" else "IDENTITY"
    return ds


def target(out: Path, record: ImageRecord, table: ImageTable, index: int) -> Path:
    """``out/<split>/<class>/IM<index>.dcm``: the official split and the class, no patient in the name."""
    parts = [record.split] if record.split else []
    return out.joinpath(*parts, table.classes[record.label], f"IM{index:06d}.dcm")


def export(source: Path, out: Path, indices: Sequence[int] | None = None) -> list[tuple[Path, Path]]:
    """Export the images of ``source`` at ``indices`` of its table (all by default); (JPEG, DICOM) pairs.
    Even indices go to the MONOCHROME2 device, odd ones to the MONOCHROME1 device."""
    table = load_table(source)
    patients = patient_numbers(table)
    pairs = []
    for index in range(len(table.records)) if indices is None else indices:
        record = table.records[index]
        dicom = target(out, record, table, index)
        dicom.parent.mkdir(parents=True, exist_ok=True)
        ds = fake_dataset(grey_of(table.path(record)), DEVICES[index % 2], patients[index], index)
        ds.save_as(dicom, enforce_file_format=True)
        pairs.append((table.path(record), dicom))
    return pairs


def verify(pairs: list[tuple[Path, Path]]) -> dict[str, int]:
    """Decode every DICOM with medssl and compare it with its JPEG: files and pixels that differ."""
    differing_files = differing_pixels = max_difference = 0
    for jpeg, dicom in pairs:
        difference = np.abs(decode_image(dicom).astype(int) - grey_of(jpeg).astype(int))
        differing_files += bool(difference.any())
        differing_pixels += int((difference > 0).sum())
        max_difference = max(max_difference, int(difference.max()))
    return {
        "files_differing": differing_files,
        "pixels_differing": differing_pixels,
        "max_abs_diff": max_difference,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", type=Path, default=CHEST_XRAY, help="The chest X-ray folder.")
    parser.add_argument(
        "out", nargs="?", type=Path, default=Path("/tmp/chest_xray_dicom"), help="Export folder."
    )
    parser.add_argument("--limit", type=int, default=None, help="Export only the first N images.")
    parser.add_argument("--verify", action="store_true", help="Compare every exported file with its JPEG.")
    args = parser.parse_args()
    if args.out.exists() and any(args.out.iterdir()):
        sys.exit(f"error: {args.out} is not empty; choose a new folder")
    start = time.perf_counter()
    pairs = export(args.source, args.out, range(args.limit) if args.limit else None)
    result: dict[str, object] = {"files": len(pairs), "out": str(args.out), "export_s": 0.0}
    result["export_s"] = round(time.perf_counter() - start, 1)
    result["monochrome1"] = len(pairs) // 2
    if args.verify:
        start = time.perf_counter()
        result |= verify(pairs)
        result["verify_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
