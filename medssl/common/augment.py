"""Batched, GPU-friendly augmentation presets chosen by image modality, shared by self-supervised
pre-training (its views) and fine-tuning.

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

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal, get_args

import kornia.augmentation as K
import numpy as np
import torch
from torch import nn

from medssl.common.images import unit_float

Preset = Literal["xray", "histology", "generic"]
PRESETS: tuple[str, ...] = get_args(Preset)
AugmentBackend = Literal["fused", "kornia"]

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


def jitter_stains(rgb: torch.Tensor, alpha: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Tellez et al.'s HED jitter of RGB images (B, 3, H, W) in [0, 1], kept to plausible stain amounts.

    Each stain s becomes ``α·s + β`` with ``α = alpha`` and ``β = shift`` times that stain's mean positive
    concentration in the image (``alpha``, ``shift``: (B, 3, 1, 1)), so the shift is relative to how much of
    the stain the image holds: a white (unstained) background stays white instead of taking a uniform tint.
    A concentration never drops below ``min(s, 0)``: the jitter never makes a stain negative, and a pixel that
    deconvolves to a slightly negative amount (noise of the Ruifrok & Johnston basis) is never pushed further
    below zero, which would map back to saturated, inverted colours.
    """
    hed = rgb_to_hed(rgb)
    beta = shift * hed.clamp_min(0.0).mean(dim=(2, 3), keepdim=True)
    return hed_to_rgb(torch.maximum(hed * alpha + beta, hed.clamp_max(0.0)))


class HEDJitter(nn.Module):
    """Tellez et al.'s stain augmentation (:func:`jitter_stains`): α ∈ [1-σ, 1+σ], β ∈ [-σ, σ] × the stain's
    mean concentration, drawn per image and per stain.

    Grayscale batches pass through unchanged (there is no colour to deconvolve).
    """

    def __init__(self, sigma: float = 0.2, p: float = 1.0) -> None:
        super().__init__()
        self.sigma = sigma
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != 3 or self.sigma == 0 or self.p == 0:
            return x
        batch = x.shape[0]
        alpha = _uniform(1 - self.sigma, 1 + self.sigma, (batch, 3, 1, 1), x)
        shift = _uniform(-self.sigma, self.sigma, (batch, 3, 1, 1), x)
        apply = (torch.rand(batch) < self.p).to(x.device).view(batch, 1, 1, 1)
        alpha = torch.where(apply, alpha, torch.ones_like(alpha))
        shift = torch.where(apply, shift, torch.zeros_like(shift))
        return jitter_stains(x, alpha, shift)


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


