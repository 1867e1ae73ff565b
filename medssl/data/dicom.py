"""DICOM images through pydicom: pixels in the standard's order, and patients as pseudonyms.

Only technical elements are ever parsed (``TECHNICAL``, plus PatientID and StudyInstanceUID for the groups,
kept as raw bytes in memory): names, dates and other identifiers are never read, so no message can carry
them. Pixels follow the standard's pipeline, each step a pydicom function: the stored values (BitsStored
and PixelRepresentation respected, YBR converted to RGB), ``apply_modality_lut``, the VOI step chosen by
``IntensityConfig`` (``apply_voi_lut`` / ``apply_windowing``, or percentiles), then MONOCHROME1 inverted.
Palette colour goes through ``apply_color_lut``.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import (
    apply_color_lut,
    apply_modality_lut,
    apply_voi_lut,
    apply_windowing,
    get_decoder,
)
from pydicom.uid import UID

from medssl.data.decode import FIX, BadImageError, pixel_limit
from medssl.data.intensity import IntensityConfig

PIXEL_MODULE = (
    "SamplesPerPixel", "PhotometricInterpretation", "Rows", "Columns", "BitsAllocated", "BitsStored",
    "HighBit", "PixelRepresentation", "PlanarConfiguration", "NumberOfFrames", "PixelData", "FloatPixelData",
    "DoubleFloatPixelData", "ExtendedOffsetTable", "ExtendedOffsetTableLengths",
)  # fmt: skip
PALETTE = tuple(
    f"{segmented}{colour}PaletteColorLookupTable{part}"
    for colour in ("Red", "Green", "Blue", "Alpha")
    for segmented, part in (("", "Descriptor"), ("", "Data"), ("Segmented", "Data"))
)
VOI = ("RescaleSlope", "RescaleIntercept", "RescaleType", "ModalityLUTSequence", "WindowCenter", "WindowWidth",
       "VOILUTFunction", "VOILUTSequence")  # fmt: skip
DESCRIPTIVE = ("Modality", "SOPClassUID", "PresentationLUTShape")
TECHNICAL = (*PIXEL_MODULE, *PALETTE, *VOI, *DESCRIPTIVE)
"""The only elements medssl reads besides the group ids: all technical, none identifies anyone."""
GROUP_IDS = ("PatientID", "StudyInstanceUID")

_TAGS = [tag_for_keyword(k) for k in (*TECHNICAL, *GROUP_IDS)]
_ID_TAGS = [tag_for_keyword(k) for k in GROUP_IDS]
DECODER_PACKAGES = {
    "1.2.840.10008.1.2.4.80": "pyjpegls or python-gdcm",
    "1.2.840.10008.1.2.4.81": "pyjpegls or python-gdcm",
}
"""Packages (MIT/BSD) that decode a compressed transfer syntax medssl's own dependencies do not; JPEG
Lossless and 12-bit JPEG Extended need python-gdcm (the default)."""
STANDARD_DECODER = "python-gdcm"


def read(source: Path | bytes) -> Dataset:
    """The technical elements, pixel data and group ids of a DICOM file (nothing else is parsed)."""
    return dcmread(source if isinstance(source, Path) else io.BytesIO(source), specific_tags=_TAGS)


def raw_id(ds: Dataset, keyword: str) -> bytes | None:
    """An id element's stored bytes, never converted to text (so never validated, warned about or shown)."""
    element = ds.get_item(tag_for_keyword(keyword))
    value = getattr(element, "value", None) if element is not None else None
    if isinstance(value, str):
        value = value.encode()
    value = (value or b"").strip(b" \x00")
    return value or None


GroupKey = tuple[str, bytes]
"""``("patient", PatientID)`` or ``("study", StudyInstanceUID)``, raw bytes: in memory only, never written."""


def key_of(ds: Dataset) -> GroupKey | None:
    """The PatientID, else the StudyInstanceUID, of a dataset; None when it has neither."""
    for kind, keyword in zip(("patient", "study"), GROUP_IDS, strict=True):
        if (value := raw_id(ds, keyword)) is not None:
            return kind, value
    return None


def group_key(path: Path) -> GroupKey | None:
    """``key_of`` the file's header (None for unreadable files too: decoding names those)."""
    try:
        return key_of(dcmread(path, specific_tags=_ID_TAGS, stop_before_pixels=True))
    except Exception:  # decoding names the file and its problem later
        return None


