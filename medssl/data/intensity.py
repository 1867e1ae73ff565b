"""How stored values wider than 8 bits become the 0-255 pixels every encoder sees (``DataConfig.intensity``).

It applies to DICOM files and to 16-bit (or 32-bit, float) PNG and TIFF images; 8-bit images are used as
stored. The DICOM steps run in the standard's order through pydicom (``medssl.data.dicom``): modality LUT
(rescale slope and intercept), then the VOI step chosen here, then MONOCHROME1 inverted.

- ``window: file`` (the default): the file's VOI LUT sequence, else its first window centre/width; files with
  neither (and every PNG/TIFF) are scaled by ``percentiles``.
- ``window: fixed``: ``center`` and ``width`` (modality units: after rescale, e.g. Hounsfield units) for
  every file.
- ``window: percentile``: every file scaled so that its low and high ``percentiles`` become 0 and 255.

An image whose percentiles are equal (one value everywhere) is placed by that value within the full range
its bits can store (a 16-bit image of 65535 is white), and flagged as blank, never silently made black.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from medssl.config import StrictModel

Window = Literal["file", "fixed", "percentile"]


class IntensityConfig(StrictModel):
    """How DICOM and 16-bit PNG/TIFF values become 0-255 (8-bit images are used as stored)."""

    window: Window = Field(
        "file",
        description="file: each file's window (percentiles where it has none); fixed: center/width; "
        "percentile: percentiles for every file",
    )
    center: float | None = Field(None, description="Window centre for window: fixed (after rescale)")
    width: float | None = Field(None, ge=1, description="Window width for window: fixed (after rescale)")
    percentiles: tuple[float, float] = Field(
        (0.5, 99.5), description="Low and high percentile mapped to 0 and 255 (files without a window)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> IntensityConfig:
        low, high = self.percentiles
        if not 0 <= low < high <= 100:
            raise ValueError(
                f"percentiles {list(self.percentiles)}: need 0 <= low < high <= 100, e.g. [0.5, 99.5]"
            )
        if self.window == "fixed" and (self.center is None or self.width is None):
            raise ValueError(
                "window: fixed needs center and width (e.g. center: 40, width: 400 for CT soft tissue)"
            )
        if self.window != "fixed" and (self.center is not None or self.width is not None):
            raise ValueError(f"center and width are used by window: fixed only (window is {self.window})")
        return self

    def describe(self) -> str:
        """The rule in words, as ``data inspect`` shows it."""
        low, high = self.percentiles
        scaled = f"percentiles {low:g}-{high:g} mapped to 0-255"
        if self.window == "fixed":
            return f"fixed window centre {self.center:g}, width {self.width:g}"
        if self.window == "percentile":
            return f"{scaled} in every file (file windows ignored)"
        return f"each file's window or VOI LUT; {scaled} where a file has none"

    def key(self) -> str:
        """Stable text of the settings, for the pixel cache key and the data fingerprint."""
        low, high = self.percentiles
        return f"window={self.window};center={self.center};width={self.width};percentiles={low:g},{high:g}"
