"""Fine-tuning's light augmentation keeps the image at the scale it is tested at and only its preset's symmetries."""

from __future__ import annotations

import math

import torch

from medssl.common.augment import SPECS, light_spec
from medssl.common.fused_augment import FusedAugment


def test_light_histology_is_flips_and_quarter_turns_of_the_whole_image() -> None:
    torch.manual_seed(0)
    augment = FusedAugment("histology", 16, 3, spec=light_spec(SPECS["histology"]))
    matrices = augment.source_matrices(torch.zeros(256, 3, 16, 16))[:, :2]
    assert torch.allclose(matrices[:, :, 2], torch.zeros(256, 2), atol=1e-6)  # no crop offset
    linear = matrices[:, :, :2]
    assert torch.allclose(linear.abs().sum(2), torch.ones(256, 2), atol=1e-6)  # a signed permutation: no zoom
    assert len({tuple(m.round().flatten().tolist()) for m in linear}) == 8  # all 8 symmetries of the square


def test_light_xray_rotates_half_as_far_and_never_zooms() -> None:
    torch.manual_seed(0)
    spec = light_spec(SPECS["xray"])
    assert spec.rotation == SPECS["xray"].rotation / 2 and spec.blur_p == 0 and spec.crop_scale == (1.0, 1.0)
    matrices = FusedAugment("xray", 16, 1, spec=spec).source_matrices(torch.zeros(256, 1, 16, 16))[:, :2, :2]
    angles = torch.atan2(matrices[:, 1, 0], matrices[:, 0, 0]).abs()
    angles = torch.minimum(angles, math.pi - angles)  # a left-right flip adds π
    assert angles.max() <= math.radians(spec.rotation) + 1e-5
    assert torch.allclose(torch.linalg.det(matrices).abs(), torch.ones(256), atol=1e-5)  # area kept
