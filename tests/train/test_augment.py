"""Augmentation presets, the HED stain transform, 90° rotations, the preview grid and its CLI command."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from medssl.common.augment import (
    PRESETS,
    HEDJitter,
    RandomRot90,
    build_augment,
    detect_preset,
    eval_transform,
    hed_to_rgb,
    rgb_to_hed,
)
from medssl.methods.base import ViewPlan
from medssl.train.preview import GAP, HEADER_HEIGHT, LABEL_WIDTH, augment_preview, grid_size, tile_size

SIZE = 32


def _batch(channels: int, n: int = 8, seed: int = 0) -> torch.Tensor:
    """Smooth, structured images (not noise), so crops, blur and jitter all change them visibly."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, SIZE), torch.linspace(0, 1, SIZE), indexing="ij")
    phase = torch.rand(n, channels, 1, 1, generator=g) * 6
    image = 0.5 + 0.35 * torch.sin(7 * xx + 3 * yy + phase) * torch.cos(4 * yy - phase)
    return image.clamp(0.05, 0.95).float()


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("preset", PRESETS)
def test_output_shape_dtype_range(preset: str, channels: int) -> None:
    x = _batch(channels)
    torch.manual_seed(0)
    y = build_augment(preset, SIZE, channels)(x)  # type: ignore[arg-type]
    assert y.shape == x.shape
    assert y.dtype == torch.float32
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert not torch.allclose(y, x)
    assert float(y.std()) > 0.02  # neither black nor a flat saturated image


@pytest.mark.parametrize("preset", PRESETS)
def test_views_differ_and_images_are_augmented_independently(preset: str) -> None:
    x = _batch(3, n=1).expand(6, -1, -1, -1).contiguous()  # six copies of one image
    augment = build_augment(preset, SIZE, 3)  # type: ignore[arg-type]
    torch.manual_seed(1)
    first, second = augment(x), augment(x)
    assert all(not torch.allclose(first[i], second[i], atol=1e-3) for i in range(6))
    distinct = {tuple(first[i].flatten()[::37].round(decimals=3).tolist()) for i in range(6)}
    assert len(distinct) == 6


@pytest.mark.parametrize("preset", PRESETS)
def test_deterministic_under_manual_seed(preset: str) -> None:
    x = _batch(3)
    augment = build_augment(preset, SIZE, 3)  # type: ignore[arg-type]
    torch.manual_seed(7)
    a = augment(x)
    torch.manual_seed(7)
    b = augment(x)
    torch.manual_seed(8)
    c = augment(x)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_xray_keeps_gray_gray() -> None:
    augment = build_augment("xray", SIZE, 1)
    torch.manual_seed(0)
    assert augment(_batch(1, n=16)).shape == (16, 1, SIZE, SIZE)
    gray_rgb = _batch(1, n=16).expand(-1, 3, -1, -1).contiguous()
    torch.manual_seed(0)
    for _ in range(5):
        y = build_augment("xray", SIZE, 3)(gray_rgb)
        assert float((y[:, 0] - y[:, 1]).abs().max()) < 1e-5
        assert float((y[:, 1] - y[:, 2]).abs().max()) < 1e-5


def test_xray_never_shifts_hue() -> None:
    reddish = torch.tensor([0.6, 0.3, 0.3]).view(1, 3, 1, 1).expand(32, 3, SIZE, SIZE).contiguous()
    augment = build_augment("xray", SIZE, 3)
    torch.manual_seed(0)
    for _ in range(3):
        y = augment(reddish)
        assert float((y[:, 1] - y[:, 2]).abs().max()) < 1e-5
        assert bool((y[:, 0] >= y[:, 1] - 1e-5).all())


