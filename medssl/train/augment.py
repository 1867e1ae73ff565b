"""Batched, GPU-friendly augmentation presets for self-supervised pre-training, chosen by image modality.

Every preset is an ``nn.Module`` that takes a whole batch of float images in [0, 1], shape (B, C, H, W) with
C = 1 or 3, on any device, and returns a batch of the same shape in [0, 1] where each image was augmented
independently. Random parameters come from torch's global RNG (as kornia's do), so ``torch.manual_seed``
makes a run repeatable. Call the module twice on the same batch to get the two views of a contrastive pair.

Presets (see :func:`build_augment` for the exact steps):

* ``generic``: SimCLR's recipe, with a crop scale of (0.2, 1) instead of (0.08, 1): at the working sizes of
  small medical datasets (32-128 px) an 8 % crop keeps too little of the image to be worth matching.
* ``xray``: grayscale radiographs: mild crop, small rotation, exposure (brightness, contrast, gamma) jitter,
  blur; no hue, saturation or grayscale step, so a gray image stays gray.
* ``histology``: tissue has no up or down: 90° rotations and both flips, stain (HED) jitter instead of hue
  jitter, mild brightness/contrast, crop, blur.

No evaluation transform is needed: the cache already stores images at the working size, so evaluation only
converts them to float with :func:`eval_transform`.
"""

from __future__ import annotations

from typing import Literal, get_args

import kornia.augmentation as K
import numpy as np
import torch
from torch import nn

from medssl.common.images import unit_float

Preset = Literal["xray", "histology", "generic"]
PRESETS: tuple[str, ...] = get_args(Preset)

