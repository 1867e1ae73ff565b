"""Decode one image file of any common medical format into a uint8 array, or explain why not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from medssl.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"}
IGNORED_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
MAX_PIXELS = 200_000_000
"""Hard cap on pixels per image; images above it, or above PIL's ``Image.MAX_IMAGE_PIXELS`` (89M by default),
are refused as possible decompression bombs before their pixels are decoded."""


class BadImageError(DataError):
    """An image file that cannot be decoded."""


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("._")


def is_ignorable(path: Path) -> bool:
    """Operating-system clutter that sits beside images in real downloads."""
    return path.name.lower() in IGNORED_NAMES or path.name.startswith("._")


def _to_uint8(image: Image.Image) -> np.ndarray:
    """Grayscale images stay HxW; everything else becomes HxWx3 RGB."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scaled = (array - low) / (high - low) * 255.0 if high > low else np.zeros_like(array)
        return np.round(scaled).astype(np.uint8)
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


def decode_image(path: Path) -> np.ndarray:
    """Read ``path`` (EXIF orientation applied) as uint8 HxW or HxWx3; ``BadImageError`` if unreadable."""
    fix = "remove or replace the file, or pass --skip-bad-images to skip it"
    try:
        # The size check is ours, made before decoding: no process-wide warning filters (decode_image runs
        # in thread pools, and warnings.catch_warnings() is not thread-safe).
        with Image.open(path) as image:
            width, height = image.size
            if width * height > pixel_limit():
                raise BadImageError(
                    f"{path}: refused as a possible decompression bomb ({width}x{height} pixels, more than "
                    f"{pixel_limit()}); {fix}"
                )
            image.load()
            image = ImageOps.exif_transpose(image) or image
            return _to_uint8(image)
    except BadImageError:
        raise
    except Image.DecompressionBombError:
        raise BadImageError(f"{path}: refused as a possible decompression bomb; {fix}") from None
    except UnidentifiedImageError:
        raise BadImageError(f"{path}: not an image file (or an unsupported format); {fix}") from None
    except PermissionError:
        raise BadImageError(
            f"{path}: permission denied; make the file readable (chmod +r) or {fix}"
        ) from None
    except OSError as error:
        raise BadImageError(f"{path}: unreadable or truncated image ({error}); {fix}") from None
    except (ValueError, SyntaxError, IndexError) as error:
        raise BadImageError(f"{path}: corrupt image ({error}); {fix}") from None


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