def test_augment_rejects_wrong_channels_and_uint8() -> None:
    with pytest.raises(ValueError, match="expects"):
        build_augment("generic", SIZE, 3)(_batch(1))
    with pytest.raises(ValueError, match="float"):
        build_augment("generic", SIZE, 3)((_batch(3) * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="preset"):
        build_augment("mri", SIZE, 3)  # type: ignore[arg-type]


def test_rot90_gives_all_four_exact_rotations() -> None:
    image = torch.arange(SIZE * SIZE, dtype=torch.float32).view(1, 1, SIZE, SIZE) / SIZE**2
    rotations = [torch.rot90(image[0], k, dims=(-2, -1)) for k in range(4)]
    torch.manual_seed(0)
    out = RandomRot90()(image.expand(64, 2, -1, -1).contiguous())
    found = []
    for view in out:
        matches = [k for k, r in enumerate(rotations) if torch.equal(view[:1], r)]
        assert len(matches) == 1 and torch.equal(view[0], view[1])  # exact, same for every channel
        found.append(matches[0])
    assert set(found) == {0, 1, 2, 3}


def test_hed_round_trip_and_skimage_convention() -> None:
    x = torch.rand(4, 3, 16, 16, dtype=torch.float64).clamp_min(1e-3)
    hed = rgb_to_hed(x)
    assert torch.allclose(hed_to_rgb(hed), x, atol=1e-9)
    skimage_color = pytest.importorskip("skimage.color")
    reference = skimage_color.rgb2hed(x.permute(0, 2, 3, 1).numpy())
    ours = np.maximum(hed.permute(0, 2, 3, 1).numpy() / -math.log(1e-6), 0)
    np.testing.assert_allclose(ours, reference, atol=1e-9)


def test_hed_jitter_is_a_mild_per_image_stain_change() -> None:
    x = _batch(3, n=1).expand(8, -1, -1, -1).contiguous()
    torch.manual_seed(0)
    y = HEDJitter(sigma=0.05)(x)
    change = (y - x).abs().mean(dim=(1, 2, 3))
    assert bool((change > 1e-3).all()) and bool((change < 0.1).all())
    assert len({round(float(c), 6) for c in change}) == 8
    assert torch.equal(HEDJitter(sigma=0.05)(_batch(1)), _batch(1))  # grayscale passes through


def test_detect_preset() -> None:
    assert detect_preset("histology", 3) == "histology"
    assert detect_preset("Histopathology", 1) == "histology"
    assert detect_preset("xray", 3) == "xray"
    assert detect_preset("generic", 1) == "xray"
    assert detect_preset("generic", 3) == "generic"
    assert detect_preset("", 3) == "generic"


def test_eval_transform_converts_without_changing_pixels() -> None:
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    x = eval_transform(images)
    assert x.shape == (3, 3, 8, 8) and x.dtype == torch.float32
    assert torch.equal((x * 255).round().to(torch.uint8).permute(0, 2, 3, 1), torch.from_numpy(images))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("preset", PRESETS)
def test_runs_on_gpu(preset: str) -> None:
    x = _batch(3, n=16).cuda()
    torch.manual_seed(0)
    y = build_augment(preset, SIZE, 3).cuda()(x)  # type: ignore[arg-type]
    assert y.device == x.device and y.shape == x.shape
    assert float(y.min()) >= 0 and float(y.max()) <= 1


def test_preview_png_size_and_original_tiles(tmp_path) -> None:
    images = (np.random.default_rng(0).random((10, SIZE, SIZE, 1)) * 255).astype(np.uint8)
    out = augment_preview(images, ["xray", "histology"], tmp_path / "p.png", n_images=3, n_views=4, seed=0)
    with Image.open(out) as png:
        assert png.size == grid_size(SIZE, 2, 3, 4)
        pixels = np.asarray(png.convert("RGB"))
    chosen = np.sort(np.random.default_rng(0).choice(10, 3, replace=False))
    tile, factor = tile_size(SIZE), tile_size(SIZE) // SIZE
    left = LABEL_WIDTH + GAP
    first = pixels[HEADER_HEIGHT : HEADER_HEIGHT + tile, left : left + tile, 0]
    np.testing.assert_array_equal(first[::factor, ::factor], images[chosen[0], :, :, 0])
    view = pixels[HEADER_HEIGHT : HEADER_HEIGHT + tile, left + tile + GAP : left + 2 * tile + GAP]
    assert (view[..., 0] == view[..., 1]).all() and not np.array_equal(view[::factor, ::factor, 0], first)


def test_preview_of_a_multi_crop_plan_draws_local_crops_to_scale(tmp_path) -> None:
    images = (np.random.default_rng(0).random((10, SIZE, SIZE, 3)) * 200 + 20).astype(np.uint8)
    plan = ViewPlan(global_crops=2, local_crops=3)
    out = augment_preview(images, ["generic"], tmp_path / "p.png", n_images=2, seed=0, plan=plan)
    with Image.open(out) as png:
        assert png.size == grid_size(SIZE, 1, 2, 5)
        pixels = np.asarray(png.convert("RGB"))
    tile, half = tile_size(SIZE), tile_size(SIZE) // 2
    rows = slice(HEADER_HEIGHT, HEADER_HEIGHT + tile)
    for j in range(1, 6):  # the original, 2 global crops, then 3 local crops of half the side
        left = LABEL_WIDTH + GAP + j * (tile + GAP)
        drawn = pixels[rows, left : left + tile]
        blank = (drawn == 255).all(axis=-1)
        assert blank[:half, half:].all() == blank[half:].all() == (j >= 3), j