def check_batch(x: torch.Tensor, preset: str, channels: int) -> None:
    """Raises ValueError unless ``x`` is a float (B, ``channels``, H, W) batch (static checks: no host sync)."""
    if x.ndim != 4 or x.shape[1] != channels:
        expected = f"(B, {channels}, H, W)"
        raise ValueError(f"preset {preset!r} expects a {expected} batch, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"augment expects float images in [0, 1], got dtype {x.dtype}")


class Augment(nn.Module):
    """A preset's steps applied in turn to a float batch (B, C, H, W) in [0, 1]; see :func:`build_augment`."""

    def __init__(self, preset: str, image_size: int, channels: int, steps: list[nn.Module]) -> None:
        super().__init__()
        self.preset = preset
        self.image_size = image_size
        self.channels = channels
        self.steps = nn.Sequential(*steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_batch(x, self.preset, self.channels)
        return self.steps(x).clamp(0.0, 1.0)

    def extra_repr(self) -> str:
        return f"preset={self.preset!r}, image_size={self.image_size}, channels={self.channels}"


@dataclass(frozen=True)
class PresetSpec:
    """A preset's random steps and their ranges; both augmentation paths (kornia's and the fused one) read it.

    Steps run in this order, each skipped when its probability or range is zero: rotation (± ``rotation``
    degrees, probability ``rotation_p``), resized crop (area ``crop_scale``, aspect 3/4-4/3), 90° rotations,
    horizontal and vertical flips, HED stain jitter (colour only), colour jitter (probability ``jitter_p``;
    saturation and hue on colour only), grayscale (colour only), gamma, Gaussian blur.
    """

    crop_scale: tuple[float, float]
    rotation: float = 0.0
    rotation_p: float = 0.0
    rot90: bool = False
    hflip_p: float = 0.5
    vflip_p: float = 0.0
    hed_sigma: float = 0.0
    jitter: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    """Brightness, contrast, saturation and hue strengths, as ``kornia.augmentation.ColorJitter`` takes them."""
    jitter_p: float = 0.8
    gray_p: float = 0.0
    gamma: tuple[float, float] = (1.0, 1.0)
    gamma_p: float = 0.0
    blur_p: float = 0.0

    def colour_jitter(self, channels: int) -> tuple[float, float, float, float]:
        """The jitter strengths that apply to ``channels`` channels (no saturation or hue on grayscale)."""
        brightness, contrast, saturation, hue = self.jitter
        return (brightness, contrast, saturation, hue) if channels == 3 else (brightness, contrast, 0.0, 0.0)


HISTOLOGY_HED_SIGMA = 0.2
"""σ of Tellez et al.'s strong HED jitter (their β is absolute; here it is relative to the stain's mean amount,
see :func:`jitter_stains`); plausible on real Kather 2016 tiles (docs/images/histology_jitter_*.png)."""

SPECS: dict[str, PresetSpec] = {
    "generic": PresetSpec(crop_scale=(0.2, 1.0), jitter=(0.4, 0.4, 0.4, 0.1), gray_p=0.2, blur_p=0.5),
    "xray": PresetSpec(
        crop_scale=(0.3, 1.0),
        rotation=10.0,
        rotation_p=0.5,
        jitter=(0.2, 0.2, 0.0, 0.0),
        gamma=(0.75, 1.33),
        gamma_p=0.5,
        blur_p=0.3,
    ),
    "histology": PresetSpec(
        crop_scale=(0.3, 1.0),
        rot90=True,
        vflip_p=0.5,
        hed_sigma=HISTOLOGY_HED_SIGMA,
        jitter=(0.2, 0.2, 0.0, 0.0),
        blur_p=0.3,
    ),
}


def light_spec(spec: PresetSpec) -> PresetSpec:
    """A milder version of a preset, for fine-tuning on labels: the same symmetries (flips, 90° turns), half
    the rotation, colour and stain jitter, the square root of the gamma range; no crops (the whole image at the
    scale it is tested at: on the demo's generated tissue, crops of 80-100 % of the area cost 5 points of
    accuracy, as nuclei size is a class cue), no grayscale and no blur."""
    return replace(
        spec,
        crop_scale=(1.0, 1.0),
        rotation=spec.rotation / 2,
        hed_sigma=spec.hed_sigma / 2,
        jitter=(spec.jitter[0] / 2, spec.jitter[1] / 2, spec.jitter[2] / 2, spec.jitter[3] / 2),
        gray_p=0.0,
        gamma=(spec.gamma[0] ** 0.5, spec.gamma[1] ** 0.5),
        blur_p=0.0,
    )


def blur_settings(image_size: int) -> tuple[int, float]:
    """SimCLR's blur at ``image_size``: (odd kernel 10 % of the side, at least 3; σ maximum, 2 at 224 px)."""
    return max(3, int(0.1 * image_size) // 2 * 2 + 1), max(0.5, 2.0 * image_size / 224)


BLUR_SIGMA_MIN = 0.1


def _kornia_steps(spec: PresetSpec, image_size: int, channels: int) -> list[nn.Module]:
    """The preset as a sequence of kornia augmentations (the reference path)."""
    kernel, sigma_max = blur_settings(image_size)
    jitter = spec.colour_jitter(channels)
    candidates: list[tuple[bool, Callable[[], nn.Module]]] = [
        (spec.rotation_p > 0, lambda: K.RandomRotation(spec.rotation, p=spec.rotation_p)),
        (True, lambda: K.RandomResizedCrop((image_size, image_size), scale=spec.crop_scale)),
        (spec.rot90, RandomRot90),
        (spec.hflip_p > 0, lambda: K.RandomHorizontalFlip(p=spec.hflip_p)),
        (spec.vflip_p > 0, lambda: K.RandomVerticalFlip(p=spec.vflip_p)),
        (spec.hed_sigma > 0, lambda: HEDJitter(sigma=spec.hed_sigma)),
        (any(jitter), lambda: K.ColorJitter(*jitter, p=spec.jitter_p)),
        (spec.gray_p > 0 and channels == 3, lambda: K.RandomGrayscale(p=spec.gray_p)),
        (spec.gamma_p > 0, lambda: K.RandomGamma(spec.gamma, p=spec.gamma_p)),
        (
            spec.blur_p > 0,
            lambda: K.RandomGaussianBlur((kernel, kernel), (BLUR_SIGMA_MIN, sigma_max), p=spec.blur_p),
        ),
    ]
    return [make() for wanted, make in candidates if wanted]


def build_augment(
    preset: Preset,
    image_size: int,
    channels: int,
    backend: AugmentBackend = "fused",
    crop_scale: tuple[float, float] | None = None,
) -> nn.Module:
    """The augmentation module of a preset for (B, ``channels``, H, W) float batches in [0, 1].

    ``image_size`` is the side of the output; ``crop_scale`` replaces the preset's crop area range (the small
    local crops of multi-crop methods, :mod:`medssl.train.views`).

    ``backend``: ``fused`` (default) is :class:`medssl.common.fused_augment.FusedAugment`, drawn on the device
    and graph-capturable; ``kornia`` chains kornia's augmentation modules (the reference the fused path is
    tested against). Both draw from the same distributions (:data:`SPECS`).

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
      jitter σ = 0.2 (:func:`jitter_stains`, colour only), brightness/contrast 0.2 (p 0.8), blur (p 0.3).

    Blur kernels are 10 % of ``image_size`` (odd, at least 3) with σ from 0.1 to max(0.5, 2·size/224).
    """
    if preset not in SPECS:
        raise ValueError(f"unknown augmentation preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if channels not in (1, 3):
        raise ValueError(f"augmentation needs 1 or 3 channels, got {channels}")
    spec = preset_spec(preset, crop_scale)
    if backend == "fused":
        from medssl.common.fused_augment import FusedAugment  # it builds on this module

        return FusedAugment(preset, image_size, channels, spec)
    return Augment(preset, image_size, channels, _kornia_steps(spec, image_size, channels))


def preset_spec(preset: str, crop_scale: tuple[float, float] | None = None) -> PresetSpec:
    """The steps of ``preset``, with ``crop_scale`` instead of its crop area range where given."""
    spec = SPECS[preset]
    return spec if crop_scale is None else replace(spec, crop_scale=crop_scale)


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
