"""A PNG grid showing what each augmentation preset does to a few training images: by default six views, or a
method's own views (``plan``: SwAV's and DINO's global crops, then their smaller local crops, drawn to scale)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from medssl.common.augment import PRESETS, eval_transform
from medssl.methods.base import ViewPlan
from medssl.train.views import draw_views, view_augments

LABEL_WIDTH = 96
"""Pixels left of each row for its label (preset name and image number)."""
HEADER_HEIGHT = 20
GAP = 4
MIN_TILE = 96
BACKGROUND = (255, 255, 255)


def tile_size(image_size: int) -> int:
    """Side of one tile: the image enlarged by a whole factor (nearest neighbour) to at least ``MIN_TILE``."""
    return image_size * max(1, -(-MIN_TILE // image_size))


def grid_size(image_size: int, n_presets: int, n_images: int, n_views: int) -> tuple[int, int]:
    """(width, height) in pixels of the preview PNG."""
    tile = tile_size(image_size)
    width = LABEL_WIDTH + (1 + n_views) * (tile + GAP) + GAP
    height = HEADER_HEIGHT + n_presets * n_images * (tile + GAP) + GAP
    return width, height


def _views(images: np.ndarray, preset: str, plan: ViewPlan, seed: int) -> list[np.ndarray]:
    """The plan's views, each (n_images, h, w, 3) uint8: global crops first, then the smaller local crops."""
    batch = eval_transform(images)
    augments = view_augments(preset, images.shape[1], images.shape[-1], plan)  # type: ignore[arg-type]
    torch.manual_seed(seed)
    with torch.no_grad():
        views = draw_views(batch, plan, *augments)
    out = []
    for view in (*views.global_crops, *views.local_crops):
        view = view.expand(-1, 3, -1, -1) if view.shape[1] == 1 else view
        out.append((view.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy())
    return out


def _to_rgb_tile(image: np.ndarray, factor: int) -> Image.Image:
    """``image`` enlarged ``factor`` times (nearest neighbour): a local crop stays smaller than a global one."""
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return Image.fromarray(image.repeat(factor, 0).repeat(factor, 1), "RGB")


def augment_preview(
    images_uint8: np.ndarray,
    presets: str | Sequence[str],
    out_path: str | Path,
    n_images: int = 4,
    n_views: int = 6,
    seed: int = 0,
    plan: ViewPlan | None = None,
) -> Path:
    """Write a grid: per preset, ``n_images`` rows of an original image and ``n_views`` augmented views of it,
    or with ``plan`` (a method's ``view_plan``) the views that method trains on, each crop size to scale.

    ``images_uint8`` is (N, H, W, C) uint8 with C = 1 or 3 (square images, e.g. a training split); the images
    shown are drawn from it with ``seed``, and the views are repeatable for a given ``seed``.
    """
    images = np.asarray(images_uint8)
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.dtype != np.uint8:
        got = f"{images.dtype} {images.shape}"
        raise ValueError(f"augment_preview needs uint8 images (N, H, W, 1|3), got {got}")
    names = [presets] if isinstance(presets, str) else list(presets)
    unknown = [name for name in names if name not in PRESETS]
    if unknown or not names:
        raise ValueError(f"unknown augmentation preset(s) {unknown}; choose from {', '.join(PRESETS)}")
    n_images = min(n_images, len(images))
    chosen = np.sort(np.random.default_rng(seed).choice(len(images), n_images, replace=False))
    sample = np.ascontiguousarray(images[chosen])

    plan = plan or ViewPlan(global_crops=n_views)
    n_views = plan.global_crops + plan.local_crops
    tile = tile_size(images.shape[1])
    factor = tile // images.shape[1]
    canvas = Image.new("RGB", grid_size(images.shape[1], len(names), n_images, n_views), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    draw.text((LABEL_WIDTH + GAP, 4), "original", fill=(0, 0, 0), font=font)
    heading = f"{n_views} augmented views"
    if plan.local_crops:
        heading = f"{plan.global_crops} global crops, {plan.local_crops} local crops"
    draw.text((LABEL_WIDTH + GAP + tile + GAP, 4), heading, fill=(0, 0, 0), font=font)
    for p, name in enumerate(names):
        views = _views(sample, name, plan, seed)
        for i in range(n_images):
            top = HEADER_HEIGHT + (p * n_images + i) * (tile + GAP)
            draw.text((GAP, top + tile // 2 - 12), name, fill=(0, 0, 0), font=font)
            draw.text((GAP, top + tile // 2 + 2), f"image {chosen[i]}", fill=(90, 90, 90), font=font)
            row = [sample[i], *(view[i] for view in views)]
            for j, image in enumerate(row):
                canvas.paste(_to_rgb_tile(image, factor), (LABEL_WIDTH + GAP + j * (tile + GAP), top))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out_path)
    return out_path
