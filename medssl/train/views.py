"""The views a method trains on (its ``ViewPlan``), drawn on the device: global crops, then local crops.

Each size is one batched pass of the preset's augmentation: the ``G`` global crops of a batch are augmented
together as ``cat([x] * G)`` (every copy draws its own parameters), then the ``L`` local crops as ``cat([x] * L)``
at the smaller side and crop scale. With the fused backend both passes are graph-capturable, as one pass is.
Two views without local crops are exactly the two-view path every method used before multi-crop.
"""

from __future__ import annotations

import torch
from torch import nn

from medssl.common.augment import SPECS, AugmentBackend, Preset, build_augment
from medssl.methods.base import ViewPlan, Views

LOCAL_SCALE_MIN = 0.05
"""Smallest area share of a local crop, as in SwAV's and DINO's multi-crop (0.05)."""


def local_crop_scale(preset: str, plan: ViewPlan) -> tuple[float, float]:
    """The area range of the plan's local crops: its own, or (0.05, the preset's smallest global crop)."""
    if plan.local_scale is not None:
        return plan.local_scale
    return (LOCAL_SCALE_MIN, max(LOCAL_SCALE_MIN, SPECS[preset].crop_scale[0]))


def view_augments(
    preset: Preset, image_size: int, channels: int, plan: ViewPlan, backend: AugmentBackend = "fused"
) -> tuple[nn.Module, nn.Module | None]:
    """The augmentation of the plan's global crops and of its local crops (None without local crops)."""
    if plan.global_crops < 1 or plan.local_crops < 0:
        raise ValueError(f"a view plan needs at least one global crop and no negative count, got {plan}")
    augment = build_augment(preset, image_size, channels, backend=backend)
    if not plan.local_crops:
        return augment, None
    side, scale = plan.local_side(image_size), local_crop_scale(preset, plan)
    return augment, build_augment(preset, side, channels, backend=backend, crop_scale=scale)


def draw_views(x: torch.Tensor, plan: ViewPlan, augment: nn.Module, local_augment: nn.Module | None) -> Views:
    """The plan's views of the float images ``x`` (B, C, H, W) in [0, 1], one batched pass per size."""
    global_crops = augment(torch.cat([x] * plan.global_crops)).chunk(plan.global_crops)
    if local_augment is None:
        return Views(tuple(global_crops))
    local_crops = local_augment(torch.cat([x] * plan.local_crops)).chunk(plan.local_crops)
    return Views(tuple(global_crops), tuple(local_crops))
