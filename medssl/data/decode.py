"""Decode one image file of any common medical format into a uint8 array, or explain why not.

DICOM files (``.dcm``/``.dicom``, or any other name whose bytes carry the DICM preamble) are decoded by
``medssl.data.dicom``; images wider than 8 bits (DICOM, 16-bit PNG/TIFF) follow ``IntensityConfig``.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from medssl.data.intensity import IntensityConfig
from medssl.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"}
DICOM_SUFFIXES = {".dcm", ".dicom"}
PREAMBLE_END = 132
"""A DICOM Part 10 file: 128 bytes of preamble, then ``DICM``."""
HIGH_DEPTH_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}
"""PIL modes wider than 8 bits: scaled by the intensity rule, not used as stored."""
FIX = "remove or replace the file, or pass --skip-bad-images to skip it"
IGNORED_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
MAX_PIXELS = 200_000_000
"""Hard cap on pixels per image; images above it, or above PIL's ``Image.MAX_IMAGE_PIXELS`` (89M by default),
are refused as possible decompression bombs before their pixels are decoded."""


class BadImageError(DataError):
    """An image file that cannot be decoded."""


def has_preamble(data: bytes) -> bool:
    return data[128:PREAMBLE_END] == b"DICM"


def _starts_as_dicom(path: Path) -> bool:
    """Whether a regular file begins with the DICOM preamble (FIFOs and devices are never opened)."""
    try:
        if not path.is_file():
            return False
        with path.open("rb") as handle:
            return has_preamble(handle.read(PREAMBLE_END))
    except OSError:
        return False


def is_dicom(path: Path, data: bytes | None = None) -> bool:
    """A ``.dcm``/``.dicom`` name, or another name (``IM000001``, a UID) whose bytes carry the preamble."""
    suffix = path.suffix.lower()
    if suffix in DICOM_SUFFIXES:
        return True
    if suffix in IMAGE_SUFFIXES:
        return False
    return has_preamble(data) if data is not None else _starts_as_dicom(path)


def is_image_file(path: Path) -> bool:
    """An image by its suffix, or a DICOM file by its suffix or preamble (macOS ``._`` files never)."""
    if path.name.startswith("._"):
        return False
    return path.suffix.lower() in IMAGE_SUFFIXES or is_dicom(path)


def needs_intensity(path: Path, data: bytes) -> bool:
    """Whether the file's pixels depend on ``IntensityConfig``: DICOM, or an image wider than 8 bits."""
    if is_dicom(path, data):
        return True
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.mode in HIGH_DEPTH_MODES
    except Exception:  # an unreadable file is named when it is decoded
        return False


def is_ignorable(path: Path) -> bool:
    """Operating-system clutter that sits beside images in real downloads."""
    return path.name.lower() in IGNORED_NAMES or path.name.startswith("._")


def _to_uint8(image: Image.Image, intensity: IntensityConfig) -> np.ndarray:
    """Grayscale images stay HxW; everything else becomes HxWx3 RGB. Wider than 8 bits: the intensity rule."""
    if image.mode in HIGH_DEPTH_MODES:
        from medssl.data.dicom import monochrome  # pydicom is imported only for such images

        return monochrome(np.asarray(image, dtype=np.float64), intensity)
    if image.mode in ("1", "L"):
        return np.asarray(image.convert("L"), dtype=np.uint8)
    if image.mode == "LA":
        return np.asarray(image.convert("L"), dtype=np.uint8)
    if image.mode in ("RGBA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"), dtype=np.uint8)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def pixel_limit() -> int:
    """The most pixels an image may have: PIL's ``Image.MAX_IMAGE_PIXELS`` (if set), at most ``MAX_PIXELS``."""
    return min(MAX_PIXELS, Image.MAX_IMAGE_PIXELS or MAX_PIXELS)


def decode_image(path: Path, intensity: IntensityConfig | None = None) -> np.ndarray:
    """Read ``path`` (EXIF orientation applied) as uint8 HxW or HxWx3; ``BadImageError`` if unreadable.

    DICOM and images wider than 8 bits become 0-255 by ``intensity`` (default: ``IntensityConfig()``).
    """
    intensity = intensity or IntensityConfig()
    if is_dicom(path):
        from medssl.data.dicom import decode_dicom  # pydicom is imported only for DICOM data

        return decode_dicom(path, intensity)
    try:
        # The size check is ours, made before decoding: no process-wide warning filters (decode_image runs
        # in thread pools, and warnings.catch_warnings() is not thread-safe).
        with Image.open(path) as image:
            width, height = image.size
            if width * height > pixel_limit():
                raise BadImageError(
                    f"{path}: refused as a possible decompression bomb ({width}x{height} pixels, more than "
                    f"{pixel_limit()}); {FIX}"
                )
            image.load()
            image = ImageOps.exif_transpose(image) or image
            return _to_uint8(image, intensity)
    except BadImageError:
        raise
    except Image.DecompressionBombError:
        raise BadImageError(f"{path}: refused as a possible decompression bomb; {FIX}") from None
    except UnidentifiedImageError:
        raise BadImageError(f"{path}: not an image file (or an unsupported format); {FIX}") from None
    except PermissionError:
        raise BadImageError(
            f"{path}: permission denied; make the file readable (chmod +r) or {FIX}"
        ) from None
    except OSError as error:
        raise BadImageError(f"{path}: unreadable or truncated image ({error}); {FIX}") from None
    except (ValueError, SyntaxError, IndexError) as error:
        raise BadImageError(f"{path}: corrupt image ({error}); {FIX}") from None


def is_gray(array: np.ndarray, tolerance: float = 3.0) -> bool:
    """True for HxW arrays and for RGB arrays whose channels agree (grayscale saved as RGB)."""
    if array.ndim == 2:
        return True
    small = array[:: max(1, array.shape[0] // 64), :: max(1, array.shape[1] // 64)].astype(np.int16)
    return (
        float(np.abs(small[..., 0] - small[..., 1]).mean() + np.abs(small[..., 1] - small[..., 2]).mean())
        < tolerance
    )


def resize(array: np.ndarray, size: int) -> np.ndarray:
    """Resize to ``size`` x ``size`` with antialiasing (aspect ratio not kept, as in the study)."""
    if array.shape[0] == size and array.shape[1] == size:
        return array
    image = Image.fromarray(array)
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0), dtype=np.uint8)
