"""uint8 pixels → the float tensors every model in medssl takes: (B, C, H, W) in [0, 1], channels-last."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch


def unit_float(
    images: np.ndarray | torch.Tensor,
    layout: Literal["nhwc", "nchw"] = "nhwc",
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """uint8 images in ``layout`` (the pixel cache is NHWC) → float (B, C, H, W) in [0, 1] on ``device``.

    Channels-last memory (faster convolutions); a read-only memmap is copied, never written to.
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(
            np.array(images) if not images.flags.writeable else np.ascontiguousarray(images)
        )
    if device is not None:
        images = images.to(device, non_blocking=True)
    if layout == "nhwc":
        images = images.permute(0, 3, 1, 2)
    return (images.float() / 255.0).contiguous(memory_format=torch.channels_last)