def pseudonyms(keys: Iterable[GroupKey | None]) -> list[str | None]:
    """``patient-0001``, ``patient-0002``... numbered by first appearance (``study-…`` for study ids)."""
    keys = list(keys)
    numbers: dict[GroupKey, int] = {}
    per_kind: Counter[str] = Counter()
    for key in keys:
        if key is not None and key not in numbers:
            per_kind[key[0]] += 1
            numbers[key] = per_kind[key[0]]
    width = max(4, *(len(str(n)) for n in per_kind.values())) if per_kind else 4
    return [None if key is None else f"{key[0]}-{numbers[key]:0{width}d}" for key in keys]


def _refuse_non_images(ds: Dataset, where: Path) -> None:
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        kind = UID(ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID") or "")
        named = f" ({kind.name})" if kind else ""
        if "Rows" in ds or "Image Storage" in kind.name:
            raise BadImageError(
                f"{where}: truncated DICOM file: an image{named} without its pixel data; {FIX}"
            )
        raise BadImageError(f"{where}: a DICOM object without pixel data{named}, not an image; {FIX}")
    frames = int(ds.get("NumberOfFrames") or 1)
    if frames > 1:
        raise BadImageError(
            f"{where}: a multi-frame DICOM image ({frames} frames: a cine loop or a 3-D volume); medssl reads "
            f"2-D images, so export one frame per file, or {FIX.removeprefix('remove or replace the file, or ')}"
        )
    rows, columns = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    if rows * columns > pixel_limit():
        raise BadImageError(
            f"{where}: refused as a possible decompression bomb ({columns}x{rows} pixels, more than "
            f"{pixel_limit()}); {FIX}"
        )


def _undecodable(ds: Dataset, where: Path, reason: str) -> BadImageError:
    syntax = UID(ds.file_meta.get("TransferSyntaxUID") or "")
    package = DECODER_PACKAGES.get(str(syntax), STANDARD_DECODER)
    return BadImageError(
        f"{where}: cannot decode its {syntax.name} ({syntax}) pixel data ({reason}); install {package}, "
        f"which decodes it, or export uncompressed DICOM; {FIX}"
    )


def stored_values(ds: Dataset, where: Path) -> np.ndarray:
    """The stored pixel values (sign and BitsStored respected; YBR as RGB), or a ``BadImageError``."""
    _refuse_non_images(ds, where)
    syntax = UID(ds.file_meta.get("TransferSyntaxUID") or "")
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:  # a private or retired transfer syntax
        raise _undecodable(ds, where, "pydicom has no decoder for it") from None
    if syntax.is_compressed and not decoder.is_available:
        raise _undecodable(ds, where, "no decoder installed")
    try:
        return decoder.as_array(ds)[0]  # (pixels, metadata): what Dataset.pixel_array calls
    except RuntimeError as error:  # every installed plugin failed: unsupported variant or corrupt stream
        if syntax.is_compressed:
            raise _undecodable(ds, where, str(error).splitlines()[-1].strip()) from None
        raise BadImageError(f"{where}: corrupt DICOM pixel data ({error}); {FIX}") from None
    except (ValueError, AttributeError, KeyError, TypeError, NotImplementedError) as error:
        reason = " ".join(str(error).split())
        raise BadImageError(f"{where}: unreadable or truncated DICOM pixel data ({reason}); {FIX}") from None


EXTREMES = np.array([-(2**62), 2**62], dtype=np.int64)
"""Appended to the values of a VOI call: what the VOI gives far below and far above any window is its output
range (a window's y_min and y_max), found in the same call."""


def _voi(
    apply: Callable[[np.ndarray, Dataset], np.ndarray], values: np.ndarray, ds: Dataset
) -> np.ndarray | None:
    """``apply`` (pydicom's ``apply_voi_lut`` or ``apply_windowing``) mapped to [0, 1] by its output range;
    None when the file has no VOI (pydicom then returns its input unchanged)."""
    if ds.get("VOILUTSequence") and not np.issubdtype(values.dtype, np.integer):
        values = np.rint(values).astype(np.int64)  # a VOI LUT indexes integer modality values
    probe = np.concatenate([values.ravel(), EXTREMES])  # int64 or float64: the extremes fit
    with np.errstate(over="ignore"):  # a SIGMOID window's exp() at the extremes
        out = apply(probe, ds)
    if out is probe:
        return None
    if np.issubdtype(out.dtype, np.integer):  # a VOI LUT: its output range is its bit depth
        low, high = 0.0, float(2 ** int(ds.VOILUTSequence[0].LUTDescriptor[2]) - 1)
    else:
        low, high = float(out[-2]), float(out[-1])
    return _unit(out[:-2].reshape(values.shape), low, high)


def stored_range(ds: Dataset) -> tuple[float, float]:
    """The values BitsStored and PixelRepresentation allow, through the modality LUT (the full range)."""
    bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 16)
    signed = int(ds.get("PixelRepresentation") or 0) == 1
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    mapped = apply_modality_lut(np.array([low, high], dtype=np.int64), ds)
    return float(np.min(mapped)), float(np.max(mapped))


