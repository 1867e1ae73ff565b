"""The presets' augmentation as one fused, device-side, graph-capturable sequence.

:class:`FusedAugment` applies a :class:`~medssl.common.augment.PresetSpec` with the same parameter
distributions as the kornia path (:func:`~medssl.common.augment.build_augment`), but:

* every random parameter is drawn on the batch's device, in one call per parameter for the whole batch;
* nothing is read back to the host and every shape is static: a step that is not applied to an image is
  computed for it too and discarded with ``torch.where`` (kornia selects the images it applies to by boolean
  indexing, whose shape depends on the draw);
* the geometry (rotation, resized crop, 90° turns, flips) is one affine matrix per image and one
  ``grid_sample``, instead of one resampling per step.

So it runs under ``torch.compile(fullgraph=True)`` and inside a CUDA graph. Call it on the doubled batch
``cat([x, x])`` to get both views of a contrastive pair in one sequence. Known differences from the kornia path
(same distributions per image, different pixels): the crop is sampled once, with the rotation, so the rotated
image is resampled once rather than twice; the colour jitter draws its step order per image rather than once
per batch (each image still sees a uniformly random order), except eager with 3-4 steps (colour ``generic``),
where it draws one order per batch on the host as kornia does: n instead of n² steps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from kornia.color import rgb_to_grayscale
from kornia.enhance import (
    adjust_brightness_accumulative,
    adjust_contrast_with_mean_subtraction,
    adjust_hue,
    adjust_saturation_with_gray_subtraction,
)
from kornia.filters import gaussian_blur2d
from torch import nn

from medssl.common.augment import (
    BLUR_SIGMA_MIN,
    SPECS,
    PresetSpec,
    blur_settings,
    check_batch,
    jitter_stains,
)

CROP_RATIO = (3 / 4, 4 / 3)
CROP_TRIES = 10
"""kornia's (and torchvision's) RandomResizedCrop: aspect range and attempts before the whole-image fallback."""


def _uniform(low: float, high: float, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, device=like.device, dtype=like.dtype)


def _chance(p: float, batch: int, like: torch.Tensor) -> torch.Tensor:
    """(batch,) booleans, each True with probability ``p``, drawn on ``like``'s device."""
    return torch.rand(batch, device=like.device) < p


def _affine(
    a: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor,
    d: torch.Tensor,
    tx: torch.Tensor | None = None,
    ty: torch.Tensor | None = None,
) -> torch.Tensor:
    """(B, 3, 3) matrices [[a, b, tx], [c, d, ty], [0, 0, 1]] from (B,) entries."""
    zero = torch.zeros_like(a)
    tx = zero if tx is None else tx
    ty = zero if ty is None else ty
    one = torch.ones_like(a)
    return torch.stack([a, b, tx, c, d, ty, zero, zero, one], dim=1).view(-1, 3, 3)


def crop_boxes(
    batch: int, height: int, width: int, scale: tuple[float, float], like: torch.Tensor
) -> torch.Tensor:
    """(B, 4) crop boxes (x0, y0, w, h) in pixels, drawn as kornia's ``RandomResizedCrop`` draws them.

    Ten (area, log-aspect) candidates per image, sizes rounded to whole pixels, the first that fits is taken,
    else the whole image; the corner is uniform over the whole-pixel positions that keep the box inside.
    """
    shape = (batch, CROP_TRIES)
    area = _uniform(*scale, shape, like) * height * width
    ratio = torch.exp(_uniform(math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]), shape, like))
    w = torch.sqrt(area * ratio).round()
    h = torch.sqrt(area / ratio).round()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = torch.argmax(fits.int(), dim=1, keepdim=True)  # the first fitting try (0 when none fits)
    found = fits.any(dim=1)
    w = torch.where(found, w.gather(1, first).squeeze(1), float(width))
    h = torch.where(found, h.gather(1, first).squeeze(1), float(height))
    x0 = torch.floor(torch.rand(batch, device=like.device, dtype=like.dtype) * (width - w + 1))
    y0 = torch.floor(torch.rand(batch, device=like.device, dtype=like.dtype) * (height - h + 1))
    return torch.stack([x0, y0, w, h], dim=1)