_RGB_FROM_HED = torch.tensor(
    [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=torch.float64
)
"""Ruifrok & Johnston's haematoxylin, eosin and DAB optical densities (rows), skimage's ``rgb_from_hed``."""
_HED_FROM_RGB = torch.linalg.inv(_RGB_FROM_HED)
_MIN_RGB = 1e-6
"""Intensities are floored here before the logarithm, as skimage does."""

_XRAY_WORDS = ("xray", "x-ray", "radiograph", "cxr")
_HISTOLOGY_WORDS = ("histology", "histopathology", "pathology", "tissue", "h&e", "slide")


def rgb_to_hed(rgb: torch.Tensor) -> torch.Tensor:
    """Stain concentrations (B, 3, H, W) (haematoxylin, eosin, DAB) of RGB images in [0, 1].

    Colour deconvolution in optical-density units: ``skimage.color.rgb2hed`` times ln(10⁶), without its
    clipping of negative concentrations, so that :func:`hed_to_rgb` inverts it exactly.
    """
    density = -torch.log(rgb.clamp_min(_MIN_RGB))
    matrix = _HED_FROM_RGB.to(device=rgb.device, dtype=rgb.dtype)
    return torch.einsum("bchw,cd->bdhw", density, matrix)


def hed_to_rgb(hed: torch.Tensor) -> torch.Tensor:
    """RGB images in [0, 1] from stain concentrations made by :func:`rgb_to_hed`."""
    matrix = _RGB_FROM_HED.to(device=hed.device, dtype=hed.dtype)
    density = torch.einsum("bchw,cd->bdhw", hed, matrix)
    return torch.exp(-density).clamp(0.0, 1.0)


def _uniform(low: float, high: float, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """Uniform samples from the global CPU RNG (the same numbers on any device), moved to ``like``."""
    return (low + (high - low) * torch.rand(shape)).to(device=like.device, dtype=like.dtype)


class HEDJitter(nn.Module):
    """Tellez et al.'s stain augmentation: each stain s becomes α·s + β, α ∈ [1-σ, 1+σ], β ∈ [-σ, σ].

    α and β are drawn per image and per stain; β is in optical-density units. Grayscale batches pass through
    unchanged (there is no colour to deconvolve).
    """

    def __init__(self, sigma: float = 0.05, p: float = 1.0) -> None:
        super().__init__()
        self.sigma = sigma
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != 3 or self.sigma == 0 or self.p == 0:
            return x
        batch = x.shape[0]
        alpha = _uniform(1 - self.sigma, 1 + self.sigma, (batch, 3, 1, 1), x)
        beta = _uniform(-self.sigma, self.sigma, (batch, 3, 1, 1), x)
        apply = (torch.rand(batch) < self.p).to(x.device).view(batch, 1, 1, 1)
        alpha = torch.where(apply, alpha, torch.ones_like(alpha))
        beta = torch.where(apply, beta, torch.zeros_like(beta))
        return hed_to_rgb(rgb_to_hed(x) * alpha + beta)


class RandomRot90(nn.Module):
    """Rotates each image by 0, 90, 180 or 270 degrees, chosen uniformly per image; exact (no resampling).

    Vectorised: one ``torch.rot90`` per rotation amount over the images that drew it. Non-square batches only
    get 0 or 180 degrees, which keep their shape.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        square = x.shape[-1] == x.shape[-2]
        turns = torch.randint(0, 4, (x.shape[0],)) if square else 2 * torch.randint(0, 2, (x.shape[0],))
        out = x.clone()
        for k in (1, 2, 3):
            index = torch.nonzero(turns == k).flatten().to(x.device)
            if len(index):
                out[index] = torch.rot90(x[index], k, dims=(-2, -1))
        return out


class Augment(nn.Module):
    """A preset's steps applied in turn to a float batch (B, C, H, W) in [0, 1]; see :func:`build_augment`."""

    def __init__(self, preset: str, image_size: int, channels: int, steps: list[nn.Module]) -> None:
        super().__init__()
        self.preset = preset
        self.image_size = image_size
        self.channels = channels
        self.steps = nn.Sequential(*steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.channels:
            expected = f"(B, {self.channels}, H, W)"
            raise ValueError(f"preset {self.preset!r} expects a {expected} batch, got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"augment expects float images in [0, 1], got dtype {x.dtype}")
        return self.steps(x).clamp(0.0, 1.0)

    def extra_repr(self) -> str:
        return f"preset={self.preset!r}, image_size={self.image_size}, channels={self.channels}"


def _blur(image_size: int, p: float) -> K.RandomGaussianBlur:
    """SimCLR's blur (kernel 10 % of the side, σ up to 2 at 224 px), σ scaled to the working size."""
    kernel = max(3, int(0.1 * image_size) // 2 * 2 + 1)
    sigma_max = max(0.5, 2.0 * image_size / 224)
    return K.RandomGaussianBlur((kernel, kernel), (0.1, sigma_max), p=p)


def _crop(image_size: int, scale: tuple[float, float]) -> K.RandomResizedCrop:
    return K.RandomResizedCrop((image_size, image_size), scale=scale)


def _generic(image_size: int, channels: int) -> list[nn.Module]:
    colour = channels == 3
    return [
        _crop(image_size, (0.2, 1.0)),
        K.RandomHorizontalFlip(p=0.5),
        K.ColorJitter(0.4, 0.4, 0.4 if colour else 0.0, 0.1 if colour else 0.0, p=0.8),
        *([K.RandomGrayscale(p=0.2)] if colour else []),
        _blur(image_size, p=0.5),
    ]


def _xray(image_size: int, channels: int) -> list[nn.Module]:
    return [
        K.RandomRotation(10.0, p=0.5),
        _crop(image_size, (0.3, 1.0)),
        K.RandomHorizontalFlip(p=0.5),
        K.ColorJitter(brightness=0.2, contrast=0.2, p=0.8),
        K.RandomGamma((0.75, 1.33), p=0.5),
        _blur(image_size, p=0.3),
    ]


def _histology(image_size: int, channels: int) -> list[nn.Module]:
    return [
        _crop(image_size, (0.3, 1.0)),
        RandomRot90(),
        K.RandomHorizontalFlip(p=0.5),
        K.RandomVerticalFlip(p=0.5),
        HEDJitter(sigma=0.05),
        K.ColorJitter(brightness=0.2, contrast=0.2, p=0.8),
        _blur(image_size, p=0.3),
    ]


_BUILDERS = {"generic": _generic, "xray": _xray, "histology": _histology}


def build_augment(preset: Preset, image_size: int, channels: int) -> Augment:
    """The augmentation module of a preset for (B, ``channels``, H, W) float batches in [0, 1].

    Steps (p = probability per image):

    * ``generic``: resized crop to ``image_size`` (scale 0.2-1), horizontal flip, colour jitter
      0.4/0.4/0.4/0.1 (p 0.8; brightness and contrast only on grayscale), grayscale (p 0.2, colour only),
      Gaussian blur (p 0.5).
    * ``xray``: rotation ±10° (p 0.5), resized crop (scale 0.3-1), horizontal flip, brightness/contrast 0.2
      (p 0.8), gamma 0.75-1.33 (p 0.5), blur (p 0.3). The horizontal flip is kept although the heart sits on the
      patient's left: the usual chest X-ray labels (pneumonia, effusion...) do not depend on the side, and
      MoCo-CXR found flips helpful; mirrored radiographs remain plausible anatomy. Works on 1 or 3 channels
      and never adds colour.
    * ``histology``: resized crop (scale 0.3-1), 90° rotations, horizontal and vertical flips, HED stain
      jitter σ = 0.05 (colour only), brightness/contrast 0.2 (p 0.8), blur (p 0.3).

    Blur kernels are 10 % of ``image_size`` (odd, at least 3) with σ from 0.1 to max(0.5, 2·size/224).
    """
    if preset not in _BUILDERS:
        raise ValueError(f"unknown augmentation preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if channels not in (1, 3):
        raise ValueError(f"augmentation needs 1 or 3 channels, got {channels}")
    return Augment(preset, image_size, channels, _BUILDERS[preset](image_size, channels))


def detect_preset(modality: str, channels: int) -> Preset:
    """The preset for a dataset's ``table.modality`` and channel count.

    A modality naming X-rays or histology wins; otherwise grayscale data gets ``xray`` (its exposure-style
    jitter suits most grayscale imaging) and colour data ``generic``.
    """
    text = (modality or "").strip().lower()
    if any(word in text for word in _HISTOLOGY_WORDS):
        return "histology"
    if any(word in text for word in _XRAY_WORDS):
        return "xray"
    return "xray" if channels == 1 else "generic"


def eval_transform(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 images (N, H, W, C) → float (N, C, H, W) in [0, 1]: all evaluation needs (already at size)."""
    return unit_float(images)