def _unit(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """``values`` with ``low`` → 0 and ``high`` → 1, clipped (``low > high`` inverts, as a negative slope does)."""
    unit = np.subtract(values, low, dtype=np.float64)
    unit /= high - low
    return np.clip(unit, 0.0, 1.0, out=unit)


def to_unit(values: np.ndarray, ds: Dataset, intensity: IntensityConfig) -> np.ndarray:
    """Modality values → [0, 1] by the VOI step ``intensity`` picks; ``ds`` holds the VOI module (and is
    changed by a fixed window)."""
    if intensity.window == "fixed":
        for keyword in ("VOILUTSequence", "VOILUTFunction"):
            if keyword in ds:
                delattr(ds, keyword)
        ds.WindowCenter, ds.WindowWidth = intensity.center, intensity.width
        return _voi(apply_windowing, values, ds)
    if intensity.window == "file" and (unit := _voi(apply_voi_lut, values, ds)) is not None:
        return unit
    low, high = np.percentile(values, intensity.percentiles)
    if high <= low:  # one value everywhere: place it within the full range instead of making it black
        low, high = stored_range(ds)
    return _unit(values, low, high)


def to_uint8(unit: np.ndarray) -> np.ndarray:
    unit *= 255.0
    return np.rint(unit, out=unit).astype(np.uint8)


def monochrome(values: np.ndarray, intensity: IntensityConfig, bits: int = 16) -> np.ndarray:
    """Grey values of a non-DICOM image wider than 8 bits (16-bit PNG/TIFF) → uint8, by the same rule."""
    ds = Dataset()
    ds.PhotometricInterpretation, ds.BitsStored, ds.PixelRepresentation = "MONOCHROME2", bits, 0
    return to_uint8(to_unit(values, ds, intensity))


def _colour(rgb: np.ndarray, bits: int) -> np.ndarray:
    rgb = rgb[..., :3]
    if rgb.dtype == np.uint8 and bits <= 8:
        return rgb
    return to_uint8(_unit(rgb, 0.0, float(2**bits - 1)))


def dataset_pixels(ds: Dataset, intensity: IntensityConfig, where: Path) -> np.ndarray:
    """A decoded DICOM dataset → uint8 HxW (grey) or HxWx3 (colour), in the standard's order."""
    stored = stored_values(ds, where)
    photometric = str(ds.get("PhotometricInterpretation") or "").strip()
    try:
        if photometric == "PALETTE COLOR":
            depth = int(ds.RedPaletteColorLookupTableDescriptor[2])
            return _colour(apply_color_lut(stored, ds), depth)
        if stored.ndim == 3:
            return _colour(stored, int(ds.get("BitsStored") or 8))
        grey = to_uint8(to_unit(apply_modality_lut(stored, ds), ds, intensity))
    except (ValueError, AttributeError, IndexError, TypeError, NotImplementedError) as error:
        reason = " ".join(str(error).split())
        raise BadImageError(
            f"{where}: invalid DICOM intensity settings in the file ({reason}); {FIX}"
        ) from None
    return 255 - grey if photometric == "MONOCHROME1" else grey


def decode_dicom(path: Path, intensity: IntensityConfig) -> np.ndarray:
    """Read and decode one DICOM file; ``BadImageError`` naming the file and the reason when it cannot."""
    return dataset_pixels(parse(path, path), intensity, path)


def decode_with_key(
    path: Path, intensity: IntensityConfig
) -> tuple[np.ndarray | BadImageError, GroupKey | None]:
    """One read of a DICOM file for both its pixels (or the error naming it) and its group key."""
    try:
        ds = parse(path, path)
    except BadImageError as error:
        return error, None
    try:
        return dataset_pixels(ds, intensity, path), key_of(ds)
    except BadImageError as error:
        return error, key_of(ds)


def parse(data: bytes | Path, where: Path) -> Dataset:
    """``read(data)``, with every failure a one-line ``BadImageError`` naming ``where``."""
    try:
        return read(data)
    except InvalidDicomError:
        raise BadImageError(f"{where}: not a DICOM file (no DICM preamble); {FIX}") from None
    except PermissionError:
        raise BadImageError(
            f"{where}: permission denied; make the file readable (chmod +r) or {FIX}"
        ) from None
    except (OSError, EOFError, ValueError, KeyError, TypeError, IndexError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise BadImageError(f"{where}: unreadable or truncated DICOM file ({reason}); {FIX}") from None


@dataclass(frozen=True)
class DicomFacts:
    """The technical values of one DICOM file that ``data inspect`` counts, and its ids (never shown)."""

    modality: str
    photometric: str
    bits: int
    window: str
    encoding: str
    patient: bytes | None = field(default=None, repr=False)
    study: bytes | None = field(default=None, repr=False)

    @property
    def group_key(self) -> GroupKey | None:
        """The PatientID, else the StudyInstanceUID (as ``key_of``)."""
        return ("patient", self.patient) if self.patient else ("study", self.study) if self.study else None

    @classmethod
    def of(cls, ds: Dataset) -> DicomFacts:
        return cls(
            str(ds.get("Modality") or "?"),
            str(ds.get("PhotometricInterpretation") or "?").strip(),
            int(ds.get("BitsStored") or 0),
            window_text(ds),
            UID(ds.file_meta.get("TransferSyntaxUID") or "").name or "?",
            raw_id(ds, "PatientID"),
            raw_id(ds, "StudyInstanceUID"),
        )


def _counts(values: Iterable[object]) -> str:
    return ", ".join(f"{value} ({n:,})" for value, n in Counter(values).most_common())


def summary_lines(facts: list[DicomFacts]) -> list[str]:
    """The ``dicom`` block of ``data inspect``: how many patients and studies, and every technical value."""
    patients = {f.patient for f in facts if f.patient}
    studies = {f.study for f in facts if f.study}
    return [
        f"dicom      {len(facts):,} files: {len(patients):,} patients, {len(studies):,} studies",
        f"  modality     {_counts(f.modality for f in facts)}",
        f"  photometric  {_counts(f.photometric for f in facts)}",
        f"  bits stored  {_counts(f'{f.bits}-bit' for f in facts)}",
        f"  windows      {_counts(f.window for f in facts)}",
        f"  encoding     {_counts(f.encoding for f in facts)}",
    ]


def mixtures(facts: list[DicomFacts]) -> list[str]:
    """Mixtures worth a look before training: each makes the images of one dataset unlike each other."""
    out = []
    photometric = Counter(f.photometric for f in facts)
    mono = sorted(k for k in photometric if k.startswith("MONOCHROME"))
    if len(mono) > 1:
        out.append(
            f"DICOM mixes {' and '.join(f'{k} ({photometric[k]:,})' for k in mono)}; MONOCHROME1 is inverted "
            "after windowing so that both show air dark: check that a sample of each looks alike"
        )
    if mono and len(photometric) > len(mono):
        out.append(f"DICOM mixes grey and colour images ({', '.join(sorted(photometric))})")
    for values, what in (
        (Counter(f.modality for f in facts), "modalities"),
        (Counter(f.bits for f in facts), "bit depths (bits stored)"),
    ):
        if len(values) > 1:
            out.append(f"DICOM mixes {what}: {_counts(values.elements())}; is that intended?")
    unwindowed = sum(f.window == "none" for f in facts)
    if 0 < unwindowed < len(facts):
        out.append(
            f"{unwindowed:,} of {len(facts):,} DICOM files have no window: with intensity.window: file they "
            "are scaled by percentiles and the others by their window; set intensity.window to treat all alike"
        )
    return out


def window_text(ds: Dataset) -> str:
    """``centre 40 width 400``, ``VOI LUT``, or ``none``: the file's own VOI (first of several)."""
    if ds.get("VOILUTSequence"):
        return "VOI LUT"
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is None or width is None:
        return "none"
    first = lambda v: v[0] if isinstance(v, MultiValue | list | tuple) else v  # noqa: E731
    return f"centre {float(first(center)):g} width {float(first(width)):g}"
