"""The histology preset's HED stain jitter stays plausible: no negative stain, white background stays white,
tissue still changes colour; the kornia and fused paths apply the same rule. On generated H&E-like tiles, and on
real Kather 2016 tiles when they are present (skipped otherwise)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from medssl.common.augment import SPECS, HEDJitter, eval_transform, hed_to_rgb, rgb_to_hed
from medssl.common.fused_augment import FusedAugment
from tests.data.datagen import KATHER_CLASSES, REAL_KATHER

SIZE = 48
SIGMA = SPECS["histology"].hed_sigma
NEGATIVE_TOLERANCE = 0.01
"""Optical density a stain may fall below ``min(s, 0)`` after the RGB round trip (float32, 8-bit inputs)."""
MAX_CLIPPED = 0.01
"""Largest share of stained pixels the jitter may push past white (a channel clipped to 1)."""
WHITE = 0.85
"""A pixel whose every channel is above this is unstained background (glass)."""
# Measured over 8 views (kornia path): the rule of σ = 0.2 vs the former unbounded α·s + β (σ = 0.05 absolute).
# Read-back below min(s, 0): 0 vs 0.04-0.27 OD. Empty-tile tint: ≤ 0.032 vs 0.028-0.075. Mean tissue change:
# 0.024-0.035 vs 0.009-0.013 (nearly a no-op). Clipped stained pixels on real tiles: ≤ 0.4 % vs up to 4 %.


def _he_tiles(n: int, seed: int = 0) -> torch.Tensor:
    """H&E-like tiles (n, 3, SIZE, SIZE) made from stain maps: a glass background (concentrations around 0, some
    slightly negative as real deconvolved glass is), pink stroma and dark nuclei; every 4th tile is empty."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    hed = 0.02 * torch.randn(n, 3, SIZE, SIZE, generator=g, dtype=torch.float64)
    for i in range(n):
        if i % 4 == 3:
            continue
        tissue = (xx + 10 * torch.sin(yy / 6.0 + i)) > SIZE * (0.25 + 0.4 * torch.rand(1, generator=g))
        hed[i, :, tissue] += torch.tensor([0.25, 0.6, 0.4], dtype=torch.float64).view(3, 1)
        for cy, cx in torch.randint(0, SIZE, (12, 2), generator=g).tolist():
            nucleus = tissue & ((yy - cy) ** 2 + (xx - cx) ** 2 < 9)
            hed[i, :, nucleus] += torch.tensor([1.4, 0.1, 0.3], dtype=torch.float64).view(3, 1)
    return hed_to_rgb(hed).float()


def _real_tiles(per_class: int = 3) -> torch.Tensor:
    """A few real tiles of every class, centre 64 px crops (skips the test when the data is absent)."""
    if not REAL_KATHER.is_dir():
        pytest.skip(f"{REAL_KATHER} not present")
    paths = [p for name in KATHER_CLASSES for p in sorted((REAL_KATHER / name).glob("*.tif"))[:per_class]]
    images = np.stack([np.asarray(Image.open(p).convert("RGB"))[43:107, 43:107] for p in paths])
    return eval_transform(images)


def _kornia_path(x: torch.Tensor) -> torch.Tensor:
    return HEDJitter(sigma=SIGMA)(x)


def _fused_path(x: torch.Tensor) -> torch.Tensor:
    return FusedAugment("histology", x.shape[-1], 3).stain(x)


PATHS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"kornia": _kornia_path, "fused": _fused_path}
TILES: dict[str, Callable[[], torch.Tensor]] = {"generated": lambda: _he_tiles(16), "real": _real_tiles}


def _views(path: str, x: torch.Tensor, n_views: int = 8) -> list[torch.Tensor]:
    torch.manual_seed(0)
    with torch.no_grad():
        return [PATHS[path](x) for _ in range(n_views)]


@pytest.mark.parametrize("tiles", TILES)
@pytest.mark.parametrize("path", PATHS)
def test_jitter_never_makes_a_stain_negative_nor_saturates(path: str, tiles: str) -> None:
    """Stain amounts read back from the jittered RGB stay at or above ``min(s, 0)`` (where no channel is clipped
    to 1, which loses the amount), and the jitter drives few stained pixels past white."""
    x = TILES[tiles]()
    floor = rgb_to_hed(x.double()).clamp_max(0.0)
    for view in _views(path, x):
        clipped = (view >= 1.0).any(1) & (x < 0.98).all(1)
        assert float(clipped.float().mean()) < MAX_CLIPPED, "the jitter drove stained pixels past white"
        below = (rgb_to_hed(view.double()) - floor).amin(1)[(view < 1.0).all(1)]
        assert float(below.min()) > -NEGATIVE_TOLERANCE, (
            f"a stain went {-float(below.min()):.3f} below min(s, 0)"
        )


@pytest.mark.parametrize("tiles", TILES)
@pytest.mark.parametrize("path", PATHS)
def test_white_background_stays_white(path: str, tiles: str) -> None:
    x = TILES[tiles]()
    glass = x.amin(1) > WHITE
    empty = glass.flatten(1).float().mean(1) > 0.95  # tiles that are (nearly) all glass
    assert bool(empty.any())
    for view in _views(path, x):
        change = (view - x).abs().amax(1)
        assert float(change[empty][glass[empty]].max()) < 0.04, "an empty tile took a tint"
        assert float(torch.quantile(change[glass], 0.99)) < 0.2, (
            "the glass of tissue tiles took a strong tint"
        )


@pytest.mark.parametrize("tiles", TILES)
@pytest.mark.parametrize("path", PATHS)
def test_jitter_still_changes_tissue_colour(path: str, tiles: str) -> None:
    x = TILES[tiles]()
    tissue = x.amin(1) < 0.7
    with_tissue = tissue.flatten(1).float().mean(1) > 0.2
    changes = torch.stack([(view - x).abs().mean(1)[tissue].mean() for view in _views(path, x)])
    assert float(changes.min()) > 0.008 and float(changes.mean()) > 0.015, f"tissue colour change {changes}"
    per_image = torch.stack([(v - x).abs().mean((1, 2, 3)) for v in _views(path, x, 2)])[:, with_tissue]
    assert len({round(float(c), 5) for c in per_image.flatten()}) == per_image.numel()  # drawn per image


def test_fused_and_kornia_paths_apply_the_same_stain_jitter() -> None:
    """On the CPU both draw α and β from the global RNG in the same order, so equal seeds give equal images."""
    x = _he_tiles(8)
    torch.manual_seed(5)
    reference = _kornia_path(x)
    torch.manual_seed(5)
    fused = _fused_path(x)
    torch.testing.assert_close(fused, reference)
    assert not torch.allclose(reference, x, atol=1e-2)