class FusedAugment(nn.Module):
    """A preset applied to a float batch (B, C, H, W) in [0, 1] → (B, C, size, size), all on the device."""

    def __init__(self, preset: str, image_size: int, channels: int, spec: PresetSpec | None = None) -> None:
        """``spec`` replaces the preset's own (``SPECS[preset]``): its ``light_spec`` for fine-tuning, or its
        ``preset_spec`` with a smaller crop range for local crops."""
        super().__init__()
        if preset not in SPECS:
            raise ValueError(f"unknown augmentation preset {preset!r}; choose one of {', '.join(SPECS)}")
        if channels not in (1, 3):
            raise ValueError(f"augmentation needs 1 or 3 channels, got {channels}")
        self.preset = preset
        self.image_size = image_size
        self.channels = channels
        self.spec: PresetSpec = SPECS[preset] if spec is None else spec
        self.blur_kernel, self.blur_sigma_max = blur_settings(image_size)

    def extra_repr(self) -> str:
        scale = f", crop_scale={self.spec.crop_scale}" if self.spec != SPECS[self.preset] else ""
        return f"preset={self.preset!r}, image_size={self.image_size}, channels={self.channels}{scale}, fused"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_batch(x, self.preset, self.channels)
        x = self.geometry(x)
        x = self.stain(x)
        x = self.colour(x)
        x = self.gamma(x)
        return self.blur(x).clamp(0.0, 1.0)

    # -- geometry: one matrix per image, one resampling ------------------------------------------------
    def source_matrices(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 3): output coordinates → input coordinates (both normalised to [-1, 1], ``affine_grid``'s)."""
        spec, batch, (height, width) = self.spec, x.shape[0], x.shape[-2:]
        like = x.new_empty(())
        ones, zeros = torch.ones(batch, device=x.device), torch.zeros(batch, device=x.device)
        x0, y0, w, h = crop_boxes(batch, height, width, spec.crop_scale, like).unbind(1)
        matrix = _affine(
            w / width, zeros, zeros, h / height, (2 * x0 + w) / width - 1, (2 * y0 + h) / height - 1
        )
        if spec.rotation_p > 0:  # inverse rotation about the centre, aspect-corrected
            angle = _uniform(-spec.rotation, spec.rotation, (batch,), like) * (math.pi / 180)
            angle = torch.where(_chance(spec.rotation_p, batch, like), angle, 0.0)
            cos, sin, aspect = torch.cos(angle), torch.sin(angle), width / height
            matrix = _affine(cos, sin / aspect, -sin * aspect, cos) @ matrix
        flips = ones
        if spec.rot90:  # k quarter turns of the crop (only half turns on non-square outputs, as RandomRot90)
            turns = torch.randint(0, 4, (batch,), device=x.device)
            turns = turns if height == width else 2 * (turns % 2)
            quarter = turns.to(ones.dtype) * (math.pi / 2)
            cos, sin = torch.cos(quarter).round(), torch.sin(quarter).round()
            matrix = matrix @ _affine(cos, sin, -sin, cos)
        if spec.hflip_p > 0:
            flips = torch.where(_chance(spec.hflip_p, batch, like), -ones, ones)
        vflips = torch.where(_chance(spec.vflip_p, batch, like), -ones, ones) if spec.vflip_p > 0 else ones
        return matrix @ _affine(flips, zeros, zeros, vflips)

    def geometry(self, x: torch.Tensor) -> torch.Tensor:
        size = (x.shape[0], x.shape[1], self.image_size, self.image_size)
        grid = F.affine_grid(self.source_matrices(x)[:, :2], list(size), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    # -- intensity ------------------------------------------------------------------------------------
    def stain(self, x: torch.Tensor) -> torch.Tensor:
        """Tellez's HED jitter, the same rule and draws as :class:`~medssl.common.augment.HEDJitter`; colour only."""
        sigma = self.spec.hed_sigma
        if sigma == 0 or x.shape[1] != 3:
            return x
        alpha = _uniform(1 - sigma, 1 + sigma, (x.shape[0], 3, 1, 1), x)
        shift = _uniform(-sigma, sigma, (x.shape[0], 3, 1, 1), x)
        return jitter_stains(x, alpha, shift)

    def colour(self, x: torch.Tensor) -> torch.Tensor:
        """kornia's ``ColorJitter`` steps in a random order per image, with probability ``jitter_p``; grayscale."""
        spec, batch = self.spec, x.shape[0]
        strengths = spec.colour_jitter(x.shape[1])
        steps = [(kind, s) for kind, s in enumerate(strengths) if s > 0]
        if steps:
            factors = [self._jitter_factor(kind, s, batch, x) for kind, s in steps]
            out = x.clamp(0.0, 1.0)
            if len(steps) <= 2 or torch.compiler.is_compiling():  # an order per image: n² steps, in the graph
                order = torch.argsort(torch.rand(batch, len(steps), device=x.device), dim=1)
                for slot in range(len(steps)):
                    chosen = order[:, slot].view(-1, 1, 1, 1)
                    candidates = [_JITTER[kind](out, f) for (kind, _), f in zip(steps, factors, strict=True)]
                    out = _select(chosen, candidates)
            else:  # eager, 3-4 steps: kornia's order per batch, from the host's generator (no device sync)
                for i in torch.randperm(len(steps)).tolist():
                    out = _JITTER[steps[i][0]](out, factors[i])
            x = torch.where(_chance(spec.jitter_p, batch, x).view(-1, 1, 1, 1), out.clamp(0.0, 1.0), x)
        if spec.gray_p > 0 and x.shape[1] == 3:
            gray = rgb_to_grayscale(x).expand_as(x)
            x = torch.where(_chance(spec.gray_p, batch, x).view(-1, 1, 1, 1), gray, x)
        return x

    @staticmethod
    def _jitter_factor(kind: int, strength: float, batch: int, x: torch.Tensor) -> torch.Tensor:
        """kornia's ColorJitter ranges: [max(0, 1 - s), 1 + s] (hue: [-s, s], in turns)."""
        low, high = (-strength, strength) if kind == _HUE else (max(0.0, 1 - strength), 1 + strength)
        return _uniform(low, high, (batch,), x)

    def gamma(self, x: torch.Tensor) -> torch.Tensor:
        spec = self.spec
        if spec.gamma_p == 0:
            return x
        gamma = _uniform(*spec.gamma, (x.shape[0],), x)
        gamma = torch.where(_chance(spec.gamma_p, x.shape[0], x), gamma, 1.0)
        return x.clamp_min(0.0).pow(gamma.view(-1, 1, 1, 1)).clamp(0.0, 1.0)

    def blur(self, x: torch.Tensor) -> torch.Tensor:
        spec, batch = self.spec, x.shape[0]
        if spec.blur_p == 0:
            return x
        sigma = _uniform(BLUR_SIGMA_MIN, self.blur_sigma_max, (batch,), x)
        kernel = (self.blur_kernel, self.blur_kernel)
        blurred = gaussian_blur2d(x, kernel, sigma.view(-1, 1).expand(-1, 2), border_type="reflect")
        return torch.where(_chance(spec.blur_p, batch, x).view(-1, 1, 1, 1), blurred, x)


_HUE = 3


def _hue_turns(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return adjust_hue(x, factor * (2 * math.pi))


_JITTER = (
    adjust_brightness_accumulative,
    adjust_contrast_with_mean_subtraction,
    adjust_saturation_with_gray_subtraction,
    _hue_turns,
)
"""kornia's ColorJitter steps: brightness (multiplicative), contrast, saturation, hue."""


def _select(index: torch.Tensor, candidates: list[torch.Tensor]) -> torch.Tensor:
    """Per image, ``candidates[index]`` (``index`` (B, 1, 1, 1)), without indexing by value."""
    out = candidates[-1]
    for i in range(len(candidates) - 1):
        out = torch.where(index == i, candidates[i], out)
    return out
